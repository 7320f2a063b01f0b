"""The admin routes of outbound webhooks, in process: endpoints and their secrets, the URL checks, the
test ping, replay, the deliveries list and retry, the backlog on /metrics. Sending is the worker's
(test_delivery.py)."""
import base64
import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from orders_service.db import utcnow
from orders_service.webhooks.models import OutboundEvent, WebhookDelivery, WebhookEndpoint
from tests.support.webhooks import number_all

BASE = "/api/admin/webhook-endpoints"


@pytest.fixture
def admin_auth(make):
    return make.admin()[1]


@pytest.fixture
def shop(make):
    customer, auth = make.shopper()
    return customer, auth, make.product(stock=100), make.delivery_method(countries=[])


def _create(client, admin_auth, **body):
    """An endpoint no sender touches: a worker of the run (tests/integration/webhooks/test_delivery.py's) may be
    polling this database, and these tests look at deliveries as the routes leave them."""
    body.setdefault("url", "http://127.0.0.1:9/hooks")
    response = client.post(BASE, json=body, headers=admin_auth)
    assert response.status_code == 201, response.json
    with client.application.extensions["orders.runtime"].session_factory() as session, session.begin():
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(response.json["id"]))
                        .values(paused_until=utcnow() + timedelta(days=1)))
    return response.json


def _place(client, make, shop, n=1):
    customer, auth, product, method = shop
    ids = []
    for _ in range(n):
        response = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
        assert response.status_code == 204
        ids.append(response.headers["Location"].rsplit("/", 1)[1])
    return ids


def _deliveries(db, **where):
    db.expire_all()
    with db.begin():
        return db.scalars(select(WebhookDelivery).filter_by(**where).order_by(WebhookDelivery.created_at)).all()


def _sequence(session_factory):
    number_all(session_factory)


def test_an_endpoint_is_created_with_a_secret_shown_once(client, admin_auth):
    created = _create(client, admin_auth, url="https://93.184.216.34/hooks?x=1", description="ERP",
                      eventTypes=["order.paid", "order.canceled", "order.paid"])
    assert set(created) == {"id", "url", "eventTypes", "description", "status", "secret", "createdAt",
                            "disabledReason"}
    assert (created["url"], created["eventTypes"], created["description"], created["status"]) == (
        "https://93.184.216.34/hooks?x=1", ["order.paid", "order.canceled"], "ERP", "active")
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) == 32

    listed = client.get(BASE, headers=admin_auth).json
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    one = client.get(f"{BASE}/{created['id']}", headers=admin_auth).json
    assert "secret" not in one and one["url"] == created["url"]
    assert _create(client, admin_auth)["eventTypes"] == []  # none given: every type


def test_an_endpoint_is_changed_and_deleted(client, admin_auth, db, make, shop, session_factory):
    endpoint = _create(client, admin_auth)
    path = f"{BASE}/{endpoint['id']}"
    changed = client.patch(path, json={"url": "http://127.0.0.1:10/new", "eventTypes": ["order.created"],
                                       "description": None, "status": "disabled"}, headers=admin_auth)
    assert changed.status_code == 200, changed.json
    assert (changed.json["url"], changed.json["eventTypes"], changed.json["description"], changed.json["status"]) \
        == ("http://127.0.0.1:10/new", ["order.created"], None, "disabled")
    assert client.patch(path, json={}, headers=admin_auth).json == changed.json  # nothing asked, nothing changed

    assert client.patch(path, json={"status": "active"}, headers=admin_auth).json["status"] == "active"
    _place(client, make, shop)
    _sequence(session_factory)
    assert len(_deliveries(db, endpoint_id=uuid.UUID(endpoint["id"]))) == 1
    assert client.delete(path, headers=admin_auth).status_code == 204
    assert _deliveries(db) == []  # nothing more goes to it
    for method in ("get", "patch", "delete"):
        assert getattr(client, method)(path, json={} if method == "patch" else None,
                                       headers=admin_auth).status_code == 404
    assert client.post(f"{path}/test", headers=admin_auth).status_code == 404


@pytest.mark.parametrize("url, why", [
    ("ftp://example.com/x", "http or https"),
    ("http:///path", "names no host"),
    ("https://user:pw@93.184.216.34/", "user name or password"),
    ("http://127.0.0.1:8080/hooks", "127.0.0.1 is a loopback address"),
    ("http://localhost/hooks", "localhost resolves to 127.0.0.1 is a loopback address"),
    ("http://[::1]/hooks", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hooks", "127.0.0.1 is a loopback address"),
    ("http://10.1.2.3/hooks", "10.1.2.3 is a private address"),
    ("http://192.168.0.10/hooks", "private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://0.0.0.0/", "unspecified address"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://no-such-host.invalid/hooks", "does not resolve"),
    ("http://[::1/hooks", "not a valid URL"),
    ("http://93.184.216.34:99999/", "not a valid URL"),
])
def test_urls_that_reach_inside_are_refused(app_with, make, url, why):
    client = app_with(webhook_allow_private_urls=False).test_client()
    admin_auth = make.admin()[1]
    response = client.post(BASE, json={"url": url}, headers=admin_auth)
    assert response.status_code == 400, response.json
    assert why in response.json["message"] and response.json["errors"]["url"]
    assert client.get(BASE, headers=admin_auth).json == []


def test_a_public_address_is_accepted_and_a_change_is_checked_too(app_with, make):
    client = app_with(webhook_allow_private_urls=False).test_client()
    admin_auth = make.admin()[1]
    endpoint = _create(client, admin_auth, url="http://93.184.216.34/hooks")
    refused = client.patch(f"{BASE}/{endpoint['id']}", json={"url": "http://127.0.0.1/hooks"}, headers=admin_auth)
    assert refused.status_code == 400 and "loopback" in refused.json["message"]
    assert client.get(f"{BASE}/{endpoint['id']}", headers=admin_auth).json["url"] == "http://93.184.216.34/hooks"


def test_production_takes_https_only(app_with, make):
    client = app_with(environment="production").test_client()
    admin_auth = make.admin()[1]
    response = client.post(BASE, json={"url": "http://127.0.0.1/hooks"}, headers=admin_auth)
    assert response.status_code == 400 and "https" in response.json["message"]
    assert client.post(BASE, json={"url": "https://127.0.0.1/hooks"}, headers=admin_auth).status_code == 201


@pytest.mark.parametrize("body", [{}, {"url": ""}, {"url": 5}, {"url": "http://127.0.0.1/", "eventTypes": ["x"]},
                                  {"url": "http://127.0.0.1/", "eventTypes": ["ping"]},
                                  {"url": "http://127.0.0.1/", "eventTypes": "order.paid"},
                                  {"url": "http://127.0.0.1/", "status": "disabled"},
                                  {"url": "http://127.0.0.1/", "description": "x" * 501}])
def test_bad_endpoint_bodies_are_400s(client, admin_auth, body):
    response = client.post(BASE, json=body, headers=admin_auth)
    assert response.status_code == 400 and response.json["code"] == 400


def test_the_routes_are_the_admin_s(client, make):
    customer_auth = make.shopper()[1]
    for method, path in [("get", BASE), ("post", BASE), ("get", "/api/admin/webhook-deliveries"),
                         ("post", f"/api/admin/webhook-deliveries/{uuid.uuid4()}/retry")]:
        assert getattr(client, method)(path).status_code == 401
        assert getattr(client, method)(path, headers=customer_auth).status_code == 403


def test_rotation_gives_a_new_secret_and_keeps_the_old_one_a_day(client, admin_auth, db):
    endpoint = _create(client, admin_auth)
    rotated = client.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=admin_auth)
    assert rotated.status_code == 200 and set(rotated.json) == {"secret"}
    assert rotated.json["secret"].startswith("whsec_") and rotated.json["secret"] != endpoint["secret"]
    assert "secret" not in client.get(f"{BASE}/{endpoint['id']}", headers=admin_auth).json
    with db.begin():
        stored = db.get(WebhookEndpoint, uuid.UUID(endpoint["id"]))
        assert (stored.secret, stored.previous_secret) == (rotated.json["secret"], endpoint["secret"])
        left = stored.previous_secret_expires_at - utcnow()
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24)


def test_secrets_are_never_logged(client, admin_auth, caplog):
    caplog.set_level(logging.DEBUG)
    created = _create(client, admin_auth)
    rotated = client.post(f"{BASE}/{created['id']}/rotate-secret", headers=admin_auth).json
    client.get(BASE, headers=admin_auth)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records and created["secret"] not in logged and rotated["secret"] not in logged
    assert created["secret"][6:] not in logged


def test_the_test_route_queues_a_ping_for_that_endpoint_alone(client, admin_auth, db):
    endpoint = _create(client, admin_auth, eventTypes=["order.paid"])
    other = _create(client, admin_auth)
    response = client.post(f"{BASE}/{endpoint['id']}/test", headers=admin_auth)
    assert response.status_code == 202, response.json
    [delivery] = _deliveries(db)
    assert (str(delivery.id), delivery.event_id, str(delivery.endpoint_id), delivery.status) == (
        response.json["deliveryId"], response.json["eventId"], endpoint["id"], "pending")
    with db.begin():
        ping = db.get(OutboundEvent, delivery.event_id)
        assert (ping.type, ping.order_id, ping.sequence, ping.data) == ("ping", None, None, "{}")
    client.patch(f"{BASE}/{other['id']}", json={"status": "disabled"}, headers=admin_auth)
    assert client.post(f"{BASE}/{other['id']}/test", headers=admin_auth).status_code == 409


def test_replay_queues_the_window_s_events_of_the_endpoint_s_types_with_their_ids(
        client, admin_auth, db, make, shop, session_factory):
    first, second = _place(client, make, shop, 2)
    client.post(f"/api/orders/{first}/cancel", headers=shop[1])
    _sequence(session_factory)  # before the endpoint existed: no delivery for it
    endpoint = _create(client, admin_auth, eventTypes=["order.created", "order.canceled"])
    assert _deliveries(db) == []
    replay = f"{BASE}/{endpoint['id']}/replay"

    assert client.post(replay, json={}, headers=admin_auth).json == {"queued": 3}
    assert client.post(replay, json={"eventTypes": ["order.canceled", "order.paid"]},
                       headers=admin_auth).json == {"queued": 1}
    with db.begin():
        times = dict(db.execute(select(OutboundEvent.type, OutboundEvent.occurred_at)
                                .where(OutboundEvent.order_id == second)).all())
    window = {"since": times["order.created"].isoformat(), "until": times["order.created"].isoformat()}
    assert client.post(replay, json=window, headers=admin_auth).json == {"queued": 1}  # both ends inclusive
    naive = times["order.created"].replace(tzinfo=None).isoformat()  # no offset: UTC
    assert client.post(replay, json={"since": naive, "until": naive}, headers=admin_auth).json == {"queued": 1}
    assert client.post(replay, json={"eventTypes": ["order.paid"]}, headers=admin_auth).json == {"queued": 0}

    delivered = _deliveries(db)
    with db.begin():
        recorded = set(db.scalars(select(OutboundEvent.id).where(OutboundEvent.type != "ping")))
    assert len(delivered) == 6 and {d.event_id for d in delivered} <= recorded  # the events' own ids

    # Events of a time it was disabled come by replay too; pings never do.
    client.patch(f"{BASE}/{endpoint['id']}", json={"status": "disabled"}, headers=admin_auth)
    client.post(f"/api/orders/{second}/cancel", headers=shop[1])
    _sequence(session_factory)
    client.patch(f"{BASE}/{endpoint['id']}", json={"status": "active"}, headers=admin_auth)
    assert client.post(f"{BASE}/{endpoint['id']}/test", headers=admin_auth).status_code == 202
    assert len(_deliveries(db)) == 7  # the ping's; none for the cancel while disabled
    assert client.post(replay, json={"eventTypes": ["order.canceled"]}, headers=admin_auth).json == {"queued": 2}
    bad = client.post(replay, json={"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
                      headers=admin_auth)
    assert bad.status_code == 400
    for body in ({"since": "yesterday"}, {"eventTypes": ["nope"]}, {"since": "9999-12-31T23:59:59-14:00"}):
        assert client.post(replay, json=body, headers=admin_auth).status_code == 400


def test_the_deliveries_list_filters_and_a_dead_delivery_is_retried(client, admin_auth, db, make, shop,
                                                                     session_factory):
    one = _create(client, admin_auth)
    two = _create(client, admin_auth, eventTypes=["order.canceled"])
    [order_id] = _place(client, make, shop)
    client.post(f"/api/orders/{order_id}/cancel", headers=shop[1])
    _sequence(session_factory)

    def listing(**query):
        response = client.get("/api/admin/webhook-deliveries", query_string=query, headers=admin_auth)
        assert response.status_code == 200, response.json
        return response.json

    everything = listing()
    assert everything["total"] == 3 and everything["page"] == 1
    assert set(everything["items"][0]) == {"id", "eventId", "endpointId", "eventType", "status", "attempts",
                                           "lastStatusCode", "lastError", "nextAttemptAt", "deliveredAt"}
    assert listing(endpointId=two["id"])["total"] == 1
    assert listing(eventType="order.canceled")["total"] == 2
    assert listing(orderId=order_id)["total"] == 3 and listing(orderId=str(uuid.uuid4()))["total"] == 0
    assert listing(status="dead")["total"] == 0
    assert [i["status"] for i in listing(pageSize=1, page=2)["items"]] == ["pending"]

    target = listing(endpointId=one["id"], eventType="order.created")["items"][0]
    with db.begin():
        db.execute(update(WebhookDelivery).where(WebhookDelivery.id == uuid.UUID(target["id"]))
                   .values(status="dead", attempts=4, next_attempt_at=None, last_status_code=500,
                           last_error="HTTP 500"))
    assert listing(status="dead")["items"][0]["id"] == target["id"]
    retry = f"/api/admin/webhook-deliveries/{target['id']}/retry"
    assert client.post(retry, headers=admin_auth).status_code == 202
    [again] = [i for i in listing()["items"] if i["id"] == target["id"]]
    assert (again["status"], again["attempts"], again["lastError"]) == ("pending", 4, "HTTP 500")
    assert again["nextAttemptAt"] is not None

    with db.begin():  # a sender holds it right now
        db.execute(update(WebhookDelivery).where(WebhookDelivery.id == uuid.UUID(target["id"]))
                   .values(claimed_until=utcnow() + timedelta(seconds=30)))
    assert client.post(retry, headers=admin_auth).status_code == 409
    client.patch(f"{BASE}/{one['id']}", json={"status": "disabled"}, headers=admin_auth)
    assert client.post(retry, headers=admin_auth).status_code == 409
    assert client.post(f"/api/admin/webhook-deliveries/{uuid.uuid4()}/retry", headers=admin_auth).status_code == 404
    for query in ({"status": "gone"}, {"eventType": "x"}, {"endpointId": "nope"}, {"pageSize": 0}):
        assert client.get("/api/admin/webhook-deliveries", query_string=query,
                          headers=admin_auth).status_code == 400


def test_metrics_show_the_backlog(client, admin_auth, db, make, shop, session_factory):
    _create(client, admin_auth)
    _place(client, make, shop, 2)
    _sequence(session_factory)
    with db.begin():
        db.execute(update(WebhookDelivery).values(created_at=utcnow() - timedelta(seconds=90)))
        assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 2
    text = client.get("/metrics").get_data(as_text=True)
    assert "orders_webhook_deliveries_waiting 2.0" in text
    age = float(text.split("\norders_webhook_oldest_pending_delivery_age_seconds ")[1].split()[0])
    assert 90 <= age < 120
    assert "\norders_webhook_oldest_unnumbered_event_age_seconds " in text


def test_the_document_lists_the_routes_with_operation_ids(client):
    paths = client.get("/api/openapi.json").json["paths"]
    ids = {(path, method): op["operationId"] for path, ops in paths.items() for method, op in ops.items()
           if ("webhook" in path or path == "/api/admin/events") and method != "parameters"}
    assert ids == {
        ("/api/admin/webhook-endpoints", "post"): "createWebhookEndpoint",
        ("/api/admin/webhook-endpoints", "get"): "listWebhookEndpoints",
        ("/api/admin/webhook-endpoints/{endpointId}", "get"): "getWebhookEndpoint",
        ("/api/admin/webhook-endpoints/{endpointId}", "patch"): "updateWebhookEndpoint",
        ("/api/admin/webhook-endpoints/{endpointId}", "delete"): "deleteWebhookEndpoint",
        ("/api/admin/webhook-endpoints/{endpointId}/rotate-secret", "post"): "rotateWebhookEndpointSecret",
        ("/api/admin/webhook-endpoints/{endpointId}/test", "post"): "testWebhookEndpoint",
        ("/api/admin/webhook-endpoints/{endpointId}/replay", "post"): "replayWebhookEvents",
        ("/api/admin/webhook-deliveries", "get"): "listWebhookDeliveries",
        ("/api/admin/webhook-deliveries/{deliveryId}/retry", "post"): "retryWebhookDelivery",
        ("/api/admin/events", "get"): "listEvents",
        ("/api/webhooks/stripe", "post"): ids[("/api/webhooks/stripe", "post")],
    }
