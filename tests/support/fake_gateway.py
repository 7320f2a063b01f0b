"""An in-memory payment provider for service-level tests of the actions and the checkout use cases.

It implements the `PaymentGateway` protocol the services depend on, with the provider's rules that
matter to them (a PaymentIntent is paid, declined, canceled or refunded; a canceled one cannot be
paid). Tests that need Stripe itself use localstripe through the real gateway; this one lets a test
put a payment in any state, or make the provider fail, without a network.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Callable

from orders_service.payments.gateway import (
    PaymentGatewayError,
    PaymentIntent,
    PaymentIntentStatus,
    PaymentProviderBusy,
    PaymentRefused,
    Refund,
)


@dataclass
class FakeGateway:
    intents: dict[str, PaymentIntent] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # operations that raise PaymentGatewayError
    busy: set[str] = field(default_factory=set)  # operations answered with a rate limit
    refusing: dict[str, str] = field(default_factory=dict)  # operation → the code of the refusal it gets
    losing: set[str] = field(default_factory=set)  # operations done at the provider whose answer is lost
    meanwhile: dict[str, Callable[[], None]] = field(default_factory=dict)  # what happens while one is asked
    by_order: dict[str, str] = field(default_factory=dict)  # a create is idempotent per order
    refunds: dict[str, Refund] = field(default_factory=dict)  # by idempotency key
    _ids: itertools.count = field(default_factory=itertools.count)
    holds_cards: bool = False  # cards are charged at once (PAYMENT_CAPTURE=automatic)
    longest_call: timedelta = timedelta(seconds=1)  # in memory: no network to wait for

    def _enter(self, operation: str, subject: str) -> None:
        self.calls.append((operation, subject))
        if operation in self.meanwhile:
            self.meanwhile.pop(operation)()
        if operation in self.busy:
            raise PaymentProviderBusy("Request rate limit exceeded", retry_after=2)
        if operation in self.failing:
            raise PaymentGatewayError(f"the payment provider failed ({operation})")
        if operation in self.refusing:
            raise PaymentRefused(f"the payment provider refused ({operation})", self.refusing[operation])

    def _answer(self, operation: str, result):
        if operation in self.losing:
            self.losing.discard(operation)
            raise PaymentGatewayError("could not reach the payment provider")  # done all the same
        return result

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    # --- the protocol ---------------------------------------------------------------------------

    def create_payment_intent(self, order_id: str, amount: int, currency: str, attempt: int = 0) -> PaymentIntent:
        self._enter("create", order_id)
        key = order_id if not attempt else f"{order_id}-{attempt}"
        if key in self.by_order:
            return self._answer("create", self.intents[self.by_order[key]])
        pi_id = self.by_order[key] = f"pi_fake_{next(self._ids)}"
        intent = PaymentIntent(id=pi_id, status=PaymentIntentStatus.REQUIRES_PAYMENT_METHOD, amount=amount,
                               currency=currency.upper(), order_id=order_id, client_secret=f"{pi_id}_secret_x")
        self.intents[pi_id] = intent
        return self._answer("create", intent)

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        self._enter("retrieve", payment_intent_id)
        return replace(self.intents[payment_intent_id], live=True)

    def find_payment_intent(self, order_id: str, placed_at) -> PaymentIntent | None:
        self._enter("find", order_id)
        return next((i for i in reversed(self.intents.values()) if i.order_id == order_id), None)

    def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        self._enter("cancel", payment_intent_id)
        intent = self.intents[payment_intent_id]
        if intent.status in (PaymentIntentStatus.SUCCEEDED, PaymentIntentStatus.CANCELED,
                             PaymentIntentStatus.PROCESSING):
            raise PaymentRefused(f"You cannot cancel this PaymentIntent because it has a status of {intent.status}.",
                                 "payment_intent_unexpected_state")
        return self._answer("cancel", replace(self._set(payment_intent_id, status=PaymentIntentStatus.CANCELED),
                                              live=True))

    def refund_payment_intent(self, payment_intent_id: str, amount: int, idempotency_key: str) -> Refund:
        self._enter("refund", payment_intent_id)
        if idempotency_key in self.refunds:
            return self.refunds[idempotency_key]
        intent = self.intents[payment_intent_id]
        if intent.status != PaymentIntentStatus.SUCCEEDED:
            raise PaymentRefused("This PaymentIntent has no successful charge to refund.", "charge_not_found")
        if amount > intent.amount - intent.amount_refunded:
            raise PaymentRefused("Refund amount is greater than unrefunded amount on charge", "amount_too_large")
        intent = self._set(payment_intent_id, amount_refunded=intent.amount_refunded + amount)
        refund = self.refunds[idempotency_key] = Refund(f"re_fake_{next(self._ids)}", amount, intent.amount_refunded)
        return self._answer("refund", refund)

    def verify_webhook(self, payload: bytes, signature: str | None):
        raise NotImplementedError("webhooks are tested against the Stripe gateway")

    def event_payment_intent(self, payload: dict):
        raise NotImplementedError("webhooks are tested against the Stripe gateway")

    def refund_in_dashboard(self, payment_intent_id: str, amount: int) -> PaymentIntent:
        """A refund made at the provider directly (its dashboard): only its running total tells of it."""
        intent = self.intents[payment_intent_id]
        return self._set(payment_intent_id, amount_refunded=intent.amount_refunded + amount)

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
