"""Cancelling an order: stock back at once, then the payment undone at the provider (CONTRACT §5)."""
from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from orders_service.auth.tokens import Actor
from orders_service.notifications.outbox import notify
from orders_service.orders.lifecycle import transition
from orders_service.orders.models import Order, OrderEvent, PaymentMethod, PaymentStatus
from orders_service.errors import NotFound
from orders_service.orders.service import load_order, release_order_stock
from orders_service.payments.gateway import PaymentGateway, PaymentGatewayError
from orders_service.payments.service import Applied, apply_payment_intent, settle_refund_due

log = logging.getLogger(__name__)


def cancel_order(session: Session, gateway: PaymentGateway, actor: Actor, order_id: uuid.UUID) -> Order:
    """Cancel before shipping: release the stock once; refund a paid order, cancel an unpaid PaymentIntent.

    The status change and the stock release commit first, under the order's row lock, so that of two
    concurrent cancels exactly one wins. The provider is called afterwards, with no lock held; if it
    fails, the reconciliation job finishes the refund (a canceled order that is paid is a refund due).
    """
    with session.begin():
        order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
        if order is None or (order.customer_id != actor.customer_id and not actor.is_admin):
            raise NotFound("Order not found")  # someone else's order is as good as unknown
        order.status = transition(order, "cancel")
        release_order_stock(session, order)
        session.add(OrderEvent(order_id=order.id, type="canceled", detail={"by": actor.role}))
        notify(session, order, "canceled")

    if order.payment_method == PaymentMethod.ONLINE and order.payment_intent_id:
        try:
            if order.payment_status == PaymentStatus.PAID:
                settle_refund_due(session, gateway, Applied(order, None), source="cancel")
            else:
                _cancel_payment_intent(session, gateway, order)
        except PaymentGatewayError:
            log.warning("payment of canceled order %s not undone yet; reconciliation will", order.id, exc_info=True)
    with session.begin():
        return load_order(session, order.id)


def _cancel_payment_intent(session: Session, gateway: PaymentGateway, order: Order) -> None:
    try:
        gateway.cancel_payment_intent(order.payment_intent_id)
    except PaymentGatewayError:
        # Perhaps it was paid a moment ago: then the money must go back.
        intent = gateway.retrieve_payment_intent(order.payment_intent_id)
        applied = apply_payment_intent(session, order.id, intent, source="cancel")
        settle_refund_due(session, gateway, applied, source="cancel")
