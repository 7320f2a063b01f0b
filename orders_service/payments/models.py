from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from orders_service.db import Base, JSONType, utcnow


class StripeEvent(Base):
    """The webhook inbox: every Stripe event received, keyed by its id, until a worker has applied it."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        # The re-drive job looks for unprocessed events only; a partial index keeps that cheap.
        Index("ix_stripe_events_unprocessed", "received_at", postgresql_where=text("processed_at IS NULL"),
              sqlite_where=text("processed_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict] = mapped_column(JSONType)  # as received, less what PostgreSQL cannot store
    raw_payload: Mapped[str | None] = mapped_column(Text)  # the signed body, when `payload` had to differ
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))  # the payment it is about, if any
    order_id: Mapped[uuid.UUID | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]  # a worker is applying it until then (one at a time)
    attempts: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str | None] = mapped_column(Text)
