"""What operators see and do about deliveries: the list, one more attempt, the backlog, the pull feed,
and the retention of what was delivered."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from orders_service.db import utcnow
from orders_service.errors import Conflict, NotFound
from orders_service.pages import Page
from orders_service.webhooks.events import EventTypes
from orders_service.webhooks.models import (
    DeliveryStatus,
    EndpointStatus,
    OutboundEvent,
    WebhookDelivery,
    WebhookEndpoint,
)


def list_deliveries(session: Session, filters: dict, page: int, page_size: int) -> Page:
    """Deliveries, newest first, filtered by `endpoint_id`, `status`, `event_type`, `order_id`."""
    conditions = []
    if filters.get("endpoint_id"):
        conditions.append(WebhookDelivery.endpoint_id == filters["endpoint_id"])
    if filters.get("status"):
        conditions.append(WebhookDelivery.status == filters["status"])
    if filters.get("event_type"):
        conditions.append(OutboundEvent.type == filters["event_type"])
    if filters.get("order_id"):
        conditions.append(OutboundEvent.order_id == filters["order_id"])
    joined = select(WebhookDelivery.id).join(OutboundEvent, OutboundEvent.id == WebhookDelivery.event_id)
    with session.begin():
        total = session.scalar(select(func.count()).select_from(joined.where(*conditions).subquery()))
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.event_id, WebhookDelivery.endpoint_id,
                   OutboundEvent.type.label("event_type"), WebhookDelivery.status, WebhookDelivery.attempts,
                   WebhookDelivery.last_status_code, WebhookDelivery.last_error, WebhookDelivery.next_attempt_at,
                   WebhookDelivery.delivered_at)
            .join(OutboundEvent, OutboundEvent.id == WebhookDelivery.event_id).where(*conditions)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .offset((page - 1) * page_size).limit(page_size)
        ).all()
    return Page(rows, page, page_size, total)


def retry_delivery(session: Session, delivery_id: uuid.UUID) -> None:
    """One more attempt now. A dead delivery becomes pending; if that attempt fails it is dead again."""
    now = utcnow()
    with session.begin():
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True, populate_existing=True)
        if delivery is None:
            raise NotFound("Webhook delivery not found")
        if session.scalar(select(WebhookEndpoint.status).where(WebhookEndpoint.id == delivery.endpoint_id)) \
                != EndpointStatus.ACTIVE:
            raise Conflict("Its webhook endpoint is disabled: enable it first")
        if delivery.claimed_until is not None and delivery.claimed_until > now:
            raise Conflict("The delivery is being attempted right now")
        delivery.status, delivery.next_attempt_at = DeliveryStatus.PENDING, now


@dataclass(frozen=True)
class Backlog:
    waiting: int  # deliveries still to make to active endpoints (pending, or failed and to be retried)
    oldest_age_seconds: float  # how long the oldest of them has waited since it was created; 0 if none
    unnumbered_age_seconds: float  # how long the oldest event not yet numbered has waited (no sender runs?)


def _age(since: datetime | None, now: datetime) -> float:
    return max((now - since).total_seconds(), 0.0) if since else 0.0


def backlog(session: Session) -> Backlog:
    now = utcnow()
    with session.begin():
        count, oldest = session.execute(
            select(func.count(), func.min(WebhookDelivery.created_at))
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status.in_(DeliveryStatus.WAITING),
                   WebhookEndpoint.status == EndpointStatus.ACTIVE)
        ).one()
        unnumbered = session.scalar(select(func.min(OutboundEvent.occurred_at))
                                    .where(OutboundEvent.sequence.is_(None), OutboundEvent.order_id.is_not(None)))
    return Backlog(count, _age(oldest, now), _age(unnumbered, now))


# --- the pull feed --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeedEvent:
    id: str
    type: str
    occurred_at: datetime
    sequence: int
    data: dict


def read_feed(session: Session, after: int, limit: int, event_type: str | None) -> tuple[list[FeedEvent], int]:
    """The events numbered after `after`, in `sequence` order (of `event_type` only, when given), and the
    `after` of the next call. Only numbered events are listed (`sequencer.py`): one committed later always
    gets a number above every one listed before, so a reader that goes on from `next` misses none."""
    conditions = [OutboundEvent.sequence > after]
    if event_type:
        conditions.append(OutboundEvent.type == event_type)
    with session.begin():
        rows = session.execute(
            select(OutboundEvent.id, OutboundEvent.type, OutboundEvent.occurred_at, OutboundEvent.sequence,
                   OutboundEvent.data).where(*conditions).order_by(OutboundEvent.sequence).limit(limit)
        ).all()
    items = [FeedEvent(r.id, r.type, r.occurred_at, r.sequence, json.loads(r.data)) for r in rows]
    return items, items[-1].sequence if items else after


# --- retention ------------------------------------------------------------------------------------------

PRUNE_BATCH = 5000


def prune(session: Session, keep_days: int, budget_seconds: float = 30.0) -> int:
    """Delete succeeded deliveries and pings older than `keep_days`, a batch per short transaction, for at
    most `budget_seconds` (the next run goes on); how many rows. Events themselves stay: they are the feed."""
    cutoff = utcnow() - timedelta(days=keep_days)
    stop_at = time.monotonic() + budget_seconds
    deleted = 0
    targets = [
        (WebhookDelivery, select(WebhookDelivery.id).where(WebhookDelivery.created_at < cutoff,
                                                          WebhookDelivery.status == DeliveryStatus.SUCCEEDED)),
        (OutboundEvent, select(OutboundEvent.id).where(OutboundEvent.occurred_at < cutoff,
                                                      OutboundEvent.type == EventTypes.PING)),
    ]
    for model, old in targets:
        while time.monotonic() < stop_at:
            with session.begin():
                gone = session.execute(delete(model).where(model.id.in_(old.limit(PRUNE_BATCH).scalar_subquery())))
            deleted += gone.rowcount
            if gone.rowcount < PRUNE_BATCH:
                break
    return deleted

