"""RealStripe, the real-shaped Stripe in front of localstripe, driven with the real stripe SDK."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe

from tests.support.stripe_fixtures import stripe_fixtures
from tests.support.stripe_proxy import RealStripe, endpoint_template

KEY = "sk_test_real_stripe_proxy_tests"
RECEIVER_SECRET = "whsec_receiver_of_the_proxy_tests"


@pytest.fixture
def localstripe(stripe_emulator):
    stripe_emulator.flush()
    return stripe_emulator.url


@pytest.fixture
def proxy(localstripe):
    with RealStripe(localstripe, webhook_delay=(0.05, 0.2)) as running:
        yield running


@pytest.fixture
def sdk(proxy):
    return stripe.StripeClient(KEY, base_addresses={"api": proxy.url}, max_network_retries=0)


class Receiver:
    """A webhook endpoint that keeps what it is sent and checks signatures as the service does."""

    def __init__(self):
        self.received: list[tuple[bytes, str]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append((self.rfile.read(int(self.headers["Content-Length"])),
                                 self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, type_: str | None = None, about: str | None = None) -> list:
        """Verified events (stripe.Webhook.construct_event raises on a bad signature)."""
        out = []
        for body, signature in list(self.received):
            event = stripe.Webhook.construct_event(body.decode(), signature, RECEIVER_SECRET)
            obj = event.data.object
            if type_ and event.type != type_:
                continue
            if about and about not in (obj.id, getattr(obj, "payment_intent", None)):
                continue  # localstripe may still deliver an earlier test's event
            out.append(event)
        return out

    def wait(self, type_: str, about: str, count: int = 1, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while len(found := self.events(type_, about)) < count:
            assert time.monotonic() < deadline, f"{len(found)} {type_} for {about}, wanted {count}"
            time.sleep(0.05)
        return found


@pytest.fixture
def receiver(proxy):
    running = Receiver()
    proxy.forward_webhooks_to(running.url, RECEIVER_SECRET)
    yield running
    running.server.shutdown()
    running.server.server_close()


def _create(sdk, amount=2000, currency="usd", **options):
    return sdk.v1.payment_intents.create(params={"amount": amount, "currency": currency,
                                                 "metadata": {"order_id": "order-1"},
                                                 "payment_method_types": ["card"]}, options=options)


def _paid(sdk, amount=2000):
    pi = _create(sdk, amount)
    sdk.v1.payment_intents.update(pi.id, params={"payment_method": "pm_card_visa"})
    return sdk.v1.payment_intents.confirm(pi.id)


def _localstripe_pis(localstripe) -> list[dict]:
    answer = requests.get(f"{localstripe}/v1/payment_intents", params={"limit": 100}, auth=(KEY, ""),
                          timeout=10)
    return answer.json()["data"]


def test_endpoint_templates():
    assert endpoint_template("GET", "/v1/payment_intents/pi_123?expand[0]=latest_charge") == \
        "GET /v1/payment_intents/{id}"
    assert endpoint_template("POST", "/v1/payment_intents/pi_1/confirm") == \
        "POST /v1/payment_intents/{id}/confirm"
    assert endpoint_template("POST", "/v1/refunds") == "POST /v1/refunds"
    assert endpoint_template("GET", "/v1/payment_intents/search") == "GET /v1/payment_intents/search"
    assert endpoint_template("POST", "/v1/customers/cus_1/sources/card_2") == \
        "POST /v1/customers/{id}/sources/{id}"


def test_a_payment_intent_has_real_stripes_shape(sdk):
    created = _create(sdk)
    assert created.latest_charge is None
    assert created.amount_received == 0 and created.amount_capturable == 0
    assert created.canceled_at is None and created.cancellation_reason is None
    assert created.automatic_payment_methods is None
    assert "charges" not in created.to_dict()

    paid = _paid(sdk)
    assert paid.status == "succeeded"
    assert isinstance(paid.latest_charge, str) and paid.latest_charge.startswith("ch_")
    assert paid.amount_received == 2000
    assert "charges" not in paid.to_dict()
    assert isinstance(sdk.v1.payment_intents.retrieve(paid.id).latest_charge, str)


def test_latest_charge_is_an_object_only_when_expanded(sdk):
    paid = _paid(sdk)
    expanded = sdk.v1.payment_intents.retrieve(paid.id, params={"expand": ["latest_charge"]})
    charge = expanded.latest_charge
    assert isinstance(charge, stripe.Charge) and charge.id == paid.latest_charge
    assert charge.amount_refunded == 0 and charge.refunded is False and charge.payment_intent == paid.id
    assert "refunds" not in charge.to_dict()
    assert charge.metadata["order_id"] == "order-1"  # Stripe copies the PI's metadata onto its charge

    with_refunds = sdk.v1.payment_intents.retrieve(paid.id, params={"expand": ["latest_charge.refunds"]})
    assert with_refunds.latest_charge.refunds.data == []
    assert "refunds" not in sdk.v1.charges.retrieve(paid.latest_charge).to_dict()
    expanded_charge = sdk.v1.charges.retrieve(paid.latest_charge, params={"expand": ["refunds"]})
    assert expanded_charge.refunds.object == "list"

    listed = sdk.v1.payment_intents.list()
    assert [pi.latest_charge for pi in listed.data if pi.id == paid.id] == [paid.latest_charge]
    listed = sdk.v1.payment_intents.list(params={"expand": ["data.latest_charge"]})
    assert [pi.latest_charge.id for pi in listed.data if pi.id == paid.id] == [paid.latest_charge]


def test_an_idempotent_create_is_replayed_and_other_params_are_refused(sdk, proxy, localstripe):
    first = _create(sdk, idempotency_key="order-1-payment-intent")
    again = _create(sdk, idempotency_key="order-1-payment-intent")
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(_localstripe_pis(localstripe)) == 1
    assert proxy.count("POST /v1/payment_intents") == 2

    with pytest.raises(stripe.IdempotencyError) as refused:
        _create(sdk, amount=2500, idempotency_key="order-1-payment-intent")
    assert refused.value.http_status == 400
    assert "same parameters" in refused.value.user_message
    assert len(_localstripe_pis(localstripe)) == 1

    other_key = _create(sdk, idempotency_key="order-2-payment-intent")
    assert other_key.id != first.id


def test_a_key_still_in_progress_gets_409(sdk, proxy, localstripe):
    proxy.delay = 0.8
    results = {}

    def first():
        results["first"] = _create(sdk, idempotency_key="same-key")

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.3)
    with pytest.raises(stripe.APIError) as conflict:
        _create(sdk, idempotency_key="same-key")
    thread.join()
    assert conflict.value.http_status == 409
    assert conflict.value.error.type == "idempotency_error"
    proxy.delay = 0
    assert _create(sdk, idempotency_key="same-key").id == results["first"].id
    assert len(_localstripe_pis(localstripe)) == 1


@pytest.mark.parametrize("amount,currency,minimum,message", [
    (30, "usd", 50, "Amount must be at least $0.50 usd"),
    (49, "eur", 50, "Amount must be at least €0.50 eur"),
    (29, "gbp", 30, "Amount must be at least £0.30 gbp"),
    (49, "jpy", 50, "Amount must be at least ¥50 jpy"),
])
def test_amounts_below_stripes_minimum_are_refused(sdk, localstripe, amount, currency, minimum, message):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _create(sdk, amount=amount, currency=currency)
    assert (refused.value.code, refused.value.param, refused.value.user_message) == \
        ("amount_too_small", "amount", message)
    assert _localstripe_pis(localstripe) == []
    assert _create(sdk, amount=minimum, currency=currency).amount == minimum


def test_an_update_below_the_minimum_is_refused(sdk):
    pi = _create(sdk, amount=1000, currency="gbp")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.update(pi.id, params={"amount": 20})
    assert refused.value.code == "amount_too_small" and "£0.30 gbp" in refused.value.user_message


def test_beyond_the_rate_limit_stripe_answers_429_which_the_sdk_does_not_retry(proxy, localstripe):
    retrying = stripe.StripeClient(KEY, base_addresses={"api": proxy.url}, max_network_retries=2)
    pi = _create(retrying)
    proxy.rate_limit, proxy.rate_window = 3, 5.0  # a wide window: a slow machine cannot slip under it
    for _ in range(3):
        retrying.v1.payment_intents.retrieve(pi.id)
    with pytest.raises(stripe.RateLimitError) as limited:
        retrying.v1.payment_intents.retrieve(pi.id)
    error = limited.value
    assert error.http_status == 429 and error.error.code == "rate_limit"  # RateLimitError.code stays None
    assert error.error.type == "invalid_request_error"
    assert error.headers["Stripe-Rate-Limited-Reason"] == "endpoint-rate"
    assert "Stripe-Should-Retry" not in error.headers and "Retry-After" not in error.headers
    assert error.request_id.startswith("req_")
    assert proxy.count("GET /v1/payment_intents/{id}") == 4  # the SDK did not retry the 429
    # Another endpoint has its own budget.
    assert retrying.v1.payment_intents.update(pi.id, params={"metadata": {"x": "1"}}).metadata["x"] == "1"


def test_the_rate_limit_window_slides(sdk, proxy):
    pi = _create(sdk)
    proxy.rate_limits = {"GET /v1/payment_intents/{id}": 2}
    proxy.rate_window = 0.5
    sdk.v1.payment_intents.retrieve(pi.id)
    sdk.v1.payment_intents.retrieve(pi.id)
    time.sleep(0.6)
    assert sdk.v1.payment_intents.retrieve(pi.id).id == pi.id


def test_partial_refunds_send_charge_refunded_with_running_totals(sdk, proxy, receiver):
    paid = _paid(sdk, 2000)
    sdk.v1.refunds.create(params={"payment_intent": paid.id, "amount": 500})
    sdk.v1.refunds.create(params={"payment_intent": paid.id, "amount": 700})
    events = receiver.wait("charge.refunded", paid.id, count=2)
    assert len(events) == 2
    charges = sorted((e.data.object for e in events), key=lambda c: c.amount_refunded)
    assert [c.amount_refunded for c in charges] == [500, 1200]
    assert [c.refunded for c in charges] == [False, False]
    for event in events:
        charge = event.data.object
        assert charge.object == "charge" and charge.id == paid.latest_charge
        assert charge.payment_intent == paid.id
        assert charge.metadata["order_id"] == "order-1"
        assert "refunds" not in charge.to_dict()
        assert event.api_version == proxy.api_version and event.request.idempotency_key

    sdk.v1.refunds.create(params={"payment_intent": paid.id})  # the rest
    last = max((e.data.object for e in receiver.wait("charge.refunded", paid.id, count=3)),
               key=lambda c: c.amount_refunded)
    assert (last.amount_refunded, last.refunded) == (2000, True)  # localstripe alone would refund 2000 more
    assert proxy.count("POST /v1/refunds") == 3


def test_refunds_beyond_the_charge_are_refused(sdk):
    paid = _paid(sdk, 2000)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        sdk.v1.refunds.create(params={"payment_intent": paid.id, "amount": 2001})
    assert too_much.value.param == "amount"
    assert "greater than unrefunded amount" in too_much.value.user_message
    sdk.v1.refunds.create(params={"payment_intent": paid.id})
    with pytest.raises(stripe.InvalidRequestError) as again:
        sdk.v1.refunds.create(params={"payment_intent": paid.id})
    assert again.value.code == "charge_already_refunded"
    assert sdk.v1.charges.retrieve(paid.latest_charge).amount_refunded == 2000
    unpaid = _create(sdk)
    with pytest.raises(stripe.InvalidRequestError):  # localstripe alone crashes with a bare 500
        sdk.v1.refunds.create(params={"payment_intent": unpaid.id})


def test_localstripes_own_events_arrive_reshaped_and_resigned(sdk, proxy, receiver):
    paid = _paid(sdk)
    [event] = receiver.wait("payment_intent.succeeded", paid.id)  # signature checked with our secret
    assert event.api_version == proxy.api_version != "2017-08-15"
    pi = event.data.object
    assert pi.latest_charge == paid.latest_charge and "charges" not in pi.to_dict()
    assert pi.amount_received == 2000


def test_a_refund_in_the_dashboard_sends_charge_refunded_without_an_api_call(sdk, proxy, receiver):
    paid = _paid(sdk, 3000)
    calls = proxy.count()
    refund = proxy.refund_in_dashboard(paid.id, amount=1000)
    assert refund["amount"] == 1000 and refund["payment_intent"] == paid.id
    [event] = receiver.wait("charge.refunded", paid.id)
    assert event.data.object.amount_refunded == 1000
    assert event.data.previous_attributes.amount_refunded == 0
    assert proxy.count() == calls
    charge = sdk.v1.charges.retrieve(paid.latest_charge)
    assert charge.amount_refunded == 1000


def test_cancel_sends_payment_intent_canceled(sdk, receiver):
    pi = _create(sdk)
    canceled = sdk.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "abandoned"})
    assert canceled.status == "canceled"
    assert canceled.cancellation_reason == "abandoned"  # localstripe alone answers 400 to this parameter
    assert isinstance(canceled.canceled_at, int)
    [event] = receiver.wait("payment_intent.canceled", pi.id)
    assert event.data.object.status == "canceled" and event.data.object.metadata["order_id"] == "order-1"
    assert sdk.v1.payment_intents.retrieve(pi.id).canceled_at == canceled.canceled_at


def test_webhooks_can_be_paused_dropped_and_duplicated(sdk, proxy, receiver):
    proxy.webhooks_paused = True
    first = _create(sdk)
    sdk.v1.payment_intents.cancel(first.id)
    time.sleep(0.5)
    assert receiver.events("payment_intent.canceled", first.id) == []
    proxy.webhooks_paused = False
    receiver.wait("payment_intent.canceled", first.id)

    proxy.drop_webhooks = True
    second = _create(sdk)
    sdk.v1.payment_intents.cancel(second.id)
    deadline = time.monotonic() + 5
    while not any(d["status"] == "dropped" for d in proxy.deliveries):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert receiver.events("payment_intent.canceled", second.id) == []
    proxy.drop_webhooks = False

    proxy.deliver_times = 2
    third = _create(sdk)
    sdk.v1.payment_intents.cancel(third.id)
    twice = receiver.wait("payment_intent.canceled", third.id, count=2)
    assert twice[0].id == twice[1].id
    delivered = [e["data"]["object"]["id"] for e in proxy.delivered("payment_intent.canceled")]
    assert delivered == [first.id, third.id]


def test_a_lost_create_answer_happened_at_stripe_and_a_retry_with_the_key_gets_it(sdk, proxy, localstripe):
    proxy.lose_answer_next("POST /v1/payment_intents")
    with pytest.raises(stripe.APIConnectionError):
        _create(sdk, idempotency_key="order-9-payment-intent")
    [at_stripe] = _localstripe_pis(localstripe)
    assert at_stripe["metadata"] == {"order_id": "order-1"}

    retried = _create(sdk, idempotency_key="order-9-payment-intent")
    assert retried.id == at_stripe["id"]
    assert len(_localstripe_pis(localstripe)) == 1
    assert [e["status"] for e in proxy.log] == ["lost", 200]


def test_the_sdks_own_retry_recovers_a_lost_answer_with_the_same_key(proxy, localstripe):
    retrying = stripe.StripeClient(KEY, base_addresses={"api": proxy.url}, max_network_retries=1)
    proxy.lose_answer_next("POST /v1/payment_intents")
    pi = _create(retrying)  # the SDK generates one key and sends it on both attempts
    assert [pi.id] == [p["id"] for p in _localstripe_pis(localstripe)]
    assert [e["replayed"] for e in proxy.log] == [False, True]


def _for_order(sdk, order_id, **params):
    return sdk.v1.payment_intents.create(params={"amount": 2000, "currency": "usd", "metadata": {"order_id": order_id},
                                                 "payment_method_types": ["card"], **params})


def test_search_finds_payment_intents_by_metadata_in_stripes_shape(sdk, proxy):
    first, other, second = _for_order(sdk, "order-a"), _for_order(sdk, "order-b"), _for_order(sdk, "order-a")
    sdk.v1.payment_intents.update(second.id, params={"payment_method": "pm_card_visa"})
    sdk.v1.payment_intents.confirm(second.id)

    found = sdk.v1.payment_intents.search(params={"query": "metadata['order_id']:'order-a'",
                                                  "expand": ["data.latest_charge"]})

    assert found.object == "search_result" and found.url == "/v1/payment_intents/search"
    assert [pi.id for pi in found.data] == [second.id, first.id]  # newest first
    assert found.data[0].latest_charge.object == "charge" and "charges" not in found.data[0]  # expanded
    assert found.has_more is False and found.next_page is None
    assert [pi.id for pi in sdk.v1.payment_intents.search(params={
        "query": "metadata['order_id']:'order-a' AND status:'succeeded'"}).data] == [second.id]
    plain = sdk.v1.payment_intents.search(params={"query": "metadata['order_id']:'order-b'"})
    assert [pi.id for pi in plain.data] == [other.id] and isinstance(plain.data[0].latest_charge, (str, type(None)))
    paged = sdk.v1.payment_intents.search(params={"query": "metadata['order_id']:'order-a'", "limit": 1})
    assert (paged.has_more, [pi.id for pi in paged.data]) == (True, [second.id])
    rest = sdk.v1.payment_intents.search(params={"query": "metadata['order_id']:'order-a'", "limit": 1,
                                                 "page": paged.next_page})
    assert [pi.id for pi in rest.data] == [first.id]
    assert proxy.count("GET /v1/payment_intents/search") == 5
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.search(params={"query": "order-a"})
    assert refused.value.http_status == 400


def test_search_lags_behind_writes_and_list_does_not(sdk, proxy):
    """Stripe: "don't use search in read-after-write flows"; the list API is not subject to the delay."""
    proxy.search_lag = 60
    pi = _for_order(sdk, "order-new")
    assert sdk.v1.payment_intents.search(params={"query": "metadata['order_id']:'order-new'"}).data == []
    assert [p.id for p in sdk.v1.payment_intents.list(params={"created": {"gte": pi.created - 1}}).data] == [pi.id]
    proxy.search_lag = 0
    assert [p.id for p in sdk.v1.payment_intents.search(params={"query": "metadata['order_id']:'order-new'"}).data
            ] == [pi.id]


def test_list_filters_by_creation_time_newest_first_and_pages(sdk, proxy):
    made = [_for_order(sdk, f"order-{i}") for i in range(3)]
    created = made[0].created

    listed = sdk.v1.payment_intents.list(params={"created": {"gte": created - 5, "lte": created + 60}, "limit": 2})

    assert listed.object == "list" and listed.url == "/v1/payment_intents" and listed.has_more is True
    assert [pi.id for pi in listed.data] == [made[2].id, made[1].id]
    rest = sdk.v1.payment_intents.list(params={"created": {"gte": created - 5}, "limit": 2,
                                               "starting_after": listed.data[-1].id})
    assert ([pi.id for pi in rest.data], rest.has_more) == ([made[0].id], False)
    assert sdk.v1.payment_intents.list(params={"created": {"gt": created + 60}}).data == []
    assert sdk.v1.payment_intents.list(params={"created": {"lt": created - 5}}).data == []
    assert proxy.count("GET /v1/payment_intents") == 4


def test_expired_idempotency_keys_execute_anew(sdk, proxy, localstripe):
    first = _create(sdk, idempotency_key="order-7-payment-intent")
    proxy.expire_idempotency_keys()  # 24 hours later
    again = _create(sdk, idempotency_key="order-7-payment-intent")
    assert again.id != first.id and len(_localstripe_pis(localstripe)) == 2


def test_fail_next_answers_without_forwarding(sdk, proxy, localstripe):
    proxy.fail_next("POST /v1/payment_intents", status=500)
    with pytest.raises(stripe.APIError) as failed:
        _create(sdk, idempotency_key="k-500")
    assert failed.value.http_status == 500
    assert _localstripe_pis(localstripe) == []
    assert _create(sdk, idempotency_key="k-500").id  # the key was not used up
    assert proxy.count("POST /v1/payment_intents") == 2


def test_counts_per_endpoint_template_and_reset(sdk, proxy):
    paid = _paid(sdk)
    sdk.v1.payment_intents.retrieve(paid.id)
    sdk.v1.payment_intents.retrieve(paid.id)
    assert proxy.count("POST /v1/payment_intents") == 1
    assert proxy.count("POST /v1/payment_intents/{id}") == 1
    assert proxy.count("POST /v1/payment_intents/{id}/confirm") == 1
    assert proxy.count("GET /v1/payment_intents/{id}") == 2
    assert proxy.count() == 5
    proxy.reset_calls()
    assert proxy.count() == 0


def test_dozens_of_concurrent_requests(sdk, proxy):
    pi = _create(sdk)
    proxy.delay = 0.2  # they overlap in the proxy: a single-threaded one would take 40 × 0.2 s
    started = time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        ids = list(pool.map(lambda _: sdk.v1.payment_intents.retrieve(pi.id).id, range(40)))
    assert ids == [pi.id] * 40
    assert time.monotonic() - started < 5
    assert proxy.count("GET /v1/payment_intents/{id}") == 40


def test_rewritten_objects_carry_the_keys_of_stripes_own_fixtures(sdk, proxy, receiver):
    from orders_service.payments.stripe_gateway import to_payment_intent

    fixtures = stripe_fixtures()
    paid = _paid(sdk)
    sdk.v1.refunds.create(params={"payment_intent": paid.id, "amount": 100})
    shapes = {
        "payment_intent": (fixtures["payment_intent"], paid.to_dict(),
                           ["id", "object", "amount", "amount_received", "currency", "status", "metadata",
                            "latest_charge", "last_payment_error", "client_secret"]),
        "charge": (fixtures["charge"], sdk.v1.charges.retrieve(paid.latest_charge).to_dict(),
                   ["id", "object", "amount", "amount_refunded", "refunded", "payment_intent", "metadata"]),
        "refund": (fixtures["refund"],
                   sdk.v1.refunds.list(params={"payment_intent": paid.id}).data[0].to_dict(),
                   ["id", "object", "amount", "charge", "payment_intent", "status", "reason"]),
    }
    for name, (real, ours, read) in shapes.items():
        assert {k for k in read if k in real} == set(read), f"fixture {name} lacks one of {read}"
        missing = [k for k in read if k not in ours]
        assert not missing, f"rewritten {name} lacks {missing}"
        for key in read:  # the same kind of value (an id string where Stripe sends an id, ...)
            if real[key] is not None and ours[key] is not None:
                assert type(real[key]) is type(ours[key]), (name, key, real[key], ours[key])
    # latest_charge: an id (or null) as in the fixture, never the Charge object localstripe sends.
    assert shapes["payment_intent"][0]["latest_charge"] is None and isinstance(paid.latest_charge, str)
    assert "charges" not in paid.to_dict() and "charges" not in fixtures["payment_intent"]

    [event] = receiver.wait("charge.refunded", paid.id)
    event_dict = json.loads(str(event))
    assert set(fixtures["event"]) <= set(event_dict), set(fixtures["event"]) - set(event_dict)

    # The gateway reads both the same way.
    real_pi = stripe.PaymentIntent.construct_from(
        dict(fixtures["payment_intent"], status="succeeded", last_payment_error=None,
             metadata={"order_id": "order-1"}, amount=2000, latest_charge="ch_1"), KEY)
    ours = to_payment_intent(paid)
    theirs = to_payment_intent(real_pi)
    assert (ours.status, ours.amount, ours.currency, ours.order_id, ours.failure) == \
        (theirs.status, theirs.amount, theirs.currency, theirs.order_id, theirs.failure)


def test_stripe_js_and_its_browser_calls_pass_through_with_cors(sdk, proxy):
    """The storefront loads Stripe.js from STRIPE_API_BASE; that script calls the API from the shop's page."""
    page = "http://127.0.0.1:5000"
    script = requests.get(f"{proxy.url}/js.stripe.com/v3/", headers={"Origin": page}, timeout=10)
    assert script.status_code == 200 and "confirmCardSetup" in script.text
    assert script.headers["Access-Control-Allow-Origin"] == page
    preflight = requests.options(f"{proxy.url}/v1/setup_intents/seti_x/confirm", timeout=10, headers={
        "Origin": page, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == page
    setup = sdk.v1.setup_intents.create()
    # what localstripe's Stripe.js sends: a JSON body authenticated by the publishable key
    confirmed = requests.post(f"{proxy.url}/v1/setup_intents/{setup.id}/confirm", headers={"Origin": page},
                              timeout=10, data=json.dumps({
                                  "key": "pk_test_x", "use_stripe_sdk": True,
                                  "client_secret": setup.client_secret,
                                  "payment_method_data": {"type": "card", "card": {
                                      "number": "4242424242424242", "exp_month": "12", "exp_year": "2034",
                                      "cvc": "123"}}}))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "succeeded"
    assert confirmed.headers["Access-Control-Allow-Origin"] == page
    no_origin = requests.get(f"{proxy.url}/js.stripe.com/v3/", timeout=10)
    assert "Access-Control-Allow-Origin" not in no_origin.headers


def test_cards_held_for_capture_as_stripe_holds_them(sdk, proxy, receiver):
    """`payment_method_options[card][capture_method]=manual`: a card is authorized (`requires_capture`,
    `amount_capturable`, the charge's `capture_before`, `payment_intent.amount_capturable_updated`); a
    capture with a key replays its answer when asked again; a second capture is Stripe's unexpected-state
    refusal; a lapsed hold is a cancel with `cancellation_reason: automatic` and its event."""
    pi = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "metadata": {"order_id": "order-1"}, "payment_method_types": ["card"],
        "payment_method_options": {"card": {"capture_method": "manual"}}})
    assert (pi.capture_method, pi.payment_method_options["card"]["capture_method"]) == ("automatic_async", "manual")
    deadline = int(time.time()) + 3 * 24 * 3600
    proxy.set_capture_before(pi.id, deadline)
    proxy.authorize(pi.id)
    held = sdk.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert (held.status, held.amount_capturable, held.amount_received) == ("requires_capture", 2000, 0)
    assert held.latest_charge.payment_method_details.card.capture_before == deadline
    [event] = receiver.wait("payment_intent.amount_capturable_updated", pi.id)
    assert event.data.object.status == "requires_capture" and isinstance(event.data.object.latest_charge, str)

    captured = sdk.v1.payment_intents.capture(pi.id, options={"idempotency_key": "capture-order-1"})
    again = sdk.v1.payment_intents.capture(pi.id, options={"idempotency_key": "capture-order-1"})
    assert captured.status == again.status == "succeeded" and captured.amount_received == 2000
    assert [e["replayed"] for e in proxy.log if e["endpoint"] == "POST /v1/payment_intents/{id}/capture"] == [
        False, True]
    receiver.wait("payment_intent.succeeded", pi.id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sdk.v1.payment_intents.capture(pi.id)
    assert refused.value.code == "payment_intent_unexpected_state"
    assert refused.value.error.payment_intent["status"] == "succeeded"

    lapsing = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "metadata": {"order_id": "order-2"}, "payment_method_types": ["card"],
        "payment_method_options": {"card": {"capture_method": "manual"}}})
    proxy.authorize(lapsing.id)
    proxy.lapse(lapsing.id)
    lapsed = sdk.v1.payment_intents.retrieve(lapsing.id)
    assert (lapsed.status, lapsed.cancellation_reason) == ("canceled", "automatic")
    [event] = receiver.wait("payment_intent.canceled", lapsing.id)
    assert event.data.object.cancellation_reason == "automatic"
    with pytest.raises(stripe.InvalidRequestError) as too_late:  # localstripe alone would capture it
        sdk.v1.payment_intents.capture(lapsing.id)
    assert too_late.value.code == "payment_intent_unexpected_state"


def test_a_released_hold_is_reported_as_a_refund_of_a_charge_never_captured(sdk, proxy, receiver):
    """Canceling a held PaymentIntent (or its hold lapsing) makes Stripe send `charge.refunded` for the charge,
    `captured: false` and `amount_refunded` all of it, and the charge says so when read."""
    for release in ("cancel", "lapse"):
        pi = sdk.v1.payment_intents.create(params={
            "amount": 2000, "currency": "usd", "metadata": {"order_id": f"order-{release}"},
            "payment_method_types": ["card"], "payment_method_options": {"card": {"capture_method": "manual"}}})
        proxy.authorize(pi.id)
        if release == "cancel":
            sdk.v1.payment_intents.cancel(pi.id)
        else:
            proxy.lapse(pi.id)
        [event] = receiver.wait("charge.refunded", pi.id)
        charge = event.data.object
        assert (charge.captured, charge.amount_refunded, charge.refunded, charge.amount_captured) == (
            False, 2000, True, 0)
        read = sdk.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
        assert (read.status, read.latest_charge.amount_refunded, read.latest_charge.captured) == (
            "canceled", 2000, False)


def test_a_refused_capture_is_the_keys_answer_and_a_fault_before_execution_is_not(sdk, proxy):
    """Stripe stores an executed request's answer under its idempotency key, a refusal too, and answers it to
    every repeat for 24 h; a request that failed before it began executing stores nothing."""
    capture = "POST /v1/payment_intents/{id}/capture"
    pi = sdk.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "metadata": {"order_id": "order-1"}, "payment_method_types": ["card"],
        "payment_method_options": {"card": {"capture_method": "manual"}}})
    proxy.authorize(pi.id)

    proxy.fail_next(capture, status=500)
    with pytest.raises(stripe.APIError):
        sdk.v1.payment_intents.capture(pi.id, options={"idempotency_key": "k-before"})
    proxy.refuse_next(capture)
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            sdk.v1.payment_intents.capture(pi.id, options={"idempotency_key": "k-refused"})
    assert [e["replayed"] for e in proxy.log if e["endpoint"] == capture] == [False, False, True]
    assert sdk.v1.payment_intents.retrieve(pi.id).status == "requires_capture"  # nothing was captured

    assert sdk.v1.payment_intents.capture(pi.id, options={"idempotency_key": "k-before"}).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as late:  # "already captured", executed: stored too
        sdk.v1.payment_intents.capture(pi.id, options={"idempotency_key": "k-late"})
    assert late.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.payment_intents.capture(pi.id, options={"idempotency_key": "k-late"})
    assert proxy.log[-1]["replayed"] is True
