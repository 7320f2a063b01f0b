"""The webhook inbox: events are stored first, then applied by workers, each event id at most once."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from orders_service.db import insert_ignoring_conflicts, utcnow
from orders_service.errors import NotFound
from orders_service.ops import metrics
from orders_service.orders import actions
from orders_service.orders.models import Order
from orders_service.payments.gateway import PaymentGateway, WebhookEvent
from orders_service.payments.models import StripeEvent
from orders_service.payments.service import apply_payment_intent, settle_refund_due
from orders_service.queue import PROCESS_STRIPE_EVENT, TaskQueue

log = logging.getLogger(__name__)

PAYMENT_EVENTS = {
    "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled", "charge.refunded",
}
DISPUTE_EVENTS = {"charge.dispute.created"}


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def receive_event(session: Session, queue: TaskQueue, event: WebhookEvent) -> bool:
    """Store a verified event (a repeat is a no-op), commit, then enqueue it. True when it was new."""
    with session.begin():
        new = insert_ignoring_conflicts(session, StripeEvent, dict(
            id=event.id, type=event.type, payload=event.payload, payment_intent_id=event.payment_intent_id,
            order_id=_uuid_or_none(event.order_id),
            received_at=utcnow(), enqueued_at=utcnow(), attempts=0,
        ))
    metrics.WEBHOOK_EVENTS.labels(event.type, str(not new).lower()).inc()
    if new:
        queue.enqueue(PROCESS_STRIPE_EVENT, event.id)
    return new


def _finish(session: Session, event_id: str, order_id: uuid.UUID | None, outcome: str) -> None:
    """Mark the event processed; the first to do so records it on the order's trail."""
    with session.begin():
        done = session.execute(
            update(StripeEvent).where(StripeEvent.id == event_id, StripeEvent.processed_at.is_(None))
            .values(processed_at=utcnow(), outcome=outcome).returning(StripeEvent.type)
        ).scalar_one_or_none()
        order = session.get(Order, order_id) if done is not None and order_id is not None else None
        if order is not None:
            actions.record_webhook(session, order, event_id, done, outcome)


def _flag_dispute(session: Session, order_id: uuid.UUID, event: StripeEvent) -> str:
    dispute = event.payload["data"]["object"]
    try:
        with session.begin():
            order = actions.lock_order(session, order_id)
            flagged = actions.flag_dispute(session, order, dispute.get("id"), dispute.get("reason"))
    except NotFound:
        return "no such order"
    return "dispute_opened" if flagged else "already flagged"


def process_event(session: Session, gateway: PaymentGateway, event_id: str) -> str:
    """Apply a stored event: re-read its PaymentIntent from the provider and apply that. Idempotent."""
    with session.begin():
        event = session.get(StripeEvent, event_id)
        if event is None or event.processed_at is not None:
            return "nothing to do"
        event.attempts += 1
        pi_id = event.payment_intent_id

    if event.type not in PAYMENT_EVENTS | DISPUTE_EVENTS or not pi_id:
        outcome = "stored only"
        _finish(session, event_id, event.order_id, outcome)
        return outcome

    # The payload is only a trigger: the provider's current state of the payment is what counts.
    intent = gateway.retrieve_payment_intent(pi_id)
    order_id = _uuid_or_none(intent.order_id)
    with session.begin():
        known = order_id is not None and session.get(Order, order_id) is not None
    if not known:
        outcome = "no order for this payment"
    elif event.type in DISPUTE_EVENTS:
        outcome = _flag_dispute(session, order_id, event)
    else:
        applied = apply_payment_intent(session, order_id, intent, source="webhook")
        applied = settle_refund_due(session, gateway, applied, source="webhook")
        outcome = applied.event or applied.reason
    _finish(session, event_id, order_id, outcome)
    return outcome


def redrive_events(session: Session, queue: TaskQueue, older_than_seconds: int) -> int:
    """Enqueue again events stored but not processed for a while (the broker was down, a worker died)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with session.begin():
        ids = session.scalars(
            update(StripeEvent)
            .where(StripeEvent.processed_at.is_(None), StripeEvent.enqueued_at < cutoff)
            .values(enqueued_at=utcnow()).returning(StripeEvent.id)
        ).all()
    return sum(queue.enqueue(PROCESS_STRIPE_EVENT, event_id) for event_id in ids)

