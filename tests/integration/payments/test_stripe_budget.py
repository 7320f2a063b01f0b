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


def test_a_burst_of_paid_calls_is_limited_per_customer_and_costs_a_bounded_number_of_reads(
        app_with, make, shop, real_stripe):
    """One customer used to drive ~126 Stripe reads a second through PATCH /paid; now each read is one
    of PAYMENT_CHECK_RATE_LIMIT's, and the rest answer 429 with Retry-After, costing Stripe nothing."""
    client = app_with(payment_check_rate_limit="5/minute").test_client()
    _customer, auth, _product, _method = shop
    order_id = _place(client, make, shop).json["orderId"]  # unpaid: every allowed check asks Stripe
    real_stripe.reset_calls()

    answers = [client.patch(f"/api/orders/{order_id}/paid", headers=auth) for _ in range(40)]

    assert [a.status_code for a in answers] == [400] * 5 + [429] * 35
    assert real_stripe.count(READ) == 5 and real_stripe.count() == 5
    for refused in answers[5:]:
        assert refused.json["code"] == 429 and "Too many requests" in refused.json["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another customer's checks are their own; a request without a valid token counts nothing (401).
    other, other_auth = make.shopper()
    other_order = client.post("/api/orders/with-payment", headers=other_auth,
                              json=make.order_body(other, shop[3], [(shop[2], 1)])).json["orderId"]
    assert client.patch(f"/api/orders/{other_order}/paid", headers={"Authorization": "Bearer x"}).status_code == 401
    assert client.patch(f"/api/orders/{other_order}/paid", headers=other_auth).status_code == 400
    assert real_stripe.count(READ) == 6


def test_paid_asks_stripe_only_when_the_order_cannot_answer(client, make, shop, real_stripe, stripe_emulator):
    """Paid, closed with its payment over, or cash on delivery: the order answers, and Stripe is not asked."""
    customer, auth, product, method = shop
    paid = _place(client, make, shop).json
    stripe_emulator.pay(paid["clientSecret"].split("_secret_")[0])
    assert client.patch(f"/api/orders/{paid['orderId']}/paid", headers=auth).status_code == 204
    canceled = _place(client, make, shop).json["orderId"]
    assert client.post(f"/api/orders/{canceled}/cancel", headers=auth).json["status"] == "canceled"
    cash = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
    cash_id = cash.headers["Location"].rsplit("/", 1)[1]
    real_stripe.reset_calls()

    answers = {name: client.patch(f"/api/orders/{order_id}/paid", headers=auth)
               for name, order_id in (("paid", paid["orderId"]), ("canceled", canceled), ("cash", cash_id))}

    assert {name: (a.status_code, a.json["message"]) for name, a in answers.items()} == {
        "paid": (400, "Order has already been marked as paid"),
        "canceled": (400, "Order is canceled: it can no longer be paid"),
        "cash": (400, "Cash-on-delivery orders are paid on delivery, not online"),
    }
    assert real_stripe.count() == 0


def test_a_closed_order_whose_payment_may_still_be_open_is_still_asked_about(client, make, shop, real_stripe,
                                                                             stripe_emulator):
    """Canceling could not cancel the PaymentIntent, and the customer paid it: only Stripe knows, and the
    answer is that the money goes back."""
    _customer, auth, _product, _method = shop
    created = _place(client, make, shop).json
    real_stripe.fail_next("POST /v1/payment_intents/{id}/cancel", status=500)
    assert client.post(f"/api/orders/{created['orderId']}/cancel", headers=auth).json["status"] == "canceled"
    stripe_emulator.pay(created["clientSecret"].split("_secret_")[0])
    real_stripe.reset_calls()

    answer = client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth)

    assert (answer.status_code, answer.json["message"]) == (400, "Order is canceled: the payment is being refunded")
    assert real_stripe.count(READ) == 1
