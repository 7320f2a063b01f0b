"""Rate limits (docs/api.md, "Rate limits"): per client address on login and registration, per account on wrong
passwords whatever the address, per customer on placing orders; 429 with Retry-After, nothing changed.

Each test runs an app of its own with small limits (the suite's app has generous ones)."""
import random

import pytest
from sqlalchemy import func, select

from orders_service.auth.models import Customer
from orders_service.catalog.models import Product
from orders_service.orders.models import Order
from tests.support.factories import PASSWORD


@pytest.fixture
def limited(app_with):
    """`limited(**settings)`: a test client of an app with these settings (and its own limit counts)."""
    return lambda **overrides: app_with(**overrides).test_client()


def _from(address):
    return {"environ_base": {"REMOTE_ADDR": address}}


def _address():
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _throttled(response):
    assert response.status_code == 429, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json
    assert response.json["code"] == 429 and response.json["status"] == "Too Many Requests"
    assert response.json["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60, response.headers["Retry-After"]
    return response.json


def _register(client, email, address, password=PASSWORD):
    return client.post("/api/auth/register", json={"email": email, "password": password, "name": "Ada"},
                       **_from(address))


def _login(client, email, address, password=PASSWORD):
    return client.post("/api/auth/login", json={"email": email, "password": password}, **_from(address))


def _customers(db):
    db.rollback()
    return db.scalar(select(func.count()).select_from(Customer))


def test_login_and_registration_are_limited_per_address(limited, db, make):
    client = limited(auth_rate_limit="3/minute")
    make.customer(email="ada@example.com")
    attacker, neighbour = _address(), _address()
    assert _login(client, "ada@example.com", attacker).status_code == 200
    assert _login(client, "ada@example.com", attacker, "wrong password").status_code == 401
    assert _register(client, "bob@example.com", attacker).status_code == 201
    before = _customers(db)

    _throttled(_register(client, "carol@example.com", attacker))  # the two routes count together
    _throttled(_login(client, "ada@example.com", attacker))
    assert _customers(db) == before  # a throttled registration creates nothing

    assert _login(client, "ada@example.com", neighbour).status_code == 200  # other addresses are not affected
    assert _register(client, "carol@example.com", neighbour).status_code == 201


def test_wrong_passwords_are_throttled_per_account_from_any_address(limited, make):
    client = limited(login_failure_limit="3/minute")
    make.customer(email="ada@example.com")
    make.customer(email="bob@example.com")
    for _ in range(3):  # a botnet: every guess from another address, so the per-address limit never bites
        assert _login(client, "ADA@example.com ", _address(), "guess").status_code == 401

    payload = _throttled(_login(client, "ada@example.com", _address()))  # the right password waits too
    assert "accessToken" not in payload
    _throttled(_login(client, "ada@example.com", _address(), "another guess"))
    assert _login(client, "bob@example.com", _address()).status_code == 200  # other accounts are not affected


def test_successful_logins_do_not_count_as_failures(limited, make):
    client = limited(login_failure_limit="2/minute")
    make.customer(email="ada@example.com")
    for _ in range(5):
        assert _login(client, "ada@example.com", _address()).status_code == 200


@pytest.fixture
def shop(make):
    return make.shop(price_cents=199_99, stock=100, delivery_price_cents=10_00)


def test_orders_are_limited_per_customer_on_both_routes_and_reserve_nothing(limited, make, db, shop):
    client = limited(order_rate_limit="2/minute")
    product, method = shop.product, shop.method
    ada, ada_auth = make.shopper()
    bob, bob_auth = make.shopper()
    body = make.order_body(ada, method, [(product, 1)])
    address = _address()
    assert client.post("/api/orders", json=body, headers=ada_auth, **_from(address)).status_code == 204
    assert client.post("/api/orders/with-payment", json=body, headers=ada_auth,
                       **_from(_address())).status_code == 200  # any address: it is the customer that counts
    assert client.post("/api/orders", headers={"Authorization": "Bearer nonsense"}, json=body).status_code == 401

    _throttled(client.post("/api/orders", json=body, headers=ada_auth))
    _throttled(client.post("/api/orders/with-payment", json=body, headers=ada_auth))
    assert make.stock_of(Product, product.id) == 98  # the refused orders reserved nothing
    with db.begin():
        assert db.scalar(select(func.count()).select_from(Order)) == 2

    bob_body = make.order_body(bob, method, [(product, 1)])
    assert client.post("/api/orders", json=bob_body, headers=bob_auth, **_from(address)).status_code == 204


def test_without_a_token_an_order_is_401_and_counts_nothing(limited, make, shop):
    client = limited(order_rate_limit="1/minute")
    product, method = shop.product, shop.method
    ada, ada_auth = make.shopper()
    body = make.order_body(ada, method, [(product, 1)])
    for _ in range(3):
        assert client.post("/api/orders", json=body).status_code == 401
    assert client.post("/api/orders", json=body, headers=ada_auth).status_code == 204


def test_with_redis_every_process_counts_together(limited, make, redis_broker_url):
    """REDIS_URL set: two web processes (or hosts) share the counts, as a load balancer spreads requests."""
    first, second = (limited(redis_url=redis_broker_url, auth_rate_limit="2/minute") for _ in range(2))
    make.customer(email="ada@example.com")
    address = _address()
    assert _login(first, "ada@example.com", address).status_code == 200
    assert _login(second, "ada@example.com", address).status_code == 200
    _throttled(_login(first, "ada@example.com", address))
    _throttled(_login(second, "ada@example.com", address))
