"""Concurrent buyers through the real HTTP server (the Procfile's gunicorn): stock never oversold."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from orders_service.catalog.models import Product

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live_server")]


def _fire(live_server, requests_spec, threads=30):
    """POST every (headers, body) at once from `threads` threads; returns the responses."""
    def post(spec):
        headers, body = spec
        with requests.Session() as http:
            return http.post(f"{live_server}/api/orders", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(post, requests_spec))


def _shoppers(make, n):
    return [make.shopper() for _ in range(n)]


@pytest.mark.parametrize("lines_per_order", [1, 2], ids=["one-line", "two-lines-same-product"])
def test_thirty_buyers_five_in_stock(live_server, make, lines_per_order):
    stock = 5 * lines_per_order
    product = make.product("Premium Headphones", stock=stock)
    method = make.delivery_method(countries=[])
    specs = [(auth, make.order_body(customer, method, [(product, 1)] * lines_per_order))
             for customer, auth in _shoppers(make, 30)]

    responses = _fire(live_server, specs)

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(204) == 5, statuses
    refusals = [r.json() for r in responses if r.status_code == 400]
    assert len(refusals) == 25
    assert all(r["message"].startswith("Product 'Premium Headphones' has insufficient stock. Available: ")
               and r["message"].endswith(f"Requested: {lines_per_order}") for r in refusals)
    assert make.stock_of(Product, product.id) == 0


def test_crossed_orders_never_deadlock(live_server, make):
    a = make.product("A", stock=1000)
    b = make.product("B", stock=1000)
    method = make.delivery_method(countries=[])
    specs = []
    for i, (customer, auth) in enumerate(_shoppers(make, 40)):
        lines = [(a, 1), (b, 1)] if i % 2 else [(b, 1), (a, 1)]
        specs.append((auth, make.order_body(customer, method, lines)))

    responses = _fire(live_server, specs, threads=40)

    assert [r.status_code for r in responses] == [204] * 40, [r.text for r in responses if r.status_code != 204]
    assert make.stock_of(Product, a.id) == 960
    assert make.stock_of(Product, b.id) == 960
