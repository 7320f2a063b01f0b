"""PAYMENT_CAPTURE=on_shipment: a card is authorized when the customer pays and captured when the order ships.

Each rule runs against localstripe itself (the emulator's gateway, which holds with `capture_method=manual`)
and against the real-shaped Stripe (Stripe's own gateway, `payment_method_options[card][capture_method]=manual`,
`amount_capturable`, the charge's `capture_before`, the `amount_capturable_updated` event, idempotent captures
and the "already captured" error). Faults (a lost answer, a refusal, a lapse) are made at the Stripe side.
"""
import dataclasses
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import stripe
from sqlalchemy import select, update

from orders_service.catalog.models import Product
from orders_service.notifications.models import Notification
from orders_service.orders.models import Order
from orders_service.payments import capture, inbox, reconcile
from orders_service.webhooks.models import OutboundEvent
from tests.support.orders import count_events, fresh_order, place_online
from tests.support.stripe import signed_event

CAPTURE = "POST /v1/payment_intents/{id}/capture"
SHIPPED = {"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"}


@dataclasses.dataclass
class Held:
    """The service with PAYMENT_CAPTURE=on_shipment against one Stripe, and how a customer pays there."""

    kind: str
    client: object
    runtime: object
    authorize: object  # authorize(pi_id): the customer pays with a card that is held

    @property
    def gateway(self):
        return self.runtime.gateway


def _service(kind, app_with, stripe_emulator, real_stripe, **settings) -> Held:
    if kind == "localstripe":
        app = app_with(payment_capture="on_shipment", stripe_api_base=stripe_emulator.url, stripe_emulator=True,
                       stripe_payment_methods=("card",), **settings)
        authorize = stripe_emulator.pay
    else:
        app = app_with(payment_capture="on_shipment", stripe_api_base=real_stripe.url, stripe_emulator=False,
                       stripe_payment_methods=("card", "sepa_debit"), **settings)
        authorize = real_stripe.authorize
    return Held(kind, app.test_client(), app.extensions["orders.runtime"], authorize)


@pytest.fixture(params=["localstripe", "real_shaped"])
def held(request, app_with, stripe_emulator, real_stripe):
    """The rules both Stripes can show."""
    return _service(request.param, app_with, stripe_emulator, real_stripe)


@pytest.fixture
def real_held(app_with, stripe_emulator, real_stripe):
    """What only the real-shaped Stripe has: its events, faults on the wire, the refusal's shape, a deadline."""
    return _service("real_shaped", app_with, stripe_emulator, real_stripe)


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    return customer, auth, make.product(price_cents=20_00, stock=10), make.delivery_method(price_cents=5_00,
                                                                                           countries=[]), admin_auth


def _place(held, make, shop, quantity=2):
    return place_online(held.client, make, shop[:4], quantity=quantity)


def _authorized(held, make, shop, quantity=2):
    """An order whose card is held, as PATCH …/paid finds it: (order id, PaymentIntent id)."""
    order_id, pi_id = _place(held, make, shop, quantity)
    held.authorize(pi_id)
    response = held.client.patch(f"/api/orders/{order_id}/paid", headers=shop[1])
    assert response.status_code == 204, response.json
    return order_id, pi_id


def _ship(held, shop, order_id):
    return held.client.patch(f"/api/admin/orders/{order_id}", json=SHIPPED, headers=shop[4])


def _stripe_status(stripe_emulator, pi_id):
    return stripe_emulator.payment_intent(pi_id).status


def _outbound(db, order_id):
    db.expire_all()
    with db.begin():
        return list(db.scalars(select(OutboundEvent.type).where(OutboundEvent.order_id == order_id)
                               .order_by(OutboundEvent.order_sequence)))


def _deliver(held, db, event):
    """Stripe's event, signed, to the service's webhook, then applied as the worker applies it."""
    body, headers = signed_event(event["type"], event["data"]["object"], event["id"])
    assert held.client.post("/api/webhooks/stripe", data=body, headers=headers).status_code == 200
    return inbox.process_event(db, held.gateway, event["id"])


def _event(real_stripe, type_, pi_id):
    return [e for e in real_stripe.events if e["type"] == type_ and e["data"]["object"]["id"] == pi_id][-1]


def _move(db, order_id, **values):
    with db.begin():
        db.execute(update(Order).where(Order.id == order_id).values(**values))


def _executed_captures(real_stripe, pi_id):
    """Captures Stripe carried out for the PaymentIntent (a replay of a stored answer is not one)."""
    return [e for e in real_stripe.log if e["endpoint"] == CAPTURE and pi_id in e["path"] and not e["replayed"]
            and e["status"] in (200, "lost")]


# --- authorization --------------------------------------------------------------------------------------

def test_paid_authorizes_a_card_and_confirms_the_order_with_its_deadline(held, make, shop, db, stripe_emulator):
    order_id, pi_id = _authorized(held, make, shop)

    order = held.client.get(f"/api/orders/{order_id}", headers=shop[1]).json
    assert (order["status"], order["paymentStatus"], order["paidAt"]) == ("confirmed", "authorized", None)
    deadline = datetime.fromisoformat(order["captureBefore"].replace("Z", "+00:00"))
    assert timedelta(days=6) < deadline - datetime.now(timezone.utc) <= timedelta(days=7, minutes=1)
    assert _stripe_status(stripe_emulator, pi_id) == "requires_capture"  # nothing taken yet
    assert make.stock_of(Product, shop[2].id) == 8
    again = held.client.patch(f"/api/orders/{order_id}/paid", headers=shop[1])
    assert (again.status_code, again.json["message"]) == (400, "Order has already been marked as paid")
    assert count_events(db, order_id, "payment_authorized") == 1
    assert _outbound(db, order_id) == ["order.created", "order.payment_authorized"]  # not order.paid
    payment = held.client.get(f"/api/orders/{order_id}/payment", headers=shop[1]).json
    assert (payment["paymentStatus"], payment["clientSecret"]) == ("authorized", None)


def test_reconciliation_finds_an_authorization_nobody_told_of(held, make, shop, db):
    order_id, pi_id = _place(held, make, shop)
    held.authorize(pi_id)  # neither PATCH …/paid nor the webhook arrives

    reconcile.reconcile_payments(held.runtime.session_factory, held.gateway, older_than_seconds=0)

    order = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json
    assert (order["status"], order["paymentStatus"]) == ("confirmed", "authorized")
    assert order["captureBefore"] is not None
    assert [e["detail"]["source"] for e in order["events"] if e["type"] == "payment_authorized"] == [
        "reconciliation"]
    assert _outbound(db, order_id) == ["order.created", "order.payment_authorized"]


def test_expiry_applies_an_authorization_whose_word_is_late_instead_of_releasing_it(held, make, shop, db,
                                                                                    stripe_emulator):
    """The customer authorized just before the order's time to pay ran out, and neither PATCH …/paid nor the
    webhook has arrived: Stripe would cancel a held PaymentIntent if asked, so the expiry reads it first and
    authorizes the order instead."""
    order_id, pi_id = _place(held, make, shop)
    held.authorize(pi_id)

    expired = reconcile.expire_unpaid_orders(held.runtime.session_factory, held.gateway, ttl_seconds=0)

    assert expired == 0
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("confirmed", "authorized")
    assert [e.detail["source"] for e in order.events if e.type == "payment_authorized"] == ["expiry"]
    assert _stripe_status(stripe_emulator, pi_id) == "requires_capture"  # the hold stands
    assert make.stock_of(Product, shop[2].id) == 8
    assert _ship(held, shop, order_id).status_code == 200


def test_the_webhook_authorizes_once_and_a_later_read_gives_the_exact_deadline(real_held, make, shop, db,
                                                                               real_stripe):
    held = real_held
    order_id, pi_id = _place(held, make, shop)
    exact = int(time.time()) + 5 * 24 * 3600  # this card's hold is shorter than the usual week
    real_stripe.set_capture_before(pi_id, exact)
    held.authorize(pi_id)
    event = _event(real_stripe, "payment_intent.amount_capturable_updated", pi_id)
    assert isinstance(event["data"]["object"]["latest_charge"], str)  # a snapshot tells no deadline

    assert _deliver(held, db, event) == "payment_authorized"
    assert _deliver(held, db, event) == "nothing to do"  # the same event again
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("confirmed", "authorized")
    assert held.client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 400
    assert count_events(db, order_id, "payment_authorized") == 1

    reconcile.reconcile_payments(held.runtime.session_factory, held.gateway, older_than_seconds=0,
                                 confirmed_every_seconds=0)

    assert fresh_order(db, order_id).capture_before.timestamp() == exact
    assert count_events(db, order_id, "payment_authorized") == 1


def test_paid_and_the_webhook_racing_authorize_once(real_held, make, shop, db, real_stripe):
    held = real_held
    order_id, pi_id = _place(held, make, shop)
    held.authorize(pi_id)
    event = _event(real_stripe, "payment_intent.amount_capturable_updated", pi_id)
    outcomes = []

    def paid():
        outcomes.append(held.client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code)

    def webhook():
        with held.runtime.session_factory() as session:
            body, headers = signed_event(event["type"], event["data"]["object"], event["id"])
            held.client.post("/api/webhooks/stripe", data=body, headers=headers)
            outcomes.append(inbox.process_event(session, held.gateway, event["id"]))

    threads = [threading.Thread(target=paid), threading.Thread(target=webhook)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert count_events(db, order_id, "payment_authorized") == 1
    assert _outbound(db, order_id) == ["order.created", "order.payment_authorized"]
    assert fresh_order(db, order_id).payment_status == "authorized"


def test_a_method_that_cannot_be_held_is_charged_at_once(real_held, make, shop, db, real_stripe):
    held = real_held
    order_id, pi_id = _place(held, make, shop)
    created = real_stripe.payment_intent(pi_id)
    assert created["payment_method_options"] == {"card": {"capture_method": "manual"}}
    assert created["capture_method"] == "automatic_async"  # not the whole PaymentIntent: cards only
    real_stripe.start_processing(pi_id, "sepa_debit")
    assert held.client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 202
    real_stripe.succeed(pi_id)

    assert held.client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 204
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status, order.capture_before) == ("confirmed", "paid", None)
    real_stripe.reset_calls()
    assert _ship(held, shop, order_id).status_code == 200
    assert real_stripe.count(CAPTURE) == 0  # nothing was held: nothing to capture


# --- capture at shipment ------------------------------------------------------------------------------------

def test_ship_captures_then_ships_and_the_order_is_paid_then(held, make, shop, db, stripe_emulator):
    order_id, pi_id = _authorized(held, make, shop)

    response = _ship(held, shop, order_id)

    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["paymentStatus"]) == ("shipped", "paid")
    assert response.json["captureBefore"] is None and response.json["paidAt"] is not None
    assert _stripe_status(stripe_emulator, pi_id) == "succeeded"
    assert [e["type"] for e in response.json["events"]][-2:] == ["payment_captured", "shipped"]
    assert _outbound(db, order_id) == ["order.created", "order.payment_authorized", "order.paid", "order.shipped"]
    assert make.stock_of(Product, shop[2].id) == 8


def test_already_captured_at_stripe_is_success(held, make, shop, db, stripe_emulator):
    """Captured elsewhere (Stripe's dashboard, a capture whose answer and event were both lost): Stripe refuses
    a capture now; the service reads the PaymentIntent, finds it captured, and ships."""
    order_id, pi_id = _authorized(held, make, shop)
    stripe_emulator.client.v1.payment_intents.capture(pi_id)

    response = _ship(held, shop, order_id)

    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["paymentStatus"]) == ("shipped", "paid")
    assert count_events(db, order_id, "payment_captured") == 1
    assert stripe_emulator.refunds(pi_id) == []  # a good order is never refunded for it


def test_already_captured_has_stripes_error_shape(real_held, make, shop, real_stripe, stripe_emulator):
    order_id, pi_id = _authorized(real_held, make, shop)
    stripe_emulator.client.v1.payment_intents.capture(pi_id)

    client = stripe.StripeClient("sk_test_x", base_addresses={"api": real_stripe.url}, max_network_retries=0)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.capture(pi_id)
    assert refused.value.code == "payment_intent_unexpected_state"
    assert refused.value.error.payment_intent["status"] == "succeeded"
    assert refused.value.http_status == 400


def test_two_ships_at_once_capture_once(real_held, make, shop, db, real_stripe):
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.delay = 0.5  # the capture takes a while: the second ship arrives while it is under way
    start, statuses = threading.Barrier(2), []

    def ship():
        start.wait()
        statuses.append(_ship(held, shop, order_id).status_code)

    try:
        threads = [threading.Thread(target=ship) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        real_stripe.delay = 0.0

    assert sorted(statuses) == [200, 400]  # the second waited for the first's capture: shipped already
    assert len(_executed_captures(real_stripe, pi_id)) == 1
    assert count_events(db, order_id, "payment_captured") == 1
    assert count_events(db, order_id, "shipped") == 1
    assert _outbound(db, order_id).count("order.paid") == 1
    assert _ship(held, shop, order_id).status_code == 400  # shipped already: and no capture asked for
    assert real_stripe.count(CAPTURE) == 1


def test_a_lost_capture_answer_retried_captures_once(real_held, make, shop, db, real_stripe, stripe_emulator):
    """Stripe captures, and every answer (the SDK's retries included) is lost on the way back: the ship answers
    an error and the order is as it was; the admin's retry asks again with the same key and gets Stripe's
    stored answer, not a second capture."""
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.lose_answer_next(CAPTURE, times=1 + held.gateway.NETWORK_RETRIES)

    lost = _ship(held, shop, order_id)

    assert lost.status_code == 500 and "capture" in lost.json["message"], lost.json
    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status, order.capture_claimed_until) == ("confirmed", "authorized", None)
    assert _stripe_status(stripe_emulator, pi_id) == "succeeded"  # it did happen at Stripe

    retried = _ship(held, shop, order_id)

    assert retried.status_code == 200, retried.json
    assert (retried.json["status"], retried.json["paymentStatus"]) == ("shipped", "paid")
    assert len(_executed_captures(real_stripe, pi_id)) == 1
    assert {e["idempotency_key"] for e in real_stripe.log if e["endpoint"] == CAPTURE} == {f"capture-{order_id}"}
    assert count_events(db, order_id, "payment_captured") == 1


def test_a_webhook_racing_the_capture_gives_one_capture(real_held, make, shop, db, real_stripe):
    """Stripe's payment_intent.succeeded for the capture is applied before the ship applies the capture's
    answer: the order is paid once (one order.paid), and shipped."""
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.forward_webhooks_to("http://127.0.0.1:9/", "whsec_unused")  # localstripe's own events, recorded
    real_stripe.lose_answer_next(CAPTURE, times=1 + held.gateway.NETWORK_RETRIES)
    try:
        assert _ship(held, shop, order_id).status_code == 500
        wait_for = time.monotonic() + 10
        while not _succeeded(real_stripe, pi_id) and time.monotonic() < wait_for:  # sent a moment after capture
            time.sleep(0.05)
    finally:
        real_stripe.forward_webhooks_to(None)
    succeeded = _succeeded(real_stripe, pi_id)
    assert succeeded, "Stripe sends payment_intent.succeeded when it captures"

    assert _deliver(held, db, succeeded[-1]) == "payment_captured"
    assert _ship(held, shop, order_id).status_code == 200

    assert len(_executed_captures(real_stripe, pi_id)) == 1
    assert count_events(db, order_id, "payment_captured") == 1
    assert _outbound(db, order_id) == ["order.created", "order.payment_authorized", "order.paid", "order.shipped"]


def test_a_webhook_applied_while_the_ship_waits_for_the_captures_answer(app_with, stripe_emulator, real_stripe,
                                                                          make, shop, db):
    """Stripe captures and sends payment_intent.succeeded; the ship's answer is slow to come back (its connection
    hangs, then drops, and the SDK asks again with the same key). The worker applies the event first; the ship
    then finds the capture recorded, and ships: one capture, one order.paid."""
    held = _service("real_shaped", app_with, stripe_emulator, real_stripe, stripe_timeout_seconds=20.0)
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.forward_webhooks_to("http://127.0.0.1:9/", "whsec_unused")  # localstripe's own events, recorded
    real_stripe.lose_answer_next(CAPTURE, hang=6.0)
    shipped = []
    ship = threading.Thread(target=lambda: shipped.append(_ship(held, shop, order_id)))
    try:
        ship.start()
        wait_for = time.monotonic() + 5
        while not _succeeded(real_stripe, pi_id) and time.monotonic() < wait_for:
            time.sleep(0.05)
        assert _succeeded(real_stripe, pi_id), "Stripe sends payment_intent.succeeded when it captures"
        assert ship.is_alive()  # still waiting for the capture's answer

        assert _deliver(held, db, _succeeded(real_stripe, pi_id)[-1]) == "payment_captured"
        ship.join(30)
    finally:
        real_stripe.forward_webhooks_to(None)

    assert shipped[0].status_code == 200, shipped[0].json
    assert (shipped[0].json["status"], shipped[0].json["paymentStatus"]) == ("shipped", "paid")
    assert len(_executed_captures(real_stripe, pi_id)) == 1
    assert [e["replayed"] for e in real_stripe.log if e["endpoint"] == CAPTURE] == [False, True]
    assert count_events(db, order_id, "payment_captured") == 1
    assert _outbound(db, order_id) == ["order.created", "order.payment_authorized", "order.paid", "order.shipped"]


def _succeeded(real_stripe, pi_id):
    return [e for e in real_stripe.events if e["type"] == "payment_intent.succeeded"
            and e["data"]["object"]["id"] == pi_id]


def test_a_refused_capture_leaves_the_order_as_it_was_and_names_the_reason(real_held, make, shop, db, real_stripe):
    """Stripe keeps a refused capture's answer under its idempotency key for a day and answers it to every
    repeat: the refusal left the payment held, so the next ship is a request of its own, and goes through."""
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.refuse_next(CAPTURE, status=402, body={"error": {
        "type": "card_error", "code": "card_declined", "decline_code": "do_not_honor",
        "message": "Your card was declined."}})
    before = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json

    response = _ship(held, shop, order_id)

    assert response.status_code == 400
    assert response.json["message"] == "The payment could not be captured: Your card was declined."
    after = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json
    assert after == before
    again = _ship(held, shop, order_id)
    assert again.status_code == 200, again.json
    assert (again.json["status"], again.json["paymentStatus"]) == ("shipped", "paid")
    keys = [(e["idempotency_key"], e["replayed"], e["status"]) for e in real_stripe.log if e["endpoint"] == CAPTURE]
    assert keys == [(f"capture-{order_id}", False, 402), (f"capture-{order_id}-1", False, 200)]
    # The first key still answers the refusal: asking with it again would never have captured.
    client = stripe.StripeClient(held.runtime.settings.stripe_secret_key, base_addresses={"api": real_stripe.url},
                                 max_network_retries=0)
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.capture(pi_id, params={"expand": ["latest_charge", "payment_method"]},
                                          options={"idempotency_key": f"capture-{order_id}"})
    assert real_stripe.log[-1]["replayed"] is True
    assert count_events(db, order_id, "payment_captured") == 1


def test_the_capture_job_after_a_refused_ship_asks_anew(real_held, make, shop, db, real_stripe):
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.refuse_next(CAPTURE)
    assert _ship(held, shop, order_id).status_code == 400
    _move(db, order_id, capture_before=datetime.now(timezone.utc) + timedelta(hours=1))

    assert capture.capture_expiring_authorizations(held.runtime.session_factory, held.gateway) == 1

    assert fresh_order(db, order_id).payment_status == "paid"
    assert len(_executed_captures(real_stripe, pi_id)) == 1


def test_canceling_during_a_capture_is_refused_for_now(real_held, make, shop, db):
    held = real_held
    order_id, _pi = _authorized(held, make, shop)
    _move(db, order_id, capture_claimed_until=datetime.now(timezone.utc) + timedelta(minutes=1),
          capture_claim_token="b" * 32)

    response = held.client.post(f"/api/orders/{order_id}/cancel", headers=shop[1])

    assert (response.status_code, response.json["message"]) == (400, capture.BEING_CAPTURED)
    assert fresh_order(db, order_id).status == "confirmed"


def test_a_ship_meeting_a_capture_that_does_not_end_answers_400_after_a_few_seconds(real_held, make, shop, db,
                                                                                     real_stripe):
    held = real_held
    order_id, _pi = _authorized(held, make, shop)
    _move(db, order_id, capture_claimed_until=datetime.now(timezone.utc) + timedelta(minutes=1),
          capture_claim_token="b" * 32)
    real_stripe.reset_calls()

    started = time.monotonic()
    response = _ship(held, shop, order_id)

    assert (response.status_code, response.json["message"]) == (400, capture.BEING_CAPTURED)
    assert capture.SHIP_WAITS_FOR_CAPTURE <= time.monotonic() - started < capture.SHIP_WAITS_FOR_CAPTURE + 2
    assert real_stripe.count(CAPTURE) == 0
    assert fresh_order(db, order_id).status == "confirmed"


def test_a_caller_whose_claim_ran_out_leaves_the_next_callers_claim_alone(real_held, make, shop, db, real_stripe):
    """The capture job's call to Stripe outlives its claim (every answer a 500, retried by the SDK); meanwhile
    another caller claims the order. When the first gives up it lets go of its own claim only: the newer one
    still keeps a cancel out."""
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.delay = 0.5
    real_stripe.fail_next(CAPTURE, status=500, times=1 + held.gateway.NETWORK_RETRIES)
    outcome = []

    def job():
        with held.runtime.session_factory() as session:
            try:
                capture.capture_payment(session, held.gateway, order_id, "capture_job")
            except Exception as exc:  # noqa: BLE001 - the outcome is asserted below
                outcome.append(exc)

    first = threading.Thread(target=job)
    try:
        first.start()
        wait_for = time.monotonic() + 10
        while real_stripe.count(CAPTURE) == 0 and time.monotonic() < wait_for:
            time.sleep(0.02)
        claimed = fresh_order(db, order_id)
        # The claim lasts as long as the call may, retries included, and a few seconds more: no longer.
        left = claimed.capture_claimed_until - datetime.now(timezone.utc)
        assert held.gateway.longest_call - timedelta(seconds=1) < left <= capture.claim_length(held.gateway)
        newer = datetime.now(timezone.utc) + timedelta(minutes=1)
        _move(db, order_id, capture_claimed_until=newer, capture_claim_token="b" * 32)  # the first one's ran out
        first.join(30)
    finally:
        real_stripe.delay = 0.0

    assert outcome and "could not be captured" not in str(outcome[0])  # unanswered, not refused
    order = fresh_order(db, order_id)
    assert (order.capture_claim_token, order.capture_claimed_until) == ("b" * 32, newer)
    assert held.client.post(f"/api/orders/{order_id}/cancel", headers=shop[1]).status_code == 400
    assert fresh_order(db, order_id).status == "confirmed"


# --- lapses ------------------------------------------------------------------------------------------------

def test_a_lapsed_authorization_cancels_the_order_releases_stock_and_tells_the_customer(real_held, make, shop, db,
                                                                                       real_stripe):
    held = real_held
    order_id, pi_id = _authorized(held, make, shop, quantity=3)
    assert make.stock_of(Product, shop[2].id) == 7

    real_stripe.lapse(pi_id)
    event = _event(real_stripe, "payment_intent.canceled", pi_id)
    assert event["data"]["object"]["cancellation_reason"] == "automatic"

    assert _deliver(held, db, event) == "authorization_lapsed"
    order = held.client.get(f"/api/orders/{order_id}", headers=shop[1]).json
    assert (order["status"], order["paymentStatus"], order["captureBefore"]) == ("canceled", "unpaid", None)
    lapsed = [e for e in order["events"] if e["type"] == "authorization_lapsed"]
    assert len(lapsed) == 1 and lapsed[0]["detail"]["cancellationReason"] == "automatic"
    assert make.stock_of(Product, shop[2].id) == 10
    with db.begin():
        kinds = list(db.scalars(select(Notification.kind).where(Notification.order_id == order_id)))
    assert "authorization_lapsed" in kinds
    assert _outbound(db, order_id)[-1] == "order.canceled"
    assert _deliver(held, db, {**event, "id": f"evt_{uuid.uuid4().hex[:24]}"}) == "order is canceled"
    assert make.stock_of(Product, shop[2].id) == 10  # once


def test_reconciliation_finds_a_lapse_whose_event_never_came(held, make, shop, db, stripe_emulator, real_stripe):
    order_id, pi_id = _authorized(held, make, shop, quantity=3)
    if held.kind == "real_shaped":
        real_stripe.lapse(pi_id, announce=False)
    else:  # localstripe never lets a hold lapse: canceled there as Stripe would
        stripe_emulator.client.v1.payment_intents.cancel(pi_id)

    reconcile.reconcile_payments(held.runtime.session_factory, held.gateway, older_than_seconds=0,
                                 confirmed_every_seconds=0)

    order = fresh_order(db, order_id)
    assert (order.status, order.payment_status) == ("canceled", "unpaid")
    assert count_events(db, order_id, "authorization_lapsed") == 1
    assert make.stock_of(Product, shop[2].id) == 10


def test_the_job_captures_an_authorization_a_day_before_it_lapses(held, make, shop, db, stripe_emulator):
    soon_id, soon_pi = _authorized(held, make, shop)
    later_id, later_pi = _authorized(held, make, shop)
    now = datetime.now(timezone.utc)
    _move(db, soon_id, capture_before=now + timedelta(hours=23))
    _move(db, later_id, capture_before=now + timedelta(hours=25))

    assert capture.capture_expiring_authorizations(held.runtime.session_factory, held.gateway) == 1
    assert capture.capture_expiring_authorizations(held.runtime.session_factory, held.gateway) == 0  # once

    soon, later = fresh_order(db, soon_id), fresh_order(db, later_id)
    assert (soon.status, soon.payment_status) == ("confirmed", "paid")  # not shipped: only the money is taken
    assert (later.status, later.payment_status) == ("confirmed", "authorized")
    assert (_stripe_status(stripe_emulator, soon_pi), _stripe_status(stripe_emulator, later_pi)) == (
        "succeeded", "requires_capture")
    assert [e.detail["source"] for e in soon.events if e.type == "payment_captured"] == ["capture_job"]
    assert _ship(held, shop, soon_id).status_code == 200  # and ships as any paid order


def test_the_job_finds_the_deadline_stripe_gives(real_held, make, shop, db, real_stripe):
    held = real_held
    order_id, pi_id = _place(held, make, shop)
    real_stripe.set_capture_before(pi_id, int(time.time()) + 20 * 3600)  # a short hold: 20 hours
    held.authorize(pi_id)
    assert held.client.patch(f"/api/orders/{order_id}/paid", headers=shop[1]).status_code == 204

    assert capture.capture_expiring_authorizations(held.runtime.session_factory, held.gateway) == 1

    assert fresh_order(db, order_id).payment_status == "paid"
    assert len(_executed_captures(real_stripe, pi_id)) == 1


# --- cancel and refunds --------------------------------------------------------------------------------------

def test_cancel_releases_the_hold_and_the_stock_once(held, make, shop, db, stripe_emulator):
    order_id, pi_id = _authorized(held, make, shop, quantity=3)

    response = held.client.post(f"/api/orders/{order_id}/cancel", headers=shop[1])

    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["paymentStatus"]) == ("canceled", "unpaid")
    assert response.json["refundedAmount"] == 0
    assert _stripe_status(stripe_emulator, pi_id) == "canceled"
    assert stripe_emulator.refunds(pi_id) == []  # nothing was taken: nothing to refund, no fee
    assert make.stock_of(Product, shop[2].id) == 10
    assert held.client.post(f"/api/orders/{order_id}/cancel", headers=shop[1]).status_code == 400
    assert make.stock_of(Product, shop[2].id) == 10
    assert fresh_order(db, order_id).payment_closed_at is not None


def _no_money_moved(held, db, shop, order_id):
    order = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("canceled", "unpaid", 0)
    assert not {"payment_captured", "refunded"} & {e["type"] for e in order["events"]}
    assert not {"order.paid", "order.refunded"} & set(_outbound(db, order_id))
    with db.begin():
        kinds = set(db.scalars(select(Notification.kind).where(Notification.order_id == order_id)))
    assert not [k for k in kinds if "refund" in k or "paid" in k], kinds


def _release_events(real_stripe, pi_id, refunded_first):
    """Stripe's two events of a released hold, in the order they are to arrive."""
    released = _event_of_charge(real_stripe, pi_id)
    charge = released["data"]["object"]
    assert (charge["captured"], charge["amount_refunded"]) == (False, charge["amount"])  # "refunded", never taken
    events = [_event(real_stripe, "payment_intent.canceled", pi_id), released]
    return events[::-1] if refunded_first else events


@pytest.mark.parametrize("refunded_first", [False, True], ids=["canceled-first", "refunded-first"])
def test_canceling_an_authorized_order_is_no_refund_whatever_stripes_events_say(real_held, make, shop, db,
                                                                               real_stripe, refunded_first):
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    assert held.client.post(f"/api/orders/{order_id}/cancel", headers=shop[1]).status_code == 200

    for event in _release_events(real_stripe, pi_id, refunded_first):
        _deliver(held, db, event)

    _no_money_moved(held, db, shop, order_id)
    reconcile.reconcile_payments(held.runtime.session_factory, held.gateway, older_than_seconds=0,
                                 confirmed_every_seconds=0)
    _no_money_moved(held, db, shop, order_id)


@pytest.mark.parametrize("refunded_first", [False, True], ids=["canceled-first", "refunded-first"])
def test_a_lapse_is_no_payment_and_no_refund_whatever_order_its_events_come_in(real_held, make, shop, db,
                                                                              real_stripe, refunded_first):
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    real_stripe.lapse(pi_id)

    for event in _release_events(real_stripe, pi_id, refunded_first):
        _deliver(held, db, event)

    _no_money_moved(held, db, shop, order_id)
    assert count_events(db, order_id, "authorization_lapsed") == 1


def test_an_uncaptured_order_cannot_be_refunded_and_a_captured_one_can(held, make, shop, db):
    order_id, _pi = _authorized(held, make, shop)

    refused = held.client.post(f"/api/admin/orders/{order_id}/refunds", json={"amount": 5}, headers=shop[4])

    assert refused.status_code == 400 and "only authorized" in refused.json["message"]
    assert _ship(held, shop, order_id).status_code == 200
    refund = held.client.post(f"/api/admin/orders/{order_id}/refunds", json={"amount": 5}, headers=shop[4])
    assert refund.status_code == 201, refund.json
    order = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json
    assert (order["paymentStatus"], order["refundedAmount"]) == ("partially_refunded", 5)


def test_a_dashboard_refund_after_capture_is_reflected(real_held, make, shop, db, real_stripe):
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    assert _ship(held, shop, order_id).status_code == 200

    real_stripe.refund_in_dashboard(pi_id, amount=700)
    assert _deliver(held, db, _event_of_charge(real_stripe, pi_id)) == "refunded"

    order = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("shipped", "partially_refunded", 7)


def test_a_part_captured_in_the_dashboard_is_paid_and_the_rest_refunded(real_held, make, shop, db, real_stripe):
    """A person captures 10.00 of the 45.00 held: the order is paid, then the 35.00 released to the customer is
    recorded as refunded (never paid in full), and a read later changes nothing."""
    held = real_held
    order_id, pi_id = _authorized(held, make, shop)
    event = real_stripe.capture_in_dashboard(pi_id, amount=10_00)
    assert event["data"]["object"]["amount_received"] == 10_00

    assert _deliver(held, db, event) == "payment_captured, refunded"

    order = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json
    assert (order["status"], order["paymentStatus"], order["refundedAmount"]) == ("confirmed", "partially_refunded", 35)
    assert [e["detail"]["amount"] for e in order["events"] if e["type"] == "payment_captured"] == [10_00]
    assert _outbound(db, order_id)[-2:] == ["order.paid", "order.refunded"]
    reconcile.reconcile_payments(held.runtime.session_factory, held.gateway, older_than_seconds=0,
                                 confirmed_every_seconds=0)
    assert count_events(db, order_id, "refunded") == 1
    assert fresh_order(db, order_id).refunded_cents == 35_00
    real_stripe.reset_calls()
    assert _ship(held, shop, order_id).status_code == 200
    assert real_stripe.count(CAPTURE) == 0
    refund = held.client.post(f"/api/admin/orders/{order_id}/refunds", json={"amount": 5}, headers=shop[4])
    assert refund.status_code == 201, refund.json
    order = held.client.get(f"/api/orders/{order_id}", headers=shop[4]).json
    assert (order["paymentStatus"], order["refundedAmount"]) == ("partially_refunded", 40)  # at once
    too_much = held.client.post(f"/api/admin/orders/{order_id}/refunds", json={"amount": 6}, headers=shop[4])
    assert too_much.status_code == 400  # 5.00 of the 10.00 taken is left
    _deliver(held, db, _event_of_charge(real_stripe, pi_id))  # Stripe's word of that refund: already known
    assert count_events(db, order_id, "refunded") == 2 and fresh_order(db, order_id).refunded_cents == 40_00


def _event_of_charge(real_stripe, pi_id):
    return [e for e in real_stripe.events if e["type"] == "charge.refunded"
            and e["data"]["object"]["payment_intent"] == pi_id][-1]
