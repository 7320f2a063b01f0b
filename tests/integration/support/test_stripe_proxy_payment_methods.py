"""RealStripe drives the payments localstripe cannot make (a SEPA debit processing for days, a bank's
redirect page) in real Stripe's shapes, with the signed events real Stripe sends, through the real SDK; and
answers Stripe.js's own calls (the Payment Element's confirm, with the publishable key and the client secret)."""
from __future__ import annotations

import pytest
import requests
import stripe

from orders_service.payments.stripe_gateway import to_payment_intent
from tests.integration.support.test_stripe_proxy import RECEIVER_SECRET, Receiver
from tests.support.processes import wait_until
from tests.support.stripe_fixtures import stripe_fixtures
from tests.support.stripe_proxy import DASHBOARD_METHODS, RealStripe

KEY = "sk_test_real_stripe_payment_methods"
FIXTURES = stripe_fixtures()  # Stripe's own example objects (tests/support/stripe_fixtures.json)
RETURN_URL = "https://shop.example.com/shop/?order=order-1"


@pytest.fixture
def proxy(stripe_emulator):
    stripe_emulator.flush()
    with RealStripe(stripe_emulator.url, webhook_delay=(0.05, 0.2)) as running:
        yield running


@pytest.fixture
def sdk(proxy):
    return stripe.StripeClient(KEY, base_addresses={"api": proxy.url}, max_network_retries=0)


@pytest.fixture
def receiver(proxy):
    running = Receiver()
    proxy.forward_webhooks_to(running.url, RECEIVER_SECRET)
    yield running
    running.server.shutdown()
    running.server.server_close()


def _create(sdk, **offer):
    offer = offer or {"automatic_payment_methods": {"enabled": True}}
    return sdk.v1.payment_intents.create(params={"amount": 2500, "currency": "eur",
                                                 "metadata": {"order_id": "order-1"}, **offer})


def _read(sdk, pi_id):
    return sdk.v1.payment_intents.retrieve(pi_id, params={"expand": ["latest_charge", "payment_method"]})


def test_automatic_payment_methods_are_accepted_and_shown(sdk):
    automatic = _create(sdk)
    assert automatic.automatic_payment_methods.enabled is True
    assert automatic.payment_method_types == DASHBOARD_METHODS
    listed = _create(sdk, payment_method_types=["card", "sepa_debit"])
    assert listed.automatic_payment_methods is None and listed.payment_method_types == ["card", "sepa_debit"]
    assert sdk.v1.payment_intents.retrieve(automatic.id).payment_method_types == DASHBOARD_METHODS


def test_a_sepa_debit_processes_then_succeeds(sdk, proxy, receiver):
    pi = _create(sdk)
    proxy.start_processing(pi.id, "sepa_debit")

    [event] = receiver.wait("payment_intent.processing", pi.id)
    snapshot = event.data.object
    assert snapshot.status == "processing" and snapshot.amount_received == 0
    assert isinstance(snapshot.latest_charge, str) and isinstance(snapshot.payment_method, str)  # never expanded
    read = _read(sdk, pi.id)
    assert (read.status, read.latest_charge.status, read.latest_charge.paid) == ("processing", "pending", False)
    assert read.latest_charge.payment_method_details.type == "sepa_debit"
    assert read.latest_charge.payment_method_details.sepa_debit.last4 == "3000"
    assert read.payment_method.type == "sepa_debit"
    assert sdk.v1.charges.retrieve(snapshot.latest_charge).status == "pending"
    assert to_payment_intent(read, live=True).method_type == "sepa_debit"

    # Stripe cannot stop a payment it is processing.
    for call in (lambda: sdk.v1.payment_intents.cancel(pi.id),
                 lambda: sdk.v1.payment_intents.confirm(pi.id),
                 lambda: sdk.v1.refunds.create(params={"payment_intent": pi.id})):
        with pytest.raises(stripe.InvalidRequestError):
            call()
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.cancel(pi.id)
    assert refused.value.code == "payment_intent_unexpected_state"
    assert "status of processing" in refused.value.user_message

    proxy.succeed(pi.id)

    [succeeded] = receiver.wait("payment_intent.succeeded", pi.id)
    assert succeeded.data.object.status == "succeeded" and succeeded.data.object.amount_received == 2500
    paid = _read(sdk, pi.id)
    assert (paid.status, paid.latest_charge.paid, paid.latest_charge.payment_method_details.type) == (
        "succeeded", True, "sepa_debit")
    # localstripe's own payment_intent.succeeded (it was paid there) is not sent as a second event.
    wait_until(lambda: proxy.replacing() == 0, timeout=10)
    assert len(receiver.events("payment_intent.succeeded", pi.id)) == 1
    refund = sdk.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})  # the money is really there
    assert refund.status == "succeeded"


def test_a_sepa_debit_fails_after_processing_and_can_be_paid_again(sdk, proxy, receiver):
    pi = _create(sdk)
    proxy.start_processing(pi.id)
    proxy.fail_processing(pi.id)

    [failed] = receiver.wait("payment_intent.payment_failed", pi.id)
    error = failed.data.object.last_payment_error
    assert failed.data.object.status == "requires_payment_method"
    assert (error.code, error.payment_method.type) == ("insufficient_funds", "sepa_debit")
    assert "insufficient funds" in error.message
    read = _read(sdk, pi.id)
    assert read.payment_method is None and read.latest_charge.status == "failed"
    assert read.latest_charge.failure_code == "insufficient_funds"
    intent = to_payment_intent(failed.data.object)
    assert (intent.failure, intent.method_type) == (error.message, "sepa_debit")

    sdk.v1.payment_intents.update(pi.id, params={"payment_method": "pm_card_visa"})  # by card this time
    paid = sdk.v1.payment_intents.confirm(pi.id)
    assert paid.status == "succeeded" and paid.last_payment_error is None
    assert _read(sdk, pi.id).latest_charge.payment_method_details.type == "card"


@pytest.mark.parametrize("outcome, then, status, redirect_status", [
    ("authorize", "succeeded", "succeeded", "succeeded"),
    ("authorize", "processing", "processing", "succeeded"),
    ("fail", "succeeded", "requires_payment_method", "failed"),
])
def test_a_redirect_to_the_banks_page_and_back(sdk, proxy, receiver, outcome, then, status, redirect_status):
    pi = _create(sdk)
    proxy.require_action(pi.id, "ideal", RETURN_URL, then=then)

    [event] = receiver.wait("payment_intent.requires_action", pi.id)
    action = event.data.object.next_action
    assert (event.data.object.status, action.type) == ("requires_action", "redirect_to_url")
    assert (action.redirect_to_url.url, action.redirect_to_url.return_url) == (proxy.redirect_url(pi.id), RETURN_URL)
    assert set(FIXTURES["payment_intent"]["next_action"]) <= set(action.to_dict())
    assert _read(sdk, pi.id).payment_method.type == "ideal"
    page = requests.get(action.redirect_to_url.url, timeout=10)
    assert page.status_code == 200 and "Authorize Test Payment" in page.text and "Fail Test Payment" in page.text

    back = requests.post(action.redirect_to_url.url, data={"outcome": outcome}, allow_redirects=False, timeout=10)

    assert back.status_code == 303
    assert back.headers["Location"].startswith(RETURN_URL + "&payment_intent=" + pi.id)
    assert f"redirect_status={redirect_status}" in back.headers["Location"]
    read = _read(sdk, pi.id)
    assert read.status == status
    expected = {"succeeded": "payment_intent.succeeded", "processing": "payment_intent.processing",
                "requires_payment_method": "payment_intent.payment_failed"}[status]
    [settled] = receiver.wait(expected, pi.id)
    if status == "requires_payment_method":
        assert settled.data.object.last_payment_error.code == "payment_intent_authentication_failure"
    else:
        assert to_payment_intent(read, live=True).method_type == "ideal"
    assert requests.get(action.redirect_to_url.url, timeout=10).status_code == 404  # nothing waits on it now


def test_a_payment_waiting_on_its_customer_can_be_canceled(sdk, proxy, receiver):
    pi = _create(sdk)
    proxy.require_action(pi.id)
    canceled = sdk.v1.payment_intents.cancel(pi.id)
    assert canceled.status == "canceled" and canceled.next_action is None
    assert receiver.wait("payment_intent.canceled", pi.id)[0].data.object.status == "canceled"


def test_only_a_method_the_payment_intent_offers_can_pay_it(sdk, proxy):
    card_only = _create(sdk, payment_method_types=["card"])
    with pytest.raises(AssertionError, match="would not let it be paid by sepa_debit"):
        proxy.start_processing(card_only.id, "sepa_debit")
    proxy.start_processing(card_only.id, "card")  # cards too may be processing (rarely)
    assert _read(sdk, card_only.id).latest_charge.payment_method_details.type == "card"


def test_a_charge_has_payment_method_details_as_stripes_own(sdk):
    pi = _create(sdk, payment_method_types=["card"])
    sdk.v1.payment_intents.update(pi.id, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(pi.id)
    charge = _read(sdk, pi.id).latest_charge.to_dict()
    assert charge["payment_method_details"]["type"] == FIXTURES["charge"]["payment_method_details"]["type"] == "card"
    assert {"failure_code", "failure_message", "payment_method_details"} <= set(FIXTURES["charge"])
    assert {"failure_code", "failure_message", "payment_method_details"} <= set(charge)


# -- what Stripe.js (the Payment Element) asks with the publishable key -----------------------------------------
PK = "pk_test_real_stripe_payment_methods"
CARD = {"payment_method_data[type]": "card", "payment_method_data[card][exp_month]": "12",
        "payment_method_data[card][exp_year]": "2034", "payment_method_data[card][cvc]": "123"}


def _browser(proxy, method: str, pi, data: dict | None = None, secret: str | None = None, **form) -> requests.Response:
    """A request as Stripe.js sends it from the customer's browser: no secret key, the publishable key and the
    client secret as form fields, from the shop's origin."""
    path = f"/v1/payment_intents/{pi.id}" + ("/confirm" if method == "POST" else "")
    fields = {"key": PK, "client_secret": secret or pi.client_secret, **(data or {}), **form}
    headers = {"Origin": "https://shop.example.com"}
    if method == "GET":
        return requests.get(proxy.url + path, params=fields, headers=headers, timeout=10)
    return requests.post(proxy.url + path, data=fields, headers=headers, timeout=10)


def test_stripe_js_reads_and_confirms_only_with_the_client_secret(sdk, proxy):
    pi = _create(sdk)
    read = _browser(proxy, "GET", pi)
    assert read.status_code == 200 and read.json()["payment_method_types"] == DASHBOARD_METHODS
    assert read.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    for answer in (_browser(proxy, "GET", pi, secret=pi.id + "_secret_wrong"),
                   _browser(proxy, "POST", pi, CARD, secret=pi.id + "_secret_wrong", return_url=RETURN_URL)):
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "client_secret"
    # Dashboard methods may redirect: Stripe refuses a confirm without a return_url, and a method not offered.
    no_return = _browser(proxy, "POST", pi, {**CARD, "payment_method_data[card][number]": "4242424242424242"})
    assert no_return.status_code == 400 and "return_url" in no_return.json()["error"]["message"]
    card_only = _create(sdk, payment_method_types=["card"])
    refused = _browser(proxy, "POST", card_only, {"payment_method_data[type]": "ideal"}, return_url=RETURN_URL)
    assert refused.status_code == 400 and "ideal is invalid" in refused.json()["error"]["message"]
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"


def test_stripe_js_card_declined_then_paid_on_the_same_payment_intent(sdk, proxy, receiver):
    pi = _create(sdk)
    declined = _browser(proxy, "POST", pi, {**CARD, "payment_method_data[card][number]": "4000000000000002"},
                        return_url=RETURN_URL)

    assert declined.status_code == 402
    error = declined.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == ("card_error", "card_declined", "generic_decline")
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["payment_intent"]["last_payment_error"]["message"] == "Your card was declined."
    [failed] = receiver.wait("payment_intent.payment_failed", pi.id)
    assert failed.data.object.last_payment_error.payment_method.card.last4 == "0002"
    assert _read(sdk, pi.id).latest_charge.status == "failed"

    paid = _browser(proxy, "POST", pi, {**CARD, "payment_method_data[card][number]": "4242424242424242"},
                    return_url=RETURN_URL)

    assert paid.status_code == 200 and paid.json()["status"] == "succeeded"
    receiver.wait("payment_intent.succeeded", pi.id)
    read = _read(sdk, pi.id)
    assert (read.status, read.last_payment_error, read.latest_charge.paid) == ("succeeded", None, True)


def test_stripe_js_sepa_debit_needs_a_mandate_then_is_processing(sdk, proxy, receiver):
    pi = _create(sdk)
    debit = {"payment_method_data[type]": "sepa_debit", "payment_method_data[sepa_debit][iban]": "AT611904300234573201",
             "payment_method_data[billing_details][name]": "Jenny Rosen",
             "payment_method_data[billing_details][email]": "jenny@example.com"}
    unmandated = _browser(proxy, "POST", pi, debit, return_url=RETURN_URL)
    assert unmandated.status_code == 400 and unmandated.json()["error"]["param"] == "mandate_data"

    accepted = _browser(proxy, "POST", pi, debit, return_url=RETURN_URL,
                        **{"mandate_data[customer_acceptance][type]": "online"})

    assert accepted.status_code == 200 and accepted.json()["status"] == "processing"
    receiver.wait("payment_intent.processing", pi.id)
    method = _read(sdk, pi.id).payment_method
    assert (method.type, method.sepa_debit.last4, method.sepa_debit.country) == ("sepa_debit", "3201", "AT")
    assert method.billing_details.name == "Jenny Rosen"


def test_stripe_js_redirect_method_waits_on_the_banks_page(sdk, proxy, receiver):
    pi = _create(sdk)
    waiting = _browser(proxy, "POST", pi, {"payment_method_data[type]": "ideal",
                                           "payment_method_data[ideal][bank]": "ing"}, return_url=RETURN_URL)

    assert waiting.status_code == 200
    action = waiting.json()["next_action"]
    assert waiting.json()["status"] == "requires_action" and action["type"] == "redirect_to_url"
    assert action["redirect_to_url"] == {"url": proxy.redirect_url(pi.id), "return_url": RETURN_URL}
    receiver.wait("payment_intent.requires_action", pi.id)
    assert _read(sdk, pi.id).payment_method.ideal.bank == "ing"
