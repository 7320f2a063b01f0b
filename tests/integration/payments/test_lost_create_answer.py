"""A PaymentIntent whose create answer was lost is found again by the order id its metadata carries (Stripe's
search, then its list, which has no lag), not by repeating the create: Stripe keeps idempotency keys only
24 hours and refuses a repeat whose parameters differ. Its id is stored, and its money goes back by that id.

Production's own gateway (`StripeGateway`, not the emulator's) against the real-shaped Stripe."""
import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from orders_service.orders.models import Order, OrderEvent, Refund
from orders_service.payments import reconcile
from orders_service.payments.gateway import PaymentRefused
from orders_service.payments.stripe_gateway import StripeGateway
from tests.support.processes import wait_until

CREATE, SEARCH, LIST = "POST /v1/payment_intents", "GET /v1/payment_intents/search", "GET /v1/payment_intents"


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    return customer, auth, make.product(price_cents=20_00, stock=10), make.delivery_method(price_cents=0,
                                                                                           countries=[])


@pytest.fixture
def stripe_gateway(settings):
    """The gateway production runs (Stripe's search and list, the SDK's retries), on the real-shaped Stripe."""
    return StripeGateway(dataclasses.replace(settings, stripe_emulator=False))


def _place(client, make, shop):
    customer, auth, product, method = shop
    return client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                       headers=auth)


def _lost(client, make, shop, real_stripe, stripe_emulator, times=1):
    """An order whose PaymentIntent Stripe opened while its answer never came back; the customer paid it."""
    real_stripe.lose_answer_next(CREATE, times=times)
    response = _place(client, make, shop)
    assert (response.status_code, response.json["message"]) == (
        500, "Failed to initialize payment: could not reach the payment provider")
    [opened] = stripe_emulator.client.v1.payment_intents.list().data
    stripe_emulator.pay(opened.id)  # the answer was lost, not the PaymentIntent: somebody paid it
    return opened.metadata["order_id"], opened.id


def _state(db, order_id):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        return order.status, order.payment_status, order.refunded_cents, order.payment_intent_id


def test_found_by_its_order_id_when_the_create_parameters_have_changed(
        client, make, shop, db, real_stripe, stripe_emulator, session_factory, stripe_gateway):
    """Placed by the emulator's gateway (no `description`); reconciled by production's (with one): a repeat
    of the create with the order's key is refused, as Stripe refuses a key reused with other parameters."""
    order_id, pi_id = _lost(client, make, shop, real_stripe, stripe_emulator)
    real_stripe.reset_calls()

    reconcile.reconcile_payments(session_factory, stripe_gateway, older_than_seconds=0)

    assert _state(db, order_id) == ("canceled", "refunded", 20_00, pi_id)
    assert [(r.amount, r.payment_intent) for r in stripe_emulator.refunds(pi_id)] == [(20_00, pi_id)]
    assert (real_stripe.count(SEARCH), real_stripe.count(CREATE)) == (1, 0)
    reconcile.reconcile_payments(session_factory, stripe_gateway, older_than_seconds=0)
    assert len(stripe_emulator.refunds(pi_id)) == 1  # never twice
    with pytest.raises(PaymentRefused, match="same parameters"):  # what repeating the create would have met
        stripe_gateway.create_payment_intent(order_id, 20_00, "USD")


def test_found_by_its_order_id_after_its_idempotency_key_expired(
        make, shop, db, real_stripe, stripe_emulator, session_factory, app_with):
    """Production's gateway throughout (the SDK retries the create twice with its key, each answer lost);
    a day later Stripe has forgotten the key: a repeated create would open a second PaymentIntent."""
    app = app_with(stripe_emulator=False)
    gateway = app.extensions["orders.runtime"].gateway
    order_id, pi_id = _lost(app.test_client(), make, shop, real_stripe, stripe_emulator, times=3)
    real_stripe.expire_idempotency_keys()

    reconcile.reconcile_payments(session_factory, gateway, older_than_seconds=0)

    assert [pi.id for pi in stripe_emulator.client.v1.payment_intents.list().data] == [pi_id]  # no second one
    assert _state(db, order_id) == ("canceled", "refunded", 20_00, pi_id)
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [20_00]


def test_when_search_lags_behind_the_list_finds_it(client, make, shop, db, real_stripe, stripe_emulator,
                                                   session_factory, stripe_gateway):
    """Stripe's search index trails writes ("under a minute", up to an hour during incidents): it finds
    nothing yet, and the list of PaymentIntents created around the order's time, which has no lag, decides."""
    order_id, pi_id = _lost(client, make, shop, real_stripe, stripe_emulator)
    real_stripe.search_lag = 3600
    real_stripe.reset_calls()
    try:
        reconcile.reconcile_payments(session_factory, stripe_gateway, older_than_seconds=0)
    finally:
        real_stripe.search_lag = 0

    assert (real_stripe.count(SEARCH), real_stripe.count(LIST), real_stripe.count(CREATE)) == (1, 1, 0)
    assert _state(db, order_id) == ("canceled", "refunded", 20_00, pi_id)


def test_an_order_stripe_never_heard_of_closes_its_payment_without_opening_one(
        make, shop, db, real_stripe, stripe_emulator, session_factory, app_with):
    app = app_with(stripe_emulator=False)
    gateway = app.extensions["orders.runtime"].gateway
    real_stripe.fail_next(CREATE, status=500, times=3)  # Stripe failed before doing anything, every time
    assert _place(app.test_client(), make, shop).status_code == 500
    with db.begin():
        order_id = db.scalar(select(Order.id))
    real_stripe.reset_calls()

    reconcile.reconcile_payments(session_factory, gateway, older_than_seconds=0)
    assert _state(db, order_id)[:2] == ("canceled", "failed")
    with db.begin():  # young: its create might still be arriving at Stripe; asked again next run
        assert db.get(Order, order_id).payment_closed_at is None
    with db.begin():  # ten minutes later
        db.execute(update(Order).values(created_at=Order.created_at - timedelta(minutes=11)))
    reconcile.reconcile_payments(session_factory, gateway, older_than_seconds=0)

    with db.begin():
        assert db.get(Order, order_id).payment_closed_at is not None
        closed = db.scalars(select(OrderEvent.detail).where(OrderEvent.order_id == order_id,
                                                            OrderEvent.type == "payment_intent_closed")).one()
    assert closed == {"paymentIntentId": None, "how": "never opened"}
    assert real_stripe.count(CREATE) == 0 and stripe_emulator.client.v1.payment_intents.list().data == []
    assert (real_stripe.count(SEARCH), real_stripe.count(LIST)) == (2, 2)
    reconcile.reconcile_payments(session_factory, gateway, older_than_seconds=0)
    assert real_stripe.count() == 4  # settled: never asked about again


@pytest.mark.xdist_group("redis_stack")
def test_a_late_payment_webhook_stores_the_payment_intent_and_its_refund_names_it(
        client, make, shop, db, real_stripe, stripe_emulator, redis_webhooks_on):
    """The first refund of such a payment used to be sent without a PaymentIntent id (and refused for good)."""
    order_id, pi_id = _lost(client, make, shop, real_stripe, stripe_emulator)  # payment_intent.succeeded → worker

    wait_until(lambda: _state(db, order_id)[1] == "refunded", timeout=30,
               message=lambda: f"order {_state(db, order_id)}, refunds {real_stripe.log}")

    assert _state(db, order_id) == ("canceled", "refunded", 20_00, pi_id)
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [20_00]
    with db.begin():
        assert db.scalars(select(Refund.status).where(Refund.order_id == order_id)).all() == ["succeeded"]
    assert [e["status"] for e in real_stripe.log if e["endpoint"] == "POST /v1/refunds"] == [200]
