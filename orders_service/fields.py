"""Marshmallow fields shared by the schemas: strict numbers, money, countries."""
from __future__ import annotations

from datetime import timezone

import pycountry
from marshmallow import ValidationError, fields

from orders_service.money import json_amount, to_cents


class Text(fields.String):
    """A string PostgreSQL can store: no NUL characters."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        return text


class StrictInteger(fields.Integer):
    """An integer that refuses floats, numeric strings and booleans."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class Money(fields.Field):
    """A JSON number in major units (459.98) ↔ integer cents (45998)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            raise ValidationError("Must be a JSON number, not a string.")
        try:
            return to_cents(value)
        except ValueError as exc:
            raise ValidationError(f"Amount {exc}.") from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else json_amount(value)


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


class Country(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return normalise_country(super()._deserialize(value, attr, data, **kwargs))
