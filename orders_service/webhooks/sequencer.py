"""`sequence`: numbering committed events in the order they became visible, and handing each to the
endpoints that want it.

An event is recorded in the transaction of its change, and those transactions commit in any order: a
number taken when the event is written (a database sequence) would let a reader of the feed see 12
before 11 commits, move its cursor past 11 and never see it. So the number is given after commit, by
one sequencer at a time (it holds the row lock of `outbound_event_sequencer`; another one skips its
turn): each run numbers the events its snapshot sees, after every number given before. An event that
commits later gets a larger number in a later run, and a reader that has seen N has seen everything
below N. The same run creates the event's deliveries (fan-out), so a delivery always carries its
event's `sequence`.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from orders_service.db import insert_ignoring_conflicts, utcnow
from orders_service.webhooks.models import (
    DeliveryStatus,
    EndpointStatus,
    EventSequencer,
    OutboundEvent,
    WebhookDelivery,
    WebhookEndpoint,
)

BATCH = 1000
_INSERT_DELIVERIES = insert(WebhookDelivery.__table__)
_NUMBER = (update(OutboundEvent.__table__).where(OutboundEvent.__table__.c.id == bindparam("event_id"))
           .values(sequence=bindparam("number")))


def _subscribes(endpoint, event) -> bool:
    """An active endpoint gets the events recorded since it exists, of its types (none listed: all)."""
    return endpoint.created_at <= event.occurred_at and (not endpoint.event_types or event.type in
                                                         endpoint.event_types)


def _in_order_per_order(events: list) -> list:
    """`events` (in time order) with each order's own events in its `orderSequence` order: the places its
    events hold in the list are given to them in that order. Times come from the clocks of the hosts that
    recorded them, which may disagree; an order's count does not (its row lock ordered them)."""
    places: dict = {}
    for place, event in enumerate(events):
        places.setdefault(event.order_id, []).append(place)
    ordered = list(events)
    for taken in places.values():
        mine = sorted((events[place] for place in taken), key=lambda e: e.order_sequence)
        for place, event in zip(taken, mine, strict=True):
            ordered[place] = event
    return ordered


def sequence_events(session: Session) -> int:
    """Number the committed events not numbered yet (at most BATCH), and create their deliveries; how many
    were numbered (0 also when another sequencer is running)."""
    take_turn = select(EventSequencer).where(EventSequencer.id == 1).with_for_update(skip_locked=True)
    with session.begin():
        counter = session.scalar(take_turn)
        if counter is None:  # another sequencer holds it, or its row is missing (an emptied table): recreate it
            last = session.scalar(select(func.coalesce(func.max(OutboundEvent.sequence), 0)))
            if insert_ignoring_conflicts(session, EventSequencer, {"id": 1, "last_sequence": last}):
                counter = session.scalar(take_turn)
        if counter is None:
            return 0
        events = session.execute(
            select(OutboundEvent.id, OutboundEvent.type, OutboundEvent.occurred_at, OutboundEvent.order_id,
                   OutboundEvent.order_sequence)
            .where(OutboundEvent.sequence.is_(None), OutboundEvent.order_id.is_not(None))
            .order_by(OutboundEvent.occurred_at, OutboundEvent.order_id, OutboundEvent.order_sequence)
            .limit(BATCH)
        ).all()
        if not events:
            return 0
        events = _in_order_per_order(events)
        first = counter.last_sequence + 1
        session.execute(_NUMBER, [{"event_id": e.id, "number": first + i} for i, e in enumerate(events)])
        counter.last_sequence = first + len(events) - 1
        endpoints = session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.created_at)
            .where(WebhookEndpoint.status == EndpointStatus.ACTIVE)
        ).all()
        now = utcnow()
        # A microsecond apart: the senders take the most overdue first, so they go out in `sequence` order.
        deliveries = [dict(id=uuid.uuid4(), event_id=event.id, endpoint_id=endpoint.id, status=DeliveryStatus.PENDING,
                           attempts=0, next_attempt_at=now + timedelta(microseconds=i), created_at=now)
                      for i, event in enumerate(events) for endpoint in endpoints if _subscribes(endpoint, event)]
        if deliveries:
            session.execute(_INSERT_DELIVERIES, deliveries)
    return len(events)
