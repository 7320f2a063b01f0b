"""POST /api/webhooks/stripe: signature checked on the raw body, the event stored once, then enqueued."""
import json
import time

import pytest
from sqlalchemy import func, select

from orders_service.payments.models import StripeEvent
from tests.support.stripe import signed_event


def _count(db):
    return db.scalar(select(func.count()).select_from(StripeEvent))


def test_a_signed_event_is_stored_once(client, db):
    body, headers = signed_event("payment_intent.succeeded", {"id": "pi_123", "object": "payment_intent",
                                                              "metadata": {"order_id": "not-a-uuid"}})
    first = client.post("/api/webhooks/stripe", data=body, headers=headers)
    again = client.post("/api/webhooks/stripe", data=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert (first.json["duplicate"], again.json["duplicate"]) == (False, True)
    assert _count(db) == 1
    stored = db.scalars(select(StripeEvent)).one()
    assert stored.type == "payment_intent.succeeded" and stored.processed_at is None


def test_unknown_event_types_are_stored_and_acknowledged(client, db):
    body, headers = signed_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert client.post("/api/webhooks/stripe", data=body, headers=headers).status_code == 200
    assert _count(db) == 1


@pytest.mark.parametrize("text, cleaned", [
    ("ring\u0000twice", "ring\ufffdtwice"),
    ("half \ud83d a smile", "half \ufffd a smile"),
    ("\udfff", "\ufffd"),
], ids=["nul", "lone-high-surrogate", "lone-low-surrogate"])
def test_a_verified_event_with_text_postgresql_cannot_store_is_stored_anyway(client, db, text, cleaned):
    """docs/api.md, "Stripe webhooks in": any verified event is stored and acknowledged whatever text it
    carries; else Stripe would send it again for days. The JSON the workers read has U+FFFD instead, the
    signed body is kept."""
    obj = {"id": "pi_123", "object": "payment_intent", "description": text, "metadata": {text: text}}
    body, headers = signed_event("payment_intent.succeeded", obj)
    response = client.post("/api/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.json["duplicate"] is False
    stored = db.scalars(select(StripeEvent)).one()
    assert stored.payload["data"]["object"]["description"] == cleaned
    assert stored.payload["data"]["object"]["metadata"] == {cleaned: cleaned}
    assert json.loads(stored.raw_payload) == json.loads(body)  # the signed body, as it came
    assert client.post("/api/webhooks/stripe", data=body, headers=headers).json["duplicate"] is True


def test_a_storable_event_keeps_no_second_copy(client, db):
    body, headers = signed_event("payment_intent.succeeded", {"id": "pi_123", "object": "payment_intent",
                                                              "description": "caf\u00e9 \U0001f600"})
    assert client.post("/api/webhooks/stripe", data=body, headers=headers).status_code == 200
    stored = db.scalars(select(StripeEvent)).one()
    assert stored.payload["data"]["object"]["description"] == "caf\u00e9 \U0001f600" and stored.raw_payload is None


def _bad_requests():
    good_body, good_headers = signed_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})
    wrong_secret = signed_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"},
                                secret="whsec_someone_else")
    stale = signed_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"},
                         timestamp=int(time.time()) - 600)
    import stripe

    from tests.support.stripe import WEBHOOK_SECRET

    def signed_raw(text):
        return text.encode(), {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
            text, WEBHOOK_SECRET), "Content-Type": "application/json"}

    return {
        "no-signature": (good_body, {"Content-Type": "application/json"}),
        "garbage-signature": (good_body, {**good_headers, "Stripe-Signature": "t=1,v1=deadbeef"}),
        "tampered-body": (good_body.replace(b"pi_1", b"pi_2"), good_headers),
        "wrong-secret": wrong_secret,
        "stale-timestamp": stale,
        # The SDK checks only the past; a signature dated ahead of the tolerance is refused all the same.
        "future-timestamp": signed_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"},
                                         timestamp=int(time.time()) + 600),
        "far-future-timestamp": signed_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"},
                                             timestamp=int(time.time()) + 10 * 365 * 86400),
        "signed-but-not-json": signed_raw("hello"),
        "signed-json-array": signed_raw("[1, 2]"),
        "signed-not-an-event": signed_raw(json.dumps({"id": "evt_1", "object": "charge", "type": "x",
                                                       "data": {"object": {}}})),
        "signed-event-without-object": signed_raw(json.dumps({"id": "evt_1", "object": "event", "type": "x"})),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_webhooks_are_400_and_store_nothing(client, db, case):
    body, headers = _bad_requests()[case]
    response = client.post("/api/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 400, response.json
    assert response.json["code"] == 400
    assert _count(db) == 0


@pytest.mark.parametrize("skew", [-240, 240], ids=["4-minutes-old", "4-minutes-ahead"])
def test_a_signature_within_the_tolerance_either_way_is_accepted(client, db, skew):
    """Clocks differ a little: Stripe's 300 s tolerance applies to both sides of now."""
    body, headers = signed_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"},
                                 timestamp=int(time.time()) + skew)
    response = client.post("/api/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 200, response.json
    assert _count(db) == 1
