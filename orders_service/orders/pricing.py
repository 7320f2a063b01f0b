"""Order totals, in integer cents, from the service's own prices."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PricedLine:
    product_id: object
    variant_id: object | None
    name: str
    unit_price_cents: int
    quantity: int
    weight_grams: int

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


@dataclass(frozen=True)
class Totals:
    subtotal_cents: int
    delivery_price_cents: int
    weight_grams: int

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.delivery_price_cents


def order_totals(lines: list[PricedLine], delivery_price_cents: int) -> Totals:
    return Totals(
        subtotal_cents=sum(line.line_total_cents for line in lines),
        delivery_price_cents=delivery_price_cents,
        weight_grams=sum(line.weight_grams * line.quantity for line in lines),
    )
