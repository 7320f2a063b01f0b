"""PAYMENT_CAPTURE=on_shipment end to end: the Procfile's web and worker on Redis, Stripe's own API mode, and
the real-shaped Stripe sending the signed events real Stripe sends (`amount_capturable_updated` when a card is
held, `succeeded` when it is captured, `canceled` when a hold lapses). Orders go through the stack's HTTP API."""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.notifications.models import Notification
from orders_service.orders.models import OrderEvent
from orders_service.webhooks.models import OutboundEvent
from tests.support.orders import count_events, fresh_order, place_online_over_http
from tests.support.processes import Stack, wait_until
from tests.support.stripe import WEBHOOK_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("capture_stack")]
SHIPPED = {"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"}


@pytest.fixture(scope="module")
def capture_stack(base_env, redis_broker_url):
    """web + worker holding cards until shipment, against Stripe itself (not the emulator), on a Redis database
    of their own."""
    env = dict(base_env, PAYMENT_CAPTURE="on_shipment", STRIPE_EMULATOR="false", REDRIVE_AFTER_SECONDS="1",
               CELERY_BROKER_URL=redis_broker_url.rsplit("/", 1)[0] + "/4")
    env.pop("STRIPE_PAYMENT_METHODS", None)  # the default with Stripe's own API: the Dashboard's methods
    running = Stack(env)
    yield running
    running.close()


@pytest.fixture
def stack(capture_stack, real_stripe):
    """Stripe's webhooks go to the stack while the test runs."""
    with real_stripe.webhooks_to(capture_stack.url, WEBHOOK_SECRET):
        yield capture_stack


def _authorized_by_webhook(stack, make, shop, real_stripe, db, quantity=1):
    order_id, pi_id = place_online_over_http(stack.url, make, shop, quantity)
    real_stripe.authorize(pi_id)
    wait_until(lambda: fresh_order(db, order_id).payment_status == "authorized", timeout=30)
    return order_id, pi_id


def _outbound(db, order_id):
    db.expire_all()
    with db.begin():
        return list(db.scalars(select(OutboundEvent.type).where(OutboundEvent.order_id == order_id)
                               .order_by(OutboundEvent.order_sequence)))


def test_held_at_payment_captured_at_shipment_paid_once(stack, make, shop, real_stripe, stripe_emulator, db):
    _customer, auth, product, _method = shop
    _admin, admin_auth = make.admin()
    order_id, pi_id = _authorized_by_webhook(stack, make, shop, real_stripe, db, quantity=2)
    assert fresh_order(db, order_id).status == "confirmed"
    paid = requests.patch(f"{stack.url}/api/orders/{order_id}/paid", headers=auth, timeout=30)
    assert (paid.status_code, paid.json()["message"]) == (400, "Order has already been marked as paid")

    shipped = requests.patch(f"{stack.url}/api/admin/orders/{order_id}", json=SHIPPED, headers=admin_auth,
                             timeout=30)

    assert shipped.status_code == 200, shipped.text
    assert (shipped.json()["status"], shipped.json()["paymentStatus"]) == ("shipped", "paid")
    assert stripe_emulator.payment_intent(pi_id).status == "succeeded"
    real_stripe.wait_for_webhooks("payment_intent.succeeded")  # the capture's own event comes, and changes nothing
    wait_until(lambda: count_events(db, order_id, "webhook_received") >= 2, timeout=30)
    assert count_events(db, order_id, "payment_captured") == 1
    assert count_events(db, order_id, "payment_authorized") == 1
    assert _outbound(db, order_id) == ["order.created", "order.payment_authorized", "order.paid", "order.shipped"]
    assert make.stock_of(Product, product.id) == 98


def test_a_lapsed_hold_cancels_the_order_through_the_worker(stack, make, shop, real_stripe, db):
    _customer, _auth, product, _method = shop
    order_id, pi_id = _authorized_by_webhook(stack, make, shop, real_stripe, db, quantity=3)
    assert make.stock_of(Product, product.id) == 97

    real_stripe.lapse(pi_id)

    wait_until(lambda: fresh_order(db, order_id).status == "canceled", timeout=30)
    assert make.stock_of(Product, product.id) == 100
    assert count_events(db, order_id, "authorization_lapsed") == 1
    with db.begin():
        detail = db.scalar(select(OrderEvent.detail).where(OrderEvent.order_id == order_id,
                                                           OrderEvent.type == "authorization_lapsed"))
        kinds = list(db.scalars(select(Notification.kind).where(Notification.order_id == order_id)))
    assert (detail["cancellationReason"], detail["source"]) == ("automatic", "webhook")
    assert "authorization_lapsed" in kinds
    assert fresh_order(db, order_id).payment_status == "unpaid"
