"""Money crosses the API as a JSON number in major units and lives inside as integer cents."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_CENTS = 100_000_000_00  # one hundred million in major units: well above any single price


def to_cents(value) -> int:
    """A major-unit amount with at most two decimals → integer cents. Raises ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError("must be a number")
    try:
        # repr() of a float is the shortest text that reads back to it, so 459.98 stays exactly 459.98.
        amount = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount.as_tuple().exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise ValueError("must have at most two decimals")
    cents = int(amount * 100)
    if cents < 0:
        raise ValueError("must not be negative")
    if cents > MAX_CENTS:
        raise ValueError("is too large")
    return cents


def from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def json_amount(cents: int) -> float:
    """The JSON number for an amount. Only the printed form: the float is never computed with."""
    return float(from_cents(cents))
