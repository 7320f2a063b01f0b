"""The Stripe gateway when localstripe, the Stripe emulator, stands in for Stripe (`STRIPE_EMULATOR`).

It is the real gateway with what the emulator needs changed: no SDK retries (localstripe answers bare 500s
that a retry cannot fix), no parameters it refuses (`description`), and the browser flow its Stripe.js
forces (`checkout.py`): the page saves a card with a SetupIntent, and the service confirms the order's
PaymentIntent with it. Real Stripe's browsers never need that.
"""
from __future__ import annotations

from datetime import datetime

from orders_service.payments.gateway import PaymentIntent
from orders_service.payments.stripe_gateway import StripeGateway, naming, pick_payment_intent, to_payment_intent


class LocalStripeGateway(StripeGateway):
    NETWORK_RETRIES = 0

    def _payment_intent_params(self, order_id: str, amount: int, currency: str) -> dict:
        params = super()._payment_intent_params(order_id, amount, currency)
        del params["description"]  # localstripe answers 400 "Unexpected description"
        return params

    def find_payment_intent(self, order_id: str, placed_at: datetime) -> PaymentIntent | None:
        """localstripe has no search, nor a `created` filter on its list: every PaymentIntent it holds is read."""
        params, intents = {"limit": 100, "expand": ["data.latest_charge"]}, []
        while True:
            listed = self._call(self._client.v1.payment_intents.list, params=params)
            intents += naming(listed.data, order_id)
            if not listed.has_more:
                return pick_payment_intent(intents)
            params = {**params, "starting_after": listed.data[-1].id}

    def create_setup_intent(self) -> str:
        """A SetupIntent for the page to save a card with; its client secret."""
        return self._call(self._client.v1.setup_intents.create, params={"usage": "on_session"}).client_secret

    def confirm_with_payment_method(self, payment_intent_id: str, payment_method_id: str) -> PaymentIntent:
        """Charge the saved card; a decline raises PaymentRefused (the PaymentIntent records it)."""
        # localstripe answers `confirm(payment_method=…)` with "Not implemented": set it, then confirm.
        self._call(self._client.v1.payment_intents.update, payment_intent_id,
                   params={"payment_method": payment_method_id})
        return to_payment_intent(self._call(self._client.v1.payment_intents.confirm, payment_intent_id))
