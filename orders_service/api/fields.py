"""Marshmallow fields shared by the schemas: text PostgreSQL can store, strict numbers and booleans,
money, countries. Every schema's strings are `Text` (or built on it), so no route can take text that
would fail later, at the database or at the password hasher, as a 500."""
from __future__ import annotations

import pycountry
from marshmallow import ValidationError, fields, validate

from orders_service.api.parsing import MAX_INT_DIGITS, OversizedInteger

# Money and times are written the same way by the order representation, outside the API: one definition.
from orders_service.json_fields import STORE_CURRENCY, UtcDateTime  # noqa: F401
from orders_service.json_fields import Money as _Money
from orders_service.text import unstorable_text_problem


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


class Money(_Money):
    """Money as requests send it: an integer wider than the service stores is refused by its field."""

    def _deserialize(self, value, attr, data, **kwargs):
        _refuse_oversized(value)
        return super()._deserialize(value, attr, data, **kwargs)


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
