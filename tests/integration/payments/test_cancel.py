"""POST /api/orders/{id}/cancel: stock back once, the PaymentIntent canceled or the payment refunded."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from orders_service.catalog.models import Product
from tests.support.stripe import payment_intent_of


@pytest.fixture
def shop(make):
    return make.shop(price_cents=199_99, delivery_price_cents=10_00)


def _online(client, make, shop, quantity=2):
    customer, auth, product, method = shop
    created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, quantity)]),
                          headers=auth).json
    return created["orderId"], payment_intent_of(created["clientSecret"])


def _refunds(stripe_emulator, pi_id):
    return stripe_emulator.client.v1.refunds.list(params={"payment_intent": pi_id}).data


def test_cancel_an_unpaid_online_order(client, make, shop, stripe_emulator):
    _customer, auth, product, _method = shop
    order_id, pi_id = _online(client, make, shop)
    assert make.stock_of(Product, product.id) == 8

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth)

    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["paymentStatus"]) == ("canceled", "unpaid")
    assert make.stock_of(Product, product.id) == 10
    assert stripe_emulator.payment_intent(pi_id).status == "canceled"  # nothing was charged, nothing to refund


def test_cancel_a_paid_online_order_refunds_it(client, make, shop, stripe_emulator):
    _customer, auth, product, _method = shop
    order_id, pi_id = _online(client, make, shop)
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 204

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth)

    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["paymentStatus"]) == ("canceled", "refunded")
    assert [e["type"] for e in response.json["events"]][-2:] == ["canceled", "refunded"]
    assert make.stock_of(Product, product.id) == 10
    assert [r.amount for r in _refunds(stripe_emulator, pi_id)] == [39998 + 1000]


def test_cancel_twice_and_after_shipping(client, make, shop):
    customer, auth, product, method = shop
    _admin, admin_auth = make.admin()
    placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
    order_url = placed.headers["Location"]
    assert client.post(f"{order_url}/cancel", headers=auth).status_code == 200
    again = client.post(f"{order_url}/cancel", headers=auth)
    assert (again.status_code, again.json["message"]) == (400, "Order is already canceled")

    placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
    order_url = placed.headers["Location"]
    order_id = order_url.rsplit("/", 1)[1]
    client.patch(f"/api/admin/orders/{order_id}", json={"status": "shipped", "trackingNumber": "T1"},
                 headers=admin_auth)
    shipped = client.post(f"{order_url}/cancel", headers=auth)
    assert (shipped.status_code, shipped.json["message"]) == (
        400, "Order has already shipped and can no longer be canceled")
    assert make.stock_of(Product, product.id) == 9


def test_another_customers_order_cannot_be_canceled(client, make, shop):
    order_id, _pi = _online(client, make, shop)
    _stranger, stranger_auth = make.shopper()
    assert client.post(f"/api/orders/{order_id}/cancel", headers=stranger_auth).status_code == 404


@pytest.mark.slow
@pytest.mark.xdist_group("live_server")
def test_two_concurrent_cancels_release_stock_once_and_refund_once(live_server, client, make, shop, stripe_emulator):
    _customer, auth, product, _method = shop
    order_id, pi_id = _online(client, make, shop)
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 204

    def cancel(_):
        return requests.post(f"{live_server}/api/orders/{order_id}/cancel", headers=auth, timeout=30)

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(cancel, range(2)))

    assert sorted(r.status_code for r in responses) == [200, 400]
    assert make.stock_of(Product, product.id) == 10
    assert len(_refunds(stripe_emulator, pi_id)) == 1


def test_a_cancel_whose_refund_failed_is_finished_by_reconciliation(client, make, shop, stripe_emulator, settings,
                                                                     session_factory, runtime):
    import dataclasses

    from orders_service.app import create_app
    from orders_service.payments import reconcile
    from tests.support.faults import faulty_http_server

    _customer, auth, product, _method = shop
    order_id, pi_id = _online(client, make, shop)
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 204

    with faulty_http_server(500) as broken_stripe:  # Stripe fails while the customer cancels
        broken = create_app(dataclasses.replace(settings, stripe_api_base=broken_stripe, stripe_timeout_seconds=1.0))
        response = broken.test_client().post(f"/api/orders/{order_id}/cancel", headers=auth)
        broken.extensions["orders.runtime"].dispose()
    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["paymentStatus"]) == ("canceled", "paid")  # a refund is due
    assert make.stock_of(Product, product.id) == 10
    assert _refunds(stripe_emulator, pi_id) == []

    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)  # nothing more

    order = client.get(f"/api/orders/{order_id}", headers=auth).json
    assert (order["status"], order["paymentStatus"]) == ("canceled", "refunded")
    assert [r.amount for r in _refunds(stripe_emulator, pi_id)] == [39998 + 1000]
    assert [e["type"] for e in order["events"]].count("refunded") == 1
