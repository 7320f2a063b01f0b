"""An in-memory payment provider for service-level tests of the actions and the checkout use cases.

It implements the `PaymentGateway` protocol the services depend on, with the provider's rules that
matter to them (a PaymentIntent is paid, declined, canceled or refunded; a canceled one cannot be
paid). Tests that need Stripe itself use localstripe through the real gateway; this one lets a test
put a payment in any state, or make the provider fail, without a network.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from orders_service.payments.gateway import PaymentGatewayError, PaymentIntent, PaymentIntentStatus


@dataclass
class FakeGateway:
    intents: dict[str, PaymentIntent] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # operations that raise PaymentGatewayError
    _ids: itertools.count = field(default_factory=itertools.count)

    def _enter(self, operation: str, subject: str) -> None:
        self.calls.append((operation, subject))
        if operation in self.failing:
            raise PaymentGatewayError(f"the payment provider failed ({operation})")

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    # --- the protocol ---------------------------------------------------------------------------

    def create_payment_intent(self, order_id: str, amount: int, currency: str) -> PaymentIntent:
        self._enter("create", order_id)
        pi_id = f"pi_fake_{next(self._ids)}"
        intent = PaymentIntent(id=pi_id, status=PaymentIntentStatus.REQUIRES_PAYMENT_METHOD, amount=amount,
                               currency=currency.upper(), order_id=order_id, client_secret=f"{pi_id}_secret_x")
        self.intents[pi_id] = intent
        return intent

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        self._enter("retrieve", payment_intent_id)
        return self.intents[payment_intent_id]

    def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        self._enter("cancel", payment_intent_id)
        intent = self.intents[payment_intent_id]
        if intent.status == PaymentIntentStatus.SUCCEEDED:
            raise PaymentGatewayError("You cannot cancel this PaymentIntent because it has a status of succeeded.")
        return self._set(payment_intent_id, status=PaymentIntentStatus.CANCELED)

    def refund_payment_intent(self, payment_intent_id: str, order_id: str) -> None:
        self._enter("refund", payment_intent_id)
        intent = self.intents[payment_intent_id]
        if intent.status != PaymentIntentStatus.SUCCEEDED:
            raise PaymentGatewayError("This PaymentIntent has no successful charge to refund.")
        self._set(payment_intent_id, amount_refunded=intent.amount)

    def verify_webhook(self, payload: bytes, signature: str | None):
        raise NotImplementedError("webhooks are tested against the Stripe gateway")

    # --- what the customer (or the dashboard) does at the provider ---------------------------------

    def pay(self, payment_intent_id: str) -> PaymentIntent:
        if self.intents[payment_intent_id].status == PaymentIntentStatus.CANCELED:
            raise PaymentGatewayError("This PaymentIntent was canceled.")
        return self._set(payment_intent_id, status=PaymentIntentStatus.SUCCEEDED, failure=None)

    def decline(self, payment_intent_id: str, message: str = "Your card was declined.") -> PaymentIntent:
        return self._set(payment_intent_id, status=PaymentIntentStatus.REQUIRES_PAYMENT_METHOD, failure=message)

    def _set(self, payment_intent_id: str, **changes) -> PaymentIntent:
        self.intents[payment_intent_id] = replace(self.intents[payment_intent_id], **changes)
        return self.intents[payment_intent_id]
