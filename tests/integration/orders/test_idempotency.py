"""Idempotency-Key on POST /api/orders (docs/api.md, "Idempotency")."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from orders_service.catalog.models import Product
from orders_service.orders.models import Order


@pytest.fixture
def setup(make):
    customer, auth = make.shopper()
    product = make.product(stock=10)
    method = make.delivery_method()
    return customer, auth, product, method, make.order_body(customer, method, [(product, 2)])


def _orders(db):
    return db.scalar(select(func.count()).select_from(Order))


def test_replay_returns_the_same_order_and_reserves_nothing(client, make, db, setup):
    customer, auth, product, method, body = setup
    headers = {**auth, "Idempotency-Key": "order-1"}
    first = client.post("/api/orders", json=body, headers=headers)
    second = client.post("/api/orders", json=body, headers=headers)
    assert first.status_code == 204, first.json
    assert second.status_code == 204, second.json
    assert first.headers["Location"] == second.headers["Location"]
    assert make.stock_of(Product, product.id) == 8
    assert _orders(db) == 1


def test_same_key_with_another_body_is_422(client, make, db, setup):
    customer, auth, product, method, body = setup
    headers = {**auth, "Idempotency-Key": "order-1"}
    assert client.post("/api/orders", json=body, headers=headers).status_code == 204
    other = make.order_body(customer, method, [(product, 3)])
    response = client.post("/api/orders", json=other, headers=headers)
    assert response.status_code == 422
    assert response.json["message"] == "Idempotency-Key has already been used with a different request"
    assert make.stock_of(Product, product.id) == 8


def test_keys_are_per_customer(client, make, db, setup):
    customer, auth, product, method, body = setup
    other, other_auth = make.shopper()
    assert client.post("/api/orders", json=body, headers={**auth, "Idempotency-Key": "k"}).status_code == 204
    other_body = make.order_body(other, method, [(product, 2)])
    other_response = client.post("/api/orders", json=other_body, headers={**other_auth, "Idempotency-Key": "k"})
    assert other_response.status_code == 204
    assert _orders(db) == 2


def test_a_refused_request_does_not_burn_the_key(client, make, db, setup):
    customer, auth, product, method, body = setup
    headers = {**auth, "Idempotency-Key": "retry-me"}
    too_many = make.order_body(customer, method, [(product, 11)])
    assert client.post("/api/orders", json=too_many, headers=headers).status_code == 400
    assert client.post("/api/orders", json=body, headers=headers).status_code == 204


@pytest.mark.slow
@pytest.mark.xdist_group("live_server")
def test_ten_concurrent_requests_with_one_key_create_one_order(live_server, make, db, setup):
    customer, auth, product, method, body = setup
    headers = {**auth, "Idempotency-Key": "burst"}

    def post(_):
        return requests.post(f"{live_server}/api/orders", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(post, range(10)))

    assert [r.status_code for r in responses] == [204] * 10
    assert len({r.headers["Location"] for r in responses}) == 1
    assert _orders(db) == 1
    assert make.stock_of(Product, product.id) == 8
