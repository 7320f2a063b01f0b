"""The admin's endpoints: subscribe a URL, change it, rotate its secret, send it a ping, replay events to it."""
from __future__ import annotations

import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from orders_service.db import utcnow
from orders_service.errors import Conflict, InvalidRequest, NotFound
from orders_service.webhooks import urls
from orders_service.webhooks.events import EventTypes, record_ping
from orders_service.webhooks.models import (
    DeliveryStatus,
    EndpointStatus,
    OutboundEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from orders_service.webhooks.signing import new_secret

ROTATION_OVERLAP = timedelta(hours=24)  # the old secret keeps signing this long after a rotation
REPLAY_LIMIT = 100_000  # events one replay may queue: a wider window is asked for in parts
_INSERT_DELIVERIES = insert(WebhookDelivery.__table__)


@dataclass(frozen=True)
class UrlPolicy:
    https_only: bool  # production
    allow_private: bool  # WEBHOOK_ALLOW_PRIVATE_URLS
    # Entered while DNS answers (the web's run gate lets another request run meanwhile).
    waiting: Callable[[], AbstractContextManager] = nullcontext


def _checked_url(url: str, policy: UrlPolicy) -> str:
    """The URL, or a 400 naming what is wrong with it. Resolving a host name waits on DNS: no transaction
    is open meanwhile."""
    try:
        with policy.waiting():
            urls.check(url, policy.https_only, policy.allow_private)
    except urls.UrlRefused as exc:
        raise InvalidRequest(f"url {exc}", errors={"url": [f"The URL {exc}."]}) from None
    return url


def _types(event_types: list[str] | None) -> list[str]:
    """Known types (the schema checked them), each once, in the order given."""
    return list(dict.fromkeys(event_types or []))


def _get(session: Session, endpoint_id: uuid.UUID, lock: bool = False) -> WebhookEndpoint:
    # FOR NO KEY UPDATE: an edit never changes the key, so it does not wait for deliveries being inserted.
    endpoint = session.get(WebhookEndpoint, endpoint_id, populate_existing=lock,
                           with_for_update={"key_share": True} if lock else None)
    if endpoint is None:
        raise NotFound("Webhook endpoint not found")
    return endpoint


def create_endpoint(session: Session, data: dict, policy: UrlPolicy) -> WebhookEndpoint:
    """A new active endpoint; its `secret` is shown to the admin in this answer and on rotation only."""
    url = _checked_url(data["url"], policy)
    now = utcnow()
    with session.begin():
        endpoint = WebhookEndpoint(url=url, description=data.get("description"),
                                   event_types=_types(data.get("eventTypes")), status=EndpointStatus.ACTIVE,
                                   secret=new_secret(), created_at=now, updated_at=now)
        session.add(endpoint)
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    with session.begin():
        return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at,
                                                                      WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    with session.begin():
        return _get(session, endpoint_id)


def update_endpoint(session: Session, endpoint_id: uuid.UUID, data: dict, policy: UrlPolicy) -> WebhookEndpoint:
    """Change the URL, the types, the description or the status. Enabled again, an endpoint gets the
    deliveries that waited for it; the events recorded while it was disabled come only by replay."""
    if "url" in data:
        _checked_url(data["url"], policy)
    with session.begin():
        endpoint = _get(session, endpoint_id, lock=True)
        if "url" in data:
            endpoint.url = data["url"]
        if "eventTypes" in data:
            endpoint.event_types = _types(data["eventTypes"])
        if "description" in data:
            endpoint.description = data["description"]
        if "status" in data and data["status"] != endpoint.status:
            endpoint.status = data["status"]
            endpoint.disabled_reason, endpoint.paused_until = None, None
        endpoint.updated_at = utcnow()
    return endpoint


def delete_endpoint(session: Session, endpoint_id: uuid.UUID) -> None:
    """Gone, with its deliveries: nothing more is sent to it (an attempt already under way may still arrive)."""
    with session.begin():
        if session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)).rowcount == 0:
            raise NotFound("Webhook endpoint not found")


def rotate_secret(session: Session, endpoint_id: uuid.UUID) -> str:
    """A new secret; the current one goes on signing beside it for ROTATION_OVERLAP (a rotation within
    that time drops the oldest)."""
    now = utcnow()
    with session.begin():
        endpoint = _get(session, endpoint_id, lock=True)
        endpoint.previous_secret, endpoint.previous_secret_expires_at = endpoint.secret, now + ROTATION_OVERLAP
        endpoint.secret, endpoint.updated_at = new_secret(), now
        return endpoint.secret


@dataclass(frozen=True)
class Ping:
    event_id: str
    delivery_id: uuid.UUID


def send_ping(session: Session, endpoint_id: uuid.UUID) -> Ping:
    """A `ping` event for this endpoint alone, whatever types it subscribes to (in neither feed nor replay)."""
    with session.begin():
        endpoint = _get(session, endpoint_id)
        if endpoint.status != EndpointStatus.ACTIVE:
            raise Conflict("The webhook endpoint is disabled: enable it to test it")
        event_id = record_ping(session)
        delivery_id = uuid.uuid4()
        now = utcnow()
        session.execute(_INSERT_DELIVERIES, dict(id=delivery_id, event_id=event_id, endpoint_id=endpoint.id,
                                                 status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now,
                                                 created_at=now))
    return Ping(event_id, delivery_id)


def replay(session: Session, endpoint_id: uuid.UUID, since: datetime | None, until: datetime | None,
           event_types: list[str] | None) -> int:
    """Deliver again, with their own ids, the events of [since, until] the endpoint subscribes to (and of
    `event_types`, when given) — whenever they were recorded, the endpoint's past included. How many."""
    if since is not None and until is not None and since > until:
        raise InvalidRequest("since is after until", errors={"since": ["Must not be after until."]})
    with session.begin():
        endpoint = _get(session, endpoint_id)
        wanted = set(endpoint.event_types or EventTypes.ORDER)
        if event_types:
            wanted &= set(event_types)
        if not wanted:
            return 0
        window = [OutboundEvent.sequence.is_not(None), OutboundEvent.type.in_(sorted(wanted))]
        if since is not None:
            window.append(OutboundEvent.occurred_at >= since)
        if until is not None:
            window.append(OutboundEvent.occurred_at <= until)
        count = session.scalar(select(func.count()).select_from(OutboundEvent).where(*window))
        if count > REPLAY_LIMIT:
            raise InvalidRequest(f"The window holds {count} events; replay at most {REPLAY_LIMIT} at a time "
                                 "(give since and until)")
        event_ids = session.scalars(select(OutboundEvent.id).where(*window).order_by(OutboundEvent.sequence)).all()
        now = utcnow()
        # A microsecond apart: the senders take the most overdue first, so they go out in `sequence` order.
        rows = [dict(id=uuid.uuid4(), event_id=event_id, endpoint_id=endpoint.id, status=DeliveryStatus.PENDING,
                     attempts=0, next_attempt_at=now + timedelta(microseconds=i), created_at=now)
                for i, event_id in enumerate(event_ids)]
        for start in range(0, len(rows), 5000):
            session.execute(_INSERT_DELIVERIES, rows[start:start + 5000])
    return len(rows)
