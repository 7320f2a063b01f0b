"""Stripe calls are a budget (25 requests/s per endpoint), and a 429 means "later", never a lost order
(issue 10): counted and rate-limited at the real-shaped Stripe."""
import pytest
import requests
from sqlalchemy import func, select

from orders_service.catalog.models import Product
from orders_service.orders.models import Order, Refund
from orders_service.payments import reconcile
from orders_service.payments.models import StripeEvent
from tests.support.processes import wait_until
from tests.support.stripe import WEBHOOK_SECRET, payment_intent_of

CREATE, READ = "POST /v1/payment_intents", "GET /v1/payment_intents/{id}"


def _place(client, make, shop, **headers):
    customer, auth, product, method = shop
    return client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                       headers={**auth, **headers})


def _processed(db, pi_id):
    with db.begin():
        return db.scalar(select(func.count()).select_from(StripeEvent).where(
            StripeEvent.payment_intent_id == pi_id, StripeEvent.processed_at.is_not(None)))


@pytest.mark.slow
@pytest.mark.xdist_group("stack")
@pytest.mark.parametrize("first", ["paid_endpoint", "webhook"])
def test_a_paid_order_costs_at_most_two_stripe_calls(stack, make, shop, db, real_stripe, stripe_emulator, first):
    """The seed's flow: create, the customer pays, PATCH /paid, the webhook; in either order."""
    _customer, auth, _product, _method = shop
    created = requests.post(f"{stack.url}/api/orders/with-payment", timeout=30, headers=auth,
                            json=make.order_body(shop[0], shop[3], [(shop[2], 1)])).json()
    order_id, pi_id = created["orderId"], payment_intent_of(created["clientSecret"])
    real_stripe.forward_webhooks_to(f"{stack.url}/api/webhooks/stripe", WEBHOOK_SECRET)
    try:
        if first == "webhook":
            stripe_emulator.pay(pi_id)  # Stripe tells the service (payment_intent.succeeded, real-shaped)
            wait_until(lambda: _processed(db, pi_id) >= 1, timeout=20)
            paid = requests.patch(f"{stack.url}/api/orders/{order_id}/paid", headers=auth, timeout=30)
            assert (paid.status_code, paid.json()["message"]) == (400, "Order has already been marked as paid")
        else:
            real_stripe.webhooks_paused = True  # the webhook is late
            stripe_emulator.pay(pi_id)
            assert requests.patch(f"{stack.url}/api/orders/{order_id}/paid", headers=auth,
                                  timeout=30).status_code == 204
            real_stripe.webhooks_paused = False
            wait_until(lambda: _processed(db, pi_id) >= 1, timeout=20)
    finally:
        real_stripe.forward_webhooks_to(None)
        real_stripe.webhooks_paused = False

    assert real_stripe.count(CREATE) == 1
    assert real_stripe.count(READ) == (1 if first == "paid_endpoint" else 0)
    assert real_stripe.count() == real_stripe.count(CREATE) + real_stripe.count(READ) <= 2
    with db.begin():
        assert db.get(Order, order_id).payment_status == "paid"


def test_a_rate_limited_create_is_503_with_retry_after_and_reserves_nothing(client, make, shop, db, real_stripe):
    real_stripe.fail_next(CREATE, status=429)

    busy = _place(client, make, shop, **{"Idempotency-Key": "k-429"})

    assert busy.status_code == 503, busy.json
    assert busy.json["message"] == "The payment provider is busy; try again shortly"
    assert int(busy.headers["Retry-After"]) >= 1
    assert make.stock_of(Product, shop[2].id) == 10
    with db.begin():
        assert db.scalar(select(Order.status)) == "canceled"
    again = _place(client, make, shop, **{"Idempotency-Key": "k-429"})  # the same key may try again
    assert again.status_code == 200, again.json
    assert make.stock_of(Product, shop[2].id) == 9


def test_a_rate_limited_paid_call_is_503_and_changes_nothing(client, make, shop, db, real_stripe, stripe_emulator):
    _customer, auth, _product, _method = shop
    created = _place(client, make, shop).json
    stripe_emulator.pay(payment_intent_of(created["clientSecret"]))
    real_stripe.fail_next(READ, status=429)

    busy = client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth)

    assert (busy.status_code, busy.json["message"]) == (
        503, "The payment provider is busy; try again shortly; the webhook confirms the order meanwhile")
    assert int(busy.headers["Retry-After"]) >= 1
    with db.begin():
        assert db.get(Order, created["orderId"]).payment_status == "unpaid"
    assert client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth).status_code == 204


def test_reconciliation_backs_off_on_a_rate_limit_and_loses_nothing(client, make, shop, db, real_stripe,
                                                                   stripe_emulator, session_factory, runtime):
    orders = [_place(client, make, shop).json for _ in range(6)]
    for created in orders:
        stripe_emulator.pay(payment_intent_of(created["clientSecret"]))  # no webhook will come
    real_stripe.reset_calls()
    real_stripe.fail_next(READ, status=429, times=1)

    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0, concurrency=1)

    # It stopped at the first 429: no more reads were spent on that run.
    assert real_stripe.count(READ) <= 1

    with db.begin():  # the next runs (reconciled_at aged, as a minute would) finish the work
        db.execute(Order.__table__.update().values(reconciled_at=None))
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)
    with db.begin():
        assert set(db.scalars(select(Order.payment_status))) == {"paid"}
    assert real_stripe.count(READ) <= 1 + 6


def test_expiry_under_a_rate_limit_releases_the_stock_on_time_and_cancels_later(
        client, make, shop, db, real_stripe, stripe_emulator, session_factory, runtime):
    orders = [_place(client, make, shop).json for _ in range(4)]
    real_stripe.fail_next("POST /v1/payment_intents/{id}/cancel", status=429, times=4)  # Stripe: "later"

    assert reconcile.expire_unpaid_orders(session_factory, runtime.gateway, ttl_seconds=0, concurrency=1) == 4

    assert make.stock_of(Product, shop[2].id) == 10  # on time, whatever Stripe says
    assert real_stripe.count("POST /v1/payment_intents/{id}/cancel") == 1  # then it stopped asking
    real_stripe.reset()  # the rate limit is over
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)
    for created in orders:
        assert stripe_emulator.payment_intent(payment_intent_of(created["clientSecret"])).status == "canceled"


def test_a_rate_limited_refund_stays_pending_and_goes_through_later(client, make, shop, db, real_stripe,
                                                                   stripe_emulator, session_factory, runtime):
    _customer, auth, _product, _method = shop
    _admin, admin_auth = make.admin()
    created = _place(client, make, shop).json
    pi_id = payment_intent_of(created["clientSecret"])
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth).status_code == 204
    real_stripe.fail_next("POST /v1/refunds", status=429)

    refund = client.post(f"/api/admin/orders/{created['orderId']}/refunds", json={"amount": 5}, headers=admin_auth)

    assert (refund.status_code, refund.json["status"]) == (201, "pending")
    with db.begin():
        db.execute(Refund.__table__.update().values(created_at=Refund.created_at - reconcile.REFUND_RETRY_AFTER))
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300)
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [500]
    assert client.get(f"/api/orders/{created['orderId']}", headers=auth).json["refundedAmount"] == 5.0
