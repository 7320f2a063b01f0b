"""Money: a JSON number in major units with at most two decimals ↔ integer cents (CONTRACT, preamble)."""
import json
from decimal import Decimal

import pytest
from marshmallow import Schema, ValidationError

from orders_service.fields import Money
from orders_service.money import MAX_CENTS, from_cents, json_amount, to_cents


@pytest.mark.parametrize("value, cents", [
    (459.98, 45998), (0.29, 29), (19.99, 1999), (1.15, 115), (4.35, 435), (0.57, 57),
    (0, 0), (5, 500), (0.0, 0), (10.5, 1050),
    ("1.5", 150), ("459.98", 45998), ("7", 700), (Decimal("2.50"), 250),
])
def test_to_cents_is_exact(value, cents):
    result = to_cents(value)
    assert result == cents and type(result) is int


def test_every_two_decimal_float_converts_exactly():
    # int(x * 100) truncates many of these (0.29 * 100 == 28.999999999999996)
    assert all(to_cents(c / 100) == c for c in range(0, 200_000, 7))


@pytest.mark.parametrize("value", [
    0.1 + 0.2,  # 0.30000000000000004: more than two decimals, not silently rounded
    1.234, "1.234", 0.001, 1e-7,
    -1, -0.01, "-5",
    float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", "sNaN",
    True, False,
    MAX_CENTS / 100 + 0.01, 1e20, "1e30", 10**40,
    None, [1], {}, "abc", "",
])
def test_to_cents_refuses(value):
    with pytest.raises(ValueError):
        to_cents(value)


def test_the_largest_amount_is_accepted():
    assert to_cents(MAX_CENTS // 100) == MAX_CENTS


def test_cents_back_to_json_numbers():
    assert from_cents(45998) == Decimal("459.98")
    assert json_amount(45998) == 459.98
    assert json.dumps([json_amount(45998), json_amount(1), json_amount(1000)]) == "[459.98, 0.01, 10.0]"
    assert all(to_cents(json_amount(c)) == c for c in range(0, 200_000, 13))


class _Priced(Schema):
    price = Money(required=True)


@pytest.mark.parametrize("value, cents", [(459.98, 45998), (0.29, 29), (12, 1200)])
def test_money_field_loads_cents(value, cents):
    assert _Priced().load({"price": value}) == {"price": cents}


@pytest.mark.parametrize("value", ["459.98", "12", True, None, 1.234, -1, float("nan"), 1e20, [1]])
def test_money_field_refuses(value):
    with pytest.raises(ValidationError) as caught:
        _Priced().load({"price": value})
    assert "price" in caught.value.messages


def test_money_field_dumps_major_units():
    assert _Priced().dump({"price": 45998}) == {"price": 459.98}
    assert _Priced().dump({"price": None}) == {"price": None}
