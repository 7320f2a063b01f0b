"""What the shop does with a confirmed order: ship it, deliver it, collect cash on delivery."""
from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from orders_service.orders import actions
from orders_service.orders.models import Order
from orders_service.orders.service import load_order


def update_fulfilment(session: Session, order_id: uuid.UUID, data: dict) -> Order:
    """`PATCH /api/admin/orders/{id}`: shipped (with tracking), delivered, or cash collected."""
    with session.begin():
        order = actions.lock_order(session, order_id)
        if data.get("status") == "shipped":
            actions.ship(session, order, data["trackingNumber"], data.get("carrier"))
        elif data.get("status") == "delivered":
            actions.deliver(session, order)
        else:  # paymentCollected (the schema allows nothing else)
            actions.collect_cash(session, order)
    with session.begin():
        return load_order(session, order_id)
