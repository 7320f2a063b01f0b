"""Marshmallow fields shared by the schemas: text PostgreSQL can store, strict numbers and booleans,
money, countries. Every schema's strings are `Text` (or built on it), so no route can take text that
would fail later, at the database or at the password hasher, as a 500."""
from __future__ import annotations

from contextvars import ContextVar
from datetime import timezone
from decimal import Decimal

import pycountry
from marshmallow import ValidationError, fields, validate

from orders_service.api.parsing import MAX_INT_DIGITS, OversizedInteger
from orders_service.money import currency, json_amount, to_minor
from orders_service.text import unstorable_text_problem

# The store's currency, for amounts that carry none of their own (request bodies, catalog prices).
# The app sets it for each request from STORE_CURRENCY; one process serves one store.
STORE_CURRENCY: ContextVar[str] = ContextVar("store_currency", default="USD")


class Text(fields.String):
    """A string PostgreSQL can store: no NUL characters, no lone surrogates."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = unstorable_text_problem(text)
        if problem:
            raise ValidationError(problem)
        return text


class Email(Text):
    """An email address (marshmallow's check), as storable Text."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.insert(0, validate.Email(error="Not a valid email address."))


def _refuse_oversized(value) -> None:
    if isinstance(value, OversizedInteger):
        raise ValidationError(f"Must have at most {MAX_INT_DIGITS} digits.")


class StrictInteger(fields.Integer):
    """An integer that refuses floats, numeric strings and booleans."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        _refuse_oversized(value)
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: not "yes", "1", 1 or "true" (marshmallow's Boolean takes them all)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value


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
        _refuse_oversized(value)
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


def normalise_country(value: str) -> str:
    """ISO alpha-2, alpha-3 or an English name → ISO alpha-2."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Not a valid country.")
    try:
        return pycountry.countries.lookup(value.strip()).alpha_2
    except LookupError:
        raise ValidationError(f"Unknown country: {value[:60]!r}.") from None


class Country(Text):
    def _deserialize(self, value, attr, data, **kwargs):
        return normalise_country(super()._deserialize(value, attr, data, **kwargs))
