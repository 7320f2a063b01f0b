"""/readyz, /metrics across gunicorn workers, and JSON request logs with request and order ids."""
import json
import re
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from tests.support.faults import TcpProxy
from tests.support.processes import PrivateRedis, Stack, wait_until
from tests.support.stripe import payment_intent_of, signed_event

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ops")]


def _sample(metrics_text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text format (0 when it has not been written yet)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics_text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_metrics_move_when_an_order_is_placed_and_paid(live_server, client, make, stripe_emulator):
    customer, auth = make.shopper()
    product, method = make.product(stock=10), make.delivery_method(countries=[])

    def metrics():
        response = requests.get(f"{live_server}/metrics", timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
        return response.text

    before = metrics()
    body = make.order_body(customer, method, [(product, 1)])
    assert requests.post(f"{live_server}/api/orders", json=body, headers=auth, timeout=30).status_code == 204
    created = requests.post(f"{live_server}/api/orders/with-payment", json=body, headers=auth, timeout=30).json()
    stripe_emulator.pay(payment_intent_of(created["clientSecret"]))
    assert requests.patch(f"{live_server}/api/orders/{created['orderId']}/paid", headers=auth,
                          timeout=30).status_code == 204
    # Several requests, so that both gunicorn workers have served some: /metrics must add them up.
    for _ in range(8):
        requests.get(f"{live_server}/healthz", timeout=10)
    after = metrics()

    def delta(name, **labels):
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("orders_placed_total", payment_method="cash_on_delivery") == 1
    assert delta("orders_placed_total", payment_method="online") == 1
    assert delta("orders_payments_total", outcome="payment_succeeded") == 1
    assert delta("orders_http_requests_total", method="GET", route="/healthz", status="200") == 8
    assert delta("orders_http_requests_total", method="POST", route="/api/orders", status="204") == 1
    assert "orders_http_request_duration_seconds_bucket" in after


def test_readyz_follows_the_database_without_a_restart(base_env, database_url):
    url = make_url(database_url)
    proxy = TcpProxy(url.port or 5432)
    stack = Stack(dict(base_env, DATABASE_URL=url.set(port=proxy.port).render_as_string(hide_password=False)),
                  processes=("web",))
    try:
        def ready():
            return requests.get(f"{stack.url}/readyz", timeout=15).status_code

        assert ready() == 200
        proxy.stop()
        response = requests.get(f"{stack.url}/readyz", timeout=15)
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "unreachable", "broker": "ok"}
        proxy.start()
        wait_until(lambda: ready() == 200, timeout=20)
    finally:
        stack.close()
        proxy.stop()


def test_request_logs_are_json_with_request_and_order_ids(base_env, make):
    customer, auth = make.shopper()
    product, method = make.product(stock=10), make.delivery_method(countries=[])
    stack = Stack(base_env, processes=("web",))
    try:
        response = requests.post(f"{stack.url}/api/orders", json=make.order_body(customer, method, [(product, 1)]),
                                 headers={**auth, "X-Request-ID": "req-42.abc"}, timeout=30)
        assert response.headers["X-Request-ID"] == "req-42.abc"
        order_id = response.headers["Location"].rsplit("/", 1)[1]
        generated = requests.get(f"{stack.url}/healthz", timeout=10).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        bad = requests.get(f"{stack.url}/healthz", headers={"X-Request-ID": "x" * 500}, timeout=10)
        assert bad.headers["X-Request-ID"] != "x" * 500

        def logged():
            lines = Path(stack.procs["web"].log_path).read_text().splitlines()
            return [json.loads(line) for line in lines if line.startswith("{")]

        records = wait_until(lambda: [r for r in logged() if r.get("request_id") == "req-42.abc"])
        assert records[-1]["order_id"] == order_id
        assert records[-1]["status"] == 204 and records[-1]["path"] == "/api/orders"
        assert {"time", "level", "logger", "message"} <= set(records[-1])
    finally:
        stack.close()


def test_readyz_follows_the_broker(base_env):
    broker = PrivateRedis()
    stack = Stack(dict(base_env, CELERY_BROKER_URL=broker.url), processes=("web",))
    try:
        assert requests.get(f"{stack.url}/readyz", timeout=15).status_code == 200
        broker.stop()
        response = requests.get(f"{stack.url}/readyz", timeout=15)
        assert response.status_code == 503
        assert response.json() == {"status": "not ready", "checks": {"database": "ok", "broker": "unreachable"}}
        broker.start()
        wait_until(lambda: requests.get(f"{stack.url}/readyz", timeout=15).status_code == 200, timeout=20)
    finally:
        stack.close()
        broker.stop()


def test_metrics_count_webhook_events_by_type(live_server):
    def metrics():
        return requests.get(f"{live_server}/metrics", timeout=10).text

    before = metrics()
    first = signed_event("payment_intent.payment_failed", {"id": "pi_x", "object": "payment_intent"})
    for body, headers in (first, first, signed_event("customer.created", {"id": "cus_1", "object": "customer"})):
        assert requests.post(f"{live_server}/api/webhooks/stripe", data=body, headers=headers, timeout=30).ok
    after = metrics()

    def delta(**labels):
        return (_sample(after, "orders_webhook_events_total", **labels)
                - _sample(before, "orders_webhook_events_total", **labels))

    assert delta(type="payment_intent.payment_failed", duplicate="false") == 1
    assert delta(type="payment_intent.payment_failed", duplicate="true") == 1
    assert delta(type="customer.created", duplicate="false") == 1
