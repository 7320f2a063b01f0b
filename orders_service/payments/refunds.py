"""Refunds: asked for by an admin (in part or in full), or due because a paid order closed.

Each refund is a row first, decided under the order's row lock (never more than paid minus refunded
minus refunds under way), and asked of the provider after the commit with an idempotency key made from
the row's id: asking again after a lost answer refunds nothing twice. The provider's running total, not
our own sum, is what the order shows (`actions.record_refund`), so a refund made in its dashboard
counts too, and once.
"""
from __future__ import annotations

import hashlib
import logging
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orders_service.errors import IdempotencyKeyReused, InvalidRequest
from orders_service.money import currency, describe
from orders_service.orders import actions
from orders_service.orders.models import Order, PaymentMethod, PaymentStatus, Refund, RefundStatus
from orders_service.payments.apply import refund_due
from orders_service.payments.gateway import PaymentGateway, PaymentGatewayError, PaymentRefused

log = logging.getLogger(__name__)


def _under_way(session: Session, order_id: uuid.UUID) -> int:
    return session.scalar(select(func.coalesce(func.sum(Refund.amount_cents), 0))
                          .where(Refund.order_id == order_id, Refund.status == RefundStatus.PENDING))


def _fingerprint(amount: int | None, reason: str | None) -> str:
    return hashlib.sha256(f"{amount}|{reason}".encode()).hexdigest()


def refund_order(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, amount: int | None,
                 reason: str | None, idempotency_key: str | None = None) -> Refund:
    """`POST /api/admin/orders/{id}/refunds`: refund part of a paid order, or all that is left."""
    fingerprint = _fingerprint(amount, reason)
    with session.begin():
        order = actions.lock_order(session, order_id)
        if idempotency_key is not None:
            earlier = session.scalar(select(Refund).where(Refund.order_id == order.id,
                                                          Refund.idempotency_key == idempotency_key))
            if earlier is not None:
                if earlier.request_hash != fingerprint:
                    raise IdempotencyKeyReused("Idempotency-Key has already been used with a different request")
                return earlier
        if order.payment_method != PaymentMethod.ONLINE or order.payment_status not in PaymentStatus.RECEIVED:
            raise InvalidRequest("Only an order paid online can be refunded")
        cur = currency(order.currency)
        left = order.refundable_cents - _under_way(session, order.id)
        amount = left if amount is None else amount
        if left <= 0:
            raise InvalidRequest("Nothing is left to refund: the order has been refunded in full")
        if amount <= 0 or amount > left:
            raise InvalidRequest(f"Refund of {describe(amount, cur)} exceeds what is left to refund "
                                 f"({describe(left, cur)})" if amount > 0 else "A refund must be more than 0")
        refund = Refund(id=uuid.uuid4(), order_id=order.id, amount_cents=amount, reason=reason, source="admin",
                        status=RefundStatus.PENDING, idempotency_key=idempotency_key, request_hash=fingerprint)
        session.add(refund)
    return send_refund(session, gateway, refund.id)


def refund_what_is_left(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, source: str) -> None:
    """A closed order still holds money: refund the rest (or ask again about a refund under way)."""
    with session.begin():
        order = actions.lock_order(session, order_id)
        if not refund_due(order):
            return
        pending = session.scalar(select(Refund.id).where(Refund.order_id == order.id,
                                                         Refund.status == RefundStatus.PENDING))
        if pending is None:
            left = order.refundable_cents
            if left <= 0:
                return
            pending = uuid.uuid4()
            session.add(Refund(id=pending, order_id=order.id, amount_cents=left, source=source,
                               status=RefundStatus.PENDING))
    send_refund(session, gateway, pending)


def send_refund(session: Session, gateway: PaymentGateway, refund_id: uuid.UUID) -> Refund:
    """Ask the provider for a refund row (no transaction open meanwhile) and record its answer.

    Safe to repeat: the idempotency key is the row's. An answer that does not come leaves the refund
    pending, for reconciliation to ask again; a refusal is recorded as failed.
    """
    with session.begin():
        refund = session.get(Refund, refund_id)
        payment_intent_id = session.scalar(select(Order.payment_intent_id).where(Order.id == refund.order_id))
    if refund.status != RefundStatus.PENDING:
        return refund
    if payment_intent_id is None:  # never sent without one: Stripe would refuse it, for good
        log.warning("refund %s: the order's PaymentIntent is not known yet; reconciliation finds it, then sends "
                    "the refund", refund_id)
        return refund
    try:
        accepted = gateway.refund_payment_intent(payment_intent_id, refund.amount_cents,
                                                 refund.provider_idempotency_key)
    except PaymentRefused as exc:
        with session.begin():
            order = actions.lock_order(session, refund.order_id)
            refund = session.get(Refund, refund_id, with_for_update=True, populate_existing=True)
            if refund.status == RefundStatus.PENDING:
                refund.status, refund.failure = RefundStatus.FAILED, str(exc)
                actions.record_refund_failure(session, order, refund.amount_cents, str(exc), refund.source)
        return refund
    except PaymentGatewayError:  # no answer, or a rate limit: the same key asks again later
        log.warning("refund %s: no answer from the provider; reconciliation asks again", refund_id, exc_info=True)
        return refund
    with session.begin():
        order = actions.lock_order(session, refund.order_id)
        refund = session.get(Refund, refund_id, with_for_update=True, populate_existing=True)
        if refund.status == RefundStatus.PENDING:
            refund.status, refund.provider_refund_id = RefundStatus.SUCCEEDED, accepted.id
        total = accepted.refunded_total
        if total is None:  # the answer did not carry the charge: our own refunds are a lower bound
            session.flush()
            total = session.scalar(select(func.sum(Refund.amount_cents)).where(
                Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED))
        actions.record_refund(session, order, payment_intent_id, max(total, order.refunded_cents), refund.source)
        refund.order = order
    return refund
