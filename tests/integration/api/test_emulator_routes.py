"""The emulator's card routes (docs/api.md, "The Stripe emulator's card flow") through the API, with the real
gateway against the real-shaped Stripe: what the browser tests do not reach — other customers, wrong orders, bad input,
and the replaced PaymentIntent's own events."""
import pytest
from sqlalchemy import select

from tests.support.processes import wait_until
from tests.support.stripe import payment_intent_of

pytestmark = pytest.mark.xdist_group("redis_stack")  # the web + worker stack, started once per process


def _card(stripe_emulator, number="4242424242424242") -> str:
    """A card saved in the emulator, as the page's confirmCardSetup leaves it."""
    return stripe_emulator.client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id


@pytest.fixture
def online_order(client, make):
    customer, auth = make.shopper()
    product = make.product(stock=5)
    method = make.delivery_method()
    placed = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                         headers=auth)
    assert placed.status_code == 200, placed.json
    return placed.json, auth, (customer, method, product)


def _pay(client, order_id, auth, pm):
    return client.post(f"/api/emulator/orders/{order_id}/pay", json={"paymentMethodId": pm}, headers=auth)


def test_a_saved_card_pays_the_order_and_paid_confirms_it(client, online_order, stripe_emulator):
    placed, auth, _ = online_order
    paid = _pay(client, placed["orderId"], auth, _card(stripe_emulator))
    assert paid.status_code == 200, paid.json
    assert (paid.json["status"], paid.json["clientSecret"]) == ("succeeded", placed["clientSecret"])
    assert client.patch(f"/api/orders/{placed['orderId']}/paid", headers=auth).status_code == 204
    again = _pay(client, placed["orderId"], auth, _card(stripe_emulator))
    assert again.status_code == 400 and again.json["message"] == "Order has already been marked as paid"


def test_a_decline_is_recorded_and_the_next_card_pays_through_a_new_payment_intent(
        client, online_order, stripe_emulator, db, real_stripe, redis_webhooks_on):
    from orders_service.orders.models import Order

    placed, auth, _ = online_order
    declined = _pay(client, placed["orderId"], auth, _card(stripe_emulator, "4000000000000341"))
    assert declined.status_code == 200
    assert declined.json["status"] == "requires_payment_method" and "declined" in declined.json["error"]
    order = client.get(f"/api/orders/{placed['orderId']}", headers=auth).json
    assert (order["status"], order["paymentStatus"]) == ("pending", "failed")

    paid = _pay(client, placed["orderId"], auth, _card(stripe_emulator))
    assert paid.json["status"] == "succeeded" and paid.json["clientSecret"] != placed["clientSecret"]
    first_pi = payment_intent_of(placed["clientSecret"])
    assert stripe_emulator.payment_intent(first_pi).status == "canceled"
    # The old PaymentIntent's cancel event reaches the worker, and closes nothing: it is not the order's now.
    real_stripe.wait_for_webhooks("payment_intent.canceled")
    wait_until(lambda: _processed(db, "payment_intent.canceled"), message=lambda: "event not processed")
    confirmed = client.patch(f"/api/orders/{placed['orderId']}/paid", headers=auth)
    # the new PaymentIntent's own succeeded event may have confirmed it first
    assert confirmed.status_code == 204 or confirmed.json["message"] == "Order has already been marked as paid"
    db.expire_all()
    with db.begin():
        stored = db.get(Order, placed["orderId"])
        assert (stored.status, stored.payment_status) == ("confirmed", "paid")
        assert stored.payment_intent_id == payment_intent_of(paid.json["clientSecret"])
        assert [e.type for e in stored.events].count("payment_intent_replaced") == 1


def _processed(db, event_type) -> bool:
    from orders_service.payments.models import StripeEvent

    db.expire_all()
    with db.begin():
        return bool(db.scalar(select(StripeEvent.id).where(StripeEvent.type == event_type,
                                                           StripeEvent.processed_at.is_not(None))))


def test_only_the_orders_customer_may_pay_it(client, online_order, make, stripe_emulator):
    placed, _, _ = online_order
    _, stranger = make.shopper()
    assert _pay(client, placed["orderId"], stranger, _card(stripe_emulator)).status_code == 404
    assert client.post(f"/api/emulator/orders/{placed['orderId']}/pay", json={"paymentMethodId": "pm_x"}
                       ).status_code == 401


def test_a_cash_on_delivery_or_canceled_order_takes_no_card(client, online_order, make, stripe_emulator):
    placed, auth, (customer, method, product) = online_order
    cash = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
    cash_id = cash.headers["Location"].rsplit("/", 1)[1]
    refused = _pay(client, cash_id, auth, _card(stripe_emulator))
    assert refused.status_code == 400 and "cash-on-delivery" in refused.json["message"].lower()
    assert client.post(f"/api/orders/{placed['orderId']}/cancel", headers=auth).status_code == 200
    closed = _pay(client, placed["orderId"], auth, _card(stripe_emulator))
    assert closed.status_code == 400 and "canceled" in closed.json["message"]


@pytest.mark.parametrize("body", [{}, {"paymentMethodId": ""}, {"paymentMethodId": "card_123"},
                                  {"paymentMethodId": 42}, {"paymentMethodId": "pm_x", "extra": 1}])
def test_a_bad_body_is_400(client, online_order, body):
    placed, auth, _ = online_order
    answer = client.post(f"/api/emulator/orders/{placed['orderId']}/pay", json=body, headers=auth)
    assert answer.status_code == 400 and answer.json["code"] == 400


def test_an_unknown_card_is_400_and_the_next_card_still_pays(client, online_order, stripe_emulator):
    placed, auth, _ = online_order
    answer = _pay(client, placed["orderId"], auth, "pm_doesnotexist")
    assert answer.status_code == 400, answer.json
    assert answer.json["message"].startswith("The card could not be used")
    assert _pay(client, placed["orderId"], auth, _card(stripe_emulator)).json["status"] == "succeeded"


def test_setup_intents_need_a_token(client, make):
    assert client.post("/api/emulator/setup-intents").status_code == 401
    _, auth = make.shopper()
    created = client.post("/api/emulator/setup-intents", headers=auth)
    assert created.status_code == 201 and created.json["clientSecret"].startswith("seti_")
