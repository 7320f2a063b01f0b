"""POST /api/orders/with-payment and PATCH …/paid through the real Stripe SDK against localstripe."""
import dataclasses
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select, update

from orders_service.app import create_app
from orders_service.catalog.models import Product, Variant
from orders_service.orders.models import Order, OrderEvent
from tests.support.database import TrailGate
from tests.support.faults import faulty_http_server
from tests.support.processes import free_port
from tests.support.stripe import payment_intent_of


@pytest.fixture
def seed_shop(make):
    """A catalog priced so that the seed's with-payment example comes to 459.98."""
    customer, auth = make.shopper()
    headphones = make.product("Premium Headphones", price_cents=199_99, stock=10)
    case = make.product("Phone Case", price_cents=50_00, stock=0, variants=[{"name": "Black", "stock": 10}])
    method = make.delivery_method("Standard Shipping", price_cents=10_00, countries=["US"])
    body = make.order_body(customer, method, [(headphones, 2), (case, 1, case.variants[0])],
                           notes="Please ring doorbell upon delivery")
    return customer, auth, headphones, case, body


def _place(client, auth, body, **headers):
    return client.post("/api/orders/with-payment", json=body, headers={**auth, **headers})


def test_seed_with_payment_example(client, stripe_emulator, seed_shop, make):
    customer, auth, headphones, case, body = seed_shop
    response = _place(client, auth, body)
    assert response.status_code == 200, response.json
    assert set(response.json) == {"orderId", "clientSecret", "totalAmount", "currency"}
    assert response.json["totalAmount"] == 459.98
    assert response.json["currency"] == "USD"
    assert re.fullmatch(r"pi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+", response.json["clientSecret"])

    pi_id = payment_intent_of(response.json["clientSecret"])
    intent = stripe_emulator.payment_intent(pi_id)
    assert (intent.amount, intent.currency) == (45998, "usd")
    assert intent.metadata["order_id"] == response.json["orderId"]

    order = client.get(f"/api/orders/{response.json['orderId']}", headers=auth).json
    assert (order["status"], order["paymentMethod"], order["paymentStatus"]) == ("pending", "online", "unpaid")
    assert make.stock_of(Product, headphones.id) == 8
    assert make.stock_of(Variant, case.variants[0].id) == 9


def test_seed_stripe_flow_end_to_end(client, stripe_emulator, seed_shop):
    customer, auth, *_rest, body = seed_shop
    created = _place(client, auth, body).json
    paid = stripe_emulator.pay(payment_intent_of(created["clientSecret"]))
    assert paid.status == "succeeded"

    first = client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth)
    assert first.status_code == 204, first.json
    order = client.get(f"/api/orders/{created['orderId']}", headers=auth).json
    assert (order["status"], order["paymentStatus"]) == ("confirmed", "paid")
    assert order["paidAt"] is not None
    assert [e["type"] for e in order["events"]].count("payment_succeeded") == 1

    again = client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth)
    assert again.status_code == 400
    assert again.json["message"] == "Order has already been marked as paid"


def test_paid_before_paying_names_the_status(client, seed_shop):
    customer, auth, *_rest, body = seed_shop
    created = _place(client, auth, body).json
    response = client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth)
    assert response.status_code == 400
    assert response.json["message"] == "Payment has not succeeded: the PaymentIntent is requires_payment_method"


def test_declined_card_marks_the_payment_failed(client, stripe_emulator, seed_shop):
    customer, auth, *_rest, body = seed_shop
    created = _place(client, auth, body).json
    stripe_emulator.decline(payment_intent_of(created["clientSecret"]))
    response = client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth)
    assert response.status_code == 400
    assert "requires_payment_method" in response.json["message"]
    order = client.get(f"/api/orders/{created['orderId']}", headers=auth).json
    assert (order["status"], order["paymentStatus"]) == ("pending", "failed")
    assert [e["type"] for e in order["events"]] == ["placed", "payment_failed"]


@pytest.mark.parametrize("amount,currency", [(45997, "usd"), (45998, "eur")], ids=["amount", "currency"])
def test_a_payment_intent_that_differs_from_the_order_is_never_accepted(
        client, db, stripe_emulator, seed_shop, amount, currency):
    customer, auth, *_rest, body = seed_shop
    created = _place(client, auth, body).json
    # A PaymentIntent for this order but for another sum, paid in full.
    wrong = stripe_emulator.client.v1.payment_intents.create(params={
        "amount": amount, "currency": currency, "metadata": {"order_id": created["orderId"]},
        "payment_method": "pm_card_visa", "confirm": True})
    assert wrong.status == "succeeded"
    with db.begin():
        db.execute(update(Order).where(Order.id == created["orderId"]).values(payment_intent_id=wrong.id))

    response = client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth)
    assert response.status_code == 400
    assert response.json["message"] == "Payment cannot be applied: amount or currency differs from the order"
    order = client.get(f"/api/orders/{created['orderId']}", headers=auth).json
    assert (order["status"], order["paymentStatus"]) == ("pending", "unpaid")


def test_paid_on_cash_on_delivery_unknown_and_foreign_orders(client, make, seed_shop):
    customer, auth, headphones, _case, body = seed_shop
    cod = client.post("/api/orders", json=dict(body, items=[{"productId": str(headphones.id), "quantity": 1}]),
                      headers=auth)
    response = client.patch(f"{cod.headers['Location']}/paid", headers=auth)
    assert response.status_code == 400
    assert response.json["message"] == "Cash-on-delivery orders are paid on delivery, not online"

    import uuid
    assert client.patch(f"/api/orders/{uuid.uuid4()}/paid", headers=auth).status_code == 404
    created = _place(client, auth, body).json
    _stranger, stranger_auth = make.shopper()
    assert client.patch(f"/api/orders/{created['orderId']}/paid", headers=stranger_auth).status_code == 404


def test_idempotent_replay_returns_the_same_client_secret(client, stripe_emulator, seed_shop, make):
    customer, auth, headphones, *_rest, body = seed_shop
    first = _place(client, auth, body, **{"Idempotency-Key": "checkout-1"})
    second = _place(client, auth, body, **{"Idempotency-Key": "checkout-1"})
    assert first.status_code == second.status_code == 200
    assert first.json == second.json
    assert len(stripe_emulator.client.v1.payment_intents.list().data) == 1
    assert make.stock_of(Product, headphones.id) == 8


@pytest.mark.slow
@pytest.mark.xdist_group("live_server")
def test_twenty_concurrent_paid_calls_make_one_transition(live_server, client, db, database_url, stripe_emulator,
                                                           seed_shop):
    customer, auth, *_rest, body = seed_shop
    created = _place(client, auth, body).json
    stripe_emulator.pay(payment_intent_of(created["clientSecret"]))

    def mark_paid(_):
        return requests.patch(f"{live_server}/api/orders/{created['orderId']}/paid", headers=auth, timeout=60)

    # The first to apply the payment is held inside its transaction until all the others are blocked too.
    with TrailGate(database_url, "payment_succeeded") as gate, ThreadPoolExecutor(max_workers=20) as pool:
        calls = [pool.submit(mark_paid, i) for i in range(20)]
        gate.wait_for_waiters(20)
        gate.open()
        responses = [call.result() for call in calls]

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [204] + [400] * 19, [r.text for r in responses]
    assert {r.json()["message"] for r in responses if r.status_code == 400} == {"Order has already been marked as paid"}
    events = db.scalar(select(func.count()).select_from(OrderEvent)
                       .where(OrderEvent.order_id == created["orderId"], OrderEvent.type == "payment_succeeded"))
    assert events == 1


@pytest.fixture
def app_with_stripe_at(settings):
    """Build the app against another Stripe address (the fault under test), with a 1 s timeout."""
    apps = []

    def build(url):
        app = create_app(dataclasses.replace(settings, stripe_api_base=url, stripe_timeout_seconds=1.0))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        app.extensions["orders.runtime"].dispose()


@pytest.fixture(params=["unreachable", "answers-500", "slower-than-timeout"])
def broken_stripe(request):
    if request.param == "unreachable":
        yield f"http://127.0.0.1:{free_port()}", "could not reach the payment provider"
    elif request.param == "answers-500":
        with faulty_http_server(500) as url:
            yield url, "An unknown error occurred"
    else:
        with faulty_http_server(200, delay=3) as url:
            yield url, "the payment provider did not answer in time"


def test_stripe_faults_release_the_stock(app_with_stripe_at, broken_stripe, seed_shop, make, db, client):
    customer, auth, headphones, case, body = seed_shop
    url, details = broken_stripe
    broken_client = app_with_stripe_at(url)

    response = _place(broken_client, auth, body, **{"Idempotency-Key": "retry-after-fault"})

    assert response.status_code == 500
    assert response.json["message"] == f"Failed to initialize payment: {details}"
    assert make.stock_of(Product, headphones.id) == 10
    assert make.stock_of(Variant, case.variants[0].id) == 10
    order = db.scalars(select(Order)).one()
    assert (order.status, order.payment_status) == ("canceled", "failed")
    assert [e.type for e in db.scalars(select(OrderEvent).order_by(OrderEvent.id))] == [
        "placed", "payment_initialization_failed"]

    # The failed attempt is not replayed: the same key may try again once Stripe is back.
    retry = _place(client, auth, body, **{"Idempotency-Key": "retry-after-fault"})
    assert retry.status_code == 200, retry.json
    assert make.stock_of(Product, headphones.id) == 8


SHARED_ERRORS = {  # docs/api.md, "Placing an order": the errors shared by both routes, on with-payment
    "insufficient-stock": (lambda b, h, c, o: b["items"][0].update(quantity=11), 400,
                           "Product 'Premium Headphones' has insufficient stock. Available: 10, Requested: 11"),
    "invalid-data": (lambda b, h, c, o: b["items"][0].update(quantity=0), 400, "Invalid order data"),
    "price-changed": (lambda b, h, c, o: b["items"][0].update(unitPrice=150), 400,
                      "Price of 'Premium Headphones' has changed: you saw 150.00, it is now 199.99"),
    "variant-missing": (lambda b, h, c, o: b["items"][1].pop("variantId"), 400,
                        "Product 'Phone Case' is sold by variant: choose a variantId"),
    "not-delivered-there": (lambda b, h, c, o: b["deliveryAddress"].update(country="FR"), 400,
                            "Delivery method 'Standard Shipping' does not deliver to FR"),
    "someone-elses-customer-id": (lambda b, h, c, o: b.update(customerId=str(o.id)), 403,
                                  "customerId does not match the authenticated customer"),
    "unknown-delivery-method": (lambda b, h, c, o: b.update(deliveryMethodId=str(uuid.uuid4())), 404,
                                "Delivery method not found"),
    "unknown-product": (lambda b, h, c, o: b["items"][0].update(productId=str(uuid.uuid4())), 404,
                        "Product not found"),
}


@pytest.mark.parametrize("case", list(SHARED_ERRORS))
def test_with_payment_shares_the_order_errors_and_reserves_nothing(client, make, db, stripe_emulator, seed_shop,
                                                                   case):
    customer, auth, headphones, phone_case, body = seed_shop
    other = make.customer()
    change, status, message = SHARED_ERRORS[case]
    change(body, auth, customer, other)

    response = _place(client, auth, body)

    assert (response.status_code, response.json["message"]) == (status, message), response.json
    assert make.stock_of(Product, headphones.id) == 10
    assert make.stock_of(Variant, phone_case.variants[0].id) == 10
    assert db.scalar(select(func.count()).select_from(Order)) == 0
    assert stripe_emulator.client.v1.payment_intents.list().data == []  # nothing was asked of Stripe


def test_with_payment_unknown_customer_is_404(client, make, db, stripe_emulator, seed_shop):
    _customer, _auth, _headphones, _case, body = seed_shop
    _admin, admin_auth = make.admin()
    body["customerId"] = str(uuid.uuid4())
    response = _place(client, admin_auth, body)
    assert (response.status_code, response.json["message"]) == (404, "Customer not found")
    assert stripe_emulator.client.v1.payment_intents.list().data == []


def test_with_payment_key_reused_with_another_body_is_422(client, make, stripe_emulator, seed_shop):
    _customer, auth, headphones, _case, body = seed_shop
    assert _place(client, auth, body, **{"Idempotency-Key": "checkout-7"}).status_code == 200
    other = dict(body, notes="another request")
    response = _place(client, auth, other, **{"Idempotency-Key": "checkout-7"})
    assert (response.status_code, response.json["message"]) == (
        422, "Idempotency-Key has already been used with a different request")
    assert len(stripe_emulator.client.v1.payment_intents.list().data) == 1
    assert make.stock_of(Product, headphones.id) == 8
