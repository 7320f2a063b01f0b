"""Which change a PaymentIntent asks of an order: a pure function of the two, no database.

`apply_payment_intent` locks the order, asks `decide`, and carries the answer out through
`orders/actions.py`. Payment state moves forward only: a paid order never goes back to unpaid, and
an event that arrives late or twice asks for nothing. Before the money arrives the provider's word
moves it between the unsettled states (`unpaid`, `action_required`, `processing`, `failed`) as the
payment goes: a step for the customer, processing, a failure after which the customer pays again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orders_service.db import as_utc
from orders_service.orders.lifecycle import allowed
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus
from orders_service.payments.gateway import PaymentIntent, PaymentIntentStatus


class Action:
    """What the PaymentIntent calls for; each names a function of `orders.actions`."""

    CONFIRM = "confirm_payment"
    REVIVE = "revive"  # paid after expiry: confirm if the stock can be taken again, else a refund is due
    RECORD_LATE_PAYMENT = "record_late_payment"  # paid after the order closed: the money goes back
    RECORD_REFUND = "record_refund"  # the provider refunded more (in part or in full) than the order shows
    CANCEL = "cancel_by_provider"
    RECORD_FAILURE = "record_payment_failure"
    RECORD_ACTION_REQUIRED = "record_action_required"  # the customer must finish a step (3-D Secure, a redirect)
    RECORD_PROCESSING = "record_processing"  # the provider accepted it and tells the outcome later
    RECORD_METHOD_TYPE = "record_payment_method_type"  # nothing moves, but the type of the method used is news
    AUTHORIZE = "authorize_payment"  # the card is held (PAYMENT_CAPTURE=on_shipment): confirmed, captured at shipment
    RECORD_CAPTURE = "record_capture"  # the held payment was captured: paid
    RECORD_CAPTURE_DEADLINE = "record_capture_deadline"  # nothing moves, but the provider told when the hold lapses
    LAPSE = "lapse_authorization"  # the held payment's PaymentIntent was canceled (lapsed): the order closes


@dataclass(frozen=True)
class Decision:
    action: str | None  # None: nothing to change, and `reason` says why
    reason: str = ""


MISMATCH = "amount or currency differs from the order"
# How long a card authorization holds when the provider did not say (a webhook's snapshot names its charge
# by id): Stripe's usual window for online card payments. A later read (reconciliation) gives the exact one.
AUTHORIZATION_WINDOW = timedelta(days=7)
# A payment the customer has not finished: a new step, processing or a failure may follow.
_UNSETTLED = (PaymentStatus.UNPAID, PaymentStatus.ACTION_REQUIRED, PaymentStatus.PROCESSING, PaymentStatus.FAILED)


def belongs_to(order: Order, intent: PaymentIntent) -> bool:
    """The PaymentIntent is the one the order opened; before the order knows its id, the one naming it.

    A charge's view of its PaymentIntent (`charge.refunded`) may carry no metadata: the id is enough,
    but metadata naming another order never is.
    """
    if order.payment_intent_id is not None:
        return intent.id == order.payment_intent_id and intent.order_id in (None, str(order.id))
    return intent.order_id == str(order.id)


def next_action_of(intent: PaymentIntent) -> dict | None:
    """The step the customer must take, as the order keeps it and a client reads it: `{type, redirectUrl?}`."""
    if intent.next_action is None:
        return None
    step = {"type": intent.next_action.type}
    if intent.next_action.redirect_url:
        step["redirectUrl"] = intent.next_action.redirect_url
    return step


def method_type_of(order: Order, intent: PaymentIntent) -> str | None:
    """The type of the method used the order should show once `intent` is applied.

    What a live read tells is the payment as it is now; an event's snapshot may be older than what the
    order knows, so it only fills a type the order does not know yet. An intent that does not tell (a
    webhook's PaymentIntent names its charge and PaymentMethod by id) leaves the order's as it is.
    """
    if intent.method_type and (intent.live or order.payment_method_type is None):
        return intent.method_type
    return order.payment_method_type


def received(intent: PaymentIntent) -> int:
    """What the provider took of a succeeded PaymentIntent: all of it unless it says less (a hold captured in
    part from the Dashboard)."""
    return intent.amount if intent.amount_received is None else min(intent.amount_received, intent.amount)


def refunded_total(intent: PaymentIntent) -> int:
    """What of a succeeded PaymentIntent's amount the shop does not keep: its refunds, and the part of a hold
    that was never captured (released to the customer, as a refund is)."""
    return min(intent.amount, intent.amount_refunded + intent.amount - received(intent))


def capture_deadline(intent: PaymentIntent, now: datetime) -> datetime:
    """When an authorization's hold lapses: what the provider says, else its usual window from now."""
    return intent.capture_before or now + AUTHORIZATION_WINDOW


def decide(order: Order, intent: PaymentIntent) -> Decision:
    """The change `intent` (the provider's current state) asks of `order`, or why there is none."""
    if order.payment_method != PaymentMethod.ONLINE:
        return Decision(None, "not an online order")
    if not belongs_to(order, intent):
        return Decision(None, "payment intent belongs to another order")
    decision = _payment_change(order, intent)
    if decision.action is None and decision.reason != MISMATCH and method_type_of(
            order, intent) != order.payment_method_type:
        return Decision(Action.RECORD_METHOD_TYPE)
    return decision



def _payment_change(order: Order, intent: PaymentIntent) -> Decision:
    if intent.status == PaymentIntentStatus.SUCCEEDED:
        if intent.amount != order.total_cents or intent.currency != order.currency:
            return Decision(None, MISMATCH)
        refunded = refunded_total(intent)
        if order.payment_status not in PaymentStatus.RECEIVED:
            if refunded >= intent.amount:  # paid and refunded in full before we heard of it: never kept
                return Decision(Action.RECORD_REFUND)
            if order.payment_status == PaymentStatus.AUTHORIZED:
                # Captured (by us, or seen so at the provider): paid now. Captured in part (the Dashboard), the
                # rest was released to the customer: the next decision records it as refunded.
                return Decision(Action.RECORD_CAPTURE)
            if allowed(order.status, "pay"):
                return Decision(Action.CONFIRM)
            # A canceled order is never revived: the customer asked for it to stop.
            if allowed(order.status, "revive"):
                return Decision(Action.REVIVE)
            return Decision(Action.RECORD_LATE_PAYMENT)
        if refunded > order.refunded_cents:
            return Decision(Action.RECORD_REFUND)
        return Decision(None, "already refunded" if order.payment_status == PaymentStatus.REFUNDED
                        else "already paid")

    if intent.status == PaymentIntentStatus.REQUIRES_CAPTURE:
        return _authorization(order, intent)

    if intent.status == PaymentIntentStatus.CANCELED:
        if order.status == OrderStatus.CONFIRMED and order.payment_status == PaymentStatus.AUTHORIZED:
            return Decision(Action.LAPSE)  # the hold lapsed (or was canceled there): nothing can be captured
        if order.status != OrderStatus.PENDING:
            return Decision(None, f"order is {order.status}")
        return Decision(Action.CANCEL)

    if intent.failure and intent.status == PaymentIntentStatus.REQUIRES_PAYMENT_METHOD:
        if order.status != OrderStatus.PENDING:
            return Decision(None, f"order is {order.status}")
        if order.payment_status not in _UNSETTLED:
            return Decision(None, f"payment is {order.payment_status}")
        if order.payment_status == PaymentStatus.FAILED and intent.failure == order.payment_error:
            return Decision(None, "payment is failed")  # this failure is recorded already
        # From processing too: the provider's later failure (a bank debit returned). The order may be
        # paid again, its time to pay counting from now.
        return Decision(Action.RECORD_FAILURE)

    if intent.status == PaymentIntentStatus.PROCESSING:
        if order.status != OrderStatus.PENDING:
            return Decision(None, f"order is {order.status}")
        if order.payment_status not in PaymentStatus.PAYABLE:
            return Decision(None, f"payment is {order.payment_status}")
        return Decision(Action.RECORD_PROCESSING)

    if intent.status == PaymentIntentStatus.REQUIRES_ACTION:
        if order.status != OrderStatus.PENDING:
            return Decision(None, f"order is {order.status}")
        if order.payment_status == PaymentStatus.ACTION_REQUIRED:
            if next_action_of(intent) == order.payment_next_action:
                return Decision(None, "payment is action_required")
            return Decision(Action.RECORD_ACTION_REQUIRED)  # another step (the customer tried again)
        # Processing never goes back to a step: a snapshot saying so is older than the processing one.
        # A live read saying so is the provider now: that attempt failed and a new one waits on the customer.
        if order.payment_status in PaymentStatus.PAYABLE or (
                order.payment_status == PaymentStatus.PROCESSING and intent.live):
            return Decision(Action.RECORD_ACTION_REQUIRED)
        return Decision(None, f"payment is {order.payment_status}")

    return Decision(None, f"payment intent is {intent.status}")


def _authorization(order: Order, intent: PaymentIntent) -> Decision:
    """A PaymentIntent authorized and waiting for its capture (`requires_capture`)."""
    if (intent.amount != order.total_cents or intent.currency != order.currency
            or intent.amount_capturable < order.total_cents):
        return Decision(None, MISMATCH)
    if order.payment_status == PaymentStatus.AUTHORIZED:
        known = as_utc(order.capture_before) if order.capture_before is not None else None
        if intent.capture_before is not None and intent.capture_before != known:
            return Decision(Action.RECORD_CAPTURE_DEADLINE)
        return Decision(None, "payment is authorized")
    if order.status != OrderStatus.PENDING:
        # A closed order's hold is released by settlement (its PaymentIntent canceled), never captured.
        return Decision(None, f"order is {order.status}")
    if order.payment_status not in _UNSETTLED:
        return Decision(None, f"payment is {order.payment_status}")
    return Decision(Action.AUTHORIZE)
