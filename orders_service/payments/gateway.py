"""What the services need from a payment provider. Only `stripe_gateway` knows it is Stripe."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class PaymentIntentStatus:
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_CAPTURE = "requires_capture"  # authorized (held on the card), waiting for the capture
    # Still open at the provider: it can be paid, so it must be canceled if its order closes.
    OPEN = ("requires_payment_method", "requires_confirmation", "requires_action", "processing", "requires_capture")


@dataclass(frozen=True)
class NextAction:
    """The step the provider waits for from the customer (`requires_action`)."""

    type: str  # Stripe's `next_action.type`: `redirect_to_url`, `use_stripe_sdk` (3-D Secure in Stripe.js), …
    redirect_url: str | None = None  # the page the customer must visit (a bank's, a wallet's), when there is one


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
    amount_refunded: int = 0  # the provider's running total of refunds (0 when the object did not say)
    method_type: str | None = None  # the type of the method used (`card`, `sepa_debit`, …), when the object tells it
    next_action: NextAction | None = None  # while `requires_action`
    # While `requires_capture`: what may be captured, and when the hold lapses (the charge's
    # `capture_before`; None when the object did not tell: a webhook's snapshot names its charge by id).
    amount_capturable: int = 0
    # What the provider took (Stripe's `amount_received`): less than `amount` when a person captured only part of
    # a hold in the Dashboard. None when the object did not tell (all of it, once succeeded).
    amount_received: int | None = None
    capture_before: datetime | None = None
    cancellation_reason: str | None = None  # once canceled: `automatic` when the provider let a hold lapse
    # Read from the provider just now (PATCH …/paid, reconciliation, expiry), not an event's snapshot, which
    # may be older than what the order already shows: events come in any order.
    live: bool = False


@dataclass(frozen=True)
class Refund:
    """A refund the provider accepted."""

    id: str
    amount: int
    # The charge's running total of refunds after this one, when the provider's answer carried it.
    refunded_total: int | None


@dataclass(frozen=True)
class WebhookEvent:
    """A provider event whose signature was verified."""

    id: str
    type: str
    payment_intent_id: str | None  # the payment it is about, when it is about one
    order_id: str | None  # from the object's metadata, when it carries one
    payload: dict
    raw: str = ""  # the signed body as received


class PaymentGatewayError(Exception):
    """The provider failed or could not be reached; `str()` is safe to show (no keys, no internals).

    Whether the request took effect is unknown: a retry must be able to find out (idempotency keys).
    """


class PaymentRefused(PaymentGatewayError):
    """The provider answered, and refused: the request did nothing (a bad amount, a declined card, …)."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class PaymentProviderBusy(PaymentGatewayError):
    """The provider is rate-limiting us (429): nothing was done; it means "later", after `retry_after` s.

    Not a refusal: whoever meets it leaves the work for later, as when the provider cannot be reached.
    """

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class InvalidWebhook(Exception):
    """Missing or bad signature, stale timestamp, or a body that is not an event."""


class PaymentGateway(Protocol):
    # Card payments are only authorized (PAYMENT_CAPTURE=on_shipment): a PaymentIntent may hold a card, and the
    # provider lets such a one be canceled, so nobody cancels one without reading it first.
    holds_cards: bool
    # How long one call may take at most, its retries included: after that it has failed (a caller that claimed
    # work for the length of a call knows it is over).
    longest_call: timedelta

    def create_payment_intent(self, order_id: str, amount: int, currency: str, attempt: int = 0) -> PaymentIntent:
        """Idempotent per order and attempt: asking again returns the same PaymentIntent.

        `attempt` > 0 opens a replacement (the emulator cannot charge a declined PaymentIntent again).
        """

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent: ...

    def find_payment_intent(self, order_id: str, placed_at: datetime) -> PaymentIntent | None:
        """The PaymentIntent opened for the order (its metadata names it), or None when the provider has
        none; `placed_at` is when the order was placed. Raises PaymentGatewayError when it cannot tell."""

    def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntent: ...

    def refund_payment_intent(self, payment_intent_id: str, amount: int, idempotency_key: str) -> Refund: ...

    def capture_payment_intent(self, payment_intent_id: str, idempotency_key: str) -> PaymentIntent:
        """Capture an authorized PaymentIntent in full. PaymentRefused when the provider will not (already
        captured, canceled, lapsed): the caller reads the PaymentIntent to learn which."""

    def verify_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent: ...

    def event_payment_intent(self, payload: dict) -> PaymentIntent | None:
        """The payment a stored, verified event describes, as the provider saw it then (no network)."""
