from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orders_service.db import Base, Cents, JSONType, UUIDKey, utcnow


class OrderStatus:
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    CANCELED = "canceled"
    ALL = (PENDING, CONFIRMED, SHIPPED, DELIVERED, EXPIRED, CANCELED)


class PaymentStatus:
    UNPAID = "unpaid"
    ACTION_REQUIRED = "action_required"  # the customer must finish a step: 3-D Secure, a bank's or wallet's page
    PROCESSING = "processing"  # the provider accepted the payment and tells the outcome later (bank debits)
    AUTHORIZED = "authorized"  # held on the card (PAYMENT_CAPTURE=on_shipment): captured when the order ships
    PAID = "paid"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    ALL = (UNPAID, ACTION_REQUIRED, PROCESSING, AUTHORIZED, PAID, FAILED, PARTIALLY_REFUNDED, REFUNDED)
    RECEIVED = (PAID, PARTIALLY_REFUNDED, REFUNDED)  # the money arrived (some may have gone back since)
    HELD = (PAID, PARTIALLY_REFUNDED)  # the shop holds some of the customer's money
    PAYABLE = (UNPAID, ACTION_REQUIRED, FAILED)  # a pending order in these may be paid (its client secret is given)


class PaymentMethod:
    ONLINE = "online"
    CASH_ON_DELIVERY = "cash_on_delivery"


class Order(UUIDKey, Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index("ix_orders_status_created", "status", "created_at"),
        # Reconciliation's look at closed orders whose payment may still be open or paid at the provider.
        Index("ix_orders_payment_open", "created_at",
              postgresql_where=text("payment_closed_at IS NULL AND status IN ('canceled', 'expired')"),
              sqlite_where=text("payment_closed_at IS NULL AND status IN ('canceled', 'expired')")),
        # The capture job's look at authorizations close to their deadline.
        Index("ix_orders_authorized_capture_before", "capture_before",
              postgresql_where=text("payment_status = 'authorized'"),
              sqlite_where=text("payment_status = 'authorized'")),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16))
    payment_method: Mapped[str] = mapped_column(String(24))
    payment_status: Mapped[str] = mapped_column(String(24), default=PaymentStatus.UNPAID)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_cents: Mapped[int] = mapped_column(Cents)
    delivery_price_cents: Mapped[int] = mapped_column(Cents)
    total_cents: Mapped[int] = mapped_column(Cents)
    delivery_method_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("delivery_methods.id"))
    delivery_address: Mapped[dict] = mapped_column(JSONType)
    notes: Mapped[str | None] = mapped_column(Text)
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    carrier: Mapped[str | None] = mapped_column(String(100))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    client_secret: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]
    disputed_at: Mapped[datetime | None]  # a chargeback was opened at the provider
    # What the provider has refunded so far (its running total, by this service or in its dashboard).
    refunded_cents: Mapped[int] = mapped_column(Cents, default=0)
    # When the order's PaymentIntent reached its end for a closed order (canceled at the provider, or
    # refunded): until then reconciliation keeps asking, so that no money stays stuck.
    payment_closed_at: Mapped[datetime | None]
    reconciled_at: Mapped[datetime | None]  # when reconciliation last asked the provider about it
    # What the provider last told of the payment: the type of the method used (`card`, `sepa_debit`, …),
    # the step the customer must take (`{type, redirectUrl?}`, while `action_required`), the last decline.
    payment_method_type: Mapped[str | None] = mapped_column(String(64))
    payment_next_action: Mapped[dict | None] = mapped_column(JSONType)
    payment_error: Mapped[str | None] = mapped_column(Text)
    # When a payment the provider was processing failed: the order is payable again, and its time to pay
    # counts from then (expiry counts from the later of this and `created_at`).
    payable_since: Mapped[datetime | None]
    # Automatic refunds of a closed order the provider refused in a row, and when the next may be tried
    # (none after the last allowed: the order then waits for a person).
    refund_failures: Mapped[int] = mapped_column(default=0)
    refund_retry_at: Mapped[datetime | None]
    # An authorized payment (PAYMENT_CAPTURE=on_shipment): when the provider lets the hold lapse, and until
    # when a capture under way owns it (one ship or job at a time asks the provider to capture).
    capture_before: Mapped[datetime | None]
    capture_claimed_until: Mapped[datetime | None]
    # Who owns that claim (only its owner lets it go), and which capture request the order is at: the provider
    # keeps a refused capture's answer under its idempotency key, so after a refusal that left the hold as it
    # was, the next attempt is a request of its own (`capture-<id>-<attempt>`).
    capture_claim_token: Mapped[str | None] = mapped_column(String(32))
    capture_attempt: Mapped[int] = mapped_column(default=0)

    items: Mapped[list["OrderItem"]] = relationship(
        back_populates="order", order_by="OrderItem.position", cascade="all, delete-orphan"
    )
    events: Mapped[list["OrderEvent"]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )

    @property
    def refundable_cents(self) -> int:
        """What may still be refunded: paid minus refunded (refunds under way are the caller's to count)."""
        return self.total_cents - self.refunded_cents if self.payment_status in PaymentStatus.HELD else 0


class OrderItem(UUIDKey, Base):
    __tablename__ = "order_items"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("variants.id"))
    name: Mapped[str] = mapped_column(String(400))
    unit_price_cents: Mapped[int] = mapped_column(Cents)
    quantity: Mapped[int]
    line_total_cents: Mapped[int] = mapped_column(Cents)

    order: Mapped[Order] = relationship(back_populates="items")


class OrderEvent(Base):
    """The order's audit trail: one row per thing that happened to it, oldest first."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(48))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict] = mapped_column(JSONType, default=dict)

    order: Mapped[Order] = relationship(back_populates="events")


class RefundStatus:
    PENDING = "pending"  # asked of the provider; its answer is not known yet (reconciliation asks again)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the provider refused it: nothing was refunded


class Refund(UUIDKey, Base):
    """A refund this service asked of the provider; its id makes the provider's idempotency key."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "idempotency_key", name="uq_refunds_order_id_idempotency_key"),
        Index("ix_refunds_pending", "created_at", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    amount_cents: Mapped[int] = mapped_column(Cents)
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(24))  # admin, cancel, reconciliation, …
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.PENDING)
    provider_refund_id: Mapped[str | None] = mapped_column(String(255))
    failure: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))  # the admin's, when one was sent
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    order: Mapped[Order] = relationship()

    @property
    def provider_idempotency_key(self) -> str:
        return f"refund-{self.id}"


class IdempotencyRecord(Base):
    """An `Idempotency-Key` seen from a customer, and the order its first request created.

    `order_id` has no foreign key: the record is inserted first, so that a concurrent request with
    the same key waits on it before reserving any stock.
    """

    __tablename__ = "idempotency_records"

    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
