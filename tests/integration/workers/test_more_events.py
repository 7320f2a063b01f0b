"""More Stripe events applied by a real worker (on Redis and on RabbitMQ): disputes, canceled
PaymentIntents, and event types the service does not act on."""
import uuid

import pytest
from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.orders.models import OrderEvent
from orders_service.payments.models import StripeEvent
from tests.support.orders import count_events as _events
from tests.support.orders import fresh_order as _order
from tests.support.orders import place_online as _place_online
from tests.support.orders import post_event
from tests.support.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stack")]


def _post(stack, event_type, obj, event_id=None):
    return post_event(stack, event_type, obj, event_id)[2]


def _stored(db, event_id):
    db.expire_all()
    with db.begin():
        return db.get(StripeEvent, event_id)


def _processed(db, event_id):
    event = _stored(db, event_id)
    return event is not None and event.processed_at is not None


def _api_event_types(client, auth, order_id):
    response = client.get(f"/api/orders/{order_id}", headers=auth)
    assert response.status_code == 200, response.json
    return [e["type"] for e in response.json["events"]]


def test_a_dispute_flags_the_order_once(stack, client, make, db, shop, stripe_emulator):
    _customer, auth, *_ = shop
    order_id, pi_id = _place_online(client, make, shop)
    intent = stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 204
    dispute = {"id": f"dp_{uuid.uuid4().hex[:24]}", "object": "dispute", "payment_intent": pi_id,
               "reason": "fraudulent", "amount": intent.amount, "currency": intent.currency, "status": "needs_response"}
    event_id = f"evt_{uuid.uuid4().hex[:24]}"

    assert _post(stack, "charge.dispute.created", dispute, event_id)["duplicate"] is False

    wait_until(lambda: _processed(db, event_id), timeout=15)  # the event's last commit
    assert "dispute_opened" in _api_event_types(client, auth, order_id)
    flagged = _order(db, order_id)
    assert flagged.disputed_at is not None
    assert (flagged.status, flagged.payment_status) == ("confirmed", "paid")
    assert _stored(db, event_id).outcome == "dispute_opened"
    with db.begin():
        detail = db.scalar(select(OrderEvent.detail).where(OrderEvent.order_id == order_id,
                                                           OrderEvent.type == "dispute_opened"))
    assert (detail["disputeId"], detail["reason"]) == (dispute["id"], "fraudulent")

    # The same event again is a duplicate; the same dispute under a new event id flags nothing more.
    assert _post(stack, "charge.dispute.created", dispute, event_id)["duplicate"] is True
    other_id = f"evt_{uuid.uuid4().hex[:24]}"
    _post(stack, "charge.dispute.created", dispute, other_id)
    wait_until(lambda: _processed(db, other_id), timeout=15)
    assert _stored(db, other_id).outcome == "already flagged"
    assert _events(db, order_id, "dispute_opened") == 1
    assert _events(db, order_id, "webhook_received") == 2  # one per distinct event id
    assert _order(db, order_id).disputed_at == flagged.disputed_at


def test_a_canceled_payment_intent_cancels_the_order_and_releases_stock(stack, client, make, db, shop,
                                                                        stripe_emulator):
    _customer, auth, product, _method = shop
    order_id, pi_id = _place_online(client, make, shop, quantity=3)
    assert make.stock_of(Product, product.id) == 97
    canceled = stripe_emulator.client.v1.payment_intents.cancel(pi_id)
    assert canceled.status == "canceled"

    _post(stack, "payment_intent.canceled", canceled.to_dict())

    wait_until(lambda: _order(db, order_id).status == "canceled", timeout=15)
    assert "payment_canceled" in _api_event_types(client, auth, order_id)
    assert _events(db, order_id, "payment_canceled") == 1
    assert make.stock_of(Product, product.id) == 100


def test_a_canceled_payment_intent_after_the_customer_canceled_releases_nothing_twice(stack, client, make, db, shop,
                                                                                     stripe_emulator):
    _customer, auth, product, _method = shop
    order_id, pi_id = _place_online(client, make, shop, quantity=3)
    assert client.post(f"/api/orders/{order_id}/cancel", headers=auth).status_code == 200
    assert make.stock_of(Product, product.id) == 100
    intent = stripe_emulator.payment_intent(pi_id)
    assert intent.status == "canceled"  # the cancel route canceled it at the provider
    event_id = f"evt_{uuid.uuid4().hex[:24]}"

    _post(stack, "payment_intent.canceled", intent.to_dict(), event_id)

    wait_until(lambda: _processed(db, event_id), timeout=15)
    assert _order(db, order_id).status == "canceled"
    assert make.stock_of(Product, product.id) == 100
    assert _events(db, order_id, "payment_canceled") == 0


@pytest.mark.parametrize("event_type, linked", [("customer.created", False), ("charge.succeeded", True)])
def test_an_event_type_the_service_does_not_handle_is_only_stored(stack, client, make, db, shop, stripe_emulator,
                                                                  event_type, linked):
    _customer, _auth, product, _method = shop
    order_id, pi_id = _place_online(client, make, shop, quantity=2)
    stripe_emulator.pay(pi_id)  # paid at the provider: a worker that applied this event would mark the order paid
    if linked:
        obj = {"id": f"ch_{uuid.uuid4().hex[:24]}", "object": "charge", "payment_intent": pi_id,
               "metadata": {"order_id": order_id}}
    else:
        obj = {"id": f"cus_{uuid.uuid4().hex[:14]}", "object": "customer", "email": "someone@example.com"}
    event_id = f"evt_{uuid.uuid4().hex[:24]}"

    assert _post(stack, event_type, obj, event_id)["duplicate"] is False

    wait_until(lambda: _processed(db, event_id), timeout=15)
    stored = _stored(db, event_id)
    assert (stored.type, stored.outcome, stored.attempts) == (event_type, "stored only", 1)
    order = _order(db, order_id)
    assert (order.status, order.payment_status, order.paid_at) == ("pending", "unpaid", None)
    assert _events(db, order_id, "payment_succeeded") == 0
    assert make.stock_of(Product, product.id) == 98


def test_a_declined_payment_through_the_webhook_is_recorded_and_the_customer_may_pay_again(
        webhooks_on, client, make, db, shop, stripe_emulator):
    _customer, auth, _product, _method = shop
    order_id, pi_id = _place_online(client, make, shop)
    stripe_emulator.decline(pi_id)  # the emulator sends payment_intent.payment_failed to the webhook

    def processed_failure():
        with db.begin():
            return db.scalar(select(StripeEvent.processed_at).where(
                StripeEvent.type == "payment_intent.payment_failed", StripeEvent.order_id == order_id))

    wait_until(processed_failure, timeout=20)
    order = client.get(f"/api/orders/{order_id}", headers=auth).json
    assert (order["status"], order["paymentStatus"]) == ("pending", "failed")
    failed = [e for e in order["events"] if e["type"] == "payment_failed"]
    assert len(failed) == 1 and failed[0]["detail"]["source"] == "webhook" and failed[0]["detail"]["error"]


@pytest.mark.parametrize("mismatch", ["amount", "currency"])
def test_the_webhook_path_never_accepts_another_amount_or_currency(stack, client, make, db, shop, stripe_emulator,
                                                                   mismatch):
    """A validly signed event for a PaymentIntent of this order but of another sum: the order stays unpaid."""
    from sqlalchemy import update

    from orders_service.orders.models import Order

    _customer, auth, _product, _method = shop
    order_id, _pi_id = _place_online(client, make, shop)
    order = _order(db, order_id)
    wrong = stripe_emulator.client.v1.payment_intents.create(params={
        "amount": order.total_cents - 1 if mismatch == "amount" else order.total_cents,
        "currency": "usd" if mismatch == "amount" else "eur", "metadata": {"order_id": order_id},
        "payment_method": "pm_card_visa", "confirm": True})
    with db.begin():
        db.execute(update(Order).where(Order.id == order_id).values(payment_intent_id=wrong.id))
    event_id = f"evt_{uuid.uuid4().hex[:24]}"

    _post(stack, "payment_intent.succeeded", wrong.to_dict(), event_id)

    wait_until(lambda: _processed(db, event_id), timeout=15)
    assert _stored(db, event_id).outcome == "amount or currency differs from the order"
    assert (_order(db, order_id).status, _order(db, order_id).payment_status) == ("pending", "unpaid")
    assert _events(db, order_id, "payment_succeeded") == 0
