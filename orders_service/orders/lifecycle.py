"""The order state machine (docs/state-machine.md): which action may move an order from which state, and where to.

Every service that changes an order's status asks `transition()` first, so that a forbidden move is a
400 that changes nothing, decided in one place.
"""
from __future__ import annotations

from orders_service.errors import InvalidRequest
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus

PENDING, CONFIRMED, SHIPPED, DELIVERED, EXPIRED, CANCELED = (
    OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.EXPIRED,
    OrderStatus.CANCELED)

# (status, action) → the status after it.
TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING, "pay"): CONFIRMED,
    (PENDING, "authorize"): CONFIRMED,  # PAYMENT_CAPTURE=on_shipment: the card is held, captured as it ships
    (PENDING, "expire"): EXPIRED,
    (EXPIRED, "revive"): CONFIRMED,  # the payment arrived after expiry and the stock could be taken again
    (PENDING, "cancel"): CANCELED,
    (CONFIRMED, "cancel"): CANCELED,
    (CONFIRMED, "ship"): SHIPPED,
    (SHIPPED, "deliver"): DELIVERED,
    # Cash on delivery: the courier collects the money; the status stays where it is.
    (CONFIRMED, "collect_payment"): CONFIRMED,
    (SHIPPED, "collect_payment"): SHIPPED,
    (DELIVERED, "collect_payment"): DELIVERED,
}
ACTIONS = sorted({action for _status, action in TRANSITIONS})
# How a refusal names the action: "An order that is pending cannot be shipped".
_PREDICATES = {"pay": "be paid", "authorize": "have its payment authorized", "expire": "expire",
               "revive": "be revived", "cancel": "be canceled",
               "ship": "be shipped", "deliver": "be delivered", "collect_payment": "have its cash collected"}

_REFUSALS = {
    (CANCELED, "cancel"): "Order is already canceled",
    (SHIPPED, "cancel"): "Order has already shipped and can no longer be canceled",
    (DELIVERED, "cancel"): "Order has already been delivered and can no longer be canceled",
    (EXPIRED, "cancel"): "Order has expired",
}


# A payment the provider is processing cannot be stopped (Stripe cannot cancel it), and the customer has
# paid as far as they can: the order neither expires nor is canceled until the provider settles it.
# (The provider's own cancel of its PaymentIntent settles it: `actions.cancel_by_provider`.)
_WHILE_PROCESSING = {
    "cancel": "The payment for this order is still being processed; the order can be canceled once the "
              "payment has gone through or failed",
    "expire": "An order whose payment is being processed does not expire",
}


def allowed(status: str, action: str) -> bool:
    return (status, action) in TRANSITIONS


def transition(order: Order, action: str) -> str:
    """The order's next status for `action`; InvalidRequest (400) when the state machine forbids it."""
    if action == "collect_payment" and (order.payment_method != PaymentMethod.CASH_ON_DELIVERY
                                        or order.payment_status != PaymentStatus.UNPAID):
        raise InvalidRequest("Only an unpaid cash-on-delivery order can have its payment collected")
    if action == "ship" and order.payment_status == PaymentStatus.AUTHORIZED:
        # Only the capture's path ships it, once the capture is applied: never a held payment left behind.
        raise InvalidRequest("The payment of this order is only authorized: it is captured as the order ships")
    if action in _WHILE_PROCESSING and order.payment_status == PaymentStatus.PROCESSING \
            and allowed(order.status, action):
        raise InvalidRequest(_WHILE_PROCESSING[action])
    target = TRANSITIONS.get((order.status, action))
    if target is None:
        raise InvalidRequest(_REFUSALS.get((order.status, action),
                                           f"An order that is {order.status} cannot {_PREDICATES[action]}"))
    return target
