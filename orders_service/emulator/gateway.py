"""The Stripe gateway when localstripe, the Stripe emulator, stands in for Stripe (`STRIPE_EMULATOR`).

It is the real gateway with what the emulator needs changed: no SDK retries (localstripe answers bare 500s
that a retry cannot fix), no parameters it refuses (`description`), the browser flow its Stripe.js
forces (`checkout.py`): the page saves a card with a SetupIntent, and the service confirms the order's
PaymentIntent with it. Real Stripe's browsers never need that. And the emulator forgets every payment
when it restarts (`server.py` keeps nothing on disk), which real Stripe never does.
"""
from __future__ import annotations

import logging
from datetime import datetime

from orders_service.payments.gateway import PaymentIntent, PaymentIntentStatus, PaymentRefused
from orders_service.payments.stripe_gateway import StripeGateway, naming, pick_payment_intent, to_payment_intent

log = logging.getLogger(__name__)


def _unknown(exc: PaymentRefused) -> bool:
    """The emulator answered 404: it holds no such object (the SDK's error says so by its HTTP status)."""
    return getattr(exc.__cause__, "http_status", None) == 404


class LocalStripeGateway(StripeGateway):
    NETWORK_RETRIES = 0
    # localstripe keeps a PaymentMethod id it does not know (real Stripe refuses it), then answers 404 to a
    # read that expands it; it knows cards only, and `payment_method_types: [card]` says so.
    READ_EXPANDED = ("latest_charge",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reported: set[str] = set()  # forgotten PaymentIntents already told about, one line each

    def _payment_intent_params(self, order_id: str, amount: int, currency: str) -> dict:
        params = super()._payment_intent_params(order_id, amount, currency)
        del params["description"]  # localstripe answers 400 "Unexpected description"
        if params.pop("payment_method_options", None):
            # localstripe accepts payment method options but ignores them; it knows cards only, so holding
            # every method is holding cards.
            params["capture_method"] = "manual"
        return params

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        try:
            return super().retrieve_payment_intent(payment_intent_id)
        except PaymentRefused as exc:
            if not _unknown(exc):
                raise
            return self._forgotten(payment_intent_id)

    def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        try:
            return super().cancel_payment_intent(payment_intent_id)
        except PaymentRefused as exc:
            if not _unknown(exc):
                raise
            return self._forgotten(payment_intent_id)

    def _forgotten(self, payment_intent_id: str) -> PaymentIntent:
        """A PaymentIntent the emulator no longer knows: it was restarted since (`make run` again). Nobody can
        pay it and it holds no money, so it is as good as canceled: the order it belonged to, if still
        unpaid, is closed and its stock released, instead of being asked about (and failing) forever."""
        if payment_intent_id not in self._reported:
            if len(self._reported) > 10_000:
                self._reported.clear()
            self._reported.add(payment_intent_id)
            log.warning("the Stripe emulator no longer knows payment %s (it forgets every payment when it restarts):"
                        " taken as canceled, so an unpaid order of it is closed and its stock released;"
                        " nothing to do but place that order again", payment_intent_id)
        return PaymentIntent(id=payment_intent_id, status=PaymentIntentStatus.CANCELED, amount=0, currency="",
                             order_id=None)

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
        return to_payment_intent(self._call(self._client.v1.payment_intents.confirm, payment_intent_id), live=True)
