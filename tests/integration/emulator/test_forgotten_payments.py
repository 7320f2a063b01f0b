"""The Stripe emulator forgets every payment when it restarts (`make run` again). The orders that named
them must not fill the terminal with a traceback every maintenance run: one line says what happened,
and an unpaid order whose payment is gone is closed and gives its stock back."""
import logging

import pytest

from orders_service.catalog.models import Product
from orders_service.payments import reconcile


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    return customer, auth, make.product(price_cents=20_00, stock=10), make.delivery_method(price_cents=0,
                                                                                           countries=[])


def _runs(session_factory, runtime, caplog, times=2):
    """Maintenance runs as beat makes them, ages ignored; every record they logged."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(times):
            reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)
            reconcile.expire_unpaid_orders(session_factory, runtime.gateway, ttl_seconds=0)
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_order_whose_payment_the_emulator_forgot_is_closed_with_one_line(
        client, make, shop, stripe_emulator, session_factory, runtime, caplog):
    customer, auth, product, method = shop
    unpaid = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 2)]),
                         headers=auth).json
    paid = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                       headers=auth).json
    paid_pi = paid["clientSecret"].split("_secret_")[0]
    stripe_emulator.pay(paid_pi)
    assert client.patch(f"/api/orders/{paid['orderId']}/paid", headers=auth).status_code == 204
    assert make.stock_of(Product, product.id) == 7

    stripe_emulator.flush()  # as a restart leaves it: it knows no payment at all
    records = _runs(session_factory, runtime, caplog)

    unpaid_pi = unpaid["clientSecret"].split("_secret_")[0]
    assert [r.getMessage() for r in records if unpaid_pi in r.getMessage()], records
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)  # lines, no tracebacks
    # One line for the forgotten unpaid payment, and none for it on the second run.
    assert sum(unpaid_pi in r.getMessage() for r in records) == 1
    assert "restarts" in records[0].getMessage()
    order = client.get(f"/api/orders/{unpaid['orderId']}", headers=auth).json
    assert order["status"] in ("canceled", "expired") and order["paymentStatus"] == "unpaid"
    assert make.stock_of(Product, product.id) == 9  # the unpaid order's two are back; the paid one stays sold
    kept = client.get(f"/api/orders/{paid['orderId']}", headers=auth).json
    assert (kept["status"], kept["paymentStatus"]) == ("confirmed", "paid")
