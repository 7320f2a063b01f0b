"""The Procfile's beat schedules the periodic jobs by itself: nobody enqueues them in these tests."""
import pytest
from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.orders.models import OrderEvent
from tests.support.orders import count_events, fresh_order, place_online
from tests.support.processes import STACK_TIMINGS, Stack, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("beat")]


@pytest.fixture
def beat_stack(base_env):
    """web, worker and beat with every periodic job due each second; webhooks go nowhere."""
    stack = Stack(dict(base_env, MAINTENANCE_INTERVAL_SECONDS="1", **STACK_TIMINGS),
                  processes=("web", "worker", "beat"))
    yield stack
    stack.close()


def test_beat_expires_unpaid_orders_and_reconciles_paid_ones(beat_stack, client, make, db, shop, stripe_emulator):
    _customer, _auth, product, _method = shop
    abandoned, abandoned_pi = place_online(client, make, shop, quantity=2)
    paid, paid_pi = place_online(client, make, shop, quantity=3)
    stripe_emulator.pay(paid_pi)  # no webhook endpoint is registered: only reconciliation can learn of it

    wait_until(lambda: fresh_order(db, abandoned).status == "expired", timeout=60)
    wait_until(lambda: fresh_order(db, paid).payment_status == "paid", timeout=60)
    assert stripe_emulator.payment_intent(abandoned_pi).status == "canceled"
    assert make.stock_of(Product, product.id) == 97  # the abandoned order's 2 are back, the paid order's 3 are not
    assert (count_events(db, abandoned, "expired"), count_events(db, paid, "payment_succeeded")) == (1, 1)
    assert fresh_order(db, paid).status == "confirmed"
    with db.begin():  # reconciliation asked first: the order was paid before its payment time was up
        source = db.scalar(select(OrderEvent.detail["source"].as_string()).where(
            OrderEvent.order_id == paid, OrderEvent.type == "payment_succeeded"))
    assert source == "reconciliation"


@pytest.fixture
def capture_beat_stack(base_env):
    """web, worker and beat with PAYMENT_CAPTURE=on_shipment, every periodic job due each second."""
    stack = Stack(dict(base_env, MAINTENANCE_INTERVAL_SECONDS="1", PAYMENT_CAPTURE="on_shipment"),
                  processes=("web", "worker", "beat"))
    yield stack
    stack.close()


def test_beat_captures_an_authorization_a_day_before_it_lapses(capture_beat_stack, app_with, make, db, shop,
                                                               real_stripe, stripe_emulator):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from orders_service.orders.models import Order

    held = app_with(payment_capture="on_shipment").test_client()
    soon, soon_pi = place_online(held, make, shop)
    later, later_pi = place_online(held, make, shop)
    for order_id, pi_id in ((soon, soon_pi), (later, later_pi)):
        real_stripe.authorize(pi_id)
        assert held.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 204
    with db.begin():  # the first hold lapses in 23 hours, the other in 25
        db.execute(update(Order).where(Order.id == soon).values(
            capture_before=datetime.now(timezone.utc) + timedelta(hours=23)))
        db.execute(update(Order).where(Order.id == later).values(
            capture_before=datetime.now(timezone.utc) + timedelta(hours=25)))

    wait_until(lambda: fresh_order(db, soon).payment_status == "paid", timeout=60)
    assert stripe_emulator.payment_intent(soon_pi).status == "succeeded"
    assert fresh_order(db, soon).status == "confirmed"  # captured, not shipped
    with db.begin():
        source = db.scalar(select(OrderEvent.detail["source"].as_string()).where(
            OrderEvent.order_id == soon, OrderEvent.type == "payment_captured"))
    assert source == "capture_job"
    assert fresh_order(db, later).payment_status == "authorized"
    assert stripe_emulator.payment_intent(later_pi).status == "requires_capture"
