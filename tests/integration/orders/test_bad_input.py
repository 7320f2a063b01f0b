"""Malformed POST /api/orders requests: every one is a 4xx with the API's JSON error body, and
nothing is written (docs/api.md, "Errors": no input a client can send produces a 500)."""
import json

import pytest
from sqlalchemy import func, select

from orders_service.catalog.models import Product
from orders_service.orders.models import IdempotencyRecord, Order, OrderItem

INVALID = "Invalid order data"
STOCK = 5000


def _set(path, value):
    def mutate(b):
        *parents, last = path
        target = b
        for key in parents:
            target = target[key]
        target[last] = value
        return b
    return mutate


def _drop(path):
    def mutate(b):
        *parents, last = path
        target = b
        for key in parents:
            target = target[key]
        del target[last]
        return b
    return mutate


# (id, mutation of a valid body, offending field path in `errors`)
BODY_CASES = [
    ("quantity-string", _set(("items", 0, "quantity"), "1"), ("items", "0", "quantity")),
    ("quantity-float", _set(("items", 0, "quantity"), 1.5), ("items", "0", "quantity")),
    ("quantity-integral-float", _set(("items", 0, "quantity"), 1.0), ("items", "0", "quantity")),
    ("quantity-true", _set(("items", 0, "quantity"), True), ("items", "0", "quantity")),
    ("quantity-null", _set(("items", 0, "quantity"), None), ("items", "0", "quantity")),
    ("quantity-zero", _set(("items", 0, "quantity"), 0), ("items", "0", "quantity")),
    ("quantity-1001", _set(("items", 0, "quantity"), 1001), ("items", "0", "quantity")),
    ("quantity-negative", _set(("items", 0, "quantity"), -1), ("items", "0", "quantity")),
    ("quantity-missing", _drop(("items", 0, "quantity")), ("items", "0", "quantity")),
    ("productId-not-uuid", _set(("items", 0, "productId"), "headphones"), ("items", "0", "productId")),
    ("productId-number", _set(("items", 0, "productId"), 42), ("items", "0", "productId")),
    ("productId-missing", _drop(("items", 0, "productId")), ("items", "0", "productId")),
    ("variantId-not-uuid", _set(("items", 0, "variantId"), "black"), ("items", "0", "variantId")),
    ("customerId-not-uuid", _set(("customerId",), "me"), ("customerId",)),
    ("deliveryMethodId-not-uuid", _set(("deliveryMethodId",), "fast"), ("deliveryMethodId",)),
    ("items-object", _set(("items",), {"productId": "x", "quantity": 1}), ("items",)),
    ("items-string", _set(("items",), "headphones"), ("items",)),
    ("item-not-object", _set(("items", 0), "headphones"), ("items", "0")),
    ("deliveryAddress-string", _set(("deliveryAddress",), "123 Main St, New York"), ("deliveryAddress",)),
    ("customerId-missing", _drop(("customerId",)), ("customerId",)),
    ("deliveryMethodId-missing", _drop(("deliveryMethodId",)), ("deliveryMethodId",)),
    ("deliveryAddress-missing", _drop(("deliveryAddress",)), ("deliveryAddress",)),
    ("items-missing", _drop(("items",)), ("items",)),
    ("street-missing", _drop(("deliveryAddress", "street")), ("deliveryAddress", "street")),
    ("city-missing", _drop(("deliveryAddress", "city")), ("deliveryAddress", "city")),
    ("zipCode-missing", _drop(("deliveryAddress", "zipCode")), ("deliveryAddress", "zipCode")),
    ("country-missing", _drop(("deliveryAddress", "country")), ("deliveryAddress", "country")),
    ("street-empty", _set(("deliveryAddress", "street"), ""), ("deliveryAddress", "street")),
    ("country-unknown", _set(("deliveryAddress", "country"), "Atlantis"), ("deliveryAddress", "country")),
    ("country-number", _set(("deliveryAddress", "country"), 840), ("deliveryAddress", "country")),
    ("unknown-top-level-field", _set(("discount",), 100), ("discount",)),
    ("unknown-item-field", _set(("items", 0, "totalPrice"), 0.01), ("items", "0", "totalPrice")),
    ("unknown-address-field", _set(("deliveryAddress", "planet"), "Mars"), ("deliveryAddress", "planet")),
    ("items-empty", _set(("items",), []), ("items",)),
    ("items-101", lambda b: {**b, "items": b["items"] * 101}, ("items",)),
    ("notes-1001-chars", _set(("notes",), "n" * 1001), ("notes",)),
    ("notes-number", _set(("notes",), 12), ("notes",)),
    ("notes-with-nul", _set(("notes",), "ring\u0000twice"), ("notes",)),
    ("street-with-nul", _set(("deliveryAddress", "street"), "123\u0000Main St"), ("deliveryAddress", "street")),
    # A lone UTF-16 surrogate: valid JSON ("\ud800"), but no UTF-8 (so no PostgreSQL text) can hold it.
    ("notes-with-lone-surrogate", _set(("notes",), "ring \ud800 twice"), ("notes",)),
    ("city-with-lone-surrogate", _set(("deliveryAddress", "city"), "\udfffNew York"), ("deliveryAddress", "city")),
    ("country-with-lone-surrogate", _set(("deliveryAddress", "country"), "US\ud83d"), ("deliveryAddress", "country")),
    ("state-with-nul", _set(("deliveryAddress", "state"), "N\u0000Y"), ("deliveryAddress", "state")),
    ("unitPrice-3-decimals", _set(("items", 0, "unitPrice"), 199.999), ("items", "0", "unitPrice")),
    ("unitPrice-negative", _set(("items", 0, "unitPrice"), -199.99), ("items", "0", "unitPrice")),
    ("unitPrice-string", _set(("items", 0, "unitPrice"), "199.99"), ("items", "0", "unitPrice")),
    ("unitPrice-bool", _set(("items", 0, "unitPrice"), True), ("items", "0", "unitPrice")),
]


@pytest.fixture
def attempt(make, db):
    """A valid order body, its token, and a check that nothing was written."""
    shop = make.shop(price_cents=199_99, stock=STOCK)

    def assert_nothing_written():
        assert make.stock_of(Product, shop.product.id) == STOCK
        for model in (Order, OrderItem, IdempotencyRecord):
            db.rollback()
            assert db.scalar(select(func.count()).select_from(model)) == 0, model.__tablename__

    return shop.body(notes="Leave at the door"), shop.auth, assert_nothing_written


def _error_body(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.is_json, response.get_data(as_text=True)[:500]
    payload = response.json
    assert payload["code"] == status
    assert isinstance(payload["status"], str) and payload["status"]
    assert isinstance(payload["message"], str) and payload["message"]
    assert set(payload) <= {"code", "status", "message", "errors"}
    return payload


def _names(errors, path):
    node = errors
    for key in path:
        assert isinstance(node, dict) and key in node, (path, errors)
        node = node[key]
    return node


def test_the_valid_body_is_accepted(client, attempt):
    """The cases below each break one thing in this body; on its own it places an order."""
    body, auth, _ = attempt
    assert client.post("/api/orders", json=body, headers=auth).status_code == 204


@pytest.mark.parametrize("mutate, field", [(m, f) for _id, m, f in BODY_CASES],
                         ids=[case_id for case_id, _m, _f in BODY_CASES])
def test_invalid_body_is_400_naming_the_field(client, attempt, mutate, field):
    body, auth, assert_nothing_written = attempt
    response = client.post("/api/orders", json=mutate(json.loads(json.dumps(body))), headers=auth)
    payload = _error_body(response, 400)
    assert payload["message"] == INVALID
    _names(payload["errors"], field)
    assert_nothing_written()


def _raw(data, content_type="application/json"):
    return {"data": data, "content_type": content_type}


# (id, request kwargs for the test client (the valid body is passed in), expected status, expected message)
RAW_CASES = [
    ("broken-json", lambda b: _raw(json.dumps(b)[:-1]), 400, None),
    ("json-single-quotes", lambda b: _raw("{'customerId': 1}"), 400, None),
    ("json-array", lambda b: _raw(json.dumps([b])), 400, INVALID),
    ("json-string", lambda b: _raw('"an order"'), 400, INVALID),
    ("json-null", lambda b: _raw("null"), 400, None),
    ("empty-body-json-content-type", lambda b: _raw(""), 400, None),
    ("text-plain", lambda b: _raw(json.dumps(b), "text/plain"), 415, None),
    ("form-encoded", lambda b: _raw("customerId=1&items=2", "application/x-www-form-urlencoded"), 415, None),
    ("over-1-mib", lambda b: _raw(json.dumps({**b, "notes": "x" * (1024 * 1024 + 1)})), 413, None),
    ("invalid-utf8", lambda b: _raw(b'{"customerId": "\xff\xfe"}'), 400, None),
    ("unitPrice-NaN", lambda b: _raw(json.dumps(b).replace('"quantity": 1', '"quantity": 1, "unitPrice": NaN')),
     400, None),
    ("deeply-nested-json", lambda b: _raw("[" * 100_000 + "]" * 100_000), 400, None),
    # More than 4,300 digits is where Python's int() gives up; more than 19 is already more than a BIGINT.
    ("quantity-5000-digits", lambda b: _raw(json.dumps(b).replace('"quantity": 1', '"quantity": ' + "9" * 5000)),
     400, None),
    ("quantity-20-digits", lambda b: _raw(json.dumps(b).replace('"quantity": 1', '"quantity": ' + "1" * 20)),
     400, None),
    ("unknown-field-5000-digits", lambda b: _raw(json.dumps(b)[:-1] + ', "x": -' + "1" * 5000 + "}"), 400, None),
    ("lone-surrogate-as-a-key", lambda b: _raw(json.dumps(b)[:-1] + ', "\\ud800": 1}'), 400, INVALID),
]


@pytest.mark.parametrize("request_kwargs, status, message", [(k, s, m) for _id, k, s, m in RAW_CASES],
                         ids=[case_id for case_id, *_ in RAW_CASES])
def test_unreadable_body_is_4xx(client, attempt, request_kwargs, status, message):
    body, auth, assert_nothing_written = attempt
    response = client.post("/api/orders", headers=auth, **request_kwargs(body))
    payload = _error_body(response, status)
    if message is not None:
        assert payload["message"] == message
    assert_nothing_written()


@pytest.mark.parametrize("key", ["k" * 256, ""], ids=["256-chars", "empty"])
def test_bad_idempotency_key_is_400(client, attempt, key):
    body, auth, assert_nothing_written = attempt
    response = client.post("/api/orders", json=body, headers={**auth, "Idempotency-Key": key})
    payload = _error_body(response, 400)
    _names(payload["errors"], ("Idempotency-Key",))
    assert_nothing_written()


def test_a_19_digit_integer_is_read_and_refused_by_its_range(client, attempt):
    """The widest integer a BIGINT holds is still parsed: the field's own range answers."""
    body, auth, assert_nothing_written = attempt
    data = json.dumps(body).replace('"quantity": 1', '"quantity": 9223372036854775807')
    payload = _error_body(client.post("/api/orders", data=data, content_type="application/json", headers=auth), 400)
    assert payload["message"] == INVALID
    _names(payload["errors"], ("items", "0", "quantity"))
    assert_nothing_written()


@pytest.mark.parametrize("number", ["1" * 20, "-" + "1" * 20, "9" * 5000], ids=["20-digits", "negative", "5000-digits"])
@pytest.mark.parametrize("field, path", [
    ("quantity", ("items", "0", "quantity")),
    ("unitPrice", ("items", "0", "unitPrice")),
    ("extra", ("items", "0", "extra")),  # an unknown field is named too
], ids=["quantity", "unitPrice", "unknown-field"])
def test_an_integer_wider_than_a_bigint_is_invalid_order_data_naming_its_field(client, attempt, number, field, path):
    """More digits than a BIGINT holds are never converted (int() gives up past 4,300), yet the answer is the
    contract's shape for invalid order data: its message and the field's reason under `errors`."""
    body, auth, assert_nothing_written = attempt
    line = f'"quantity": {number}' if field == "quantity" else f'"quantity": 1, "{field}": {number}'
    data = json.dumps(body).replace('"quantity": 1', line)
    response = client.post("/api/orders", data=data, content_type="application/json", headers=auth)
    payload = _error_body(response, 400)
    assert payload["message"] == INVALID
    reasons = _names(payload["errors"], path)
    assert reasons and all(len(reason) < 100 for reason in reasons), reasons
    assert number[:25] not in json.dumps(payload)  # the number is not echoed back
    assert_nothing_written()


def test_non_uuid_order_id_is_404(client, attempt):
    _body, auth, assert_nothing_written = attempt
    _error_body(client.get("/api/orders/not-a-uuid", headers=auth), 404)
    assert_nothing_written()


def test_large_totals_are_stored_exactly(client, make):
    """3 × 9,999,999.99 overflows a 32-bit cents column; the service keeps 64-bit cents."""
    customer, auth = make.shopper()
    product = make.product("Gold Bar", price_cents=999_999_999, stock=10)
    method = make.delivery_method(countries=[], price_cents=1)
    response = client.post("/api/orders", json=make.order_body(customer, method, [(product, 3)]), headers=auth)
    assert response.status_code == 204, response.json
    assert client.get(response.headers["Location"], headers=auth).json["totalAmount"] == 29_999_999.98


def test_online_total_above_what_stripe_takes_is_400(client, make, db):
    customer, auth = make.shopper()
    product = make.product("Gold Bar", price_cents=999_999_999, stock=10)
    method = make.delivery_method(countries=[])
    response = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                           headers=auth)
    _error_body(response, 400)
    assert response.json["message"] == (
        "Order total 10000009.99 USD is more than an online payment can take (999999.99 USD)")
    assert make.stock_of(Product, product.id) == 10
    assert db.scalar(select(func.count()).select_from(Order)) == 0
