"""The public event types, and recording an order's events in the transaction of its change.

`orders/actions.py` is the only caller of `record_order_events`: every change to an order goes through
it, so every change that reports an event does so in its own transaction — a change that rolls back
reports nothing, and one that commits is reported once.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Iterable

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from orders_service.db import utcnow
from orders_service.json_fields import UtcDateTime
from orders_service.webhooks.models import OutboundEvent


class EventTypes:
    """Every type an endpoint may subscribe to, and `ping`, which only the test route sends."""

    ORDER_CREATED = "order.created"
    PAYMENT_ACTION_REQUIRED = "order.payment_action_required"
    PAYMENT_PROCESSING = "order.payment_processing"
    PAYMENT_AUTHORIZED = "order.payment_authorized"
    PAID = "order.paid"
    PAYMENT_FAILED = "order.payment_failed"
    CASH_COLLECTED = "order.cash_collected"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"
    CANCELED = "order.canceled"
    EXPIRED = "order.expired"
    REFUNDED = "order.refunded"  # each refund, partial ones included
    DISPUTE_OPENED = "order.dispute_opened"
    ORDER = (ORDER_CREATED, PAYMENT_ACTION_REQUIRED, PAYMENT_PROCESSING, PAYMENT_AUTHORIZED, PAID, PAYMENT_FAILED,
             CASH_COLLECTED, SHIPPED, DELIVERED, CANCELED, EXPIRED, REFUNDED, DISPUTE_OPENED)
    PING = "ping"


_INSERT = insert(OutboundEvent.__table__)  # built once: every order placed writes one
_TIMESTAMP = UtcDateTime()


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def record_order_events(session: Session, order_id: uuid.UUID, types: Iterable[str], order: dict,
                        first: bool = False) -> None:
    """Record one event per type (in that order) for a change to the order, with `order` (its representation
    as the change left it) as `data.order`.

    The caller holds the order's row lock (or has just inserted the order: `first`), so the order's count,
    `orderSequence`, goes on from its last event without a gap or a repeat.
    """
    last = 0 if first else session.scalar(
        select(func.coalesce(func.max(OutboundEvent.order_sequence), 0)).where(OutboundEvent.order_id == order_id))
    now = utcnow()
    rows = []
    for i, event_type in enumerate(types, start=last + 1):
        if event_type not in EventTypes.ORDER:
            raise ValueError(f"unknown event type {event_type!r}")
        rows.append(dict(id=new_event_id(), type=event_type, occurred_at=now, order_id=order_id, order_sequence=i,
                         data=json.dumps({"order": order, "orderSequence": i}, separators=(",", ":"))))
    session.execute(_INSERT, rows)


def record_ping(session: Session) -> str:
    """A `ping` event (no order, never in the feed): its id."""
    event_id = new_event_id()
    session.execute(_INSERT, dict(id=event_id, type=EventTypes.PING, occurred_at=utcnow(), data="{}"))
    return event_id


def envelope(event_id: str, event_type: str, occurred_at: datetime, sequence: int | None, data: str) -> str:
    """The event as it is delivered and listed: `{id, type, timestamp, sequence, data}`, as JSON text.

    `data` is the JSON text recorded with the change, put in as it is: every attempt and replay of an
    event sends the same bytes but for nothing.
    """
    head = json.dumps({"id": event_id, "type": event_type, "timestamp": _TIMESTAMP.serialize("t", {"t": occurred_at}),
                       "sequence": sequence}, separators=(",", ":"))
    return f'{head[:-1]},"data":{data}}}'
