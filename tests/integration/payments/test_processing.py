"""The rules of a payment the provider is processing, as the periodic jobs keep them (run here as beat runs
them, against the real-shaped Stripe, with no webhook): it keeps its stock and never expires, even past its
time; reconciliation asks about it, sparingly; a later failure gives a whole payment time again."""
from datetime import timedelta

import pytest
from sqlalchemy import update

from orders_service.catalog.models import Product
from orders_service.orders.models import Order
from orders_service.payments import reconcile
from tests.support.orders import count_events, fresh_order, place_online

TTL = 60
GET_PI = "GET /v1/payment_intents/{id}"
CANCEL_PI = "POST /v1/payment_intents/{id}/cancel"


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    return customer, auth, make.product(price_cents=20_00, stock=10), make.delivery_method(price_cents=0,
                                                                                           countries=[])


def _age(db, order_id, **columns_ago):
    """Move the order's clocks back: `created_at=120` makes it 120 s older."""
    order = fresh_order(db, order_id)
    with db.begin():
        db.execute(update(Order).where(Order.id == order_id).values(
            **{name: getattr(order, name) - timedelta(seconds=ago) for name, ago in columns_ago.items()}))


def _expire(session_factory, runtime):
    return reconcile.expire_unpaid_orders(session_factory, runtime.gateway, ttl_seconds=TTL)


def _reconcile(session_factory, runtime):
    return reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0,
                                        processing_every_seconds=3600)


def _source(client, auth, order_id, event_type):
    events = client.get(f"/api/orders/{order_id}", headers=auth).json["events"]
    return [e["detail"].get("source") for e in events if e["type"] == event_type]


def test_a_processing_order_outlives_its_time_with_its_stock_and_a_failure_restarts_the_clock(
        client, make, shop, db, real_stripe, session_factory, runtime):
    _customer, auth, product, _method = shop
    order_id, pi_id = place_online(client, make, shop, quantity=3)
    unpaid_id, unpaid_pi = place_online(client, make, shop, quantity=1)  # the same age, and nobody pays it
    real_stripe.start_processing(pi_id, "card")
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 202
    _age(db, order_id, created_at=10 * TTL)
    _age(db, unpaid_id, created_at=10 * TTL)

    assert _expire(session_factory, runtime) == 1

    assert fresh_order(db, unpaid_id).status == "expired"  # the job ran, and expired what was due
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("pending", "processing")
    assert make.stock_of(Product, product.id) == 7
    assert [e["path"].split("/")[3] for e in real_stripe.log if e["endpoint"] == CANCEL_PI] == [unpaid_pi]

    real_stripe.fail_processing(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=auth).status_code == 400  # failed, payable again
    _age(db, order_id, payable_since=TTL - 5)  # the failure was almost a whole payment time ago
    assert _expire(session_factory, runtime) == 0
    assert fresh_order(db, order_id).status == "pending"

    _age(db, order_id, payable_since=10)  # now it was more than that ago

    assert _expire(session_factory, runtime) == 1
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("expired", "failed")
    assert make.stock_of(Product, product.id) == 10
    assert real_stripe.payment_intent(pi_id)["status"] == "canceled"


def test_expiry_finds_a_processing_payment_whose_webhook_never_came(client, make, shop, db, real_stripe,
                                                                   session_factory, runtime):
    _customer, auth, product, _method = shop
    order_id, pi_id = place_online(client, make, shop, quantity=2)
    real_stripe.start_processing(pi_id, "card")  # the order never heard of it: still unpaid
    _age(db, order_id, created_at=10 * TTL)

    assert _expire(session_factory, runtime) == 0

    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status, order.payment_method_type) == ("pending", "processing", "card")
    assert _source(client, auth, order_id, "payment_processing") == ["expiry"]
    assert make.stock_of(Product, product.id) == 8
    assert real_stripe.payment_intent(pi_id)["status"] == "processing"  # Stripe refused the cancel


def test_reconciliation_asks_about_a_processing_payment_sparingly_until_it_settles(
        client, make, shop, db, real_stripe, session_factory, runtime):
    _customer, auth, product, _method = shop
    order_id, pi_id = place_online(client, make, shop)
    real_stripe.start_processing(pi_id, "card")  # no webhook: only reconciliation can learn of it
    real_stripe.reset_calls()

    _reconcile(session_factory, runtime)

    assert fresh_order(db, order_id).payment_status == "processing"
    assert _source(client, auth, order_id, "payment_processing") == ["reconciliation"]
    assert real_stripe.count(GET_PI) == 1
    real_stripe.succeed(pi_id)  # its webhook is lost too

    _reconcile(session_factory, runtime)  # within the hour: not asked again

    assert real_stripe.count(GET_PI) == 1
    assert fresh_order(db, order_id).payment_status == "processing"
    _age(db, order_id, reconciled_at=3601)

    _reconcile(session_factory, runtime)

    assert real_stripe.count(GET_PI) == 2
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("confirmed", "paid")
    assert _source(client, auth, order_id, "payment_succeeded") == ["reconciliation"]
    assert count_events(db, order_id, "payment_succeeded") == 1
    assert make.stock_of(Product, product.id) == 9


def test_an_unpaid_order_is_still_asked_about_at_every_interval(client, make, shop, db, real_stripe,
                                                                session_factory, runtime):
    """Sparing processing payments costs the others nothing: an unpaid order is read on each run (interval 0)."""
    order_id, _pi_id = place_online(client, make, shop)
    real_stripe.reset_calls()
    _reconcile(session_factory, runtime)
    _reconcile(session_factory, runtime)
    assert real_stripe.count(GET_PI) == 2
    assert fresh_order(db, order_id).status == "pending"
