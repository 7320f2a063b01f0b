"""Refunds through the API against a Stripe that answers in real shapes (docs/api.md: refunds, "Stripe
webhooks in"): full and partial, by an admin or in Stripe's dashboard, never more than was paid, each counted once."""
import uuid
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from orders_service.catalog.models import Product
from orders_service.orders.models import Order, Refund
from orders_service.payments import reconcile
from orders_service.payments.models import StripeEvent
from tests.support.processes import wait_until
from tests.support.stripe import WEBHOOK_SECRET, payment_intent_of

PRICE, DELIVERY = 20_00, 5_00  # two of them: 45.00


@pytest.fixture
def paid_order(client, make, stripe_emulator):
    """An online order of 2 × 20.00 + 5.00, paid and confirmed; (order id, PaymentIntent id, auths)."""
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product = make.product(price_cents=PRICE, stock=10)
    method = make.delivery_method(price_cents=DELIVERY, countries=[])
    created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 2)]),
                          headers=auth)
    assert created.status_code == 200, created.json
    order_id, pi_id = created.json["orderId"], payment_intent_of(created.json["clientSecret"])
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 204
    return order_id, pi_id, auth, admin_auth, product


def _refund(client, order_id, admin_auth, key=None, **body):
    headers = {**admin_auth, **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/api/admin/orders/{order_id}/refunds", json=body, headers=headers)


def _order(client, order_id, auth):
    return client.get(f"/api/orders/{order_id}", headers=auth).json


def _at_stripe(stripe_emulator, pi_id):
    return sum(r.amount for r in stripe_emulator.refunds(pi_id))


def test_two_partial_refunds_add_up(client, paid_order, stripe_emulator):
    order_id, pi_id, auth, admin_auth, _product = paid_order

    first = _refund(client, order_id, admin_auth, amount=5, reason="damaged box")
    assert first.status_code == 201, first.json
    assert (first.json["amount"], first.json["status"]) == (5.0, "succeeded") and uuid.UUID(first.json["id"])
    assert (_order(client, order_id, auth)["paymentStatus"], _order(client, order_id, auth)["refundedAmount"]) == (
        "partially_refunded", 5.0)

    second = _refund(client, order_id, admin_auth, amount=12.5)
    assert second.status_code == 201, second.json
    order = _order(client, order_id, auth)
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("confirmed", "partially_refunded",
                                                                                  17.5)
    assert _at_stripe(stripe_emulator, pi_id) == 1750
    assert [e["detail"]["amount"] for e in order["events"] if e["type"] == "refunded"] == [500, 1250]


def test_a_refund_beyond_what_is_left_is_400_and_changes_nothing(client, paid_order, stripe_emulator, db, real_stripe):
    order_id, pi_id, auth, admin_auth, _product = paid_order
    assert _refund(client, order_id, admin_auth, amount=40).status_code == 201
    before = _order(client, order_id, auth)
    calls = real_stripe.count("POST /v1/refunds")

    response = _refund(client, order_id, admin_auth, amount=5.01)

    assert (response.status_code, response.json["message"]) == (
        400, "Refund of 5.01 USD exceeds what is left to refund (5.00 USD)")
    assert _order(client, order_id, auth) == before
    assert real_stripe.count("POST /v1/refunds") == calls  # Stripe was not asked
    assert _at_stripe(stripe_emulator, pi_id) == 4000
    with db.begin():
        assert db.scalar(select(func.count()).select_from(Refund)) == 1


def test_a_refund_of_what_is_left_refunds_in_full_and_cancels_an_unshipped_order(client, paid_order, stripe_emulator,
                                                                                 make):
    order_id, pi_id, auth, admin_auth, product = paid_order
    assert _refund(client, order_id, admin_auth, amount=10).status_code == 201
    rest = _refund(client, order_id, admin_auth)  # no amount: all that is left
    assert (rest.status_code, rest.json["amount"]) == (201, 35.0)
    order = _order(client, order_id, auth)
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("canceled", "refunded", 45.0)
    assert make.stock_of(Product, product.id) == 10  # released once
    assert _at_stripe(stripe_emulator, pi_id) == 4500
    nothing = _refund(client, order_id, admin_auth, amount=1)
    assert (nothing.status_code, nothing.json["message"]) == (
        400, "Nothing is left to refund: the order has been refunded in full")


def test_the_same_idempotency_key_twice_makes_one_refund(client, paid_order, stripe_emulator):
    order_id, pi_id, auth, admin_auth, _product = paid_order
    first = _refund(client, order_id, admin_auth, key="goodwill-1", amount=3)
    again = _refund(client, order_id, admin_auth, key="goodwill-1", amount=3)
    assert first.status_code == again.status_code == 201
    assert first.json == again.json
    assert _at_stripe(stripe_emulator, pi_id) == 300
    other = _refund(client, order_id, admin_auth, key="goodwill-1", amount=4)
    assert (other.status_code, other.json["message"]) == (
        422, "Idempotency-Key has already been used with a different request")
    assert _order(client, order_id, auth)["refundedAmount"] == 3.0


@pytest.mark.parametrize("case, body, message", [
    ("cash-on-delivery", None, "Only an order paid online can be refunded"),
    ("unpaid", None, "Only an order paid online can be refunded"),
    ("zero", {"amount": 0}, "A refund must be more than 0"),
    ("negative", {"amount": -1}, "Invalid request data"),
    ("too-precise", {"amount": 1.001}, "Invalid request data"),
])
def test_refunds_that_cannot_be_are_400(client, make, paid_order, case, body, message):
    order_id, _pi_id, _auth, admin_auth, product = paid_order
    customer, auth = make.shopper()
    method = make.delivery_method(countries=[])
    if case == "cash-on-delivery":
        placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
        order_id = placed.headers["Location"].rsplit("/", 1)[1]
    elif case == "unpaid":
        order_id = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                               headers=auth).json["orderId"]
    response = _refund(client, order_id, admin_auth, **(body or {}))
    assert (response.status_code, response.json["message"]) == (400, message)


def test_refunds_are_for_admins(client, paid_order):
    order_id, _pi_id, auth, admin_auth, _product = paid_order
    assert _refund(client, order_id, auth, amount=1).status_code == 403
    assert client.post(f"/api/admin/orders/{order_id}/refunds", json={}).status_code == 401
    assert _refund(client, str(uuid.uuid4()), admin_auth).status_code == 404


def test_a_refund_stripe_refuses_is_recorded_as_failed(client, paid_order, real_stripe, stripe_emulator):
    order_id, pi_id, auth, admin_auth, _product = paid_order
    real_stripe.fail_next("POST /v1/refunds", status=400,
                          body={"error": {"type": "invalid_request_error", "code": "charge_disputed",
                                          "message": "This charge has been disputed and cannot be refunded."}})
    response = _refund(client, order_id, admin_auth, amount=5)
    assert (response.status_code, response.json["status"]) == (201, "failed")
    order = _order(client, order_id, auth)
    assert (order["paymentStatus"], order["refundedAmount"]) == ("paid", 0.0)
    [failed] = [e for e in order["events"] if e["type"] == "refund_failed"]
    assert failed["detail"]["error"] == "This charge has been disputed and cannot be refunded."
    assert _at_stripe(stripe_emulator, pi_id) == 0
    assert _refund(client, order_id, admin_auth, amount=45).status_code == 201  # all of it may still go back


def test_a_refund_whose_answer_was_lost_is_asked_again_once(client, paid_order, real_stripe, stripe_emulator,
                                                           session_factory, runtime, db):
    order_id, pi_id, auth, admin_auth, _product = paid_order
    real_stripe.lose_answer_next("POST /v1/refunds")  # Stripe refunds; its answer never arrives
    response = _refund(client, order_id, admin_auth, amount=8)
    assert (response.status_code, response.json["status"]) == (201, "pending")
    assert _at_stripe(stripe_emulator, pi_id) == 800
    assert _order(client, order_id, auth)["refundedAmount"] == 0.0  # not known to the service yet
    more = _refund(client, order_id, admin_auth, amount=37.01)
    assert more.status_code == 400  # the pending 8.00 counts against what is left

    with db.begin():
        db.execute(Refund.__table__.update().values(created_at=Refund.created_at - reconcile.REFUND_RETRY_AFTER))
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300)

    assert _at_stripe(stripe_emulator, pi_id) == 800  # the same idempotency key: no second refund
    order = _order(client, order_id, auth)
    assert (order["paymentStatus"], order["refundedAmount"]) == ("partially_refunded", 8.0)


def test_cancel_a_paid_order_refunds_it_once_and_reconciliation_never_again(client, paid_order, stripe_emulator,
                                                                           session_factory, runtime, real_stripe):
    order_id, pi_id, auth, _admin_auth, _product = paid_order
    canceled = client.post(f"/api/orders/{order_id}/cancel", headers=auth)
    assert (canceled.json["status"], canceled.json["paymentStatus"], canceled.json["refundedAmount"]) == (
        "canceled", "refunded", 45.0)
    for _ in range(2):
        reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [4500]
    assert real_stripe.count("POST /v1/refunds") == 1


def test_cancel_after_a_partial_refund_refunds_the_rest(client, paid_order, stripe_emulator):
    order_id, pi_id, auth, admin_auth, _product = paid_order
    assert _refund(client, order_id, admin_auth, amount=15).status_code == 201
    canceled = client.post(f"/api/orders/{order_id}/cancel", headers=auth).json
    assert (canceled["paymentStatus"], canceled["refundedAmount"]) == ("refunded", 45.0)
    assert sorted(r.amount for r in stripe_emulator.refunds(pi_id)) == [1500, 3000]


# --- refunds made in Stripe's dashboard, told by charge.refunded ---------------------------------------

@pytest.fixture
def stripe_tells(stack, real_stripe):
    """From now on, Stripe's webhooks go to the stack's web (after the order was paid through /paid)."""
    real_stripe.forward_webhooks_to(f"{stack.url}/api/webhooks/stripe", WEBHOOK_SECRET)
    yield stack
    real_stripe.forward_webhooks_to(None)
    real_stripe.deliver_times = 1


def _all_events(db):
    with db.begin():
        return [(e.type, e.payment_intent_id, e.processed_at, e.outcome, e.attempts, e.claimed_until)
                for e in db.scalars(select(StripeEvent))]


def _processed_refund_events(db, pi_id):
    with db.begin():
        return list(db.scalars(select(StripeEvent.outcome).where(
            StripeEvent.type == "charge.refunded", StripeEvent.payment_intent_id == pi_id,
            StripeEvent.processed_at.is_not(None)).order_by(StripeEvent.received_at)))


@pytest.mark.slow
@pytest.mark.xdist_group("stack")
def test_a_dashboard_refund_is_reflected_once_however_often_stripe_tells(paid_order, stripe_tells, real_stripe, db,
                                                                        client):
    order_id, pi_id, auth, _admin_auth, _product = paid_order
    real_stripe.deliver_times = 3  # Stripe delivers at least once: here, each event three times

    real_stripe.refund_in_dashboard(pi_id, amount=1000)
    wait_until(lambda: len(_processed_refund_events(db, pi_id)) == 1, timeout=20,
               message=lambda: f"deliveries: {real_stripe.deliveries}")
    order = _order(client, order_id, auth)
    assert (order["paymentStatus"], order["refundedAmount"]) == ("partially_refunded", 10.0)
    assert [e["type"] for e in order["events"]].count("refunded") == 1

    real_stripe.refund_in_dashboard(pi_id, amount=3500)  # the rest
    wait_until(lambda: len(_processed_refund_events(db, pi_id)) == 2, timeout=20)
    order = _order(client, order_id, auth)
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("canceled", "refunded", 45.0)
    assert [e["detail"]["amount"] for e in order["events"] if e["type"] == "refunded"] == [1000, 3500]
    # The order reflects the first delivery of each event; the repeats may still be on their way.
    def refunds_sent():
        return [e for e in real_stripe.sent if e["type"] == "charge.refunded"]

    wait_until(lambda: len(refunds_sent()) >= 6, timeout=20)
    assert len(refunds_sent()) == 6 and len({e["id"] for e in refunds_sent()}) == 2


@pytest.mark.slow
@pytest.mark.xdist_group("stack")
def test_a_paid_order_canceled_through_the_stack_ends_refunded_with_one_refund(paid_order, stripe_tells, db,
                                                                               stripe_emulator, real_stripe):
    order_id, pi_id, auth, _admin_auth, _product = paid_order
    response = requests.post(f"{stripe_tells.url}/api/orders/{order_id}/cancel", headers=auth, timeout=30)
    assert response.json()["paymentStatus"] == "refunded"
    # Stripe tells of the refund too (charge.refunded): it is the same total, so nothing more happens.
    wait_until(lambda: len(_processed_refund_events(db, pi_id)) == 1, timeout=20,
               message=lambda: f"deliveries: {real_stripe.deliveries}, stored: {_all_events(db)}")
    assert _processed_refund_events(db, pi_id) == ["already refunded"]
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [4500]


def _age(db, **columns):
    """Move the orders' times back, as hours passing would."""
    with db.begin():
        db.execute(Order.__table__.update().values(
            **{name: getattr(Order, name) - delta for name, delta in columns.items()}))


READ = "GET /v1/payment_intents/{id}"


def _stock(session_factory, product):
    with session_factory() as session:
        return session.get(Product, product.id).stock


def test_a_dashboard_refund_whose_event_never_came_shows_on_a_confirmed_order_within_the_hour(
        client, paid_order, real_stripe, stripe_emulator, session_factory, runtime, db):
    order_id, pi_id, auth, _admin_auth, product = paid_order
    real_stripe.refund_in_dashboard(pi_id, amount=5_00)  # charge.refunded goes nowhere: no endpoint listens
    real_stripe.reset_calls()

    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300)
    assert real_stripe.count(READ) == 0  # paid a moment ago: its state is known
    _age(db, paid_at=timedelta(minutes=61))
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300)

    order = _order(client, order_id, auth)
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == (
        "confirmed", "partially_refunded", 5.0)
    assert real_stripe.count(READ) == 1
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300)
    assert real_stripe.count(READ) == 1  # once an hour, not every run

    real_stripe.refund_in_dashboard(pi_id)  # the rest, in the dashboard again, unheard of
    _age(db, reconciled_at=timedelta(minutes=61))
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300)
    order = _order(client, order_id, auth)
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("canceled", "refunded", 45.0)
    assert _stock(session_factory, product) == 10  # refunded before shipping: the stock is back
    assert real_stripe.count(READ) == 2


def test_shipped_orders_are_not_read_and_the_look_is_bounded_per_run(
        client, make, paid_order, real_stripe, stripe_emulator, session_factory, runtime, db):
    order_id, _pi_id, _auth, admin_auth, product = paid_order
    assert client.patch(f"/api/admin/orders/{order_id}", json={"status": "shipped", "trackingNumber": "1Z"},
                        headers=admin_auth).status_code == 200
    customer, auth = make.shopper()
    method = make.delivery_method(price_cents=0, countries=[])
    for _ in range(3):  # three confirmed, unshipped orders
        created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                              headers=auth).json
        stripe_emulator.pay(created["clientSecret"].split("_secret_")[0])
        assert client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth).status_code == 204
    _age(db, paid_at=timedelta(hours=2))
    real_stripe.reset_calls()

    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300, confirmed_per_run=2)
    assert real_stripe.count(READ) == 2  # at most the run's share; the shipped order is never among them
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=300, confirmed_per_run=2)
    assert real_stripe.count(READ) == 3  # the third's turn; the first two wait their hour
    read = {entry["path"].rsplit("/", 1)[1] for entry in real_stripe.log if entry["endpoint"] == READ}
    with db.begin():
        shipped_pi = db.get(Order, order_id).payment_intent_id
    assert shipped_pi not in read and len(read) == 3
