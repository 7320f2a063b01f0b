"""Reserving and releasing stock with conditional updates, never read-modify-write.

`UPDATE … SET stock = stock - q WHERE id = … AND stock >= q` is decided by the database under the
row lock, so concurrent buyers can never take stock below zero. Rows are always touched in one global
order (products by id, then variants by id) so that two orders naming the same rows cannot deadlock.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from orders_service.catalog.models import Product, Variant
from orders_service.errors import InsufficientStock


@dataclass(frozen=True)
class StockLine:
    product_id: uuid.UUID
    variant_id: uuid.UUID | None
    name: str
    quantity: int


def _grouped(lines: list[StockLine]) -> list[tuple[type, uuid.UUID, str, int]]:
    """Sum the quantities per stock row (lines naming the same product or variant), in lock order."""
    quantities: dict[tuple[type, uuid.UUID], int] = defaultdict(int)
    names: dict[tuple[type, uuid.UUID], str] = {}
    for line in lines:
        key = (Variant, line.variant_id) if line.variant_id else (Product, line.product_id)
        quantities[key] += line.quantity
        names[key] = line.name
    ordered = sorted(quantities, key=lambda k: (k[0] is Variant, str(k[1])))
    return [(model, row_id, names[(model, row_id)], quantities[(model, row_id)]) for model, row_id in ordered]


def _take(model):
    table = model.__table__
    return (update(table).where(table.c.id == bindparam("row_id"), table.c.stock >= bindparam("quantity"))
            .values(stock=table.c.stock - bindparam("quantity")))


# Built once, on the tables: every order placed runs one per stock row, and Core skips the ORM's
# per-call statement work.
_TAKE = {Product: _take(Product), Variant: _take(Variant)}


def reserve_stock(session: Session, lines: list[StockLine]) -> None:
    """Take the lines' quantities out of stock, or raise InsufficientStock (the caller rolls back)."""
    for model, row_id, name, quantity in _grouped(lines):
        taken = session.execute(_TAKE[model], {"row_id": row_id, "quantity": quantity}).rowcount
        if taken != 1:
            available = session.scalar(select(model.stock).where(model.id == row_id)) or 0
            raise InsufficientStock(name, available, quantity)


def release_stock(session: Session, lines: list[StockLine]) -> None:
    """Put the lines' quantities back (the caller makes sure this happens once per order)."""
    for model, row_id, _name, quantity in _grouped(lines):
        session.execute(
            update(model).where(model.id == row_id).values(stock=model.stock + quantity)
            .execution_options(synchronize_session=False)
        )
