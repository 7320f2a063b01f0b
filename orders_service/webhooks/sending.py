"""Delivering events: claiming an endpoint's due deliveries, sending them, recording what happened.

A sender claims a batch of one endpoint's due deliveries (`claimed_until`, and a token in `claim`) in
one short transaction, sends them one by one with no transaction open, and records the outcomes in
another; only the claim's holder may record them. Two senders never send a delivery at once, and a
sender that dies mid-way leaves its claims to lapse: the deliveries are sent again (at least once;
the receiver drops a repeat by its `webhook-id`). A claim outlasts what the sender may still spend
on it: it sends nothing it could not finish before its claim lapses.

After an attempt that fails, the delivery waits the next entry of WEBHOOK_RETRY_SCHEDULE (or longer,
when a 429 or 503 asks for it with Retry-After), and after the last one it is `dead`. A 410 Gone
disables the endpoint. When the endpoint cannot be reached at all (refused, timed out, no such
host), its other due deliveries are not sent into the same wall one by one: they share that
attempt's outcome (their last error says they were not sent), so a dead endpoint costs one attempt
per round (every UNREACHABLE_PAUSE at most) however many deliveries wait for it, and each delivery
still follows its own schedule.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from orders_service.db import utcnow
from orders_service.ops import metrics
from orders_service.webhooks.events import envelope
from orders_service.webhooks.models import (
    DeliveryStatus,
    EndpointStatus,
    OutboundEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from orders_service.webhooks.sender import TIMEOUT_SECONDS, Answer, EndpointConnection, Unreachable
from orders_service.webhooks.signing import Signer

log = logging.getLogger(__name__)

BATCH = 50  # deliveries one claim takes
CLAIM = timedelta(seconds=TIMEOUT_SECONDS * 2)
MARGIN = timedelta(seconds=2)  # a delivery is sent only while its claim has TIMEOUT + MARGIN left
MAX_RETRY_AFTER = 24 * 3600  # an endpoint's Retry-After is honoured up to a day
# An endpoint that cannot be reached is tried at most this often, and each round settles at most a batch of
# its other due deliveries: 10,000 waiting for a dead endpoint are a few small statements a second, never
# one burst that competes with the orders being placed.
UNREACHABLE_PAUSE = timedelta(seconds=2)
SHARED_FATE_BATCH = 1000
_DELIVERY = WebhookDelivery.__table__


# --- what an answer means -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """One attempt's result: an HTTP status, or no answer at all (`unreachable`)."""

    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the endpoint asked to be left alone (429, 503)
    unreachable: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def outcome_of(answer: Answer, now: datetime) -> Outcome:
    status = answer.status
    if 200 <= status < 300:
        return Outcome(status)
    if 300 <= status < 400:
        error = f"HTTP {status}: redirect to {answer.location or '(no Location)'} not followed"
    elif status == 410:
        error = "HTTP 410 Gone: the endpoint was disabled"
    else:
        error = f"HTTP {status}" + (f": {answer.excerpt.strip()}" if answer.excerpt.strip() else "")
    retry_after = retry_after_seconds(answer.retry_after, now) if status in (429, 503) else None
    return Outcome(status, error[:500], retry_after)


def next_step(attempts: int, schedule: tuple[int, ...], outcome: Outcome,
              now: datetime) -> tuple[str, datetime | None]:
    """The delivery's status after its `attempts`-th attempt had `outcome`, and when to try again.

    The n-th retry waits `schedule[n-1]`; after a failed attempt with no entry left it is dead. A manual
    retry of a dead delivery is one attempt more than the schedule has: if it fails, dead again.
    """
    if outcome.delivered:
        return DeliveryStatus.SUCCEEDED, None
    if attempts > len(schedule):
        return DeliveryStatus.DEAD, None
    wait = schedule[attempts - 1]
    if outcome.retry_after is not None:
        wait = max(wait, outcome.retry_after)
    return DeliveryStatus.FAILED, now + timedelta(seconds=wait)


# --- claiming -------------------------------------------------------------------------------------------

def _due(now: datetime):
    return (WebhookDelivery.status.in_(DeliveryStatus.WAITING), WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now))


def _sendable(now: datetime):
    return (WebhookEndpoint.status == EndpointStatus.ACTIVE,
            or_(WebhookEndpoint.paused_until.is_(None), WebhookEndpoint.paused_until <= now))


def due_endpoints(session: Session, exclude: set, limit: int) -> list[uuid.UUID]:
    """Active endpoints with deliveries to make now, the longest waiting first (at most `limit`)."""
    now = utcnow()
    oldest = (select(func.min(WebhookDelivery.next_attempt_at))
              .where(WebhookDelivery.endpoint_id == WebhookEndpoint.id, *_due(now)).scalar_subquery())
    with session.begin():
        rows = session.execute(
            select(WebhookEndpoint.id, oldest.label("oldest")).where(*_sendable(now))
        ).all()
    waiting = sorted((row for row in rows if row.oldest is not None and row.id not in exclude),
                     key=lambda row: row.oldest)
    return [row.id for row in waiting[:limit]]


@dataclass
class Claimed:
    id: uuid.UUID
    event_id: str
    attempts: int  # before this attempt
    body: str


@dataclass
class Batch:
    endpoint_id: uuid.UUID
    url: str
    secrets: list[str]
    token: uuid.UUID
    claimed_until: datetime
    deliveries: list[Claimed] = field(default_factory=list)


def _live_secrets(endpoint, now: datetime) -> list[str]:
    live = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        live.append(endpoint.previous_secret)
    return live


def claim(session: Session, endpoint_id: uuid.UUID, limit: int = BATCH) -> Batch | None:
    """Claim up to `limit` of the endpoint's due deliveries, the most overdue first; None when there are
    none, or the endpoint is gone, disabled or paused."""
    now, token = utcnow(), uuid.uuid4()
    until = now + CLAIM
    with session.begin():
        # The endpoint's row first, then its deliveries, in every transaction that touches both: a deletion
        # (which cascades to the deliveries) and a sender then never lock them in opposite orders.
        endpoint = session.execute(
            select(WebhookEndpoint.url, WebhookEndpoint.secret, WebhookEndpoint.previous_secret,
                   WebhookEndpoint.previous_secret_expires_at)
            .where(WebhookEndpoint.id == endpoint_id, *_sendable(now)).with_for_update(read=True, key_share=True)
        ).first()
        if endpoint is None:
            return None
        due = (select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id, *_due(now))
               .order_by(WebhookDelivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
        claimed = session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(due.scalar_subquery()), *_due(now)[2:])
            .values(claimed_until=until, claim=token)
            .returning(WebhookDelivery.id, WebhookDelivery.event_id, WebhookDelivery.attempts,
                       WebhookDelivery.next_attempt_at)
        ).all()
        if not claimed:
            return None
        events = {e.id: e for e in session.execute(
            select(OutboundEvent.id, OutboundEvent.type, OutboundEvent.occurred_at, OutboundEvent.sequence,
                   OutboundEvent.data).where(OutboundEvent.id.in_({c.event_id for c in claimed})))}
    batch = Batch(endpoint_id, endpoint.url, _live_secrets(endpoint, now), token, until)
    for row in sorted(claimed, key=lambda c: c.next_attempt_at):
        event = events[row.event_id]
        batch.deliveries.append(Claimed(row.id, row.event_id, row.attempts, envelope(
            event.id, event.type, event.occurred_at, event.sequence, event.data)))
    return batch


# --- recording ------------------------------------------------------------------------------------------

_RECORD = (update(_DELIVERY)
           .where(_DELIVERY.c.id == bindparam("delivery_id"), _DELIVERY.c.claim == bindparam("token"))
           .values(status=bindparam("new_status"), attempts=_DELIVERY.c.attempts + 1,
                   last_status_code=bindparam("status_code"), last_error=bindparam("error"),
                   last_attempt_at=bindparam("attempted_at"), next_attempt_at=bindparam("next_at"),
                   delivered_at=bindparam("delivered"), claimed_until=None, claim=None))


def _count(status: str, n: int = 1) -> None:
    metrics.WEBHOOK_DELIVERIES.labels(status).inc(n)


def record(session: Session, batch: Batch, results: list[tuple[Claimed, Outcome, datetime]],
           schedule: tuple[int, ...]) -> None:
    """Write the outcomes of a batch and release what it did not send; act on what the endpoint said
    (410: disabled; 429/503 with Retry-After: paused; unreachable: its due deliveries share the outcome)."""
    now = utcnow()
    rows = []
    for delivery, outcome, attempted_at in results:
        status, next_at = next_step(delivery.attempts + 1, schedule, outcome, attempted_at)
        rows.append(dict(delivery_id=delivery.id, token=batch.token, new_status=status,
                         status_code=outcome.status_code, error=outcome.error, attempted_at=attempted_at,
                         next_at=next_at, delivered=attempted_at if outcome.delivered else None))
    last = results[-1][1] if results else None
    with session.begin():
        # The endpoint's row first (see `claim`); one sender at a time records for an endpoint, so that two
        # never update its deliveries in bulk at once. A deleted endpoint has nothing left to record.
        if session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.id == batch.endpoint_id)
                          .with_for_update(key_share=True)) is None:
            return
        if rows:
            session.execute(_RECORD, rows)
        session.execute(update(WebhookDelivery)
                        .where(WebhookDelivery.endpoint_id == batch.endpoint_id, WebhookDelivery.claim == batch.token)
                        .values(claimed_until=None, claim=None))
        if last is not None and last.gone:
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == batch.endpoint_id)
                            .values(status=EndpointStatus.DISABLED, updated_at=now,
                                    disabled_reason=f"it answered 410 Gone at {now.isoformat(timespec='seconds')}"))
        elif last is not None and last.retry_after:
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == batch.endpoint_id)
                            .values(paused_until=now + timedelta(seconds=last.retry_after)))
        elif last is not None and last.unreachable:
            _share_fate(session, batch.endpoint_id, last, now, schedule)
    for row in rows:
        _count(row["new_status"])


def _share_fate(session: Session, endpoint_id: uuid.UUID, outcome: Outcome, now: datetime,
                schedule: tuple[int, ...]) -> None:
    """The endpoint could not be reached just now: its most overdue other deliveries (SHARED_FATE_BATCH; the
    next rounds take the rest) count an attempt with that outcome, in one statement — each delivery's next
    wait by its own count, as `next_step` would give it — and the endpoint rests UNREACHABLE_PAUSE."""
    error = f"not sent: the endpoint was unreachable at {now.isoformat(timespec='seconds')} ({outcome.error})"[:500]
    batch = (select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id, *_due(now))
             .order_by(WebhookDelivery.next_attempt_at).limit(SHARED_FATE_BATCH).with_for_update(skip_locked=True))
    retried = WebhookDelivery.attempts < len(schedule)  # after this attempt, a wait is left (see next_step)
    waits = [(WebhookDelivery.attempts == n, now + timedelta(seconds=wait)) for n, wait in enumerate(schedule)]
    statuses = session.scalars(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(batch.scalar_subquery()))
        .values(status=case((retried, DeliveryStatus.FAILED), else_=DeliveryStatus.DEAD),
                attempts=WebhookDelivery.attempts + 1, last_status_code=None, last_error=error, last_attempt_at=now,
                next_attempt_at=case(*waits, else_=None))
        .returning(WebhookDelivery.status)
    ).all()
    for status, n in Counter(statuses).items():
        _count(status, n)
    session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                    .values(paused_until=now + UNREACHABLE_PAUSE))


# --- a sender's turn at one endpoint --------------------------------------------------------------------

def _attempt(connection: EndpointConnection, signer: Signer, delivery: Claimed) -> tuple[Outcome, datetime]:
    attempted_at = utcnow()
    body = delivery.body.encode()
    try:
        answer = connection.post(body, signer.headers(delivery.event_id, delivery.body, attempted_at))
    except Unreachable as exc:
        return Outcome(error=str(exc)[:500], unreachable=True), attempted_at
    return outcome_of(answer, utcnow()), attempted_at


def send_due(session_factory, endpoint_id: uuid.UUID, schedule: tuple[int, ...], allow_private: bool,
             https_only: bool, budget_seconds: float = 10.0) -> int:
    """Send the endpoint's due deliveries, batch after batch, for about `budget_seconds` (then another
    endpoint gets its turn); stops at an answer that says to stop (410, Retry-After, unreachable). How many
    were attempted."""
    stop_at = time.monotonic() + budget_seconds
    attempted = 0
    connection = None
    try:
        with session_factory() as session:
            while time.monotonic() < stop_at:
                batch = claim(session, endpoint_id)
                if batch is None:
                    break
                if connection is None or connection.url != batch.url:
                    if connection is not None:
                        connection.close()
                    connection = EndpointConnection(batch.url, allow_private, https_only)
                signer = Signer(batch.secrets)
                results = []
                for delivery in batch.deliveries:
                    if batch.claimed_until - utcnow() < timedelta(seconds=TIMEOUT_SECONDS) + MARGIN:
                        break  # it could not finish before the claim lapses: released below, claimed again
                    outcome, attempted_at = _attempt(connection, signer, delivery)
                    results.append((delivery, outcome, attempted_at))
                    if outcome.gone or outcome.retry_after or outcome.unreachable:
                        break
                record(session, batch, results, schedule)
                attempted += len(results)
                last = results[-1][1] if results else None
                if last is None or last.gone or last.retry_after or last.unreachable:
                    break
    finally:
        if connection is not None:
            connection.close()
    return attempted
