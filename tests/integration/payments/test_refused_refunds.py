"""A refund Stripe refuses for a closed order is asked again with growing waits, then no more: the order is
then listed for a person (`GET /api/admin/orders?attention=refund`) and counted on /metrics. A refusal a
refund made elsewhere explains is learned from at once; a refund whose answer never came (a transient
failure) is asked again each run, so money is never stuck for those."""
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from orders_service.db import utcnow
from orders_service.orders.models import Order, OrderEvent, Refund
from orders_service.payments import reconcile
from orders_service.payments.refunds import REFUND_ATTEMPTS, REFUND_RETRY_SCHEDULE

REFUNDS, READ = "POST /v1/refunds", "GET /v1/payment_intents/{id}"
DISPUTED = {"error": {"type": "invalid_request_error", "code": "charge_disputed",
                      "message": "This charge has been charged back, and cannot be refunded."}}


@pytest.fixture
def paid_order(client, make, stripe_emulator):
    """A confirmed order of 20.00, paid online; (order id, PaymentIntent id, customer auth, admin auth)."""
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product, method = make.product(price_cents=20_00, stock=10), make.delivery_method(price_cents=0, countries=[])
    created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                          headers=auth).json
    pi_id = created["clientSecret"].split("_secret_")[0]
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth).status_code == 204
    return created["orderId"], pi_id, auth, admin_auth


def _reconcile(session_factory, runtime):
    reconcile.reconcile_payments(session_factory, runtime.gateway, older_than_seconds=0)


def _order(db, order_id):
    db.expire_all()
    with db.begin():
        return db.get(Order, order_id)


def _count(db, model, *where):
    with db.begin():
        return db.scalar(select(func.count()).select_from(model).where(*where))


def _metric(client, name, **labels):
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and match.group(1) == wanted:
            return float(match.group(2))
    return 0.0


def test_a_refund_refused_for_good_backs_off_then_stops_and_the_order_is_listed_for_a_person(
        client, paid_order, db, real_stripe, stripe_emulator, session_factory, runtime):
    order_id, pi_id, auth, admin_auth = paid_order
    real_stripe.fail_next(REFUNDS, status=400, times=1000, body=DISPUTED)  # a chargeback: every refund refused
    stopped_before = _metric(client, "orders_refunds_refused_total", next="stop")

    assert client.post(f"/api/orders/{order_id}/cancel", headers=auth).json["status"] == "canceled"  # refused
    waits = []
    for attempt in range(1, REFUND_ATTEMPTS + 1):
        order = _order(db, order_id)
        assert (order.refund_failures, real_stripe.count(REFUNDS)) == (attempt, attempt)
        if attempt < REFUND_ATTEMPTS:
            waits.append(order.refund_retry_at - utcnow())
            _reconcile(session_factory, runtime)  # every minute: nothing is asked while it waits
            assert real_stripe.count(REFUNDS) == attempt
            with db.begin():  # the wait is over
                db.execute(update(Order).values(refund_retry_at=utcnow() - timedelta(seconds=1)))
            _reconcile(session_factory, runtime)

    # Growing waits, as scheduled.
    assert len(waits) == len(REFUND_RETRY_SCHEDULE) == REFUND_ATTEMPTS - 1 and waits == sorted(waits)
    assert all(abs(wait - scheduled) < timedelta(minutes=1)
               for wait, scheduled in zip(waits, REFUND_RETRY_SCHEDULE, strict=True))
    # Then no more: however many runs, however long.
    order = _order(db, order_id)
    assert (order.refund_failures, order.refund_retry_at, order.payment_status) == (REFUND_ATTEMPTS, None, "paid")
    for _ in range(3):
        with db.begin():
            db.execute(update(Order).values(created_at=Order.created_at - timedelta(days=3)))
        _reconcile(session_factory, runtime)
    assert real_stripe.count(REFUNDS) == REFUND_ATTEMPTS
    assert _count(db, Refund, Refund.order_id == order_id) == REFUND_ATTEMPTS
    assert _count(db, OrderEvent, OrderEvent.order_id == order_id, OrderEvent.type == "refund_failed") == \
        REFUND_ATTEMPTS
    assert _count(db, OrderEvent, OrderEvent.order_id == order_id,
                  OrderEvent.type == "refund_needs_attention") == 1

    # An operator sees it: the admin list, and /metrics.
    listed = client.get("/api/admin/orders?attention=refund", headers=admin_auth)
    assert listed.status_code == 200, listed.json
    assert listed.json["total"] == 1
    [item] = listed.json["items"]
    assert (item["order"]["id"], item["order"]["status"], item["order"]["paymentStatus"]) == (
        order_id, "canceled", "paid")
    assert (item["state"], item["failures"], item["nextAttemptAt"]) == ("stopped", REFUND_ATTEMPTS, None)
    assert item["lastError"] == "This charge has been charged back, and cannot be refunded."
    assert _metric(client, "orders_refunds_needing_attention", state="stopped") == 1
    assert _metric(client, "orders_refunds_needing_attention", state="retrying") == 0
    assert _metric(client, "orders_refunds_refused_total", next="stop") == stopped_before + 1

    # Once Stripe lets it go (the dispute over), a person's refund goes through and the order leaves the list.
    real_stripe.reset()
    refund = client.post(f"/api/admin/orders/{order_id}/refunds", json={}, headers=admin_auth)
    assert (refund.status_code, refund.json["status"]) == (201, "succeeded")
    assert client.get("/api/admin/orders?attention=refund", headers=admin_auth).json["total"] == 0
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [20_00]


def test_while_it_waits_the_order_is_listed_as_retrying(client, paid_order, db, real_stripe, session_factory,
                                                        runtime):
    order_id, _pi_id, auth, admin_auth = paid_order
    real_stripe.fail_next(REFUNDS, status=400, body=DISPUTED)
    client.post(f"/api/orders/{order_id}/cancel", headers=auth)
    _reconcile(session_factory, runtime)

    [item] = client.get("/api/admin/orders?attention=refund", headers=admin_auth).json["items"]
    assert (item["state"], item["failures"]) == ("retrying", 1)
    next_attempt = datetime.fromisoformat(item["nextAttemptAt"].replace("Z", "+00:00"))
    assert abs(next_attempt - (utcnow() + REFUND_RETRY_SCHEDULE[0])) < timedelta(minutes=1)
    assert next_attempt == _order(db, order_id).refund_retry_at
    assert _metric(client, "orders_refunds_needing_attention", state="retrying") == 1


def test_the_list_is_for_admins_and_needs_its_filter(client, paid_order):
    _order_id, _pi_id, auth, admin_auth = paid_order
    assert client.get("/api/admin/orders?attention=refund", headers=auth).status_code == 403
    assert client.get("/api/admin/orders?attention=refund").status_code == 401
    for query in ("", "?attention=dispute"):
        refused = client.get(f"/api/admin/orders{query}", headers=admin_auth)
        assert refused.status_code == 400 and "attention" in refused.json["errors"], refused.json


def test_a_refusal_a_dashboard_refund_explains_is_learned_from_at_once(client, paid_order, db, real_stripe,
                                                                       stripe_emulator, session_factory, runtime):
    """Refunded in Stripe's dashboard, its charge.refunded lost: Stripe refuses the service's refund
    (`charge_already_refunded`); one read of the payment records the dashboard's refund, and that is all."""
    order_id, pi_id, auth, admin_auth = paid_order
    real_stripe.refund_in_dashboard(pi_id)  # no webhook reaches the service

    canceled = client.post(f"/api/orders/{order_id}/cancel", headers=auth).json

    assert (canceled["status"], canceled["paymentStatus"], canceled["refundedAmount"]) == (
        "canceled", "refunded", 20.0)
    [log] = [e for e in real_stripe.log if e["endpoint"] == REFUNDS]
    assert log["status"] == 400  # refused: already refunded
    order = _order(db, order_id)
    assert (order.refund_failures, order.payment_closed_at is not None) == (0, True)
    _reconcile(session_factory, runtime)
    assert real_stripe.count(REFUNDS) == 1 and [r.amount for r in stripe_emulator.refunds(pi_id)] == [20_00]
    assert client.get("/api/admin/orders?attention=refund", headers=admin_auth).json["total"] == 0


def test_a_refund_without_an_answer_is_asked_again_each_run_and_never_backs_off(
        client, paid_order, db, real_stripe, stripe_emulator, session_factory, runtime):
    """Money never stuck: Stripe failing (5xx, no answer, 429) is "later", not a refusal."""
    order_id, pi_id, auth, _admin_auth = paid_order
    real_stripe.fail_next(REFUNDS, status=500, times=2)
    assert client.post(f"/api/orders/{order_id}/cancel", headers=auth).json["paymentStatus"] == "paid"

    _reconcile(session_factory, runtime)  # fails again
    assert _order(db, order_id).payment_status == "paid"
    _reconcile(session_factory, runtime)

    order = _order(db, order_id)
    assert (order.payment_status, order.refund_failures, order.refund_retry_at) == ("refunded", 0, None)
    with db.begin():
        assert db.scalars(select(Refund.status).where(Refund.order_id == order_id)).all() == ["succeeded"]
    assert [r.amount for r in stripe_emulator.refunds(pi_id)] == [20_00]
