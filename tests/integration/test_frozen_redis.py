"""A Redis that stops answering (SIGSTOP: its connections stay open, nothing is refused or reset) holds
neither sign-in nor ordering: the rate limits' calls give up within a fraction of a second and the limits
are counted in each web process's memory until Redis answers again; /readyz says the broker is
unreachable instead of hanging. Against the Procfile's web on a private redis-server that is both the
rate limits' store and the broker (REDIS_URL)."""
import os
import signal
import subprocess
import time

import pytest
import requests

from tests.support.factories import PASSWORD
from tests.support.processes import PrivateRedis, procfile_web, wait_until
from tests.support.stripe import signed_event

pytestmark = pytest.mark.slow

ANSWER_WITHIN = 1.0  # more than the same call takes while Redis answers
READY_WITHIN = 3.0  # a balancer's health check waits a few seconds
WEBHOOK_WITHIN = 7.0  # Stripe waits longer


@pytest.fixture
def redis_backed_web(base_env):
    redis = PrivateRedis()
    try:
        with procfile_web(base_env, REDIS_URL=redis.url, CELERY_BROKER_URL=None) as (port, _proc):
            yield f"http://127.0.0.1:{port}", redis
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
        redis.stop()


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _keys(redis: PrivateRedis, pattern: str = "*orders-service*") -> int:
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan", "--pattern", pattern],
                         capture_output=True, text=True, timeout=5).stdout
    return len(out.split())


def test_a_frozen_redis_holds_neither_sign_in_nor_orders(redis_backed_web, make):
    url, redis = redis_backed_web
    customer, auth = make.shopper()
    product = make.product(stock=1000)
    method = make.delivery_method(countries=[])
    body = make.order_body(customer, method, [(product, 1)])

    def login(password=PASSWORD):
        return requests.post(f"{url}/api/auth/login", json={"email": customer.email, "password": password},
                             timeout=10)

    def order():
        return requests.post(f"{url}/api/orders", json=body, headers=auth, timeout=10)

    calls = (("login", login, 200), ("wrong password", lambda: login("guess"), 401), ("order", order, 204))

    def answers(rounds: int) -> list[tuple[str, float]]:
        seen = []
        for _ in range(rounds):
            for name, call, expected in calls:
                response, took = _timed(call)
                assert response.status_code == expected, (name, response.text)
                seen.append((name, round(took, 2)))
        return seen

    # What each call takes while Redis answers: a login is mostly its password hash, slower on a busy machine.
    usual = answers(2)
    assert _keys(redis) > 0  # the limits count in Redis

    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        frozen = answers(4)  # each of the two web processes meets the frozen Redis, and after it
        print(f"\nwhile Redis answers: {usual}\nwhile Redis is frozen: {frozen}")
        for name, took in frozen:
            assert took < ANSWER_WITHIN + max(t for n, t in usual if n == name), (name, took, usual)

        ready, took = _timed(lambda: requests.get(f"{url}/readyz", timeout=10))
        print(f"/readyz while Redis is frozen: {ready.status_code} in {took:.2f} s")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"] == "unreachable", ready.text
        assert took < READY_WITHIN

        # A Stripe webhook is stored and answered; the broker's own timeout (5 s) bounds its enqueueing,
        # and the re-drive job sends the event once the broker is back.
        body, headers = signed_event("payment_intent.succeeded", {"id": "pi_frozen", "object": "payment_intent"})
        webhook, took = _timed(lambda: requests.post(f"{url}/api/webhooks/stripe", data=body, headers=headers,
                                                     timeout=30))
        print(f"a webhook while Redis is frozen: {webhook.status_code} in {took:.2f} s")
        assert webhook.status_code == 200 and took < WEBHOOK_WITHIN, webhook.text
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)

    # Once Redis answers again the limits count there again: flask-limiter pings it after 1, 2, 4 … 32 s.
    # A wrong password for an account nobody has tried counts under a key of its own: it shows where.
    def counted_in_redis() -> bool:
        assert login_as("late@example.com", "guess").status_code == 401
        return _keys(redis, "*late@example.com*") > 0

    def login_as(email, password):
        return requests.post(f"{url}/api/auth/login", json={"email": email, "password": password}, timeout=10)

    wait_until(counted_in_redis, timeout=80, interval=1)
    assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
