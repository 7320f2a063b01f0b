"""Every PaymentIntent the service opened ends applied to a live order, canceled at Stripe, or refunded —
with no webhook at all, whatever failed on the way (faults injected at the real-shaped Stripe)."""
import threading

from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.orders.models import Order
from orders_service.payments import reconcile
from tests.support.processes import wait_until
from tests.support.stripe import payment_intent_of


def _reconcile(session_factory, runtime):
    """One run of the beat job as production runs it (no webhook will come)."""
    return reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)


def _order(client, order_id, auth):
    return client.get(f"/api/orders/{order_id}", headers=auth).json


def _payment_closed(db, order_id):
    db.expire_all()
    with db.begin():
        return db.scalar(select(Order.payment_closed_at).where(Order.id == order_id)) is not None


def test_stripe_fails_the_cancel_the_customer_pays_anyway_and_reconciliation_refunds(
        client, make, shop, db, real_stripe, stripe_emulator, session_factory, runtime):
    customer, auth, product, method = shop
    created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                          headers=auth).json
    pi_id = payment_intent_of(created["clientSecret"])
    real_stripe.fail_next("POST /v1/payment_intents/{id}/cancel", status=500)

    canceled = client.post(f"/api/orders/{created['orderId']}/cancel", headers=auth)
    assert (canceled.json["status"], canceled.json["paymentStatus"]) == ("canceled", "unpaid")
    assert stripe_emulator.payment_intent(pi_id).status == "requires_payment_method"  # still payable
    assert not _payment_closed(db, created["orderId"])
    stripe_emulator.pay(pi_id)  # with the client secret the customer still holds; the webhook is lost

    _reconcile(session_factory, runtime)

    order = _order(client, created["orderId"], auth)
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("canceled", "refunded", 20.0)
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [2000]
    assert [e["type"] for e in order["events"]][-2:] == ["late_payment_refund_due", "refunded"]
    assert _payment_closed(db, created["orderId"])
    _reconcile(session_factory, runtime)
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [2000]  # never twice
    assert make.stock_of(Product, product.id) == 10


def test_an_unpaid_payment_intent_the_cancel_left_open_is_canceled_by_reconciliation(
        client, make, shop, db, real_stripe, stripe_emulator, session_factory, runtime):
    customer, auth, product, method = shop
    created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                          headers=auth).json
    pi_id = payment_intent_of(created["clientSecret"])
    real_stripe.fail_next("POST /v1/payment_intents/{id}/cancel", status=500)
    client.post(f"/api/orders/{created['orderId']}/cancel", headers=auth)

    _reconcile(session_factory, runtime)

    assert stripe_emulator.payment_intent(pi_id).status == "canceled"
    assert _payment_closed(db, created["orderId"])
    assert _order(client, created["orderId"], auth)["events"][-1]["type"] == "payment_intent_closed"


def test_a_lost_create_answer_then_a_payment_is_refunded(client, make, shop, db, real_stripe, stripe_emulator,
                                                         session_factory, runtime):
    customer, auth, product, method = shop
    real_stripe.lose_answer_next("POST /v1/payment_intents")  # Stripe opens it; its answer never arrives

    response = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                           headers=auth)

    assert (response.status_code, response.json["message"]) == (
        500, "Failed to initialize payment: could not reach the payment provider")
    with db.begin():
        order = db.scalars(select(Order)).one()
    assert (order.status, order.payment_intent_id, order.payment_closed_at) == ("canceled", None, None)
    assert make.stock_of(Product, product.id) == 10
    [opened] = stripe_emulator.client.v1.payment_intents.list().data
    assert opened.metadata["order_id"] == str(order.id)
    stripe_emulator.pay(opened.id)  # somebody paid it after all

    _reconcile(session_factory, runtime)

    # Found again by the order id in its metadata: the same PaymentIntent, not a new one.
    assert [pi.id for pi in stripe_emulator.client.v1.payment_intents.list().data] == [opened.id]
    state = _order(client, str(order.id), auth)
    assert (state["status"], state["paymentStatus"], state["refundedAmount"]) == ("canceled", "refunded", 20.0)
    assert [r.amount for r in stripe_emulator.refunds(opened.id)] == [2000]


def test_a_lost_create_answer_left_unpaid_is_canceled(client, make, shop, db, real_stripe, stripe_emulator,
                                                      session_factory, runtime):
    customer, auth, product, method = shop
    real_stripe.lose_answer_next("POST /v1/payment_intents")
    client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
    [opened] = stripe_emulator.client.v1.payment_intents.list().data

    _reconcile(session_factory, runtime)

    assert stripe_emulator.payment_intent(opened.id).status == "canceled"
    with db.begin():
        order = db.scalars(select(Order)).one()
    assert order.payment_intent_id == opened.id and order.payment_closed_at is not None


def test_a_cancel_racing_with_payment_gets_no_payable_secret(client, app, make, shop, db, real_stripe,
                                                             stripe_emulator):
    customer, auth, product, method = shop
    real_stripe.delay = 1.5  # Stripe takes its time to open the PaymentIntent
    answers = {}

    def place():
        answers["with_payment"] = app.test_client().post(
            "/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]), headers=auth)

    placing = threading.Thread(target=place)
    placing.start()

    def placed():
        with db.begin():
            return db.scalar(select(Order.id))

    order_id = wait_until(placed, timeout=10)
    canceled = client.post(f"/api/orders/{order_id}/cancel", headers=auth)  # while Stripe is creating it
    assert canceled.json["status"] == "canceled"
    placing.join(30)
    real_stripe.delay = 0

    response = answers["with_payment"]
    assert (response.status_code, response.json["message"]) == (
        409, "The order was canceled while its payment was being set up")
    assert "clientSecret" not in response.json
    [opened] = stripe_emulator.client.v1.payment_intents.list().data
    assert stripe_emulator.payment_intent(opened.id).status == "canceled"
    assert _payment_closed(db, order_id)
    assert make.stock_of(Product, product.id) == 10


def test_cash_collected_cancel_is_the_shops_and_the_trail_says_what_to_hand_back(client, make, shop):
    customer, auth, product, method = shop
    _admin, admin_auth = make.admin()
    placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, 2)]), headers=auth)
    order_id = placed.headers["Location"].rsplit("/", 1)[1]
    assert client.patch(f"/api/admin/orders/{order_id}", json={"paymentCollected": True},
                        headers=admin_auth).status_code == 200

    refused = client.post(f"/api/orders/{order_id}/cancel", headers=auth)
    assert (refused.status_code, refused.json["message"]) == (
        400, "The cash for this order was collected: only the shop can cancel it now")
    assert _order(client, order_id, auth)["status"] == "confirmed"

    canceled = client.post(f"/api/orders/{order_id}/cancel", headers=admin_auth)
    assert canceled.status_code == 200, canceled.json
    assert (canceled.json["status"], canceled.json["paymentStatus"], canceled.json["refundedAmount"]) == (
        "canceled", "refunded", 40.0)
    [hand_back] = [e for e in canceled.json["events"] if e["type"] == "cash_to_hand_back"]
    assert hand_back["detail"] == {"amount": 4000}
    assert make.stock_of(Product, product.id) == 10
