"""POST /api/orders: the seed's cash-on-delivery example and every non-payment error row of docs/api.md, "Orders"."""
import uuid

import pytest

from orders_service.catalog.models import Product, Variant


@pytest.fixture
def catalog(make):
    """A shopper; headphones (one left) and a phone case sold by variant; standard shipping to the US and Canada."""
    customer, auth = make.shopper()
    headphones = make.product("Premium Headphones", price_cents=199_99, stock=1)
    case = make.product("Phone Case", price_cents=50_00, stock=0,
                        variants=[{"name": "Black", "stock": 5}, {"name": "Clear", "stock": 5, "price_cents": 55_00}])
    method = make.delivery_method("Standard Shipping", price_cents=10_00, countries=["US", "CA"])
    return customer, auth, headphones, case, method


def test_seed_cash_on_delivery_example(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    body = make.order_body(customer, method, [(headphones, 1)])
    response = client.post("/api/orders", json=body, headers=auth)
    assert response.status_code == 204, response.json
    assert response.data == b""
    location = response.headers["Location"]
    assert location.startswith("/api/orders/")

    order = client.get(location, headers=auth).json
    assert order["status"] == "confirmed"
    assert order["paymentMethod"] == "cash_on_delivery"
    assert order["paymentStatus"] == "unpaid"
    assert order["items"] == [{"productId": str(headphones.id), "variantId": None, "name": "Premium Headphones",
                               "unitPrice": 199.99, "quantity": 1, "lineTotal": 199.99}]
    assert (order["subtotal"], order["deliveryPrice"], order["totalAmount"]) == (199.99, 10.0, 209.99)
    assert order["deliveryAddress"]["country"] == "US"
    assert [e["type"] for e in order["events"]] == ["placed"]
    assert make.stock_of(Product, headphones.id) == 0


def test_variant_lines_are_priced_from_the_variant(client, make, catalog):
    customer, auth, headphones, case, method = catalog
    black, clear = case.variants
    body = make.order_body(customer, method, [(case, 2, black), (case, 1, clear)])
    response = client.post("/api/orders", json=body, headers=auth)
    assert response.status_code == 204, response.json
    order = client.get(response.headers["Location"], headers=auth).json
    assert [(i["name"], i["unitPrice"], i["lineTotal"]) for i in order["items"]] == [
        ("Phone Case (Black)", 50.0, 100.0), ("Phone Case (Clear)", 55.0, 55.0)]
    assert order["totalAmount"] == 165.0
    assert make.stock_of(Variant, black.id) == 3 and make.stock_of(Variant, clear.id) == 4


def _error(response, status, message):
    assert response.status_code == status, response.json
    assert response.json["code"] == status
    assert response.json["message"] == message
    return response.json


def test_insufficient_stock_uses_the_seed_sentence_and_changes_nothing(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    response = client.post("/api/orders", json=make.order_body(customer, method, [(headphones, 2)]), headers=auth)
    _error(response, 400, "Product 'Premium Headphones' has insufficient stock. Available: 1, Requested: 2")
    assert make.stock_of(Product, headphones.id) == 1
    assert client.get("/api/orders", headers=auth).json["total"] == 0


def test_lines_for_the_same_product_are_summed_before_the_check(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    body = make.order_body(customer, method, [(headphones, 1), (headphones, 1)])
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           "Product 'Premium Headphones' has insufficient stock. Available: 1, Requested: 2")
    assert make.stock_of(Product, headphones.id) == 1


def test_a_later_line_failing_releases_the_earlier_reservations(client, make, catalog):
    customer, auth, headphones, case, method = catalog
    black = case.variants[0]
    body = make.order_body(customer, method, [(headphones, 1), (case, 6, black)])
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           "Product 'Phone Case (Black)' has insufficient stock. Available: 5, Requested: 6")
    assert make.stock_of(Product, headphones.id) == 1
    assert make.stock_of(Variant, black.id) == 5


def test_invalid_order_data_lists_field_reasons(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    body = make.order_body(customer, method, [(headphones, 0)])
    payload = _error(client.post("/api/orders", json=body, headers=auth), 400, "Invalid order data")
    assert "items" in payload["errors"]


@pytest.mark.parametrize("case_name", ["unknown_customer", "unknown_method", "inactive_method", "unknown_product"])
def test_not_found_rows(client, make, catalog, case_name):
    customer, auth, headphones, _case, method = catalog
    admin, admin_auth = make.admin()
    body = make.order_body(customer, method, [(headphones, 1)])
    headers, message = auth, None
    if case_name == "unknown_customer":
        body["customerId"], headers, message = str(uuid.uuid4()), admin_auth, "Customer not found"
    elif case_name == "unknown_method":
        body["deliveryMethodId"], message = str(uuid.uuid4()), "Delivery method not found"
    elif case_name == "inactive_method":
        body["deliveryMethodId"] = str(make.delivery_method("Retired", active=False).id)
        message = "Delivery method not found"
    else:
        body["items"].append({"productId": str(uuid.uuid4()), "quantity": 1})
        message = "Product not found"
    _error(client.post("/api/orders", json=body, headers=headers), 404, message)
    assert make.stock_of(Product, headphones.id) == 1


def test_price_changed_is_refused(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    body = make.order_body(customer, method, [(headphones, 1)])
    body["items"][0]["unitPrice"] = 189.99
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           "Price of 'Premium Headphones' has changed: you saw 189.99, it is now 199.99")
    body["items"][0]["unitPrice"] = 199.99
    assert client.post("/api/orders", json=body, headers=auth).status_code == 204


def test_variant_rules(client, make, catalog):
    customer, auth, headphones, case, method = catalog
    other = make.product("Cable", variants=[{"name": "Red", "stock": 3}])
    body = make.order_body(customer, method, [(case, 1)])
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           "Product 'Phone Case' is sold by variant: choose a variantId")
    foreign = other.variants[0]
    body = make.order_body(customer, method, [(case, 1, foreign)])
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           f"Variant {foreign.id} is not a variant of product 'Phone Case'")
    body = make.order_body(customer, method, [(headphones, 1, foreign)])
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           f"Variant {foreign.id} is not a variant of product 'Premium Headphones'")


def test_inactive_product_is_not_sold(client, make, catalog):
    customer, auth, _h, _c, method = catalog
    retired = make.product("Old Radio", active=False)
    _error(client.post("/api/orders", json=make.order_body(customer, method, [(retired, 1)]), headers=auth), 400,
           "Product 'Old Radio' is not available")


def test_delivery_compatibility(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    body = make.order_body(customer, method, [(headphones, 1)])
    body["deliveryAddress"]["country"] = "Germany"
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           "Delivery method 'Standard Shipping' does not deliver to DE")

    light = make.delivery_method("Letter", countries=[], max_weight_grams=250)
    body = make.order_body(customer, light, [(headphones, 1)])
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           "Delivery method 'Letter' cannot carry 300 g (at most 250 g)")

    prepaid = make.delivery_method("Express Courier", countries=[], cash_on_delivery=False)
    body = make.order_body(customer, prepaid, [(headphones, 1)])
    _error(client.post("/api/orders", json=body, headers=auth), 400,
           "Delivery method 'Express Courier' does not accept cash on delivery")
    assert make.stock_of(Product, headphones.id) == 1


def test_customer_id_of_someone_else_is_forbidden(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    other = make.customer()
    body = make.order_body(other, method, [(headphones, 1)])
    _error(client.post("/api/orders", json=body, headers=auth), 403,
           "customerId does not match the authenticated customer")
    assert make.stock_of(Product, headphones.id) == 1


def test_admin_may_order_for_a_customer(client, make, catalog):
    customer, auth, headphones, _case, method = catalog
    _admin, admin_auth = make.admin()
    response = client.post("/api/orders", json=make.order_body(customer, method, [(headphones, 1)]),
                           headers=admin_auth)
    assert response.status_code == 204
    assert client.get(response.headers["Location"], headers=auth).json["customerId"] == str(customer.id)


def test_the_order_representation_is_the_contracts(client, make, catalog):
    """docs/api.md, "The order": every field, with its JSON type."""
    import re

    customer, auth, headphones, _case, method = catalog
    body = make.order_body(customer, method, [(headphones, 1)], notes="Ring twice")
    order = client.get(client.post("/api/orders", json=body, headers=auth).headers["Location"], headers=auth).json

    contract = {"id", "customerId", "status", "paymentMethod", "paymentStatus", "currency", "subtotal",
                "deliveryPrice", "totalAmount", "items", "deliveryMethodId", "deliveryAddress", "notes",
                "trackingNumber", "carrier", "createdAt", "paidAt", "events", "refundedAmount", "paymentMethodType",
                "captureBefore"}
    documented_additions = {"disputedAt"}  # docs/decisions.md
    assert set(order) == contract | documented_additions
    assert uuid.UUID(order["id"]) and order["customerId"] == str(customer.id)
    assert order["deliveryMethodId"] == str(method.id)
    assert (order["currency"], order["notes"], order["trackingNumber"], order["carrier"]) == ("USD", "Ring twice",
                                                                                              None, None)
    assert order["paidAt"] is None and order["disputedAt"] is None and order["refundedAmount"] == 0.0
    assert order["captureBefore"] is None  # only while an online payment is authorized
    assert order["paymentMethodType"] is None  # no provider's method: cash
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", order["createdAt"])
    assert order["deliveryAddress"] == {"street": "123 Main St", "city": "New York", "state": "NY",
                                        "zipCode": "10001", "country": "US"}
    assert all(isinstance(order[k], (int, float)) and not isinstance(order[k], bool)
               for k in ("subtotal", "deliveryPrice", "totalAmount", "refundedAmount"))
    [item] = order["items"]
    assert set(item) == {"productId", "variantId", "name", "unitPrice", "quantity", "lineTotal"}
    [event] = order["events"]
    assert set(event) == {"type", "at", "detail"} and event["type"] == "placed"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", event["at"])
    assert event["detail"] == {"paymentMethod": "cash_on_delivery"}
