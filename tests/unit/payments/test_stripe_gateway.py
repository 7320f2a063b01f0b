"""The Stripe gateway reads Stripe's real object shapes: SDK objects built from Stripe's own example objects
(`tests/support/stripe_fixtures.json`, from stripe/openapi's fixtures3.json) exactly as the SDK builds them from
a response."""
import copy
import json

import pytest
import stripe

from orders_service.payments.gateway import PaymentGatewayError, PaymentProviderBusy, PaymentRefused
from orders_service.payments.stripe_gateway import (
    _translate,
    charge_payment_intent,
    to_payment_intent,
    to_refund,
)
from tests.support.stripe_fixtures import stripe_fixtures

FIXTURES = stripe_fixtures()
KEY = "sk_test_fixtures"


def _fixture(name: str, **changes) -> dict:
    obj = copy.deepcopy(FIXTURES[name])
    obj.update(changes)
    return obj


def _sdk(cls, obj):
    return cls.construct_from(obj, KEY)


def _paid_charge(amount=1099, refunded=0, **changes):
    paid = dict(amount=amount, amount_captured=amount, amount_refunded=refunded, paid=True, status="succeeded",
                refunded=refunded >= amount, payment_intent="pi_1PgafyB7WZ01zgkWSjxsAJo3")
    return _fixture("charge", **{**paid, **changes})


def _succeeded_pi(latest_charge):
    return _fixture("payment_intent", status="succeeded", amount_received=1099, last_payment_error=None,
                    metadata={"order_id": "7f0b…"}, latest_charge=latest_charge)


def test_the_fixtures_are_real_stripes_shapes():
    pi = FIXTURES["payment_intent"]
    assert "charges" not in pi and "amount_received" in pi  # removed in 2022-11-15 / added
    assert pi["latest_charge"] is None or isinstance(pi["latest_charge"], str)
    assert isinstance(FIXTURES["refund"]["charge"], str)  # an id unless expanded


@pytest.mark.parametrize("latest_charge, refunded", [
    (None, 0),                                          # nothing charged yet
    ("ch_1PgafuB7WZ01zgkWXYmPNZs8", 0),                 # an id: real Stripe unless expanded
    ("expanded", 0),                                    # expand[]=latest_charge
    ("expanded-partly-refunded", 300),
    ("expanded-refunded", 1099),
])
def test_a_payment_intent_with_latest_charge_as_id_null_or_expanded(latest_charge, refunded):
    if latest_charge and latest_charge.startswith("expanded"):
        latest_charge = _paid_charge(refunded=refunded)
    intent = to_payment_intent(_sdk(stripe.PaymentIntent, _succeeded_pi(latest_charge)))
    assert (intent.id, intent.status, intent.amount, intent.currency) == (
        "pi_1PgafyB7WZ01zgkWSjxsAJo3", "succeeded", 1099, "USD")
    assert intent.order_id == "7f0b…" and intent.client_secret.startswith("pi_1PgafyB7WZ01zgkWSjxsAJo3_secret_")
    assert intent.amount_refunded == refunded
    assert intent.failure is None


def test_a_declined_payment_intent_names_its_error():
    pi = _fixture("payment_intent", status="requires_payment_method",
                  last_payment_error={"type": "card_error", "code": "card_declined",
                                      "message": "Your card was declined."})
    assert to_payment_intent(_sdk(stripe.PaymentIntent, pi)).failure == "Your card was declined."
    no_message = _fixture("payment_intent", last_payment_error={"type": "card_error", "code": "card_declined"})
    assert to_payment_intent(_sdk(stripe.PaymentIntent, no_message)).failure == "card_declined"


def test_the_fixtures_idempotency_error_is_still_a_failure():
    # Stripe's example carries `last_payment_error: {type: idempotency_error}`: no message, no code.
    assert to_payment_intent(_sdk(stripe.PaymentIntent, FIXTURES["payment_intent"])).failure == "payment failed"


@pytest.mark.parametrize("refunded", [0, 300, 1099])
def test_a_refunded_charge_tells_its_payment_intents_running_total(refunded):
    charge = _sdk(stripe.Charge, _paid_charge(refunded=refunded, metadata={}))
    intent = charge_payment_intent(charge)
    assert (intent.id, intent.status, intent.amount, intent.currency, intent.amount_refunded) == (
        "pi_1PgafyB7WZ01zgkWSjxsAJo3", "succeeded", 1099, "USD", refunded)
    assert intent.order_id is None  # a charge need not carry the PaymentIntent's metadata


@pytest.mark.parametrize("changes", [{"payment_intent": None}, {"paid": False}, {"status": "failed"}])
def test_a_charge_without_a_paid_payment_intent_says_nothing(changes):
    assert charge_payment_intent(_sdk(stripe.Charge, _paid_charge(**changes))) is None


def test_a_refund_with_its_charge_expanded_or_as_an_id():
    expanded = _sdk(stripe.Refund, _fixture("refund", amount=300, charge=_paid_charge(refunded=800)))
    assert (to_refund(expanded).id, to_refund(expanded).amount, to_refund(expanded).refunded_total) == (
        "re_1Pgc72B7WZ01zgkWqPvrRrPE", 300, 800)
    as_id = _sdk(stripe.Refund, _fixture("refund", amount=300))
    assert to_refund(as_id).refunded_total is None  # unknown: the caller falls back to its own refunds


def test_an_event_object_is_read_from_the_stored_payload():
    from orders_service.payments.stripe_gateway import StripeGateway

    class Settings:  # what the gateway reads from Settings
        stripe_api_base, stripe_timeout_seconds = "http://127.0.0.1:9", 1.0
        stripe_webhook_secret, stripe_secret_key = "whsec_x", KEY

    gateway = StripeGateway(Settings())
    event = _fixture("event", type="payment_intent.succeeded",
                     data={"object": _succeeded_pi("ch_1PgafuB7WZ01zgkWXYmPNZs8")})
    assert gateway.event_payment_intent(event).status == "succeeded"
    refunded = _fixture("event", type="charge.refunded", data={"object": _paid_charge(refunded=1099)})
    assert gateway.event_payment_intent(refunded).amount_refunded == 1099
    assert gateway.event_payment_intent(FIXTURES["event"]) is None  # plan.created: not about a payment
    broken = _fixture("event", type="payment_intent.succeeded", data={"object": {"object": "payment_intent"}})
    assert gateway.event_payment_intent(broken) is None


def _error(cls, status, code=None, headers=None, message="Stripe says no"):
    """The error the SDK raises for such an answer (positional `param` where the class takes one)."""
    body = {"error": {"type": "invalid_request_error", "message": message, **({"code": code} if code else {})}}
    answer = dict(http_body=json.dumps(body), http_status=status, json_body=body, headers=headers or {}, code=code)
    if cls is stripe.CardError:
        return cls(message, None, code, **{k: v for k, v in answer.items() if k != "code"})
    if cls in (stripe.InvalidRequestError,):
        return cls(message, None, **answer)
    return cls(message, **answer)


def test_a_rate_limit_is_later_not_a_failure():
    busy = _translate(_error(stripe.RateLimitError, 429, "rate_limit"))
    assert isinstance(busy, PaymentProviderBusy) and busy.retry_after == 1.0
    told = _translate(_error(stripe.RateLimitError, 429, "rate_limit", headers={"Retry-After": "7"}))
    assert told.retry_after == 7.0


@pytest.mark.parametrize("error, refused, code", [
    (lambda: _error(stripe.InvalidRequestError, 400, "amount_too_small"), True, "amount_too_small"),
    (lambda: _error(stripe.InvalidRequestError, 404, "resource_missing"), True, "resource_missing"),
    (lambda: _error(stripe.CardError, 402, "card_declined"), True, "card_declined"),
    (lambda: _error(stripe.IdempotencyError, 400, "idempotency_key_in_use"), True, "idempotency_key_in_use"),
    (lambda: _error(stripe.APIError, 500), False, None),
    (lambda: _error(stripe.InvalidRequestError, 409), False, None),  # a concurrent request with the key
    (lambda: stripe.APIConnectionError("Request timed out"), False, None),
    (lambda: _error(stripe.AuthenticationError, 401), False, None),
])
def test_a_refusal_is_told_apart_from_an_unknown_outcome(error, refused, code):
    translated = _translate(error())
    assert isinstance(translated, PaymentGatewayError)
    assert isinstance(translated, PaymentRefused) is refused
    if refused:
        assert translated.code == code
