"""Outbound webhooks delivered by the Procfile's real worker to a real HTTP receiver in the test process,
verified with the `standardwebhooks` library as a receiver would: signatures and headers, retries with
one webhook-id, dead and retried, 410, Retry-After, no redirects, replay, rotation, ping, isolation from
a hanging endpoint, a worker SIGKILLed mid-delivery, and two workers never sending one delivery twice.
The run's WEBHOOK_RETRY_SCHEDULE is 1,1,1 (tests/conftest.py)."""
import os
import signal
import statistics
import time

import psutil
import pytest
import requests
from standardwebhooks import Webhook, WebhookVerificationError

from orders_service.webhooks.sender import EndpointConnection, Unreachable
from tests.support.orders import post_event
from tests.support.processes import Stack, free_port, wait_until
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("webhooks")]

ENDPOINTS = "/api/admin/webhook-endpoints"
DELIVERIES = "/api/admin/webhook-deliveries"


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    return customer, auth, admin_auth, make.product(price_cents=20_00, stock=1000), make.delivery_method(countries=[])


def subscribe(client, shop, url, **body) -> dict:
    response = client.post(ENDPOINTS, json={"url": url, **body}, headers=shop[2])
    assert response.status_code == 201, response.json
    return response.json


def place(client, make, shop, base_url: str | None = None) -> str:
    """A cash-on-delivery order: through the in-process app, or the stack's real web when `base_url` is given."""
    customer, auth, _admin, product, method = shop
    body = make.order_body(customer, method, [(product, 1)])
    if base_url:
        response = requests.post(f"{base_url}/api/orders", json=body, headers=auth, timeout=30)
        assert response.status_code == 204, response.text
        return response.headers["Location"].rsplit("/", 1)[1]
    response = client.post("/api/orders", json=body, headers=auth)
    assert response.status_code == 204, response.json
    return response.headers["Location"].rsplit("/", 1)[1]


def deliveries(client, shop, **query) -> list[dict]:
    response = client.get(DELIVERIES, query_string={"pageSize": 100, **query}, headers=shop[2])
    assert response.status_code == 200, response.json
    return response.json["items"]


def _delivery_counts(stack) -> dict[str, float]:
    """orders_webhook_deliveries_total by outcome, from the stack's /metrics."""
    text = requests.get(f"{stack.url}/metrics", timeout=10).text
    return {line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith("orders_webhook_deliveries_total{")}


def endpoint(client, shop, endpoint_id) -> dict:
    return client.get(f"{ENDPOINTS}/{endpoint_id}", headers=shop[2]).json


def verify(secret: str, request) -> dict:
    """What a receiver does with `standardwebhooks`: the event, or WebhookVerificationError."""
    return Webhook(secret).verify(request.body, request.headers)


def test_a_change_reaches_the_endpoint_signed_with_the_standard_headers(webhook_stack, client, make, shop, receiver):
    hook = subscribe(client, shop, receiver.url)
    order_id = place(client, make, shop)
    [request] = receiver.wait_for(1, timeout=10)

    event = verify(hook["secret"], request)
    assert request.path == "/hooks" and request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == event["id"] and event["id"].startswith("evt_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,") and " " not in request.headers["webhook-signature"]
    assert list(event) == ["id", "type", "timestamp", "sequence", "data"]
    assert (event["type"], event["data"]["orderSequence"], event["data"]["order"]["id"]) == (
        "order.created", 1, order_id)
    assert event["data"]["order"]["status"] == "confirmed" and isinstance(event["sequence"], int)
    with pytest.raises(WebhookVerificationError):  # another endpoint's secret does not verify it
        verify("whsec_" + "QUJD" * 8, request)

    wait_until(lambda: [d["status"] for d in deliveries(client, shop)] == ["succeeded"])
    [done] = deliveries(client, shop)
    assert (done["eventId"], done["attempts"], done["lastStatusCode"], done["eventType"]) == (
        event["id"], 1, 200, "order.created")
    assert done["deliveredAt"] is not None and done["nextAttemptAt"] is None


def test_only_the_subscribed_types_are_sent(webhook_stack, client, make, shop, receiver):
    subscribe(client, shop, receiver.url, eventTypes=["order.canceled"])
    order_id = place(client, make, shop)
    assert client.post(f"/api/orders/{order_id}/cancel", headers=shop[1]).status_code == 200
    [request] = receiver.wait_for(1)
    assert request.json()["type"] == "order.canceled" and request.json()["data"]["orderSequence"] == 2
    assert request.json()["data"]["order"]["status"] == "canceled"


def test_a_failing_endpoint_gets_retries_with_one_webhook_id_then_the_delivery_is_dead_until_retried(
        webhook_stack, client, make, shop, receiver):
    receiver.answer = (500, {})
    hook = subscribe(client, shop, receiver.url)
    place(client, make, shop)
    attempts = receiver.wait_for(4, timeout=30)  # the first, then one per wait of the schedule (1,1,1)
    wait_until(lambda: [d["status"] for d in deliveries(client, shop)] == ["dead"], timeout=15)
    time.sleep(2)  # nothing after dead (the schedule's waits are 1 s)
    assert len(receiver.requests()) == 4
    assert {r.id for r in attempts} == {attempts[0].id} and {r.body for r in attempts} == {attempts[0].body}
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert all(verify(hook["secret"], r)["id"] == attempts[0].id for r in attempts)  # each one signed anew
    [dead] = deliveries(client, shop)
    assert (dead["attempts"], dead["lastStatusCode"], dead["nextAttemptAt"]) == (4, 500, None)
    assert dead["lastError"].startswith("HTTP 500")
    counted = _delivery_counts(webhook_stack)  # the worker's counters, summed by the web
    assert counted.get("failed", 0) >= 3 and counted.get("dead", 0) >= 1

    # A retry of a dead delivery is one attempt: failing, it is dead again.
    assert client.post(f"{DELIVERIES}/{dead['id']}/retry", headers=shop[2]).status_code == 202
    receiver.wait_for(5)
    wait_until(lambda: deliveries(client, shop)[0]["attempts"] == 5 and deliveries(client, shop)[0]["status"] == "dead")
    # Mended, the next retry delivers it, with the same id.
    receiver.answer = (204, {})
    assert client.post(f"{DELIVERIES}/{dead['id']}/retry", headers=shop[2]).status_code == 202
    assert receiver.wait_for(6)[-1].id == attempts[0].id
    wait_until(lambda: deliveries(client, shop)[0]["status"] == "succeeded")
    assert deliveries(client, shop)[0]["attempts"] == 6


def test_410_gone_disables_the_endpoint(webhook_stack, client, make, shop, receiver, db):
    receiver.answer = (410, {})
    hook = subscribe(client, shop, receiver.url)
    place(client, make, shop)
    receiver.wait_for(1)
    wait_until(lambda: endpoint(client, shop, hook["id"])["status"] == "disabled")
    assert "410" in endpoint(client, shop, hook["id"])["disabledReason"]
    # Events recorded while it is disabled are not for it: the next order's event is numbered, and no delivery.
    second = place(client, make, shop)
    wait_until(lambda: _numbered(db, second))
    assert [d["eventType"] for d in deliveries(client, shop)] == ["order.created"]
    time.sleep(1.5)
    assert len(receiver.requests()) == 1


def _numbered(db, order_id) -> bool:
    from sqlalchemy import select

    from orders_service.webhooks.models import OutboundEvent

    db.expire_all()
    with db.begin():
        return db.scalar(select(OutboundEvent.sequence).where(OutboundEvent.order_id == order_id)) is not None


def test_retry_after_on_503_is_honoured(webhook_stack, client, make, shop, receiver):
    answers = iter([(503, {"Retry-After": "4"}), (200, {})])
    receiver.answer = lambda _request: next(answers)
    subscribe(client, shop, receiver.url)
    place(client, make, shop)
    first, second = receiver.wait_for(2, timeout=20)
    assert second.at - first.at >= 3.9  # the schedule says 1 s; the endpoint asked for 4
    assert first.id == second.id
    wait_until(lambda: deliveries(client, shop)[0]["status"] == "succeeded")


def test_redirects_are_not_followed(webhook_stack, client, make, shop, receiver):
    elsewhere = Receiver()
    try:
        receiver.answer = (307, {"Location": elsewhere.url})
        subscribe(client, shop, receiver.url)
        place(client, make, shop)
        receiver.wait_for(1)
        wait_until(lambda: deliveries(client, shop)[0]["status"] in ("failed", "dead"))
        failed = deliveries(client, shop)[0]
        assert failed["lastStatusCode"] == 307 and "not followed" in failed["lastError"]
        assert elsewhere.requests() == []
    finally:
        elsewhere.close()


def test_a_refused_connection_is_retried_and_its_endpoint_s_other_deliveries_share_the_outcome(
        webhook_stack, client, make, shop):
    subscribe(client, shop, f"http://127.0.0.1:{free_port()}/nobody-listens")
    for _ in range(3):
        place(client, make, shop)
    wait_until(lambda: [d["status"] for d in deliveries(client, shop)] == ["dead"] * 3, timeout=30)
    errors = [d["lastError"] for d in deliveries(client, shop)]
    assert all("connection refused" in e for e in errors), errors
    assert all(d["attempts"] == 4 and d["lastStatusCode"] is None for d in deliveries(client, shop))


def test_replay_sends_the_events_again_with_their_ids(webhook_stack, client, make, shop, receiver):
    hook = subscribe(client, shop, receiver.url)
    order_id = place(client, make, shop)
    assert client.post(f"/api/orders/{order_id}/cancel", headers=shop[1]).status_code == 200
    first_time = receiver.wait_for(2)

    queued = client.post(f"{ENDPOINTS}/{hook['id']}/replay", json={}, headers=shop[2])
    assert queued.status_code == 202 and queued.json == {"queued": 2}
    again = receiver.wait_for(4)[2:]
    assert sorted(r.id for r in again) == sorted(r.id for r in first_time)
    by_id = {r.id: r.body for r in first_time}
    assert all(r.body == by_id[r.id] for r in again)  # the same event, byte for byte
    assert all(verify(hook["secret"], r) for r in again)


def test_during_a_rotation_deliveries_verify_with_the_new_and_the_old_secret(
        webhook_stack, client, make, shop, receiver):
    hook = subscribe(client, shop, receiver.url)
    rotated = client.post(f"{ENDPOINTS}/{hook['id']}/rotate-secret", headers=shop[2]).json["secret"]
    place(client, make, shop)
    [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verify(rotated, request)["id"] == request.id  # a receiver that has switched
    assert verify(hook["secret"], request)["id"] == request.id  # a receiver that has not yet


def test_the_test_route_pings_the_endpoint_whatever_it_subscribes_to(webhook_stack, client, shop, receiver):
    hook = subscribe(client, shop, receiver.url, eventTypes=["order.shipped"])
    response = client.post(f"{ENDPOINTS}/{hook['id']}/test", headers=shop[2])
    assert response.status_code == 202
    [request] = receiver.wait_for(1)
    ping = verify(hook["secret"], request)
    assert (ping["id"], ping["type"], ping["data"], ping["sequence"]) == (response.json["eventId"], "ping", {}, None)
    feed = client.get("/api/admin/events", headers=shop[2]).json
    assert feed == {"items": [], "next": 0}  # pings are not in the feed


def test_a_hanging_endpoint_delays_neither_orders_nor_payments_nor_other_endpoints(
        webhook_stack, client, make, shop, receiver, stripe_emulator):
    """One endpoint takes every request and never answers (the 15-second timeout is all it gets); another
    answers at once. Orders go on being placed through the real web as fast as without it, a Stripe payment
    event is applied by the worker at once, and the healthy endpoint gets each event within seconds."""
    receiver.hang = True
    healthy = Receiver()

    def place_timed(count):
        latencies, placed_at = [], {}
        for _ in range(count):
            started = time.monotonic()
            order_id = place(client, make, shop, webhook_stack.url)
            latencies.append(time.monotonic() - started)
            placed_at[order_id] = time.time()
        return latencies, placed_at

    try:
        without, _ = place_timed(20)  # the same web, the same moment of the machine, no endpoint at all
        subscribe(client, shop, receiver.url)
        subscribe(client, shop, healthy.url)
        latencies, placed_at = place_timed(20)
        got = healthy.wait_for(20, timeout=15)
        lags = [r.at - placed_at[r.json()["data"]["order"]["id"]] for r in got]
        assert max(lags) < 5, lags
        assert receiver.requests()  # the hanging one was tried, and holds its request
        # Placing an order never waits on an endpoint: as fast as with none (give or take a busy machine).
        baseline = statistics.median(without)
        assert statistics.median(latencies) < max(2 * baseline, baseline + 0.25), (without, latencies)

        # A payment confirmed by Stripe's webhook is applied by the same worker, at once.
        created = client.post("/api/orders/with-payment", json=make.order_body(shop[0], shop[4], [(shop[3], 1)]),
                              headers=shop[1]).json
        intent = stripe_emulator.pay(created["clientSecret"].split("_secret_")[0])
        started = time.monotonic()
        post_event(webhook_stack, "payment_intent.succeeded", intent.to_dict())
        wait_until(lambda: client.get(f"/api/orders/{created['orderId']}", headers=shop[1]).json["paymentStatus"]
                   == "paid", timeout=10)
        assert time.monotonic() - started < 5
        paid = [r for r in healthy.wait_for(22, timeout=10) if r.json()["type"] == "order.paid"]
        assert paid and paid[0].json()["data"]["order"]["id"] == created["orderId"]
    finally:
        healthy.close()


def _sender_of(request) -> int:
    """The process at the other end of the receiver's connection for `request`."""
    [pid] = {c.pid for c in psutil.net_connections(kind="tcp")
             if c.laddr and c.laddr.port == request.peer_port and c.pid and c.pid != os.getpid()}
    return pid


def test_a_worker_killed_mid_delivery_leaves_it_to_be_sent_again(webhook_stack, client, make, shop, receiver):
    """The receiver holds the first request; the worker process sending it is SIGKILLed while it waits for
    the answer. Its claim lapses and another sender sends it again (at least once: the same webhook-id)."""
    receiver.hang = True
    subscribe(client, shop, receiver.url)
    place(client, make, shop)
    [held] = receiver.wait_for(1, timeout=15)
    sender = _sender_of(held)
    assert "ForkPoolWorker" in psutil.Process(sender).name()  # a pool process of the worker
    os.kill(sender, signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(sender) or psutil.Process(sender).status() == psutil.STATUS_ZOMBIE)
    receiver.hang = False
    receiver.release.set()
    assert deliveries(client, shop)[0]["status"] == "pending"  # the dead sender recorded nothing

    again = receiver.wait_for(2, timeout=60)[1]  # once its claim (30 s) has lapsed
    assert again.id == held.id and again.body == held.body
    wait_until(lambda: deliveries(client, shop)[0]["status"] == "succeeded", timeout=15)
    assert deliveries(client, shop)[0]["attempts"] == 1  # the killed attempt was never recorded


def test_two_workers_never_send_one_delivery_twice(base_env, redis_broker_url, webhook_stack, client, make, shop,
                                                   receiver):
    """Two workers (four pool processes, each with its senders) share the deliveries: each arrives once."""
    second = Stack(dict(base_env, CELERY_BROKER_URL=redis_broker_url.rsplit("/", 1)[0] + "/5"), processes=("worker",))
    try:
        subscribe(client, shop, receiver.url)
        other = Receiver()
        try:
            subscribe(client, shop, other.url)
            orders = [place(client, make, shop) for _ in range(40)]
            for server in (receiver, other):
                got = server.wait_for(40, timeout=30)
                time.sleep(1)
                ids = [r.id for r in server.requests()]
                assert len(ids) == len(set(ids)) == 40
                assert {r.json()["data"]["order"]["id"] for r in got} == set(orders)
        finally:
            other.close()
    finally:
        second.close()


def test_the_sender_checks_the_address_again_when_it_connects(receiver):
    """A name checked when the endpoint was saved may resolve elsewhere later (DNS rebinding): the sender
    resolves it again and refuses a private address before any byte is sent."""
    url = receiver.url.replace("127.0.0.1", "localhost")
    connection = EndpointConnection(url, allow_private=False, https_only=False)
    with pytest.raises(Unreachable, match="localhost resolves to 127.0.0.1 is a loopback address"):
        connection.post(b"{}", {"webhook-id": "evt_x"})
    assert receiver.requests() == []
    answer = EndpointConnection(url, allow_private=True, https_only=False).post(b"{}", {"webhook-id": "evt_x"})
    assert answer.status == 200 and len(receiver.requests()) == 1


@pytest.mark.parametrize("how", ["silent", "drip"])
def test_the_sender_gives_an_endpoint_its_timeout_in_all(receiver, how):
    """An endpoint that never answers, or drips its answer a byte at a time (each byte well within any read
    timeout), is cut at the attempt's deadline (15 s in service; 2 s here)."""
    receiver.hang, receiver.drip = how == "silent", how == "drip"
    started = time.monotonic()
    with pytest.raises(Unreachable, match="no answer within 2 s"):
        EndpointConnection(receiver.url, allow_private=True, https_only=False, timeout=2).post(b"{}", {})
    assert 1.9 < time.monotonic() - started < 3.5



def test_deliveries_on_a_kept_alive_connection_do_not_wait_for_delayed_acks(receiver):
    """http.client writes the headers and the body apart: without TCP_NODELAY every delivery on a kept-alive
    connection waited ~40 ms for the receiver's delayed ACK (a lane then managed 20 a second)."""
    connection = EndpointConnection(receiver.url, allow_private=True, https_only=False)
    body = b"{" + b'"x": 1, ' * 300 + b'"y": 2}'
    took = []
    for _ in range(30):
        started = time.monotonic()
        assert connection.post(body, {"webhook-id": "evt_x", "content-type": "application/json"}).status == 200
        took.append(time.monotonic() - started)
    connection.close()
    assert len({r.peer_port for r in receiver.requests()}) == 1  # one connection, kept alive
    assert statistics.median(took[1:]) < 0.02, took
