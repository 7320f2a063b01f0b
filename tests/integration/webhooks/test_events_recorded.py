"""Outbound events are recorded with the change they report, from `orders/actions.py`: each public type by
the path that emits it (once), several types for one change, nothing for a change that rolls back, and
`orderSequence` 1, 2, 3… per order — also when the customer, an admin and Stripe's webhooks act on one
order at the same moment."""
import json
import threading
import uuid

import pytest
from sqlalchemy import select

from orders_service.auth.actor import Actor
from orders_service.orders import fulfilment
from orders_service.orders.models import OrderEvent
from orders_service.payments import checkout, inbox, reconcile, refunds
from orders_service.webhooks.events import EventTypes
from orders_service.webhooks.models import OutboundEvent
from tests.support.stripe import payment_intent_of, signed_event

# Types of payment states that do not exist yet (their actions come with them); every other type is walked.
NOT_EMITTED_YET: set[str] = set()


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product = make.product(price_cents=20_00, stock=10)
    method = make.delivery_method(price_cents=5_00, countries=[])
    return customer, auth, admin_auth, product, method


def outbound(db, order_id) -> list[tuple[str, int, dict]]:
    """The order's outbound events: (type, orderSequence, data), in orderSequence order."""
    db.expire_all()
    with db.begin():
        rows = db.execute(select(OutboundEvent.type, OutboundEvent.order_sequence, OutboundEvent.data)
                          .where(OutboundEvent.order_id == order_id).order_by(OutboundEvent.order_sequence)).all()
    return [(r.type, r.order_sequence, json.loads(r.data)) for r in rows]


# --- the paths -------------------------------------------------------------------------------------------

def _cod(client, make, shop):
    customer, auth, _admin, product, method = shop
    response = client.post("/api/orders", json=make.order_body(customer, method, [(product, 2)]), headers=auth)
    assert response.status_code == 204, response.json
    return response.headers["Location"].rsplit("/", 1)[1]


def _online(client, make, shop):
    customer, auth, _admin, product, method = shop
    response = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 2)]),
                           headers=auth)
    assert response.status_code == 200, response.json
    return response.json["orderId"], payment_intent_of(response.json["clientSecret"])


def _paid(client, make, shop, stripe_emulator):
    order_id, pi_id = _online(client, make, shop)
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 204
    return order_id, pi_id


def _admin_patch(client, shop, order_id, body):
    response = client.patch(f"/api/admin/orders/{order_id}", json=body, headers=shop[2])
    assert response.status_code == 200, response.json


def created(client, make, shop, **_):
    return _cod(client, make, shop)


def paid(client, make, shop, stripe_emulator, **_):
    return _paid(client, make, shop, stripe_emulator)[0]


def payment_failed(client, make, shop, stripe_emulator, **_):
    order_id, pi_id = _online(client, make, shop)
    stripe_emulator.decline(pi_id)
    assert client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 400
    return order_id


def payment_action_required(client, make, shop, real_stripe, **_):
    order_id, pi_id = _online(client, make, shop)
    real_stripe.require_action(pi_id, method="card")  # a step at the customer's bank
    response = client.patch(f"/api/orders/{order_id}/paid", headers=shop[1])
    assert response.status_code == 400 and "requires_action" in response.json["message"], response.json
    return order_id


def payment_processing(client, make, shop, real_stripe, **_):
    order_id, pi_id = _online(client, make, shop)
    real_stripe.start_processing(pi_id, method="card")
    assert client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 202
    return order_id


def payment_authorized(make, shop, real_stripe, app_with, **_):
    """PAYMENT_CAPTURE=on_shipment: the card is held; `order.paid` comes only with the capture, at shipment."""
    held = app_with(payment_capture="on_shipment").test_client()
    order_id, pi_id = _online(held, make, shop)
    real_stripe.authorize(pi_id)
    assert held.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 204
    return order_id


def cash_collected(client, make, shop, **_):
    order_id = _cod(client, make, shop)
    _admin_patch(client, shop, order_id, {"paymentCollected": True})
    return order_id


def shipped(client, make, shop, **_):
    order_id = _cod(client, make, shop)
    _admin_patch(client, shop, order_id, {"status": "shipped", "trackingNumber": "1Z999", "carrier": "UPS"})
    return order_id


def delivered(client, make, shop, **_):
    order_id = shipped(client, make, shop)
    _admin_patch(client, shop, order_id, {"status": "delivered"})
    return order_id


def canceled(client, make, shop, **_):
    order_id = _cod(client, make, shop)
    assert client.post(f"/api/orders/{order_id}/cancel", headers=shop[1]).status_code == 200
    return order_id


def expired(client, make, shop, runtime, **_):
    order_id, _pi = _online(client, make, shop)
    assert reconcile.expire_unpaid_orders(runtime.session_factory, runtime.gateway, ttl_seconds=0) == 1
    return order_id


def refunded(client, make, shop, stripe_emulator, **_):
    order_id, _pi = _paid(client, make, shop, stripe_emulator)
    response = client.post(f"/api/admin/orders/{order_id}/refunds", json={"amount": 5}, headers=shop[2])
    assert response.status_code == 201, response.json
    return order_id


def dispute_opened(client, make, shop, stripe_emulator, runtime, db, **_):
    order_id, pi_id = _paid(client, make, shop, stripe_emulator)
    dispute = {"id": f"dp_{uuid.uuid4().hex[:24]}", "object": "dispute", "payment_intent": pi_id,
               "reason": "fraudulent", "amount": 45_00, "currency": "usd", "status": "needs_response"}
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    body, headers = signed_event("charge.dispute.created", dispute, event_id)
    assert client.post("/api/webhooks/stripe", data=body, headers=headers).status_code == 200
    assert inbox.process_event(db, runtime.gateway, event_id) == "dispute_opened"  # as the worker applies it
    return order_id


# Each public type that exists today, the path that emits it, and the order's events after that path.
PATHS = {
    EventTypes.ORDER_CREATED: (created, ["order.created"]),
    EventTypes.PAID: (paid, ["order.created", "order.paid"]),
    EventTypes.PAYMENT_FAILED: (payment_failed, ["order.created", "order.payment_failed"]),
    EventTypes.PAYMENT_ACTION_REQUIRED: (payment_action_required, ["order.created", "order.payment_action_required"]),
    EventTypes.PAYMENT_PROCESSING: (payment_processing, ["order.created", "order.payment_processing"]),
    EventTypes.PAYMENT_AUTHORIZED: (payment_authorized, ["order.created", "order.payment_authorized"]),
    EventTypes.CASH_COLLECTED: (cash_collected, ["order.created", "order.cash_collected"]),
    EventTypes.SHIPPED: (shipped, ["order.created", "order.shipped"]),
    EventTypes.DELIVERED: (delivered, ["order.created", "order.shipped", "order.delivered"]),
    EventTypes.CANCELED: (canceled, ["order.created", "order.canceled"]),
    EventTypes.EXPIRED: (expired, ["order.created", "order.expired"]),
    EventTypes.REFUNDED: (refunded, ["order.created", "order.paid", "order.refunded"]),
    EventTypes.DISPUTE_OPENED: (dispute_opened, ["order.created", "order.paid", "order.dispute_opened"]),
}


def test_every_public_type_has_a_path_here():
    assert set(PATHS) | NOT_EMITTED_YET == set(EventTypes.ORDER)


@pytest.mark.parametrize("event_type", list(PATHS))
def test_each_type_is_recorded_once_by_its_path_with_the_order_as_the_change_left_it(
        event_type, client, make, shop, stripe_emulator, real_stripe, runtime, db, app_with):
    path, expected = PATHS[event_type]
    order_id = path(client=client, make=make, shop=shop, stripe_emulator=stripe_emulator, real_stripe=real_stripe,
                    runtime=runtime, db=db, app_with=app_with)

    events = outbound(db, order_id)
    assert [t for t, _, _ in events] == expected
    assert [n for _, n, _ in events] == list(range(1, len(expected) + 1))
    assert all(data["orderSequence"] == n for _, n, data in events)
    # The last event carries the order as it is now (its trail as far as that change had written it).
    now = client.get(f"/api/orders/{order_id}", headers=shop[2]).json
    last = events[-1][2]["order"]
    assert {k: v for k, v in last.items() if k != "events"} == {k: v for k, v in now.items() if k != "events"}
    assert last["events"] == now["events"][:len(last["events"])]
    # …and each earlier one the order as it was then: its trail stops where that change's entry is.
    lengths = [len(data["order"]["events"]) for _, _, data in events]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)


def test_a_cash_collected_cancel_reports_the_cancel_and_the_refund(client, make, shop, db):
    order_id = cash_collected(client, make, shop)
    assert client.post(f"/api/orders/{order_id}/cancel", headers=shop[2]).status_code == 200
    events = outbound(db, order_id)
    assert [(t, n) for t, n, _ in events] == [("order.created", 1), ("order.cash_collected", 2),
                                              ("order.canceled", 3), ("order.refunded", 4)]
    assert events[2][2]["order"] == events[3][2]["order"]  # one change: the same order in both
    assert (events[3][2]["order"]["status"], events[3][2]["order"]["paymentStatus"]) == ("canceled", "refunded")


def test_canceling_a_paid_order_reports_the_cancel_then_its_refund(client, make, shop, stripe_emulator, db):
    order_id, _pi = _paid(client, make, shop, stripe_emulator)
    assert client.post(f"/api/orders/{order_id}/cancel", headers=shop[1]).status_code == 200
    assert [t for t, _, _ in outbound(db, order_id)] == ["order.created", "order.paid", "order.canceled",
                                                         "order.refunded"]


def test_a_full_refund_of_an_unshipped_order_reports_the_refund_and_the_cancel(client, make, shop, stripe_emulator,
                                                                                db):
    order_id, _pi = _paid(client, make, shop, stripe_emulator)
    assert client.post(f"/api/admin/orders/{order_id}/refunds", json={}, headers=shop[2]).status_code == 201
    events = outbound(db, order_id)
    assert [t for t, _, _ in events] == ["order.created", "order.paid", "order.refunded", "order.canceled"]
    assert events[-1][2]["order"]["status"] == "canceled"


def test_two_partial_refunds_are_two_events(client, make, shop, stripe_emulator, db):
    order_id = refunded(client, make, shop, stripe_emulator)
    assert client.post(f"/api/admin/orders/{order_id}/refunds", json={"amount": 7.5},
                       headers=shop[2]).status_code == 201
    events = outbound(db, order_id)
    assert [t for t, _, _ in events][-2:] == ["order.refunded", "order.refunded"]
    assert [data["order"]["refundedAmount"] for _, _, data in events[-2:]] == [5, 12.5]


def test_a_change_that_rolls_back_reports_nothing(client, make, shop, db):
    customer, auth, admin_auth, product, method = shop
    # The order is recorded (and its event written) before its stock is taken, which then fails: all rolls back.
    response = client.post("/api/orders", json=make.order_body(customer, method, [(product, 11)]), headers=auth)
    assert response.status_code == 400
    order_id = canceled(client, make, shop)
    refused = client.patch(f"/api/admin/orders/{order_id}", json={"status": "shipped", "trackingNumber": "1Z"},
                           headers=admin_auth)
    assert refused.status_code == 400
    with db.begin():
        assert [t for t in db.scalars(select(OutboundEvent.type).order_by(OutboundEvent.order_sequence))] == [
            "order.created", "order.canceled"]


def test_order_sequence_has_no_gap_under_concurrent_customer_admin_and_webhook_actions(
        client, make, shop, stripe_emulator, runtime, session_factory, db):
    """On a paid order at once: the customer cancels, an admin ships, an admin refunds 1.00 four times, and
    Stripe's webhook opens two disputes and a third time repeats one. The order's row lock puts them one after
    the other; whichever win, the order's events count 1, 2, 3… with no gap and no repeat, one per change."""
    order_id, pi_id = _paid(client, make, shop, stripe_emulator)
    customer = shop[0]
    dispute_events = []
    for dispute_id in ("dp_a", "dp_b", "dp_a"):
        event_id = f"evt_{uuid.uuid4().hex[:24]}"
        body, headers = signed_event("charge.dispute.created", {
            "id": dispute_id, "object": "dispute", "payment_intent": pi_id, "reason": "fraudulent",
            "amount": 45_00, "currency": "usd", "status": "needs_response"}, event_id)
        assert client.post("/api/webhooks/stripe", data=body, headers=headers).status_code == 200
        dispute_events.append(event_id)
    order_uuid = uuid.UUID(order_id)

    def cancel(session):
        checkout.cancel_order(session, runtime.gateway, Actor(customer.id, customer.role), order_uuid)

    def ship(session):
        fulfilment.update_fulfilment(session, order_uuid, {"status": "shipped", "trackingNumber": "1Z"})

    def refund(session):
        refunds.refund_order(session, runtime.gateway, order_uuid, 100, "goodwill")

    def webhook(event_id):
        return lambda session: inbox.process_event(session, runtime.gateway, event_id)

    jobs = [cancel, ship, refund, refund, refund, refund] + [webhook(e) for e in dispute_events]
    start, errors = threading.Barrier(len(jobs)), []

    def run(job):
        with session_factory() as session:
            start.wait()
            try:
                job(session)
            except Exception as exc:  # a change the state machine refuses after the other won: a 400
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert all(getattr(e, "status", 500) in (400, 409) for e in errors), errors
    events = outbound(db, order_id)
    assert [n for _, n, _ in events] == list(range(1, len(events) + 1))
    # One event per change that committed: read back from the trail those same transactions wrote.
    with db.begin():
        trail = list(db.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order_id)))
    reported = {"canceled": "order.canceled", "shipped": "order.shipped", "dispute_opened": "order.dispute_opened",
                "refunded": "order.refunded", "placed": "order.created", "payment_succeeded": "order.paid"}
    expected = sorted(reported[entry] for entry in trail if entry in reported)
    assert sorted(t for t, _, _ in events) == expected
    assert [t for t, _, _ in events].count("order.dispute_opened") == 1
    assert len(events) >= 5  # created, paid, a dispute, and the cancel or the shipping, and refunds
