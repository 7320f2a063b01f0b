from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from orders_service.db import Base, UUIDKey, utcnow


class Role:
    CUSTOMER = "customer"
    ADMIN = "admin"
    ALL = (CUSTOMER, ADMIN)


class Customer(UUIDKey, Base):
    __tablename__ = "customers"

    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.CUSTOMER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
