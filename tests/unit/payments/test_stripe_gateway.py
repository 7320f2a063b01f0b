"""The Stripe gateway reads Stripe's real object shapes: SDK objects built from Stripe's own example objects
(`tests/support/stripe_fixtures.json`, from stripe/openapi's fixtures3.json) exactly as the SDK builds them from
a response."""
import copy
import json

import pytest
import stripe

from orders_service.payments.gateway import NextAction, PaymentGatewayError, PaymentProviderBusy, PaymentRefused
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
    paid = dict(amount=amount, amount_captured=amount, captured=True, amount_refunded=refunded, paid=True,
                status="succeeded", refunded=refunded >= amount, payment_intent="pi_1PgafyB7WZ01zgkWSjxsAJo3")
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


# Stripe's shapes for the methods cards are not: a SEPA Direct Debit charge's details, and a redirect.
SEPA_DETAILS = {"type": "sepa_debit", "sepa_debit": {"bank_code": "37040044", "branch_code": None, "country": "DE",
                                                     "fingerprint": "e1PQm4gUbWHqPsXq", "last4": "3000",
                                                     "mandate": "mandate_1PgafyB7WZ01zgkW"}}
REDIRECT = {"type": "redirect_to_url",
            "redirect_to_url": {"url": "https://hooks.stripe.com/redirect/authenticate/src_1Pgafy?client_secret=x",
                                "return_url": "https://shop.example.com/shop/?order=7f0b"}}
AUTOMATIC = ["card", "ideal", "sepa_debit"]  # what a PaymentIntent with automatic payment methods offers


def _method(kind: str) -> dict:
    pm = _fixture("payment_method", type=kind)
    if kind != "card":
        pm.pop("card")
        pm[kind] = {}
    return pm


@pytest.mark.parametrize("changes, expected", [
    # The charge that moved the money says how (expanded, as PATCH …/paid and reconciliation read it).
    ({"status": "processing", "payment_method_types": AUTOMATIC,
      "latest_charge": _paid_charge(status="pending", paid=False, payment_method_details=SEPA_DETAILS)}, "sepa_debit"),
    ({"status": "succeeded", "payment_method_types": AUTOMATIC, "latest_charge": _paid_charge()}, "card"),
    # Before there is a charge, the PaymentMethod (expanded) does.
    ({"status": "requires_action", "payment_method_types": AUTOMATIC, "payment_method": _method("ideal")}, "ideal"),
    # A failure carries the PaymentMethod that failed, expanded even in a webhook.
    ({"status": "requires_payment_method", "payment_method_types": AUTOMATIC, "payment_method": None,
      "last_payment_error": {"type": "invalid_request_error", "code": "insufficient_funds",
                             "message": "The customer's account has insufficient funds to cover this payment.",
                             "payment_method": _method("sepa_debit")}}, "sepa_debit"),
    # Ids only (a webhook's snapshot): what it offered tells only when it offered one method.
    ({"status": "processing", "payment_method_types": AUTOMATIC, "latest_charge": "ch_1", "payment_method": "pm_1"},
     None),
    ({"status": "processing", "payment_method_types": ["sepa_debit"], "latest_charge": "ch_1"}, "sepa_debit"),
    ({"status": "succeeded", "payment_method_types": ["card"], "latest_charge": "ch_1"}, "card"),
    # Nothing tried yet: no method was used, whatever was offered.
    ({"status": "requires_payment_method", "payment_method_types": ["card"], "last_payment_error": None}, None),
    ({"status": "canceled", "payment_method_types": ["card"], "last_payment_error": None}, None),
])
def test_the_type_of_the_method_used_comes_from_the_charge_or_the_payment_method(changes, expected):
    pi = _fixture("payment_intent", **{"last_payment_error": None, "payment_method": None, **changes})
    assert to_payment_intent(_sdk(stripe.PaymentIntent, pi)).method_type == expected


def test_a_charge_tells_the_type_of_its_method():
    charge = _sdk(stripe.Charge, _paid_charge(refunded=300, payment_method_details=SEPA_DETAILS))
    assert charge_payment_intent(charge).method_type == "sepa_debit"


@pytest.mark.parametrize("status, next_action, expected", [
    ("requires_action", REDIRECT, NextAction("redirect_to_url", REDIRECT["redirect_to_url"]["url"])),
    # 3-D Secure in Stripe.js: nothing to visit, the client secret is enough.
    ("requires_action", {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                                                      "stripe_js": "https://hooks.stripe.com/3ds"}},
     NextAction("use_stripe_sdk", None)),
    ("requires_action", {"type": "oxxo_display_details", "oxxo_display_details": {
        "expires_after": 1234567890, "hosted_voucher_url": "https://payments.stripe.com/oxxo/voucher/x"}},
     NextAction("oxxo_display_details", "https://payments.stripe.com/oxxo/voucher/x")),
    ("requires_action", {"type": "type"}, NextAction("type", None)),   # Stripe's own example object
    ("requires_payment_method", REDIRECT, None),                        # only a PaymentIntent waiting on it has one
    ("requires_action", None, None),
])
def test_the_next_action_a_payment_intent_waits_for(status, next_action, expected):
    pi = _fixture("payment_intent", status=status, next_action=next_action)
    assert to_payment_intent(_sdk(stripe.PaymentIntent, pi)).next_action == expected


def test_what_is_read_from_stripe_is_live_and_an_events_snapshot_is_not():
    pi = _sdk(stripe.PaymentIntent, FIXTURES["payment_intent"])
    assert (to_payment_intent(pi).live, to_payment_intent(pi, live=True).live) == (False, True)


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


def test_a_released_hold_is_no_payment_and_an_uncaptured_rest_is_no_refund():
    """Canceling a held PaymentIntent (or its hold lapsing) makes Stripe send charge.refunded for a charge never
    captured, `amount_refunded` all of it: no money moved. A charge captured in part counts the released rest in
    its `amount_refunded` too; only what was refunded of the captured part is a refund."""
    released = _paid_charge(refunded=1099, captured=False, amount_captured=0)
    assert charge_payment_intent(_sdk(stripe.Charge, released)) is None
    partly = charge_payment_intent(_sdk(stripe.Charge, _paid_charge(refunded=99, amount_captured=1000)))
    assert (partly.amount_refunded, partly.amount_received) == (0, 1000)
    then_refunded = charge_payment_intent(_sdk(stripe.Charge, _paid_charge(refunded=399, amount_captured=1000)))
    assert then_refunded.amount_refunded == 300
    pi = to_payment_intent(_sdk(stripe.PaymentIntent, {**_succeeded_pi(_paid_charge(refunded=99, amount_captured=1000)),
                                                       "amount_received": 1000}))
    assert (pi.amount_refunded, pi.amount_received) == (0, 1000)
    # A refund's running total is all that went back of the amount, as the order counts it: the released rest too.
    refund = _sdk(stripe.Refund, _fixture("refund", amount=300,
                                          charge=_paid_charge(refunded=399, amount_captured=1000)))
    assert to_refund(refund).refunded_total == 399


def test_an_explicit_nothing_capturable_is_nothing():
    held = _fixture("payment_intent", status="requires_capture", amount=1099, amount_capturable=0)
    assert to_payment_intent(held).amount_capturable == 0
    told_nothing = {k: v for k, v in held.items() if k != "amount_capturable"}
    assert to_payment_intent(told_nothing).amount_capturable == 1099


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
        stripe_payment_methods, payment_capture = ("card",), "automatic"

    gateway = StripeGateway(Settings())
    event = _fixture("event", type="payment_intent.succeeded",
                     data={"object": _succeeded_pi("ch_1PgafuB7WZ01zgkWXYmPNZs8")})
    assert gateway.event_payment_intent(event).status == "succeeded"
    refunded = _fixture("event", type="charge.refunded", data={"object": _paid_charge(refunded=1099)})
    assert gateway.event_payment_intent(refunded).amount_refunded == 1099
    assert gateway.event_payment_intent(FIXTURES["event"]) is None  # plan.created: not about a payment
    broken = _fixture("event", type="payment_intent.succeeded", data={"object": {"object": "payment_intent"}})
    assert gateway.event_payment_intent(broken) is None


class _Settings:
    stripe_api_base, stripe_timeout_seconds = "http://127.0.0.1:9", 1.0
    stripe_webhook_secret, stripe_secret_key = "whsec_x", KEY

    def __init__(self, methods, capture="automatic"):
        self.stripe_payment_methods, self.payment_capture = methods, capture


@pytest.mark.parametrize("methods, offered", [
    (None, {"automatic_payment_methods": {"enabled": True}}),            # the Dashboard's methods
    (("card",), {"payment_method_types": ["card"]}),
    (("card", "sepa_debit"), {"payment_method_types": ["card", "sepa_debit"]}),
])
def test_a_payment_intent_offers_the_configured_methods(methods, offered):
    from orders_service.payments.stripe_gateway import StripeGateway

    params = StripeGateway(_Settings(methods))._payment_intent_params("order-1", 1099, "EUR")
    assert {k: v for k, v in params.items() if k in ("automatic_payment_methods", "payment_method_types")} == offered
    assert (params["amount"], params["currency"], params["metadata"]) == (1099, "eur", {"order_id": "order-1"})


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


@pytest.mark.parametrize("methods", [None, ("card", "sepa_debit")])
def test_on_shipment_holds_cards_only(methods):
    """`capture_method` stays automatic: iDEAL, bank debits and other methods that cannot be held are charged
    at once; only a card is authorized and waits for its capture."""
    from orders_service.payments.stripe_gateway import StripeGateway

    held = StripeGateway(_Settings(methods, "on_shipment"))._payment_intent_params("order-1", 1099, "EUR")
    assert held["payment_method_options"] == {"card": {"capture_method": "manual"}}
    assert "capture_method" not in held
    taken = StripeGateway(_Settings(methods))._payment_intent_params("order-1", 1099, "EUR")
    assert "payment_method_options" not in taken and "capture_method" not in taken


def test_an_authorization_tells_what_may_be_captured_and_until_when():
    """Stripe's own objects: `requires_capture` with `amount_capturable`, and the expanded charge's
    `payment_method_details.card.capture_before`; a snapshot naming its charge by id tells no deadline."""
    charge = _fixture("charge", captured=False, status="succeeded", amount=1099, amount_captured=0)
    charge["payment_method_details"] = {"type": "card", "card": {"brand": "visa", "capture_before": 1_800_000_000}}
    pi = _sdk(stripe.PaymentIntent, _fixture("payment_intent", status="requires_capture", amount=1099,
                                             amount_capturable=1099, latest_charge=charge))
    intent = to_payment_intent(pi)
    assert (intent.status, intent.amount_capturable) == ("requires_capture", 1099)
    assert intent.capture_before is not None and intent.capture_before.timestamp() == 1_800_000_000
    assert intent.capture_before.utcoffset().total_seconds() == 0
    snapshot = to_payment_intent(_fixture("payment_intent", status="requires_capture", amount=1099,
                                          amount_capturable=1099, latest_charge=charge["id"]))
    assert snapshot.capture_before is None and snapshot.amount_capturable == 1099
    lapsed = to_payment_intent(_fixture("payment_intent", status="canceled", cancellation_reason="automatic"))
    assert (lapsed.status, lapsed.cancellation_reason, lapsed.amount_capturable) == ("canceled", "automatic", 0)


@pytest.mark.parametrize("timeout, longest", [(1.0, 3 * (1 + 1) + 0.5 + 1), (10.0, 3 * (5 + 10) + 0.5 + 1),
                                              (30.0, 3 * (5 + 30) + 0.5 + 1)])
def test_the_longest_call_counts_every_attempt_and_the_sdks_waits(timeout, longest):
    """Connect (at most 5 s) and read timeouts for the first try and each of the SDK's two retries, and its
    waits between them (0.5 s, then 1 s): how long a capture's claim must last, and no longer."""
    from orders_service.payments.stripe_gateway import StripeGateway
    settings = _Settings(("card",), capture="on_shipment")
    settings.stripe_timeout_seconds = timeout
    assert StripeGateway(settings).longest_call.total_seconds() == longest
