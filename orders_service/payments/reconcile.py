"""Periodic jobs that make sure no online order stays wrong when webhooks are late, lost or never come,
and that every PaymentIntent the service opened ends applied, canceled or refunded.

Each job takes a batch from the database, then works through it with a few threads: the provider is
far away (hundreds of milliseconds a call), so the calls overlap, but never more than `concurrency`
at once (Stripe allows 25 requests a second per endpoint). Each order gets its own session and short
transactions; a failure on one order is logged and left for the next run.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from orders_service.db import utcnow
from orders_service.ops import metrics
from orders_service.orders import actions
from orders_service.orders.lifecycle import allowed
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus, Refund, RefundStatus
from orders_service.payments.apply import CLOSED, apply_payment_intent
from orders_service.payments.gateway import (
    PaymentGateway,
    PaymentGatewayError,
    PaymentIntentStatus,
    PaymentProviderBusy,
    PaymentRefused,
)
from orders_service.payments.refunds import REFUND_ATTEMPTS, count_needing_attention, send_refund
from orders_service.payments.settlement import recover_payment_intent, settle_closed_order

log = logging.getLogger(__name__)
BATCH = 500
# A closed order's payment is left alone until the order is this old (or as old as reconciliation's
# own threshold, if that is shorter): the cancel that closed it may still be talking to the provider.
SETTLE_GRACE = timedelta(seconds=30)
# A refund whose answer is unknown is asked about again after this long.
REFUND_RETRY_AFTER = timedelta(seconds=60)
# Confirmed online orders not yet shipped are read at Stripe now and then (a refund made in its dashboard
# whose charge.refunded never came): at most this many a run, two calls at a time, the longest unread first
# — about 2 reads a second on average, a twelfth of Stripe's 25 per endpoint, shared with PATCH /paid.
CONFIRMED_PER_RUN = 120
CONFIRMED_CONCURRENCY = 2


def _each(session_factory: sessionmaker, work, ids: list, concurrency: int) -> int:
    """`work(session, id)` for each id on at most `concurrency` threads; how many returned something true.

    A rate limit from the provider stops the batch: what is left waits for the next run (that is the
    backing off; Stripe sends no Retry-After, and the next run is a maintenance interval away).
    """
    stop = threading.Event()

    def run(item) -> bool:
        if stop.is_set():
            return False
        with session_factory() as session:
            try:
                return bool(work(session, item))
            except PaymentProviderBusy:
                stop.set()
                log.warning("the provider is rate-limiting; this run stops here, the next one goes on")
            except PaymentGatewayError:
                log.warning("provider failed for %s; the next run retries", item, exc_info=True)
            except Exception:  # one order's fault must not stop the others
                log.exception("could not reconcile %s; the next run retries", item)
            return False

    if not ids:
        return 0
    with ThreadPoolExecutor(max_workers=min(concurrency, len(ids))) as pool:
        return sum(pool.map(run, ids))


def _batches(select_batch, deadline: float):
    """Batches until one comes back short, or the run has used its time (the next run goes on)."""
    while True:
        ids = select_batch()
        if ids:
            yield ids
        if len(ids) < BATCH or time.monotonic() > deadline:
            return


def reconcile_payments(session_factory: sessionmaker, gateway: PaymentGateway, older_than_seconds: int,
                       concurrency: int = 6, time_budget_seconds: float = 50.0,
                       processing_every_seconds: int = 3600, confirmed_every_seconds: int = 3600,
                       confirmed_per_run: int = CONFIRMED_PER_RUN) -> int:
    """Ask the provider about what webhooks may have missed; the number of orders and refunds changed.

    - pending online orders older than `older_than_seconds`, once per that interval each; those whose
      payment the provider is processing (for days: a bank debit) once per `processing_every_seconds`;
    - confirmed online orders holding money or an authorization, not yet shipped, once per
      `confirmed_every_seconds` after they were paid (a refund made in the provider's dashboard, or a hold that
      lapsed, whose event never came), `confirmed_per_run` a run;
    - closed orders whose PaymentIntent may still be open or paid (cancel it, or refund what it holds),
      from SETTLE_GRACE on (the cancel that closed one may still be talking to the provider);
    - refunds whose answer never came (asked again with the same idempotency key);
    and then counts the orders whose refund the provider refused (`/metrics`).
    """
    deadline = time.monotonic() + time_budget_seconds
    age = timedelta(seconds=older_than_seconds)
    grace = min(SETTLE_GRACE, age)
    processing_age = max(age, timedelta(seconds=processing_every_seconds))
    processing = Order.payment_status == PaymentStatus.PROCESSING

    def pending_batch():
        now = utcnow()
        with session_factory() as session, session.begin():
            # Claimed by stamping reconciled_at: a second run (or a second worker) skips them.
            due = (select(Order.id).where(
                Order.payment_method == PaymentMethod.ONLINE, Order.status == OrderStatus.PENDING,
                Order.created_at <= now - age,
                or_(Order.reconciled_at.is_(None),
                    and_(~processing, Order.reconciled_at <= now - age),
                    and_(processing, Order.reconciled_at <= now - processing_age)))
                .order_by(Order.created_at).limit(BATCH).with_for_update(skip_locked=True))
            return list(session.scalars(update(Order).where(Order.id.in_(due)).values(reconciled_at=now)
                                        .returning(Order.id)))

    def confirmed_batch():
        now = utcnow()
        last_look = func.coalesce(Order.reconciled_at, Order.paid_at, Order.created_at)
        with session_factory() as session, session.begin():
            due = (select(Order.id).where(
                Order.payment_method == PaymentMethod.ONLINE, Order.status == OrderStatus.CONFIRMED,
                # Authorized ones too: a hold that lapsed (its payment_intent.canceled lost) closes the order.
                Order.payment_status.in_((*PaymentStatus.HELD, PaymentStatus.AUTHORIZED)),
                Order.payment_intent_id.is_not(None),
                last_look <= now - timedelta(seconds=confirmed_every_seconds))
                .order_by(last_look).limit(confirmed_per_run).with_for_update(skip_locked=True))
            return list(session.scalars(update(Order).where(Order.id.in_(due)).values(reconciled_at=now)
                                        .returning(Order.id)))

    def closed_batch(seen: set):
        now = utcnow()
        with session_factory() as session, session.begin():
            ids = list(session.scalars(select(Order.id).where(
                Order.payment_method == PaymentMethod.ONLINE, Order.status.in_(CLOSED),
                Order.payment_closed_at.is_(None), Order.created_at <= now - grace,
                # A refund the provider refused waits its turn, or a person (refunds.REFUND_RETRY_SCHEDULE).
                Order.refund_failures < REFUND_ATTEMPTS,
                or_(Order.refund_retry_at.is_(None), Order.refund_retry_at <= now))
                .order_by(Order.created_at).limit(BATCH)))
        fresh = [i for i in ids if i not in seen]  # one attempt per order and run
        seen.update(fresh)
        return fresh

    def refund_batch(seen: set):
        with session_factory() as session, session.begin():
            ids = list(session.scalars(select(Refund.id).where(
                Refund.status == RefundStatus.PENDING, Refund.created_at <= utcnow() - REFUND_RETRY_AFTER)
                .order_by(Refund.created_at).limit(BATCH)))
        fresh = [i for i in ids if i not in seen]
        seen.update(fresh)
        return fresh

    changed = 0
    for ids in _batches(pending_batch, deadline):
        changed += _each(session_factory, lambda s, i: _reconcile_order(s, gateway, i), ids, concurrency)
    changed += _each(session_factory, lambda s, i: _reconcile_order(s, gateway, i), confirmed_batch(),
                     min(concurrency, CONFIRMED_CONCURRENCY))
    seen_orders: set = set()
    for ids in _batches(lambda: closed_batch(seen_orders), deadline):
        _each(session_factory, lambda s, i: settle_closed_order(s, gateway, i, "reconciliation"), ids, concurrency)
        changed += len(ids)
    seen_refunds: set = set()
    for ids in _batches(lambda: refund_batch(seen_refunds), deadline):
        _each(session_factory, lambda s, i: send_refund(s, gateway, i), ids, concurrency)
        changed += len(ids)
    with session_factory() as session:
        for state, count in count_needing_attention(session).items():
            metrics.REFUNDS_NEEDING_ATTENTION.labels(state).set(count)
    return changed


def _reconcile_order(session: Session, gateway: PaymentGateway, order_id: uuid.UUID) -> bool:
    with session.begin():
        pi_id = session.scalar(select(Order.payment_intent_id).where(Order.id == order_id))
    if pi_id is None:  # the create answer was lost, or the process died before storing it
        return recover_payment_intent(session, gateway, order_id) is not None
    return apply_payment_intent(session, order_id, gateway.retrieve_payment_intent(pi_id), "reconciliation").changed


def _unpaid_past(cutoff):
    """Pending online orders whose time to pay ended before `cutoff`: counted from their creation, or from
    the failure of a payment the provider was processing (`payable_since`, always the later); a payment
    the provider is processing stops the clock."""
    return and_(Order.payment_method == PaymentMethod.ONLINE, Order.status == OrderStatus.PENDING,
                Order.payment_status != PaymentStatus.PROCESSING, Order.created_at <= cutoff,
                or_(Order.payable_since.is_(None), Order.payable_since <= cutoff))


def expire_unpaid_orders(session_factory: sessionmaker, gateway: PaymentGateway, ttl_seconds: int,
                         concurrency: int = 6, time_budget_seconds: float = 50.0) -> int:
    """Expire online orders unpaid past the TTL: cancel the PaymentIntent, release the stock.

    A PaymentIntent that has succeeded meanwhile, or that the provider is processing (it refuses to cancel
    it), is applied instead; so is one holding the customer's card (PAYMENT_CAPTURE=on_shipment: read before
    the cancel, which the provider would carry out, releasing the hold). When the provider cannot cancel it
    now the order expires all the same (its stock must not wait on the provider) and its payment stays open:
    should it succeed later it revives the order or is refunded, and reconciliation cancels it.
    """
    deadline = time.monotonic() + time_budget_seconds
    ttl = timedelta(seconds=ttl_seconds)

    def batch():
        with session_factory() as session, session.begin():
            return list(session.scalars(select(Order.id).where(_unpaid_past(utcnow() - ttl))
                                        .order_by(Order.created_at).limit(BATCH)))

    expired = 0
    busy = threading.Event()  # after a rate limit, the rest expire without asking (reconciliation cancels)
    for ids in _batches(batch, deadline):
        expired += _each(session_factory, lambda s, i: _expire(s, gateway, i, busy, ttl), ids, concurrency)
    return expired


# A PaymentIntent found paid, processing or holding the card when its order is due to expire: the order is
# the customer's after all (or will be), and the provider's word is applied instead.
_APPLIED_AT_EXPIRY = (PaymentIntentStatus.SUCCEEDED, PaymentIntentStatus.PROCESSING,
                      PaymentIntentStatus.REQUIRES_CAPTURE)


def _expire(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, busy: threading.Event,
            ttl: timedelta) -> bool:
    with session.begin():  # still due? (a webhook may have moved it since the batch was read)
        due = session.execute(select(Order.payment_intent_id).where(Order.id == order_id,
                                                                    _unpaid_past(utcnow() - ttl))).first()
    if due is None:
        return False
    pi_id, canceled, note = due.payment_intent_id, False, None
    if pi_id is not None and busy.is_set():
        note = "payment intent not canceled: the payment provider is rate-limiting"
    elif pi_id is not None:
        try:
            if gateway.holds_cards:
                # The provider cancels a held card (`requires_capture`) as readily as an unpaid one: the customer
                # may have authorized it a moment ago, its webhook late. Held or paid, it is applied, as a payment
                # that succeeded meanwhile is below.
                intent = gateway.retrieve_payment_intent(pi_id)
                if intent.status in _APPLIED_AT_EXPIRY:
                    apply_payment_intent(session, order_id, intent, source="expiry")
                    return False
            gateway.cancel_payment_intent(pi_id)  # one call in the usual case: nobody paid
            canceled = True
        except PaymentRefused:  # not cancelable: paid a moment ago, processing, or already canceled
            intent = gateway.retrieve_payment_intent(pi_id)
            if intent.status in _APPLIED_AT_EXPIRY:
                apply_payment_intent(session, order_id, intent, source="expiry")
                return False
            canceled = intent.status == PaymentIntentStatus.CANCELED
        except PaymentGatewayError as exc:  # unreachable, or rate-limiting: its stock must not wait
            note = f"payment intent not canceled: {exc}"
            if isinstance(exc, PaymentProviderBusy):
                busy.set()
    with session.begin():
        order = actions.lock_order(session, order_id)
        if (not allowed(order.status, "expire") or order.payment_status in PaymentStatus.RECEIVED
                or order.payment_status == PaymentStatus.PROCESSING):
            return False
        actions.expire(session, order, canceled, note)
    return True
