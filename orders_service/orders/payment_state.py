"""What a client needs to resume an order's payment (`GET /api/orders/{orderId}/payment`): after a reload,
a decline, or a return from a bank's page.

It is read from the order, not from the provider: the webhooks (`payment_intent.requires_action`,
`.processing`, `.payment_failed`, …), `PATCH …/paid` and reconciliation keep the order's payment state
current, and a page that polls or reloads must not spend the provider's request budget
(docs/decisions.md, "Payment methods and states"). A client returning from a bank's page calls
`PATCH …/paid` first, which does ask the provider.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders_service.auth.actor import Actor
from orders_service.errors import NotFound
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus


@dataclass(frozen=True)
class PaymentState:
    order_id: uuid.UUID
    payment_status: str
    client_secret: str | None  # only while the order can be paid
    next_action: dict | None  # `{type, redirectUrl?}`: the step the provider waits for, while there is one
    last_error: str | None  # the last decline's message, while the last attempt is the one that failed


_COLUMNS = select(Order.customer_id, Order.status, Order.payment_method, Order.payment_status, Order.client_secret,
                  Order.payment_next_action, Order.payment_error)


def payment_state(session: Session, actor: Actor, order_id: uuid.UUID) -> PaymentState:
    """The order's payment as its customer may resume it. Only the customer who placed it may read it (the
    client secret confirms a payment): anyone else's order, an admin's look included, is 404 as if unknown."""
    with session.begin():
        row = session.execute(_COLUMNS.where(Order.id == order_id)).first()
    if row is None or row.customer_id != actor.customer_id:
        raise NotFound("Order not found")
    payable = (row.status == OrderStatus.PENDING and row.payment_method == PaymentMethod.ONLINE
               and row.payment_status in PaymentStatus.PAYABLE)
    waiting = payable and row.payment_status == PaymentStatus.ACTION_REQUIRED
    return PaymentState(
        order_id=order_id,
        payment_status=row.payment_status,
        client_secret=row.client_secret if payable else None,
        next_action=row.payment_next_action if waiting else None,
        last_error=row.payment_error if row.payment_status == PaymentStatus.FAILED else None,
    )
