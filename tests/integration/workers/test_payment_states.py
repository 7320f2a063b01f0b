"""The payment states and the rules of a processing payment, end to end: the Procfile's web and worker on
Redis, Stripe's own API mode with the Dashboard's payment methods (`STRIPE_PAYMENT_METHODS=automatic`), and
the real-shaped Stripe driving what localstripe cannot (a SEPA debit processing, a bank's redirect page),
with the signed events real Stripe sends. Orders are placed and paid through the stack's HTTP API."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import select, update

from orders_service.catalog.models import Product
from orders_service.notifications.models import Notification
from orders_service.orders.models import Order, OrderEvent
from orders_service.payments.models import StripeEvent
from orders_service.queue import Tasks
from tests.support.orders import count_events, fresh_order
from tests.support.processes import STACK_TIMINGS, Stack, wait_until
from tests.support.stripe import WEBHOOK_SECRET
from tests.support.stripe_proxy import DASHBOARD_METHODS

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("payment_methods_stack")]
TTL = 6  # seconds an order may stay unpaid on this stack
GET_PI = "GET /v1/payment_intents/{id}"


@pytest.fixture(scope="module")
def methods_stack(base_env, redis_broker_url):
    """web + worker as against Stripe itself (not the emulator: the Payment Element's methods), on a Redis
    database of their own, with a short payment time; reconciliation asks about processing payments hourly."""
    env = dict(base_env, **STACK_TIMINGS)
    env.update(STRIPE_EMULATOR="false", ORDER_PAYMENT_TTL_SECONDS=str(TTL),
               CELERY_BROKER_URL=redis_broker_url.rsplit("/", 1)[0] + "/3")
    env.pop("STRIPE_PAYMENT_METHODS", None)  # the default with Stripe's own API: automatic
    running = Stack(env)
    yield running
    running.close()


@pytest.fixture
def stack(methods_stack, real_stripe):
    """The stack, with Stripe's webhooks (real-shaped, signed) going to its web while the test runs."""
    with real_stripe.webhooks_to(methods_stack.url, WEBHOOK_SECRET):
        yield methods_stack


def _place(stack, make, shop, quantity=1):
    customer, auth, product, method = shop
    answer = requests.post(f"{stack.url}/api/orders/with-payment", headers=auth, timeout=30,
                           json=make.order_body(customer, method, [(product, quantity)]))
    assert answer.status_code == 200, answer.text
    return answer.json()["orderId"], answer.json()["clientSecret"].split("_secret_")[0]


def _get(stack, auth, path):
    answer = requests.get(f"{stack.url}/api/orders/{path}", headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _paid(stack, auth, order_id):
    return requests.patch(f"{stack.url}/api/orders/{order_id}/paid", headers=auth, timeout=30)


def _payment_status(db, order_id):
    return fresh_order(db, order_id).payment_status


def _sources(db, order_id, event_type):
    with db.begin():
        return list(db.scalars(select(OrderEvent.detail["source"].as_string()).where(
            OrderEvent.order_id == order_id, OrderEvent.type == event_type)))


def _mails(db, order_id):
    with db.begin():
        return list(db.scalars(select(Notification.kind).where(Notification.order_id == order_id)
                               .order_by(Notification.created_at)))


def _events_done(db, order_id, event_type, count=1):
    """The stack's worker has applied `count` webhook events of that type about the order."""
    with db.begin():
        return len(db.scalars(select(StripeEvent.id).where(
            StripeEvent.order_id == order_id, StripeEvent.type == event_type,
            StripeEvent.processed_at.is_not(None))).all()) >= count


def _run(stack, db, task, witness):
    """Have the stack's worker run a periodic job once, as beat would: until `witness()` shows it ran."""
    stack.enqueue(task)
    wait_until(witness, timeout=30)


def _expired_at(db, order_id):
    with db.begin():
        return db.scalar(select(OrderEvent.at).where(OrderEvent.order_id == order_id, OrderEvent.type == "expired"))


def test_a_sepa_debit_is_processing_then_confirmed_once_by_its_webhook(stack, make, shop, db, real_stripe):
    _customer, auth, product, _method = shop
    order_id, pi_id = _place(stack, make, shop, quantity=2)
    created = real_stripe.payment_intent(pi_id)
    assert created["automatic_payment_methods"] == {"enabled": True}  # the Dashboard's methods, no list
    assert created["payment_method_types"] == DASHBOARD_METHODS

    real_stripe.start_processing(pi_id, "sepa_debit")  # the customer accepted the mandate in the Payment Element

    wait_until(lambda: _events_done(db, order_id, "payment_intent.processing"), timeout=20)
    order = _get(stack, auth, order_id)
    assert (order["status"], order["paymentStatus"]) == ("pending", "processing")
    assert _sources(db, order_id, "payment_processing") == ["webhook"]
    assert make.stock_of(Product, product.id) == 98
    # Back from the Payment Element, the page asks: the provider has it, and tells how it was paid.
    back = _paid(stack, auth, order_id)
    assert (back.status_code, back.json()) == (202, {"orderId": order_id, "paymentStatus": "processing"})
    assert _get(stack, auth, order_id)["paymentMethodType"] == "sepa_debit"
    assert count_events(db, order_id, "payment_processing") == 1
    refused = requests.post(f"{stack.url}/api/orders/{order_id}/cancel", headers=auth, timeout=30)
    assert refused.status_code == 400 and "still being processed" in refused.json()["message"]

    real_stripe.succeed(pi_id)  # days later, the bank paid

    wait_until(lambda: _events_done(db, order_id, "payment_intent.succeeded"), timeout=20)
    order = _get(stack, auth, order_id)
    assert (order["status"], order["paymentStatus"], order["paymentMethodType"]) == ("confirmed", "paid", "sepa_debit")
    assert _sources(db, order_id, "payment_succeeded") == ["webhook"]
    assert _mails(db, order_id) == ["payment_processing", "order_confirmed"]
    assert (_paid(stack, auth, order_id).json()["message"]) == "Order has already been marked as paid"
    assert make.stock_of(Product, product.id) == 98


def test_a_processing_order_outlives_its_ttl_with_its_stock_until_its_payment_fails(
        stack, make, shop, db, real_stripe):
    _customer, auth, product, _method = shop
    order_id, pi_id = _place(stack, make, shop, quantity=3)
    abandoned, _ = _place(stack, make, shop, quantity=1)  # placed with it; nobody pays it
    real_stripe.start_processing(pi_id, "sepa_debit")
    wait_until(lambda: _payment_status(db, order_id) == "processing", timeout=20)
    wait_until(lambda: stack.ttl_passed(fresh_order(db, abandoned)), timeout=2 * TTL)  # the later of the two

    _run(stack, db, Tasks.EXPIRE_UNPAID_ORDERS, lambda: fresh_order(db, abandoned).status == "expired")

    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("pending", "processing")
    assert make.stock_of(Product, product.id) == 97
    assert not [e for e in real_stripe.log if e["endpoint"] == "POST /v1/payment_intents/{id}/cancel"
                and pi_id in e["path"]]  # it was not even tried: Stripe cannot cancel it

    later, _ = _place(stack, make, shop)  # due one payment time from now: shows when expiry has run again
    real_stripe.fail_processing(pi_id)  # the debit comes back unpaid

    wait_until(lambda: _payment_status(db, order_id) == "failed", timeout=20)
    failed_at = fresh_order(db, order_id).payable_since
    assert failed_at is not None
    state = _get(stack, auth, f"{order_id}/payment")
    assert state["clientSecret"] and "insufficient funds" in state["lastError"]
    wait_until(lambda: stack.ttl_passed(fresh_order(db, later)), timeout=2 * TTL)
    _run(stack, db, Tasks.EXPIRE_UNPAID_ORDERS, lambda: fresh_order(db, later).status == "expired")
    # Its time to pay counts from the failure: due only if that run came a whole TTL after it.
    ran = _expired_at(db, later)
    expected = "expired" if (ran - failed_at).total_seconds() >= TTL else "pending"
    assert fresh_order(db, order_id).status == expected, (ran, failed_at)

    wait_until(lambda: (datetime.now(timezone.utc) - failed_at).total_seconds() > TTL, timeout=2 * TTL)
    _run(stack, db, Tasks.EXPIRE_UNPAID_ORDERS, lambda: fresh_order(db, order_id).status == "expired")

    assert make.stock_of(Product, product.id) == 100  # everything placed here is back
    assert real_stripe.payment_intent(pi_id)["status"] == "canceled"
    assert _get(stack, auth, f"{order_id}/payment")["clientSecret"] is None


def test_reconciliation_keeps_asking_sparingly_and_confirms_when_every_webhook_is_lost(
        stack, make, shop, db, real_stripe):
    _customer, auth, _product, _method = shop
    real_stripe.drop_webhooks = True
    order_id, pi_id = _place(stack, make, shop)
    _witness_order, witness_pi = _place(stack, make, shop)  # unpaid: read by every run
    real_stripe.start_processing(pi_id, "sepa_debit")

    def reads(pi):
        return sum(1 for e in real_stripe.log if e["endpoint"] == GET_PI and pi in e["path"])

    _run(stack, db, Tasks.RECONCILE_PAYMENTS, lambda: _payment_status(db, order_id) == "processing")
    assert _sources(db, order_id, "payment_processing") == ["reconciliation"]
    assert fresh_order(db, order_id).payment_method_type == "sepa_debit"  # a read tells how it is paid
    real_stripe.succeed(pi_id)
    asked, witnessed = reads(pi_id), reads(witness_pi)

    _run(stack, db, Tasks.RECONCILE_PAYMENTS, lambda: reads(witness_pi) > witnessed)  # within the hour

    assert reads(pi_id) == asked and _payment_status(db, order_id) == "processing"
    an_hour_ago = fresh_order(db, order_id).reconciled_at - timedelta(seconds=3601)
    with db.begin():  # an hour later
        db.execute(update(Order).where(Order.id == order_id).values(reconciled_at=an_hour_ago))

    _run(stack, db, Tasks.RECONCILE_PAYMENTS, lambda: _payment_status(db, order_id) == "paid")

    assert fresh_order(db, order_id).status == "confirmed"
    assert _sources(db, order_id, "payment_succeeded") == ["reconciliation"]
    assert reads(pi_id) == asked + 1


@pytest.mark.parametrize("first", ["webhook", "paid_endpoint", "reconciliation"])
def test_a_processing_payment_is_confirmed_once_whichever_path_comes_first(stack, make, shop, db, real_stripe,
                                                                             first):
    _customer, auth, _product, _method = shop
    order_id, pi_id = _place(stack, make, shop)
    witness, _ = _place(stack, make, shop)  # unpaid: stamped by every reconciliation run
    real_stripe.start_processing(pi_id, "sepa_debit")
    wait_until(lambda: _payment_status(db, order_id) == "processing", timeout=20)
    real_stripe.webhooks_paused = True
    real_stripe.succeed(pi_id)

    def webhook():
        real_stripe.webhooks_paused = False
        wait_until(lambda: _events_done(db, order_id, "payment_intent.succeeded"), timeout=20)

    def paid_endpoint():
        answer = _paid(stack, auth, order_id)
        assert answer.status_code == (204 if first == "paid_endpoint" else 400), answer.text

    def reconciliation():
        with db.begin():  # both due now, as an hour later
            db.execute(update(Order).where(Order.id.in_([order_id, witness])).values(reconciled_at=None))
        stack.enqueue(Tasks.RECONCILE_PAYMENTS)
        wait_until(lambda: fresh_order(db, witness).reconciled_at is not None, timeout=30)  # it ran
        if first == "reconciliation":
            wait_until(lambda: count_events(db, order_id, "payment_succeeded") == 1, timeout=30)

    paths = {"webhook": webhook, "paid_endpoint": paid_endpoint, "reconciliation": reconciliation}
    paths[first]()
    assert _payment_status(db, order_id) == "paid"
    for name, path in paths.items():
        if name != first:
            path()

    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("confirmed", "paid")
    assert _sources(db, order_id, "payment_succeeded") == [first]
    assert _mails(db, order_id) == ["payment_processing", "order_confirmed"]


def test_a_bank_redirect_is_shown_resumed_and_paid(stack, make, shop, db, real_stripe):
    _customer, auth, _product, _method = shop
    order_id, pi_id = _place(stack, make, shop)
    return_url = f"{stack.url}/shop/?order={order_id}"
    real_stripe.require_action(pi_id, "ideal", return_url)

    wait_until(lambda: _payment_status(db, order_id) == "action_required", timeout=20)
    state = _get(stack, auth, f"{order_id}/payment")  # after a reload, say
    assert state["nextAction"] == {"type": "redirect_to_url", "redirectUrl": real_stripe.redirect_url(pi_id)}
    assert state["clientSecret"].startswith(pi_id + "_secret_") and state["lastError"] is None
    real_stripe.webhooks_paused = True  # the customer is back before Stripe's event

    back = requests.post(state["nextAction"]["redirectUrl"], data={"outcome": "authorize"}, allow_redirects=False,
                         timeout=30)
    assert back.headers["Location"].startswith(return_url + "&payment_intent=" + pi_id)

    assert _paid(stack, auth, order_id).status_code == 204  # never trusting redirect_status: it asks Stripe
    order = _get(stack, auth, order_id)
    assert (order["status"], order["paymentStatus"], order["paymentMethodType"]) == ("confirmed", "paid", "ideal")
    real_stripe.webhooks_paused = False
    wait_until(lambda: _events_done(db, order_id, "payment_intent.succeeded"), timeout=20)
    assert count_events(db, order_id, "payment_succeeded") == 1
    assert [t for t in (e["type"] for e in _get(stack, auth, order_id)["events"]) if t.startswith("payment")] == [
        "payment_action_required", "payment_succeeded"]


def _reflects(order: dict, pi: dict, stock_held: bool) -> bool:
    """Whether the order shows what became of its PaymentIntent at Stripe."""
    status = pi["status"]
    if status == "succeeded":
        return (order["status"], order["payment"]) == ("confirmed", "paid") and stock_held
    if status == "canceled":
        return order["status"] in ("expired", "canceled") and order["payment_closed"] and not stock_held
    if status == "processing":
        return (order["status"], order["payment"]) == ("pending", "processing") and stock_held
    return order["status"] == "pending" and order["payment"] in ("unpaid", "action_required", "failed")


def _view(db, order_id) -> dict:
    order = fresh_order(db, order_id)
    return {"status": order.status, "payment": order.payment_status, "payment_closed": bool(order.payment_closed_at),
            "reconciled": order.reconciled_at is not None}


def test_no_payment_intent_the_service_opened_ends_without_its_order_reflecting_it(
        stack, make, db, real_stripe, stripe_emulator):
    """Every webhook lost; only the periodic jobs (run as beat runs them) learn what became of each payment."""
    customer, auth = make.shopper()
    method = make.delivery_method(countries=[])
    real_stripe.drop_webhooks = True
    ways = ["sepa_paid", "sepa_failed", "sepa_processing", "redirect_abandoned", "redirect_paid", "card_paid",
            "untouched"]
    products = {way: make.product(f"Product {way}", stock=5) for way in ways}
    orders = {way: _place(stack, make, (customer, auth, products[way], method), quantity=2) for way in ways}
    for way, (_order_id, pi_id) in orders.items():
        if way.startswith("sepa"):
            real_stripe.start_processing(pi_id, "sepa_debit")
        elif way.startswith("redirect"):
            real_stripe.require_action(pi_id, "klarna")
    real_stripe.succeed(orders["sepa_paid"][1])
    real_stripe.fail_processing(orders["sepa_failed"][1])
    real_stripe.succeed(orders["redirect_paid"][1])
    stripe_emulator.pay(orders["card_paid"][1])

    def settled():
        views = {way: (_view(db, order_id), real_stripe.payment_intent(pi_id),
                       make.stock_of(Product, products[way].id) == 3) for way, (order_id, pi_id) in orders.items()}
        return all(_reflects(*view) for view in views.values()) and all(
            view[1]["status"] in ("succeeded", "canceled", "processing") for view in views.values())

    def pending():
        return [o for o, _ in orders.values() if _view(db, o)["status"] == "pending"]

    # The abandoned ones expire once their TTL has passed in real time, however quick each round is.
    deadline = time.monotonic() + 5 * TTL
    while not settled():  # as beat would, every interval: reconcile (an hour passing for each), then expire
        assert time.monotonic() < deadline, {way: (_view(db, o), real_stripe.payment_intent(p)["status"])
                                             for way, (o, p) in orders.items()}
        time.sleep(0.5)
        due = pending()
        with db.begin():
            db.execute(update(Order).where(Order.id.in_(due)).values(reconciled_at=None))
        for task in (Tasks.RECONCILE_PAYMENTS, Tasks.EXPIRE_UNPAID_ORDERS):
            stack.enqueue(task)
        # The run has asked about every pending order (or the order is settled meanwhile); expiry's effect
        # shows in the next round's check.
        wait_until(lambda: all(_view(db, o)["reconciled"] for o in pending()), timeout=30)

    end = {way: real_stripe.payment_intent(pi_id)["status"] for way, (_o, pi_id) in orders.items()}
    assert end == {"sepa_paid": "succeeded", "sepa_failed": "canceled", "sepa_processing": "processing",
                   "redirect_abandoned": "canceled", "redirect_paid": "succeeded", "card_paid": "succeeded",
                   "untouched": "canceled"}
    # Every PaymentIntent at Stripe naming one of these orders is the order's own: none was left behind.
    ours = {o for o, _ in orders.values()}
    opened = [pi for pi in stripe_emulator.client.v1.payment_intents.list(params={"limit": 100}).data
              if pi.metadata.to_dict().get("order_id") in ours]
    assert sorted(pi.id for pi in opened) == sorted(pi for _o, pi in orders.values())
