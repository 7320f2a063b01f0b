"""Which change a PaymentIntent asks of an order: a pure function of the two, no database.

`apply_payment_intent` locks the order, asks `decide`, and carries the answer out through
`orders/actions.py`. Payment state moves forward only: a paid order never goes back to unpaid, and
an event that arrives late or twice asks for nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Decision:
    action: str | None  # None: nothing to change, and `reason` says why
    reason: str = ""


def belongs_to(order: Order, intent: PaymentIntent) -> bool:
    """The PaymentIntent is the one the order opened; before the order knows its id, the one naming it.

    A charge's view of its PaymentIntent (`charge.refunded`) may carry no metadata: the id is enough,
    but metadata naming another order never is.
    """
    if order.payment_intent_id is not None:
        return intent.id == order.payment_intent_id and intent.order_id in (None, str(order.id))
    return intent.order_id == str(order.id)


def decide(order: Order, intent: PaymentIntent) -> Decision:
    """The change `intent` (the provider's current state) asks of `order`, or why there is none."""
    if order.payment_method != PaymentMethod.ONLINE:
        return Decision(None, "not an online order")
    if not belongs_to(order, intent):
        return Decision(None, "payment intent belongs to another order")

    if intent.status == PaymentIntentStatus.SUCCEEDED:
        if intent.amount != order.total_cents or intent.currency != order.currency:
            return Decision(None, "amount or currency differs from the order")
        if order.payment_status not in PaymentStatus.RECEIVED:
            if intent.amount_refunded >= intent.amount:  # paid and refunded in full before we heard of it
                return Decision(Action.RECORD_REFUND)
            if allowed(order.status, "pay"):
                return Decision(Action.CONFIRM)
            # A canceled order is never revived: the customer asked for it to stop.
            if allowed(order.status, "revive"):
                return Decision(Action.REVIVE)
            return Decision(Action.RECORD_LATE_PAYMENT)
        if intent.amount_refunded > order.refunded_cents:
            return Decision(Action.RECORD_REFUND)
        return Decision(None, "already refunded" if order.payment_status == PaymentStatus.REFUNDED
                        else "already paid")

    if intent.status == PaymentIntentStatus.CANCELED:
        if order.status != OrderStatus.PENDING:
            return Decision(None, f"order is {order.status}")
        return Decision(Action.CANCEL)

    if intent.failure and intent.status == PaymentIntentStatus.REQUIRES_PAYMENT_METHOD:
        if order.status != OrderStatus.PENDING:
            return Decision(None, f"order is {order.status}")
        if order.payment_status != PaymentStatus.UNPAID:
            return Decision(None, f"payment is {order.payment_status}")
        return Decision(Action.RECORD_FAILURE)

    return Decision(None, f"payment intent is {intent.status}")
