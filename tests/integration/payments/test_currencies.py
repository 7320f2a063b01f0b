"""Every currency Stripe charges in, in its own minor unit (STORE_CURRENCY; docs/api.md, "Conventions"): JPY has none,
KWD three; and online totals below Stripe's minimum are refused before any stock is taken."""
import dataclasses

import pytest
from sqlalchemy import func, select

from orders_service.app import create_app
from orders_service.catalog.models import Product
from orders_service.orders.models import Order
from orders_service.runtime import Runtime
from tests.support.stripe import payment_intent_of


@pytest.fixture
def store_in(settings):
    """A test client of the app for a store selling in another currency (same database, same Stripe)."""
    runtimes = []

    def build(code):
        runtimes.append(Runtime(dataclasses.replace(settings, store_currency=code)))
        return create_app(runtime=runtimes[-1]).test_client()

    yield build
    for runtime in runtimes:
        runtime.dispose()


def _shop(client, make, admin_auth, price, delivery):
    product = client.post("/api/products", json={"name": "Tea", "price": price, "stock": 10}, headers=admin_auth)
    assert product.status_code == 201, product.json
    method = client.post("/api/delivery-methods", json={"name": "Post", "price": delivery}, headers=admin_auth)
    assert method.status_code == 201, method.json
    return product.json, method.json


def _body(customer, product, method, quantity=1):
    return {"customerId": str(customer.id), "deliveryMethodId": method["id"],
            "deliveryAddress": {"street": "1 Main St", "city": "Tokyo", "zipCode": "100-0001", "country": "JP"},
            "items": [{"productId": product["id"], "quantity": quantity}]}


@pytest.mark.parametrize("code, price, delivery, total, minor", [
    ("JPY", 1200, 300, 1500, 1500),
    ("KWD", 1.0, 0.25, 1.25, 1250),
    ("USD", 12.5, 2.49, 14.99, 1499),
])
def test_a_payment_intent_in_the_currencys_own_minor_unit(store_in, make, stripe_emulator, code, price, delivery,
                                                          total, minor):
    client = store_in(code)
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product, method = _shop(client, make, admin_auth, price, delivery)
    assert (product["price"], method["price"]) == (price, delivery)

    created = client.post("/api/orders/with-payment", json=_body(customer, product, method), headers=auth)

    assert created.status_code == 200, created.json
    assert (created.json["totalAmount"], created.json["currency"]) == (total, code)
    assert type(created.json["totalAmount"]) is type(total)  # 1500, not 1500.0, for yen
    intent = stripe_emulator.payment_intent(payment_intent_of(created.json["clientSecret"]))
    assert (intent.amount, intent.currency) == (minor, code.lower())
    stripe_emulator.pay(intent.id)
    assert client.patch(f"/api/orders/{created.json['orderId']}/paid", headers=auth).status_code == 204
    order = client.get(f"/api/orders/{created.json['orderId']}", headers=auth).json
    assert (order["paymentStatus"], order["totalAmount"], order["items"][0]["unitPrice"]) == ("paid", total, price)


@pytest.mark.parametrize("code, price", [("JPY", 12.5), ("JPY", 0.5), ("KWD", 1.255), ("USD", 0.001)])
def test_a_price_finer_than_the_currency_is_400(store_in, make, code, price):
    client = store_in(code)
    _admin, admin_auth = make.admin()
    response = client.post("/api/products", json={"name": "Tea", "price": price, "stock": 1}, headers=admin_auth)
    assert response.status_code == 400, response.json
    assert "price" in response.json["errors"]


@pytest.mark.parametrize("price, delivery, shown", [(0, 0, "0.00"), (0.25, 0.05, "0.30")])
def test_online_totals_below_stripes_minimum_are_400_and_take_no_stock(store_in, make, db, stripe_emulator, price,
                                                                       delivery, shown):
    client = store_in("USD")
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product, method = _shop(client, make, admin_auth, price, delivery)

    response = client.post("/api/orders/with-payment", json=_body(customer, product, method), headers=auth)

    assert (response.status_code, response.json["message"]) == (
        400, f"Order total {shown} USD is below the smallest online payment, 0.50 USD")
    assert make.stock_of(Product, product["id"]) == 10
    with db.begin():
        assert db.scalar(select(func.count()).select_from(Order)) == 0
    assert stripe_emulator.client.v1.payment_intents.list().data == []
    # Cash on delivery has no such minimum.
    assert client.post("/api/orders", json=_body(customer, product, method), headers=auth).status_code == 204


def test_a_minimum_only_stripe_knows_is_400_naming_it_and_gives_the_stock_back(store_in, make, db):
    """Stripe states no minimum for KWD in our table: its own refusal (amount_too_small) is the answer."""
    client = store_in("KWD")
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product, method = _shop(client, make, admin_auth, 0.01, 0)  # 10 fils: below what the proxy's Stripe takes

    response = client.post("/api/orders/with-payment", json=_body(customer, product, method), headers=auth)

    assert response.status_code == 400, response.json
    assert response.json["message"].startswith("The order total is below the smallest online payment: ")
    assert make.stock_of(Product, product["id"]) == 10
