"""Webhooks applied by a real Celery worker (on Redis and on RabbitMQ), and the periodic jobs."""
import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.orders.models import OrderEvent
from orders_service.payments import reconcile
from orders_service.payments.models import StripeEvent
from orders_service.payments.stripe_gateway import StripeGateway
from orders_service.queue import Tasks
from tests.support.database import TrailGate
from tests.support.orders import count_events as _events
from tests.support.orders import fresh_order as _order
from tests.support.orders import place_online as _place_online
from tests.support.orders import post_event
from tests.support.processes import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stack")]


def _deliver(stack, event_type, intent, event_id=None):
    return post_event(stack, event_type, intent.to_dict(), event_id)[:2]


def _succeeded_source(db, order_id):
    with db.begin():
        return db.scalar(select(OrderEvent.detail["source"].as_string()).where(
            OrderEvent.order_id == order_id, OrderEvent.type == "payment_succeeded"))


def _events_of(db, order_id):
    """Whether each stored event about the order was processed (the emulator may still deliver a late
    event of an earlier test: a test waits for its own orders' events)."""
    with db.begin():
        return [processed is not None for processed in db.scalars(
            select(StripeEvent.processed_at).where(StripeEvent.order_id == order_id))]


def _all_processed(db, order_id):
    return all(_events_of(db, order_id))


def test_the_emulators_webhook_marks_the_order_paid_without_paid_call(webhooks_on, client, make, db, shop,
                                                                     stripe_emulator):
    _customer, auth, *_ = shop
    order_id, pi_id = _place_online(client, make, shop)
    stripe_emulator.pay(pi_id)

    # The inbox's processed_at is the last commit of applying an event (the trail's webhook_received with it).
    wait_until(lambda: _events_of(db, order_id) and all(_events_of(db, order_id)), timeout=15)
    order = client.get(f"/api/orders/{order_id}", headers=auth).json
    assert order["status"] == "confirmed"
    assert [e["type"] for e in order["events"]].count("payment_succeeded") == 1
    assert "webhook_received" in [e["type"] for e in order["events"]]
    again = client.patch(f"/api/orders/{order_id}/paid", headers=auth)
    assert (again.status_code, again.json["message"]) == (400, "Order has already been marked as paid")


@pytest.mark.parametrize("first", ["webhook", "paid_endpoint"])
def test_paid_call_and_webhook_racing_on_ten_orders(stack, client, make, db, database_url, shop, stripe_emulator,
                                                    first):
    """For each order, one path (the webhook's worker, or PATCH /paid) is held at the trail inside its
    transaction while the other one runs into the same order: only the row lock keeps the payment from
    being applied twice, and the one held first is the one that applies it."""
    _customer, auth, *_ = shop
    orders = [_place_online(client, make, shop) for _ in range(10)]
    intents = {order_id: stripe_emulator.pay(pi_id) for order_id, pi_id in orders}

    def webhook(order_id):
        return _deliver(stack, "payment_intent.succeeded", intents[order_id])

    def paid(order_id):
        return requests.patch(f"{stack.url}/api/orders/{order_id}/paid", headers=auth, timeout=60)

    second = "paid_endpoint" if first == "webhook" else "webhook"
    racers = {"webhook": webhook, "paid_endpoint": paid}
    with TrailGate(database_url, "payment_succeeded") as gate, ThreadPoolExecutor(max_workers=2) as pool:
        for order_id, _ in orders:
            calls = {first: pool.submit(racers[first], order_id)}
            gate.wait_for_waiters(1)  # the first path is inside its transaction, at the trail
            calls[second] = pool.submit(racers[second], order_id)
            gate.wait_for_waiters(2)  # the second is blocked too: on the row lock (or, without it, at the trail)
            gate.open()
            response = calls["paid_endpoint"].result()
            calls["webhook"].result()
            wait_until(functools.partial(_all_processed, db, order_id), timeout=30)
            gate.close()

            if first == "paid_endpoint":
                assert response.status_code == 204, response.text
            else:
                assert (response.status_code, response.json()["message"]) == (
                    400, "Order has already been marked as paid"), response.text
            assert _order(db, order_id).payment_status == "paid"
            assert _events(db, order_id, "payment_succeeded") == 1
            assert _succeeded_source(db, order_id) == first


def test_repeated_and_out_of_order_events_apply_once(stack, client, make, db, shop, stripe_emulator):
    order_id, pi_id = _place_online(client, make, shop)
    intent = stripe_emulator.pay(pi_id)
    body, headers = _deliver(stack, "payment_intent.succeeded", intent)
    for _ in range(4):
        assert requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30).ok
    _deliver(stack, "payment_intent.payment_failed", intent)  # arrives late, after the success

    wait_until(lambda: len(_events_of(db, order_id)) == 2 and _all_processed(db, order_id), timeout=20)
    order = _order(db, order_id)
    assert (order.status, order.payment_status) == ("confirmed", "paid")
    assert _events(db, order_id, "payment_succeeded") == 1
    assert _events(db, order_id, "payment_failed") == 0
    assert _events(db, order_id, "webhook_received") == 2


def test_a_lost_webhook_is_made_good_by_reconciliation(stack, client, make, db, shop, stripe_emulator):
    order_id, pi_id = _place_online(client, make, shop)
    stripe_emulator.pay(pi_id)  # no endpoint is registered: no webhook comes

    stack.enqueue(Tasks.RECONCILE_PAYMENTS)

    wait_until(lambda: _order(db, order_id).payment_status == "paid", timeout=15)
    assert _events(db, order_id, "payment_succeeded") == 1


def test_unpaid_orders_expire_and_release_stock(stack, client, make, db, shop, stripe_emulator):
    _customer, _auth, product, _method = shop
    order_id, pi_id = _place_online(client, make, shop, quantity=3)
    assert make.stock_of(Product, product.id) == 97
    wait_until(lambda: stack.ttl_passed(_order(db, order_id)), timeout=10)

    stack.enqueue(Tasks.EXPIRE_UNPAID_ORDERS)

    wait_until(lambda: _order(db, order_id).status == "expired", timeout=15)
    assert make.stock_of(Product, product.id) == 100
    assert stripe_emulator.payment_intent(pi_id).status == "canceled"
    assert _events(db, order_id, "expired") == 1


@pytest.fixture
def expire_while_stripe_is_unreachable(settings, session_factory):
    """Run the expiry job with the provider out of reach: the PaymentIntent stays payable."""
    def run():
        gateway = StripeGateway(dataclasses.replace(settings, stripe_api_base=f"http://127.0.0.1:{free_port()}",
                                                    stripe_timeout_seconds=1.0))
        return reconcile.expire_unpaid_orders(session_factory, gateway, ttl_seconds=0)
    return run


def test_a_payment_after_expiry_revives_the_order(stack, client, make, db, shop, stripe_emulator,
                                                  expire_while_stripe_is_unreachable):
    _customer, _auth, product, _method = shop
    order_id, pi_id = _place_online(client, make, shop, quantity=2)
    assert expire_while_stripe_is_unreachable() == 1
    assert make.stock_of(Product, product.id) == 100

    _deliver(stack, "payment_intent.succeeded", stripe_emulator.pay(pi_id))

    wait_until(lambda: _order(db, order_id).status == "confirmed", timeout=15)
    assert _order(db, order_id).payment_status == "paid"
    assert make.stock_of(Product, product.id) == 98
    assert _events(db, order_id, "late_payment_revived") == 1


def test_a_payment_after_expiry_is_refunded_when_the_stock_is_gone(stack, client, make, db, shop, stripe_emulator,
                                                                   expire_while_stripe_is_unreachable):
    customer, auth, product, method = shop
    order_id, pi_id = _place_online(client, make, shop, quantity=2)
    assert expire_while_stripe_is_unreachable() == 1
    sold_out = client.post("/api/orders", json=make.order_body(customer, method, [(product, 100)]), headers=auth)
    assert sold_out.status_code == 204

    _deliver(stack, "payment_intent.succeeded", stripe_emulator.pay(pi_id))

    wait_until(lambda: _order(db, order_id).payment_status == "refunded", timeout=15)
    assert _order(db, order_id).status == "expired"
    assert make.stock_of(Product, product.id) == 0
    refunds = stripe_emulator.client.v1.refunds.list(params={"payment_intent": pi_id}).data
    assert [r.amount for r in refunds] == [_order(db, order_id).total_cents]
    assert _events(db, order_id, "late_payment_refund_due") == 1
    assert _events(db, order_id, "refunded") == 1
