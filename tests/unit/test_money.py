"""Money: a JSON number in major units with the currency's decimals ↔ integer minor units as Stripe counts
them (docs/api.md, "Conventions", and STORE_CURRENCY; Stripe's currency rules: stripe.com/docs/currencies).

`make mutate` runs mutmut over money.py against these tests; the mutants that survive are explained here.
"""
import json
from decimal import Decimal

import pytest
from marshmallow import Schema, ValidationError

from orders_service.api.fields import STORE_CURRENCY, Money
from orders_service.money import (
    MAX_MAJOR_UNITS,
    STRIPE_THREE_DECIMAL,
    STRIPE_ZERO_DECIMAL,
    UnknownCurrency,
    currency,
    describe,
    json_amount,
    to_major,
    to_minor,
)

# Mutants of money.py that no test can kill, and why (`make mutate` fails on any other survivor).
SURVIVING_MUTANTS = {
    "orders_service.money.x_to_minor__mutmut_24":
        "Decimal(2).scaleb(-d) for Decimal(1).scaleb(-d): quantize() takes only its argument's exponent",
    "orders_service.money.x_to_major__mutmut_9": "the same quantize() argument, in to_major",
}

USD, JPY, KWD, ISK, MGA, IQD, EUR = (currency(c) for c in ("USD", "JPY", "KWD", "ISK", "MGA", "IQD", "eur"))


@pytest.mark.parametrize("code, exponent, decimals, step", [
    ("USD", 2, 2, 1), ("EUR", 2, 2, 1), ("GBP", 2, 2, 1),
    ("JPY", 0, 0, 1), ("KRW", 0, 0, 1), ("CLP", 0, 0, 1),
    ("MGA", 0, 0, 1),   # ISO 4217 says 2; Stripe charges whole ariary
    ("KWD", 3, 2, 10), ("BHD", 3, 2, 10), ("TND", 3, 2, 10),  # thousandths, the last digit 0
    ("ISK", 2, 0, 100),  # Stripe counts hundredths; the króna has none in use
    ("IQD", 2, 2, 1),   # ISO says 3; Stripe charges it in hundredths
    ("HUF", 2, 2, 1), ("TWD", 2, 2, 1),
])
def test_each_currency_as_stripe_counts_it(code, exponent, decimals, step):
    cur = currency(code)
    assert (cur.code, cur.exponent, cur.decimals, cur.step) == (code, exponent, decimals, step)


def test_the_stripe_tables_are_the_readmes():
    assert STRIPE_ZERO_DECIMAL == {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                                   "VND", "VUV", "XAF", "XOF", "XPF"}
    assert STRIPE_THREE_DECIMAL == {"BHD", "JOD", "KWD", "OMR", "TND"}
    assert all(currency(c).exponent == 0 for c in STRIPE_ZERO_DECIMAL)
    assert all(currency(c).exponent == 3 for c in STRIPE_THREE_DECIMAL)


@pytest.mark.parametrize("code", ["XAU", "XXX", "ABC", "", "US", "DOLLAR"])
def test_what_is_not_money_is_refused(code):
    with pytest.raises(UnknownCurrency):
        currency(code)


@pytest.mark.parametrize("value, cur, minor", [
    (459.98, USD, 45998), (0.29, USD, 29), (19.99, USD, 1999), (1.15, USD, 115), (4.35, USD, 435),
    (0, USD, 0), (5, USD, 500), (10.5, USD, 1050), ("459.98", USD, 45998), (Decimal("2.50"), USD, 250),
    (1500, JPY, 1500), (1500.0, JPY, 1500), ("1500", JPY, 1500),
    (1.25, KWD, 1250), ("1.250", KWD, 1250), (0.1, KWD, 100),
    (1500, ISK, 150000), (12, MGA, 12), (12.34, IQD, 1234),
])
def test_major_to_minor_units_is_exact(value, cur, minor):
    result = to_minor(value, cur)
    assert result == minor and type(result) is int


def test_every_two_decimal_float_converts_exactly():
    # int(x * 100) truncates many of these (0.29 * 100 == 28.999999999999996)
    assert all(to_minor(c / 100, USD) == c for c in range(0, 200_000, 7))


@pytest.mark.parametrize("value, cur", [
    (0.1 + 0.2, USD),  # 0.30000000000000004: more than two decimals, not silently rounded
    (1.234, USD), ("1.234", USD), (0.001, USD), (1e-7, USD),
    (12.5, JPY), ("0.5", JPY), (1.255, KWD), (1.001, KWD), (1500.5, ISK), (0.5, MGA),
    (-1, USD), (-0.01, USD), ("-5", JPY),
    (float("nan"), USD), (float("inf"), USD), (float("-inf"), USD), ("NaN", USD), ("Infinity", USD), ("sNaN", USD),
    (True, USD), (False, JPY),
    (MAX_MAJOR_UNITS + 0.01, USD), (MAX_MAJOR_UNITS + 1, JPY), (1e20, USD), ("1e30", USD), (10**40, USD),
    (None, USD), ([1], USD), ({}, USD), ("abc", USD), ("", USD),
])
def test_what_the_currency_cannot_hold_is_refused(value, cur):
    with pytest.raises(ValueError):
        to_minor(value, cur)


@pytest.mark.parametrize("value, cur, message", [
    (12.5, JPY, "must be a whole number in JPY"),
    (1.255, KWD, "must have at most 2 decimals in KWD"),
    (1.234, USD, "must have at most 2 decimals in USD"),
    (True, USD, "must be a number"), ([1], USD, "must be a number"), ("abc", USD, "must be a number"),
    (float("nan"), USD, "must be a finite number"), (float("inf"), USD, "must be a finite number"),
    (-0.01, USD, "must not be negative"),
    (MAX_MAJOR_UNITS + 1, USD, "is too large"),
])
def test_each_refusal_says_why(value, cur, message):
    with pytest.raises(ValueError) as caught:
        to_minor(value, cur)
    assert str(caught.value) == message


def test_the_largest_amount_is_accepted():
    assert to_minor(MAX_MAJOR_UNITS, USD) == MAX_MAJOR_UNITS * 100
    assert to_minor(MAX_MAJOR_UNITS, JPY) == MAX_MAJOR_UNITS


@pytest.mark.parametrize("minor, cur, major, shown, text", [
    (45998, USD, Decimal("459.98"), 459.98, "459.98 USD"),
    (1000, USD, Decimal("10.00"), 10.0, "10.00 USD"),
    (1500, JPY, Decimal("1500"), 1500, "1500 JPY"),
    (1250, KWD, Decimal("1.25"), 1.25, "1.25 KWD"),
    (1255, KWD, Decimal("1.255"), 1.255, "1.255 KWD"),  # finer than a price (from Stripe): stays exact
    (150000, ISK, Decimal("1500"), 1500, "1500 ISK"),
])
def test_minor_units_back_to_major_units(minor, cur, major, shown, text):
    assert to_major(minor, cur) == major
    assert json_amount(minor, cur) == shown and type(json_amount(minor, cur)) is type(shown)
    assert describe(minor, cur) == text


def test_json_numbers_have_the_currencys_decimals():
    assert json.dumps([json_amount(45998, USD), json_amount(1, USD), json_amount(1000, USD)]) == "[459.98, 0.01, 10.0]"
    assert json.dumps([json_amount(1500, JPY), json_amount(1250, KWD)]) == "[1500, 1.25]"
    assert all(to_minor(json_amount(c, USD), USD) == c for c in range(0, 200_000, 13))
    assert all(to_minor(json_amount(c, KWD), KWD) == c for c in range(0, 200_000, 130))


@pytest.mark.parametrize("code, minimum", [("USD", 50), ("EUR", 50), ("GBP", 30), ("JPY", 50), ("KWD", None)])
def test_stripes_minimum_charge(code, minimum):
    assert currency(code).minimum_charge == minimum


class _Priced(Schema):
    price = Money(required=True)


@pytest.mark.parametrize("code, value, minor", [("USD", 459.98, 45998), ("USD", 12, 1200), ("JPY", 1500, 1500),
                                                ("KWD", 1.25, 1250)])
def test_money_field_loads_in_the_store_currency(code, value, minor):
    token = STORE_CURRENCY.set(code)
    try:
        assert _Priced().load({"price": value}) == {"price": minor}
        assert _Priced().dump({"price": minor}) == {"price": value}
    finally:
        STORE_CURRENCY.reset(token)


@pytest.mark.parametrize("value", ["459.98", "12", True, None, 1.234, -1, float("nan"), 1e20, [1]])
def test_money_field_refuses(value):
    with pytest.raises(ValidationError) as caught:
        _Priced().load({"price": value})
    assert "price" in caught.value.messages


def test_money_field_dumps_an_objects_own_currency():
    class Order:
        currency, total = "JPY", 1500

    class Line:
        order, price = Order(), 300

    class Totals(Schema):
        total = Money()

    class Lines(Schema):
        price = Money()

    assert Totals().dump(Order()) == {"total": 1500}
    assert Lines().dump(Line()) == {"price": 300}
    assert _Priced().dump({"price": None}) == {"price": None}
