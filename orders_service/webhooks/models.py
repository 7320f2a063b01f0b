"""Outbound events, the endpoints that subscribe to them, and each delivery of an event to an endpoint."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from orders_service.db import Base, UUIDKey, utcnow


class OutboundEvent(Base):
    """An order event for other systems, recorded in the transaction of the change it reports.

    `sequence` is given after commit, in commit order, by the sequencer (`sequencer.py`): until then the
    event is in neither the feed nor any delivery. `data` is the event's `data` object as JSON text,
    written once when the change was recorded and sent as it is on every attempt and replay.
    A `ping` (the test route's) has no order and never gets a sequence.
    """

    __tablename__ = "outbound_events"
    __table_args__ = (
        # One count per order, 1, 2, 3…: the order's row lock serialises its writers; this makes sure.
        UniqueConstraint("order_id", "order_sequence", name="uq_outbound_events_order_id_order_sequence"),
        # What the sequencer has still to number (a handful at any moment).
        Index("ix_outbound_events_unsequenced", "occurred_at",
              postgresql_where=text("sequence IS NULL AND order_id IS NOT NULL"),
              sqlite_where=text("sequence IS NULL AND order_id IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # evt_…: the deliveries' webhook-id
    type: Mapped[str] = mapped_column(String(48))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # the event's `timestamp`
    sequence: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    order_sequence: Mapped[int | None]
    data: Mapped[str] = mapped_column(Text)


class EventSequencer(Base):
    """One row: the last `sequence` given. Its row lock lets one sequencer run at a time (`sequencer.py`)."""

    __tablename__ = "outbound_event_sequencer"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)


class EndpointStatus:
    ACTIVE = "active"
    DISABLED = "disabled"
    ALL = (ACTIVE, DISABLED)


class WebhookEndpoint(UUIDKey, Base):
    """A URL another system gave for the events it wants, and the secret its deliveries are signed with."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    event_types: Mapped[list] = mapped_column(JSON, default=list)  # empty: every type
    status: Mapped[str] = mapped_column(String(16), default=EndpointStatus.ACTIVE)
    # Why it was disabled, when the service did it (an answer 410 Gone); None when an admin did.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    # The secret before the last rotation, still signing until `previous_secret_expires_at`.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    # No delivery is attempted before this: the endpoint asked for a pause (429/503 with Retry-After).
    paused_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:  # never the secrets
        return f"<WebhookEndpoint {self.id} {self.url} {self.status}>"


class DeliveryStatus:
    PENDING = "pending"  # not attempted yet (or asked to be attempted again now)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the last attempt failed; another is scheduled
    DEAD = "dead"  # the last attempt failed and no retry is left
    ALL = (PENDING, SUCCEEDED, FAILED, DEAD)
    WAITING = (PENDING, FAILED)  # still to be delivered


class WebhookDelivery(UUIDKey, Base):
    """One event for one endpoint: attempted until it succeeds or its retries run out.

    A sender claims it (`claimed_until`, `claim`) before it sends, so that two senders never send it at
    once; a sender that dies leaves the claim to lapse, and the delivery is attempted again.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # What the senders look for: an endpoint's deliveries still to make, the most overdue first.
        Index("ix_webhook_deliveries_waiting", "endpoint_id", "next_attempt_at",
              postgresql_where=text("status IN ('pending', 'failed')"),
              sqlite_where=text("status IN ('pending', 'failed')")),
    )

    event_id: Mapped[str] = mapped_column(ForeignKey("outbound_events.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                                                   index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    claim: Mapped[uuid.UUID | None]  # the claiming sender's token: only it may write the outcome
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
