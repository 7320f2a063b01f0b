"""The OpenAPI document (docs/api.md, "Operations routes") is one a client generator can use: names, types,
errors, examples."""
import re

import pytest

SEED_OPERATIONS = {("post", "/api/orders/with-payment"): "placeOrderWithPayment",
                   ("post", "/api/orders"): "placeOrder",
                   ("patch", "/api/orders/{orderId}/paid"): "markOrderPaid"}
# Every money field of the contract's representations, by schema.
MONEY = {"PaymentStarted": ["totalAmount"], "Order": ["subtotal", "deliveryPrice", "totalAmount", "refundedAmount"],
         "OrderItem": ["unitPrice", "lineTotal"], "Product": ["price"], "Variant": ["price"],
         "DeliveryMethod": ["price"], "OrderItemIn": ["unitPrice"], "ProductIn": ["price"], "Refund": ["amount"]}


@pytest.fixture(scope="module")
def spec(app):
    return app.test_client().get("/api/openapi.json").json


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, op


def test_every_operation_has_a_unique_camel_case_operation_id(spec):
    ids = [op.get("operationId") for _, _, op in _operations(spec)]
    assert all(i and re.fullmatch(r"[a-z][a-zA-Z0-9]*", i) for i in ids), ids
    assert len(ids) == len(set(ids))
    named = {(m, p): op["operationId"] for m, p, op in _operations(spec)}
    assert {k: named.get(k) for k in SEED_OPERATIONS} == SEED_OPERATIONS


def test_every_money_field_is_a_number(spec):
    schemas = spec["components"]["schemas"]
    untyped = {f"{name}.{field}": schemas[name]["properties"][field] for name, fields in MONEY.items()
               for field in fields if schemas[name]["properties"][field].get("type") != "number"}
    assert untyped == {}
    # and no property anywhere is left without a type (what generators turn into Any / unknown)
    empty = [f"{name}.{field}" for name, schema in schemas.items()
             for field, prop in (schema.get("properties") or {}).items() if prop == {}]
    assert empty == []


def test_the_errors_a_route_can_give_are_documented(spec):
    missing = []
    for method, path, op in _operations(spec):
        public = op.get("security", spec.get("security")) in ([], [{}])
        expected = set()
        if not public:
            expected.add("401")
        if not public and path.startswith(("/api/admin", "/api/products", "/api/delivery-methods")) \
                and method != "get":
            expected.add("403")  # the admin's routes
        if "{" in path:
            expected.add("404")
        if path in ("/api/orders", "/api/orders/with-payment") and method == "post":
            expected |= {"403", "404"}  # another customer's customerId; an unknown product or method
        missing += [f"{method.upper()} {path} {status}" for status in expected - set(op["responses"])]
    assert missing == []


def test_the_seed_examples_are_in_the_document(spec):
    with_payment = spec["paths"]["/api/orders/with-payment"]["post"]
    example = with_payment["requestBody"]["content"]["application/json"]["example"]
    assert example["notes"] == "Please ring doorbell upon delivery" and len(example["items"]) == 2
    answer = with_payment["responses"]["200"]["content"]["application/json"]["example"]
    assert answer["totalAmount"] == 459.98
    cod = spec["paths"]["/api/orders"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert cod["items"] == [{"productId": "product-uuid", "quantity": 1}]
    assert "Location" in spec["paths"]["/api/orders"]["post"]["responses"]["204"]["headers"]
    errors = {status: response["content"]["application/json"]["example"]["message"]
              for status, response in with_payment["responses"].items() if status in ("400", "404", "500")}
    assert errors == {"400": "Product 'Premium Headphones' has insufficient stock. Available: 1, Requested: 2",
                      "404": "Delivery method not found", "500": "Failed to initialize payment: [error details]"}
    paid = spec["paths"]["/api/orders/{orderId}/paid"]["patch"]["responses"]["400"]
    assert paid["content"]["application/json"]["example"]["message"] == "Order has already been marked as paid"


def test_every_error_response_has_the_error_body(spec):
    """A generated client reads `message` from any error only if the document says the body is there."""
    bare = [f"{method.upper()} {path} {status}" for method, path, op in _operations(spec)
            for status, response in op["responses"].items()
            if status.isdigit() and int(status) >= 400 and "$ref" not in response
            and "schema" not in (response.get("content") or {}).get("application/json", {})]
    assert bare == []
