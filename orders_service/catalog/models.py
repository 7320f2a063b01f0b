from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orders_service.db import Base, Cents, JSONType, UUIDKey, utcnow


class Product(UUIDKey, Base):
    __tablename__ = "products"
    __table_args__ = (CheckConstraint("stock >= 0", name="stock_not_negative"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    sku: Mapped[str | None] = mapped_column(String(64), unique=True)
    price_cents: Mapped[int] = mapped_column(Cents)
    # For a product with variants the stock lives on each variant.
    stock: Mapped[int] = mapped_column(default=0)
    weight_grams: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    variants: Mapped[list["Variant"]] = relationship(
        back_populates="product", order_by="Variant.created_at", lazy="selectin"
    )


class Variant(UUIDKey, Base):
    __tablename__ = "variants"
    __table_args__ = (CheckConstraint("stock >= 0", name="stock_not_negative"),)

    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    sku: Mapped[str | None] = mapped_column(String(64), unique=True)
    price_cents: Mapped[int | None] = mapped_column(Cents)  # None: the product's price
    stock: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    product: Mapped[Product] = relationship(back_populates="variants")

    @property
    def effective_price_cents(self) -> int:
        return self.price_cents if self.price_cents is not None else self.product.price_cents


class DeliveryMethod(UUIDKey, Base):
    __tablename__ = "delivery_methods"

    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(Cents)
    # ISO alpha-2 codes; empty means everywhere.
    countries: Mapped[list[str]] = mapped_column(JSONType, default=list)
    max_weight_grams: Mapped[int | None]
    cash_on_delivery: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    estimated_days: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def delivers_to(self, country: str) -> bool:
        return not self.countries or country in self.countries
