"""Money: integer minor units inside, as Stripe counts them; a JSON number in major units outside.

A currency's minor unit is ISO 4217's (from the `iso4217` package) except where Stripe counts otherwise;
Stripe's exceptions are the tables below, and nowhere else (stripe.com/docs/currencies).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import iso4217

# Charged in whole units (the amount is the number of yen, francs, …), whatever ISO says (MGA).
STRIPE_ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                                 "VND", "VUV", "XAF", "XOF", "XPF"})
# Charged in thousandths, with the last digit 0: a price has at most two significant decimals.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# The smallest charge Stripe accepts, in the currency's minor units, where Stripe states one
# (stripe.com/docs/currencies#minimum-and-maximum-charge-amounts). Elsewhere Stripe's own refusal
# (`amount_too_small`) is the answer.
STRIPE_MINIMUM_CHARGE = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50, "CZK": 1500, "DKK": 250,
    "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50, "JPY": 50, "MXN": 1000, "MYR": 200,
    "NOK": 300, "NZD": 50, "PLN": 200, "RON": 200, "SEK": 300, "SGD": 50, "THB": 1000,
}
# Stripe's largest charge: eight digits of minor units.
STRIPE_MAXIMUM_CHARGE = 99_999_999
# The largest price or total the service takes, in major units: far above any real order, and far below
# what a 64-bit column holds in any currency's minor units.
MAX_MAJOR_UNITS = 100_000_000


class UnknownCurrency(ValueError):
    """Not an ISO 4217 currency of money (XAU, XDR and the like have no minor unit)."""


@dataclass(frozen=True)
class Currency:
    code: str
    exponent: int  # minor units per major unit: 10 ** exponent (as Stripe counts them)
    decimals: int  # decimals a price may have: ISO 4217's, never finer than what Stripe can charge

    @property
    def step(self) -> int:
        """The smallest amount, in minor units, that a price can move by (10 for KWD, 100 for ISK)."""
        return 10 ** (self.exponent - self.decimals)

    @property
    def minimum_charge(self) -> int | None:
        return STRIPE_MINIMUM_CHARGE.get(self.code)


@lru_cache(maxsize=None)
def currency(code: str) -> Currency:
    """The currency `code` (case-insensitive); UnknownCurrency if it is not money."""
    code = str(code).upper()
    try:
        iso_exponent = iso4217.Currency(code).exponent
    except ValueError:
        raise UnknownCurrency(f"not an ISO 4217 currency: {code!r}") from None
    if iso_exponent is None:
        raise UnknownCurrency(f"{code} is not a currency of money")
    if code in STRIPE_ZERO_DECIMAL:
        return Currency(code, exponent=0, decimals=0)
    if code in STRIPE_THREE_DECIMAL:
        return Currency(code, exponent=3, decimals=2)
    # Stripe counts every other currency in hundredths; ISK has none in use, so its prices are whole.
    return Currency(code, exponent=2, decimals=min(iso_exponent, 2))


def to_minor(value, cur: Currency) -> int:
    """A major-unit amount (a JSON number) → integer minor units. ValueError if `cur` cannot hold it."""
    try:
        # The text of a float is the shortest that reads back to it, so 459.98 stays exactly 459.98; the
        # text of anything else JSON holds (true, null, a list) is no number.
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount < 0:
        raise ValueError("must not be negative")
    if amount > MAX_MAJOR_UNITS:
        raise ValueError("is too large")
    if amount != amount.quantize(Decimal(1).scaleb(-cur.decimals)):
        raise ValueError(f"must have at most {cur.decimals} decimals in {cur.code}" if cur.decimals
                         else f"must be a whole number in {cur.code}")
    return int(amount.scaleb(cur.exponent))


def to_major(minor: int, cur: Currency) -> Decimal:
    """Minor units → the exact major-unit amount, with the currency's decimals (1250 KWD → 1.25)."""
    exact = Decimal(minor).scaleb(-cur.exponent)
    shown = exact.quantize(Decimal(1).scaleb(-cur.decimals))
    return shown if shown == exact else exact  # an amount finer than a price (from Stripe) stays exact


def json_amount(minor: int, cur: Currency) -> int | float:
    """The JSON number for an amount: an integer where the currency has no decimals (1500 JPY).

    Only the printed form: the float is never computed with.
    """
    major = to_major(minor, cur)
    return int(major) if cur.decimals == 0 else float(major)


def describe(minor: int, cur: Currency) -> str:
    """An amount for people and error messages: `459.98 USD`, `1500 JPY`."""
    return f"{to_major(minor, cur)} {cur.code}"
