"""Periodic jobs that make sure no online order stays wrong when webhooks are late, lost or never come."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders_service.db import utcnow
from orders_service.orders import actions
from orders_service.orders.lifecycle import allowed
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus
from orders_service.payments.gateway import PaymentGateway, PaymentGatewayError, PaymentIntentStatus
from orders_service.payments.service import CLOSED, apply_payment_intent, settle_refund_due

log = logging.getLogger(__name__)
BATCH = 200


def _online_orders(session: Session, *conditions) -> list[tuple[uuid.UUID, str | None]]:
    """(order id, PaymentIntent id) of online orders matching `conditions`, oldest first, a batch."""
    with session.begin():
        return [tuple(row) for row in session.execute(
            select(Order.id, Order.payment_intent_id)
            .where(Order.payment_method == PaymentMethod.ONLINE, *conditions)
            .order_by(Order.created_at).limit(BATCH)
        )]


def reconcile_pending_orders(session: Session, gateway: PaymentGateway, older_than_seconds: int) -> int:
    """Re-read from the provider the online orders still pending after a while, and refunds still due."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    started = Order.payment_intent_id.is_not(None)
    pending = _online_orders(session, started, Order.status == OrderStatus.PENDING, Order.created_at <= cutoff)
    refund_due = _online_orders(session, started, Order.status.in_(CLOSED), Order.payment_status == PaymentStatus.PAID)
    changed = 0
    for order_id, pi_id in pending + refund_due:
        try:
            intent = gateway.retrieve_payment_intent(pi_id)
            applied = apply_payment_intent(session, order_id, intent, source="reconciliation")
            applied = settle_refund_due(session, gateway, applied, source="reconciliation")
        except PaymentGatewayError:
            log.warning("reconciliation of order %s failed; next run retries", order_id, exc_info=True)
            continue
        changed += applied.changed
    return changed


def _expire(session: Session, order_id: uuid.UUID, canceled_at_provider: bool, note: str | None) -> bool:
    with session.begin():
        order = actions.lock_order(session, order_id)
        if not allowed(order.status, "expire") or order.payment_status == PaymentStatus.PAID:
            return False
        actions.expire(session, order, canceled_at_provider, note)
    return True


def expire_unpaid_orders(session: Session, gateway: PaymentGateway, ttl_seconds: int) -> int:
    """Expire online orders unpaid past the TTL: cancel the PaymentIntent, release the stock.

    A PaymentIntent that has succeeded meanwhile is applied instead. When the provider cannot be
    reached the order expires all the same (its stock must not wait on Stripe); should the payment
    succeed later, `apply_payment_intent` revives the order or has it refunded.
    """
    cutoff = utcnow() - timedelta(seconds=ttl_seconds)
    expired = 0
    for order_id, pi_id in _online_orders(session, Order.status == OrderStatus.PENDING, Order.created_at <= cutoff):
        canceled, note = False, None
        if pi_id is not None:
            try:
                intent = gateway.retrieve_payment_intent(pi_id)
                if intent.status == PaymentIntentStatus.SUCCEEDED:
                    apply_payment_intent(session, order_id, intent, source="expiry")
                    continue
                if intent.status != PaymentIntentStatus.CANCELED:
                    gateway.cancel_payment_intent(pi_id)
                canceled = True
            except PaymentGatewayError as exc:
                note = f"payment intent not canceled: {exc}"
        expired += _expire(session, order_id, canceled, note)
    return expired
