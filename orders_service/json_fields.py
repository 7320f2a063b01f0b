"""How the service writes money and times in JSON: marshmallow fields shared by the API's schemas and
the order representation (`orders/representation.py`), which the domain builds for outbound events."""
from __future__ import annotations

from contextvars import ContextVar
from datetime import timezone
from decimal import Decimal

from marshmallow import ValidationError, fields

from orders_service.money import currency, json_amount, to_minor

# The store's currency, for amounts that carry none of their own (request bodies, catalog prices).
# The app sets it for each request from STORE_CURRENCY; one process serves one store.
STORE_CURRENCY: ContextVar[str] = ContextVar("store_currency", default="USD")


def _currency_of(obj):
    """An order (or its line, or its refund) has its own currency; anything else is in the store's."""
    code = getattr(obj, "currency", None) or getattr(getattr(obj, "order", None), "currency", None)
    return currency(code or STORE_CURRENCY.get())


class Money(fields.Number):
    """A JSON number in major units (459.98 USD, 1500 JPY) ↔ integer minor units (45998, 1500).

    A Number for the OpenAPI document (`type: number`); the conversion is exact, never through a float.
    """

    num_type = Decimal  # not used to convert (the methods below do): marshmallow asks every Number for one

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            raise ValidationError("Must be a JSON number, not a string.")
        try:
            return to_minor(value, currency(STORE_CURRENCY.get()))
        except ValueError as exc:
            raise ValidationError(f"Amount {exc}.") from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else json_amount(value, _currency_of(obj))


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC; SQLite hands back naive datetimes that were written as UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)
