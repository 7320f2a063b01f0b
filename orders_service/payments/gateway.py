"""What the services need from a payment provider. Only `stripe_gateway` knows it is Stripe."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PaymentIntentStatus:
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"


@dataclass(frozen=True)
class PaymentIntent:
    """The provider's view of one payment, reduced to what decides an order's payment state."""

    id: str
    status: str
    amount: int  # minor units
    currency: str  # ISO 4217, upper case
    order_id: str | None  # from the PaymentIntent's metadata
    client_secret: str | None = None
    failure: str | None = None  # the last payment error, when the last attempt failed
    amount_refunded: int = 0


@dataclass(frozen=True)
class WebhookEvent:
    """A provider event whose signature was verified."""

    id: str
    type: str
    payment_intent_id: str | None  # the payment it is about, when it is about one
    order_id: str | None  # from the object's metadata, when it carries one
    payload: dict


class InvalidWebhook(Exception):
    """Missing or bad signature, stale timestamp, or a body that is not an event."""


class PaymentGatewayError(Exception):
    """The provider failed or could not be reached; `str()` is safe to show (no keys, no internals)."""


class PaymentGateway(Protocol):
    def create_payment_intent(self, order_id: str, amount: int, currency: str) -> PaymentIntent: ...

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent: ...

    def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntent: ...

    def refund_payment_intent(self, payment_intent_id: str, order_id: str) -> None: ...

    def verify_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent: ...
