"""What the shop does with a confirmed order: ship it, deliver it, collect cash on delivery."""
from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from orders_service.db import utcnow
from orders_service.errors import NotFound
from orders_service.notifications.outbox import notify
from orders_service.orders.lifecycle import transition
from orders_service.orders.models import Order, OrderEvent, PaymentStatus
from orders_service.orders.service import load_order


def update_fulfilment(session: Session, order_id: uuid.UUID, data: dict) -> Order:
    """`PATCH /api/admin/orders/{id}`: shipped (with tracking), delivered, or cash collected."""
    with session.begin():
        order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
        if order is None:
            raise NotFound("Order not found")
        if data.get("status") == "shipped":
            order.status = transition(order, "ship")
            order.tracking_number, order.carrier = data["trackingNumber"], data.get("carrier")
            session.add(OrderEvent(order_id=order.id, type="shipped",
                                   detail={"trackingNumber": order.tracking_number, "carrier": order.carrier}))
            notify(session, order, "shipped")
        elif data.get("status") == "delivered":
            order.status = transition(order, "deliver")
            session.add(OrderEvent(order_id=order.id, type="delivered", detail={}))
        else:  # paymentCollected (the schema allows nothing else)
            order.status = transition(order, "collect_payment")
            order.payment_status, order.paid_at = PaymentStatus.PAID, utcnow()
            session.add(OrderEvent(order_id=order.id, type="payment_collected", detail={"amount": order.total_cents}))
    with session.begin():
        return load_order(session, order_id)
