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
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from orders_service.db import as_utc, utcnow
from orders_service.errors import IdempotencyKeyReused, InvalidRequest
from orders_service.money import currency, describe
from orders_service.ops import metrics
from orders_service.orders import actions
from orders_service.orders.models import Order, PaymentMethod, PaymentStatus, Refund, RefundStatus
from orders_service.pages import Page
from orders_service.payments.apply import CLOSED, apply_payment_intent, refund_due
from orders_service.payments.gateway import PaymentGateway, PaymentGatewayError, PaymentRefused

log = logging.getLogger(__name__)

# After the provider refuses the refund a closed order is due (a dispute under way, a balance too low, a
# charge refunded elsewhere…), it is asked again after each wait in turn, about two days in all; after the
# last refusal the service stops, and the order waits for a person (`needing_attention`, /metrics).
REFUND_RETRY_SCHEDULE = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3),
                         timedelta(hours=6), timedelta(hours=12), timedelta(hours=24))
REFUND_ATTEMPTS = len(REFUND_RETRY_SCHEDULE) + 1
ADMIN = "admin"  # the source of refunds an admin asked for: refused, they are the admin's to see


class Attention:
    """Where a closed order still holding money stands after the provider refused its refund."""

    RETRYING = "retrying"  # asked again at `refund_retry_at`
    STOPPED = "stopped"  # refused REFUND_ATTEMPTS times: a person must act


def automatic_refund_allowed(order: Order, now=None) -> bool:
    """Whether a closed order's automatic refund may be asked of the provider now (not backing off, not
    given up on)."""
    if order.refund_failures >= REFUND_ATTEMPTS:
        return False
    return order.refund_retry_at is None or as_utc(order.refund_retry_at) <= (now or utcnow())


# The orders an operator must know about: closed, money still held, the provider refused their refund.
_ATTENTION = (Order.status.in_(CLOSED), Order.payment_status.in_(PaymentStatus.HELD),
              Order.payment_closed_at.is_(None), Order.refund_failures > 0)


@dataclass(frozen=True)
class RefundAttention:
    """A closed order that still holds money because the provider refused its refund, and where that stands."""

    order: Order
    state: str  # Attention.RETRYING or Attention.STOPPED
    failures: int  # automatic refunds refused in a row
    next_attempt_at: datetime | None  # when the service asks again (None: it stopped)
    last_error: str | None  # the provider's reason, as last given


def needing_attention(session: Session, page: int, page_size: int) -> Page:
    """Closed orders that still hold money because the provider refused their refund, oldest first."""
    with session.begin():
        total = session.scalar(select(func.count()).select_from(Order).where(*_ATTENTION))
        orders = session.scalars(
            select(Order).where(*_ATTENTION).options(selectinload(Order.items), selectinload(Order.events))
            .order_by(Order.created_at, Order.id).offset((page - 1) * page_size).limit(page_size)).all()
        last_errors = dict(session.execute(  # ordered oldest first: each order keeps its last refusal
            select(Refund.order_id, Refund.failure).where(Refund.order_id.in_([o.id for o in orders]),
                                                          Refund.status == RefundStatus.FAILED)
            .order_by(Refund.created_at)).all())
    items = [RefundAttention(order, Attention.STOPPED if order.refund_failures >= REFUND_ATTEMPTS
                             else Attention.RETRYING, order.refund_failures, order.refund_retry_at,
                             last_errors.get(order.id)) for order in orders]
    return Page(items, page, page_size, total)


def count_needing_attention(session: Session) -> dict[str, int]:
    """How many orders are retrying their refund, and how many wait for a person (for /metrics)."""
    stopped = Order.refund_failures >= REFUND_ATTEMPTS
    with session.begin():
        counts = dict(session.execute(select(stopped, func.count()).where(*_ATTENTION).group_by(stopped)).all())
    return {Attention.STOPPED: counts.get(True, 0), Attention.RETRYING: counts.get(False, 0)}


def _sum_of_refunds(session: Session, order_id: uuid.UUID, status: str) -> int:
    # int(): PostgreSQL's sum of a BIGINT is a NUMERIC, which would reach the trail's JSON as a Decimal.
    return int(session.scalar(select(func.coalesce(func.sum(Refund.amount_cents), 0))
                              .where(Refund.order_id == order_id, Refund.status == status)))


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
        if order.payment_status == PaymentStatus.AUTHORIZED:
            raise InvalidRequest("The payment of this order is only authorized, not captured: there is nothing to "
                                 "refund (canceling the order releases the hold)")
        if order.payment_method != PaymentMethod.ONLINE or order.payment_status not in PaymentStatus.RECEIVED:
            raise InvalidRequest("Only an order paid online can be refunded")
        cur = currency(order.currency)
        left = order.refundable_cents - _sum_of_refunds(session, order.id, RefundStatus.PENDING)
        amount = left if amount is None else amount
        if left <= 0:
            raise InvalidRequest("Nothing is left to refund: the order has been refunded in full")
        if amount <= 0 or amount > left:
            raise InvalidRequest(f"Refund of {describe(amount, cur)} exceeds what is left to refund "
                                 f"({describe(left, cur)})" if amount > 0 else "A refund must be more than 0")
        refund = Refund(id=uuid.uuid4(), order_id=order.id, amount_cents=amount, reason=reason, source=ADMIN,
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
            if not automatic_refund_allowed(order):  # refused lately: backing off, or left to a person
                return
            left = order.refundable_cents
            if left <= 0:
                return
            pending = uuid.uuid4()
            session.add(Refund(id=pending, order_id=order.id, amount_cents=left, source=source,
                               status=RefundStatus.PENDING))
    send_refund(session, gateway, pending)


def _learn_after_refusal(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, payment_intent_id: str
                         ) -> bool:
    """Read the payment after a refusal (one call): a refund made elsewhere (its dashboard, its webhook lost)
    is why Stripe refuses `charge_already_refunded` or too large an amount. True when that changed the order:
    the next try, if one is still due, asks for the right amount and need not wait."""
    try:
        intent = gateway.retrieve_payment_intent(payment_intent_id)
    except PaymentGatewayError:
        return False
    return apply_payment_intent(session, order_id, intent, source="refund_refused").changed


def _back_off(session: Session, order_id: uuid.UUID) -> None:
    """A closed order's refund was refused and nothing explains it: wait longer each time, then stop."""
    with session.begin():
        order = actions.lock_order(session, order_id)
        if not refund_due(order):
            return
        failures = order.refund_failures + 1
        retry_at = utcnow() + REFUND_RETRY_SCHEDULE[failures - 1] if failures < REFUND_ATTEMPTS else None
        actions.defer_refund(session, order, retry_at)
    metrics.REFUNDS_REFUSED.labels("retry" if retry_at else "stop").inc()
    if retry_at is None:
        log.error("order %s: Stripe refused its refund %d times; the service stopped asking and the order "
                  "needs a person (GET /api/admin/orders?attention=refund)", order_id, failures)


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
            if refund.status != RefundStatus.PENDING:
                return refund
            refund.status, refund.failure = RefundStatus.FAILED, str(exc)
            actions.record_refund_failure(session, order, refund.amount_cents, str(exc), refund.source)
        learned = _learn_after_refusal(session, gateway, refund.order_id, payment_intent_id)
        if refund.source != ADMIN and not learned:
            _back_off(session, refund.order_id)
        else:
            metrics.REFUNDS_REFUSED.labels("none").inc()
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
            total = _sum_of_refunds(session, order.id, RefundStatus.SUCCEEDED)
        actions.record_refund(session, order, payment_intent_id, max(total, order.refunded_cents), refund.source)
        refund.order = order
    return refund
