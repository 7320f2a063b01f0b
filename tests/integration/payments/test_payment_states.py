"""The payment states a client sees, through the API, against the real-shaped Stripe driven as a customer's
bank would (a payment processing for days, a step on the bank's page): `PATCH …/paid` answers 202 for a
processing payment, `GET …/payment` gives what resuming needs, and cancelling waits for the provider."""
import pytest
import requests
from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.notifications.models import Notification
from orders_service.orders.models import Order
from tests.support.orders import count_events, fresh_order, place_online

DECLINED = "The customer's account has insufficient funds to cover this payment."
WAIT_FOR_IT = ("The payment for this order is still being processed; the order can be canceled once the "
               "payment has gone through or failed")


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    return customer, auth, make.product(price_cents=20_00, stock=10), make.delivery_method(price_cents=0,
                                                                                           countries=[])


def _order(client, auth, order_id):
    response = client.get(f"/api/orders/{order_id}", headers=auth)
    assert response.status_code == 200, response.json
    return response.json


def _payment(client, auth, order_id):
    response = client.get(f"/api/orders/{order_id}/payment", headers=auth)
    assert response.status_code == 200, response.json
    return response.json


def _mails(db, order_id):
    with db.begin():
        return list(db.scalars(select(Notification.kind).where(Notification.order_id == order_id)
                               .order_by(Notification.created_at)))


def test_a_processing_payment_is_202_keeps_its_stock_cannot_be_canceled_and_is_confirmed_once(
        client, make, shop, db, real_stripe):
    _customer, auth, product, _method = shop
    order_id, pi_id = place_online(client, make, shop, quantity=3)
    real_stripe.start_processing(pi_id, "card")  # cards are rarely processing; this PaymentIntent offers cards only

    paid = client.patch(f"/api/orders/{order_id}/paid", headers=auth)

    assert (paid.status_code, paid.json) == (202, {"orderId": order_id, "paymentStatus": "processing"})
    order = _order(client, auth, order_id)
    assert (order["status"], order["paymentStatus"], order["paymentMethodType"]) == ("pending", "processing", "card")
    assert [e["type"] for e in order["events"]] == ["placed", "payment_processing"]
    assert order["events"][-1]["detail"] == {"paymentIntentId": pi_id, "paymentMethodType": "card",
                                             "source": "paid_endpoint"}
    assert make.stock_of(Product, product.id) == 7
    assert _mails(db, order_id) == ["payment_processing"]
    assert _payment(client, auth, order_id) == {"orderId": order_id, "paymentStatus": "processing",
                                                "clientSecret": None, "nextAction": None, "lastError": None}
    again = client.patch(f"/api/orders/{order_id}/paid", headers=auth)
    assert again.status_code == 202 and count_events(db, order_id, "payment_processing") == 1

    canceled = client.post(f"/api/orders/{order_id}/cancel", headers=auth)

    assert (canceled.status_code, canceled.json["message"]) == (400, WAIT_FOR_IT)
    assert real_stripe.count("POST /v1/payment_intents/{id}/cancel") == 0  # Stripe could not have stopped it
    assert (fresh_order(db, order_id).status, make.stock_of(Product, product.id)) == ("pending", 7)

    real_stripe.succeed(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 204
    order = _order(client, auth, order_id)
    assert (order["status"], order["paymentStatus"], order["paymentMethodType"]) == ("confirmed", "paid", "card")
    assert count_events(db, order_id, "payment_succeeded") == 1
    third = client.patch(f"/api/orders/{order_id}/paid", headers=auth)
    assert (third.status_code, third.json["message"]) == (400, "Order has already been marked as paid")
    assert _payment(client, auth, order_id)["clientSecret"] is None
    assert _mails(db, order_id) == ["payment_processing", "order_confirmed"]


def test_a_processing_payment_that_fails_is_payable_again_from_the_failure(client, make, shop, db, real_stripe):
    _customer, auth, product, _method = shop
    order_id, pi_id = place_online(client, make, shop, quantity=2)
    secret = fresh_order(db, order_id).client_secret
    real_stripe.start_processing(pi_id, "card")
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 202
    assert fresh_order(db, order_id).payable_since is None
    real_stripe.fail_processing(pi_id, message=DECLINED)

    paid = client.patch(f"/api/orders/{order_id}/paid", headers=auth)

    assert (paid.status_code, paid.json["message"]) == (
        400, f"Payment has not succeeded: the PaymentIntent is requires_payment_method ({DECLINED})")
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status, order.payment_error) == ("pending", "failed", DECLINED)
    assert order.payable_since > order.created_at  # its time to pay counts from the failure
    assert _payment(client, auth, order_id) == {"orderId": order_id, "paymentStatus": "failed",
                                                "clientSecret": secret, "nextAction": None, "lastError": DECLINED}
    assert _mails(db, order_id) == ["payment_processing", "payment_failed"]

    canceled = client.post(f"/api/orders/{order_id}/cancel", headers=auth)  # settled: now it may be canceled

    assert (canceled.status_code, canceled.json["status"]) == (200, "canceled")
    assert make.stock_of(Product, product.id) == 10
    assert real_stripe.payment_intent(pi_id)["status"] == "canceled"


def test_a_step_on_the_banks_page_is_shown_resumed_and_paid(client, make, shop, db, real_stripe):
    _customer, auth, _product, _method = shop
    order_id, pi_id = place_online(client, make, shop)
    secret = fresh_order(db, order_id).client_secret
    real_stripe.require_action(pi_id, "card", return_url=f"https://shop.example.com/shop/?order={order_id}")

    paid = client.patch(f"/api/orders/{order_id}/paid", headers=auth)

    assert (paid.status_code, paid.json["message"]) == (
        400, "Payment has not succeeded: the PaymentIntent is requires_action")
    assert _payment(client, auth, order_id) == {
        "orderId": order_id, "paymentStatus": "action_required", "clientSecret": secret,
        "nextAction": {"type": "redirect_to_url", "redirectUrl": real_stripe.redirect_url(pi_id)}, "lastError": None}
    assert _order(client, auth, order_id)["events"][-1]["detail"] == {
        "paymentIntentId": pi_id, "nextAction": "redirect_to_url", "source": "paid_endpoint"}
    assert _mails(db, order_id) == []  # the customer is paying at this moment: no email

    back = requests.post(real_stripe.redirect_url(pi_id), data={"outcome": "authorize"}, allow_redirects=False,
                         timeout=10)  # the customer authorizes it on the bank's page
    assert "redirect_status=succeeded" in back.headers["Location"]

    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 204
    assert _payment(client, auth, order_id) == {"orderId": order_id, "paymentStatus": "paid", "clientSecret": None,
                                                "nextAction": None, "lastError": None}


def test_a_failed_step_leaves_the_last_error_and_the_secret_to_pay_again(client, make, shop, db, real_stripe):
    _customer, auth, _product, _method = shop
    order_id, pi_id = place_online(client, make, shop)
    real_stripe.require_action(pi_id, "card")
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 400
    real_stripe.fail_action(pi_id)

    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 400

    state = _payment(client, auth, order_id)
    assert (state["paymentStatus"], state["nextAction"]) == ("failed", None)
    assert state["lastError"].startswith("The provided PaymentMethod has failed authentication")
    assert state["clientSecret"] == fresh_order(db, order_id).client_secret
    assert fresh_order(db, order_id).payable_since is None  # a failed step gives no extra time


def test_the_payment_of_an_order_is_its_customers_alone(client, make, shop, db):
    customer, auth, product, method = shop
    order_id, _pi_id = place_online(client, make, shop)
    _other, other_auth = make.shopper()
    _admin, admin_auth = make.admin()

    for headers in (other_auth, admin_auth):  # the client secret confirms a payment: nobody else's to read
        answer = client.get(f"/api/orders/{order_id}/payment", headers=headers)
        assert (answer.status_code, answer.json["message"]) == (404, "Order not found")
    unknown = client.get("/api/orders/00000000-0000-4000-8000-000000000000/payment", headers=auth)
    assert unknown.status_code == 404
    assert client.get(f"/api/orders/{order_id}/payment").status_code == 401
    cash = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
    cash_id = cash.headers["Location"].rsplit("/", 1)[1]
    assert _payment(client, auth, cash_id) == {"orderId": cash_id, "paymentStatus": "unpaid", "clientSecret": None,
                                               "nextAction": None, "lastError": None}


def test_the_client_secret_is_handed_out_only_while_the_order_can_be_paid(client, make, shop, db):
    _customer, auth, _product, _method = shop
    order_id, _pi_id = place_online(client, make, shop)
    secret = fresh_order(db, order_id).client_secret
    assert _payment(client, auth, order_id)["clientSecret"] == secret
    assert client.post(f"/api/orders/{order_id}/cancel", headers=auth).status_code == 200
    assert _payment(client, auth, order_id) == {"orderId": order_id, "paymentStatus": "unpaid", "clientSecret": None,
                                                "nextAction": None, "lastError": None}
    with db.begin():
        assert db.get(Order, order_id).client_secret == secret  # kept: a replay of the order's key is refused (409)
