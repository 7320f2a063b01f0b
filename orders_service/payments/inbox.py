"""The webhook inbox: events are stored first, then applied by workers, each event id at most once."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from orders_service.db import insert_ignoring_conflicts, utcnow
from orders_service.ops import metrics
from orders_service.orders import actions
from orders_service.orders.models import Order
from orders_service.payments.apply import apply_payment_intent
from orders_service.payments.gateway import PaymentGateway, PaymentIntent, WebhookEvent
from orders_service.payments.models import StripeEvent
from orders_service.payments.provider_events import StripeEvents
from orders_service.payments.refunds import refund_what_is_left
from orders_service.queue import TaskQueue, Tasks
from orders_service.text import storable

log = logging.getLogger(__name__)

# How long a worker holds an event it is applying; after that another may take it (the first one died).
# Applying one takes milliseconds (it waits on Stripe only to send a refund that is due); safety does
# not rest on it (row locks and forward-only decisions do), only the "at most once in flight".
CLAIM = timedelta(seconds=15)

# The statements every event runs, built once on the tables: Core skips the ORM's per-call work, which
# was half of a worker's CPU per event (py-spy on the bench's `worker` series).
_EVENTS, _ORDERS = StripeEvent.__table__, Order.__table__
_CLAIM = (update(_EVENTS)
          .where(_EVENTS.c.id == bindparam("event_id"), _EVENTS.c.processed_at.is_(None),
                 or_(_EVENTS.c.claimed_until.is_(None), _EVENTS.c.claimed_until < bindparam("now")))
          .values(claimed_until=bindparam("until"), attempts=_EVENTS.c.attempts + 1)
          .returning(_EVENTS.c.type, _EVENTS.c.payload, _EVENTS.c.payment_intent_id))
_FINISH = (update(_EVENTS)
           .where(_EVENTS.c.id == bindparam("event_id"), _EVENTS.c.processed_at.is_(None))
           .values(processed_at=bindparam("at"), outcome=bindparam("result"), claimed_until=None)
           .returning(_EVENTS.c.type))
_ORDER_OF_INTENT = select(_ORDERS.c.id).where(_ORDERS.c.payment_intent_id == bindparam("intent_id"))
_ORDER_BY_ID = select(_ORDERS.c.id).where(_ORDERS.c.id == bindparam("order_id"))


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def receive_event(session: Session, queue: TaskQueue, event: WebhookEvent) -> bool:
    """Store a verified event (a repeat is a no-op), commit, then enqueue it. True when it was new.

    Whatever text a verified event carries, it is stored (as Stripe's own endpoint would): what PostgreSQL cannot hold
    (NUL, lone surrogates) is replaced in the JSON the workers read, and the signed body is kept
    beside it as it came, so that nothing Stripe sent is lost.
    """
    payload = storable(event.payload)
    with session.begin():
        new = insert_ignoring_conflicts(session, StripeEvent, dict(
            id=storable(event.id), type=storable(event.type), payload=payload,
            raw_payload=event.raw if payload != event.payload else None,
            payment_intent_id=storable(event.payment_intent_id), order_id=_uuid_or_none(event.order_id),
            received_at=utcnow(), enqueued_at=utcnow(), attempts=0,
        ))
    metrics.WEBHOOK_EVENTS.labels(storable(event.type), str(not new).lower()).inc()
    if new:
        queue.enqueue(Tasks.PROCESS_STRIPE_EVENT, storable(event.id))
    return new


def _finish(session: Session, event_id: str, order_id: uuid.UUID | None, outcome: str) -> None:
    """Mark the event processed; the first to do so records it on the order's trail."""
    with session.begin():
        done = session.execute(_FINISH, {"event_id": event_id, "at": utcnow(), "result": outcome[:1000]}
                               ).scalar_one_or_none()
        order = session.get(Order, order_id) if done is not None and order_id is not None else None
        if order is not None:
            actions.record_webhook(session, order, event_id, done, outcome)


def _claim(session: Session, event_id: str):
    """Take the event for this worker for a while; None when it is done, or another worker holds it.

    A message delivered while another worker holds the event (a duplicate, or a redelivery after that
    worker died) is dropped: when the claim lapses, the re-drive job sends the event again if it is
    still not done. Nothing waits in the broker for it.
    """
    now = utcnow()
    with session.begin():  # a row of (type, payload, payment_intent_id), or None
        return session.execute(_CLAIM, {"event_id": event_id, "now": now, "until": now + CLAIM}).first()


def _order_for(session: Session, intent: PaymentIntent) -> uuid.UUID | None:
    """The order a payment belongs to: the one that stored its PaymentIntent id, else the one its metadata
    names (its create answer may not be stored yet). `decide` checks that they agree."""
    with session.begin():
        order_id = session.scalar(_ORDER_OF_INTENT, {"intent_id": intent.id})
        if order_id is None and _uuid_or_none(intent.order_id) is not None:
            order_id = session.scalar(_ORDER_BY_ID, {"order_id": _uuid_or_none(intent.order_id)})
    return order_id


def _flag_dispute(session: Session, event) -> tuple[uuid.UUID | None, str]:
    dispute = event.payload["data"]["object"]
    with session.begin():
        order_id = session.scalar(select(Order.id).where(Order.payment_intent_id == event.payment_intent_id))
        if order_id is None:
            return None, "no order for this payment"
        order = actions.lock_order(session, order_id)
        flagged = actions.flag_dispute(session, order, dispute.get("id"), dispute.get("reason"))
    return order_id, "dispute_opened" if flagged else "already flagged"


def process_event(session: Session, gateway: PaymentGateway, event_id: str) -> str:
    """Apply a stored event: Stripe's signed snapshot of the payment, forward only. Idempotent.

    The snapshot is what Stripe signed at the time of the event: applying it costs no call to Stripe,
    and the decision still checks that the payment is the order's, for its exact amount and currency,
    and moves the order forward only, so a late or repeated event changes nothing.
    """
    event = _claim(session, event_id)
    if event is None:
        return "nothing to do"  # done, or held by another worker (the re-drive returns to it)
    if event.type in StripeEvents.DISPUTE and event.payment_intent_id:
        order_id, outcome = _flag_dispute(session, event)
        _finish(session, event_id, order_id, outcome)
        return outcome
    intent = gateway.event_payment_intent(event.payload) if event.type in StripeEvents.PAYMENT else None
    order_id = _order_for(session, intent) if intent is not None else None
    if intent is None:
        outcome = "stored only"
    elif order_id is None:
        outcome = "no order for this payment"
    else:
        applied = apply_payment_intent(session, order_id, intent, source="webhook")
        if applied.refund_due:  # money for a closed order: it goes back (or reconciliation sends it)
            refund_what_is_left(session, gateway, order_id, source="webhook")
        outcome = ", ".join(applied.events) or applied.reason
    _finish(session, event_id, order_id, outcome)
    return outcome


def redrive_events(session: Session, queue: TaskQueue, older_than_seconds: int) -> int:
    """Enqueue again events stored but not processed for a while (the broker was down, a worker died).

    An event a worker holds (its claim has not lapsed) is left alone: each is in flight at most once.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than_seconds)
    with session.begin():
        ids = session.scalars(
            update(StripeEvent)
            .where(StripeEvent.processed_at.is_(None), StripeEvent.enqueued_at < cutoff,
                   or_(StripeEvent.claimed_until.is_(None), StripeEvent.claimed_until < now))
            .values(enqueued_at=now).returning(StripeEvent.id)
        ).all()
    return sum(queue.enqueue(Tasks.PROCESS_STRIPE_EVENT, event_id) for event_id in ids)
