"""Fixtures: a fresh PostgreSQL database per test process (migrated with Alembic, as in production),
the Flask app on it, the Procfile's gunicorn on it for tests that need a real HTTP server, and
factories for test data. Tables are emptied before each test."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
JWT_SECRET = "test-jwt-secret-that-is-long-enough"
WEBHOOK_SECRET = "whsec_orders_service_tests"


def pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


def create_database(name: str) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


@pytest.fixture(scope="session")
def worker_id_suffix(request) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_url(worker_id_suffix):
    name = f"orders_test_{worker_id_suffix}_{os.getpid()}"  # private to this test process
    url = create_database(name)
    from orders_service.migrate import upgrade

    upgrade(url)
    yield url
    drop_database(name)


class StripeEmulator:
    """A private localstripe on a free port, driven with the real SDK the way a browser would pay."""

    API_KEY = "sk_test_orders_service_tests"

    def __init__(self, url: str):
        import stripe

        self.url = url
        self.client = stripe.StripeClient(self.API_KEY, base_addresses={"api": url}, max_network_retries=0)

    def flush(self) -> None:
        requests.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()

    def payment_intent(self, pi_id: str):
        return self.client.v1.payment_intents.retrieve(pi_id)

    def pay(self, pi_id: str, payment_method: str = "pm_card_visa"):
        """Attach a card and confirm, as Stripe.js would after the customer pays."""
        self.client.v1.payment_intents.update(pi_id, params={"payment_method": payment_method})
        return self.client.v1.payment_intents.confirm(pi_id)

    def deliver_webhooks_to(self, url: str | None) -> None:
        """Register (or, with None, silence) the emulator's webhook endpoint; registrations cannot be deleted."""
        data = {"url": url or "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET}
        if url is None:
            data["events"] = ["plan.created"]  # an event the tests never cause
        requests.post(f"{self.url}/_config/webhooks/orders-service", json=data, timeout=10).raise_for_status()

    def decline(self, pi_id: str):
        """Pay with a card that is declined on charge (localstripe declines 4000000000000341)."""
        import stripe

        pm = self.client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": "4000000000000341", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
        with pytest.raises(stripe.CardError):
            self.pay(pi_id, pm.id)
        return self.payment_intent(pi_id)


def start_process(args, env=None) -> subprocess.Popen:
    """Start a server process; its output goes to a log file (a pipe nobody reads would block it)."""
    import tempfile

    log = tempfile.NamedTemporaryFile(prefix="orders-test-", suffix=".log", delete=False)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name
    log.close()
    return proc


def process_log(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")[-4000:]


def stop_process(proc: subprocess.Popen) -> None:
    """Stop the process and everything it started (gunicorn and Celery fork children)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass
    if not os.environ.get("KEEP_TEST_LOGS"):
        Path(proc.log_path).unlink(missing_ok=True)


def wait_tcp(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


@pytest.fixture(scope="session")
def stripe_emulator():
    import sys

    port = free_port()
    proc = start_process([sys.executable, "-m", "orders_service.payments.emulator", "--port", str(port)])
    try:
        wait_tcp(port)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(process_log(proc))
    yield StripeEmulator(f"http://127.0.0.1:{port}")
    stop_process(proc)


@pytest.fixture(scope="session")
def redis_broker_url():
    """A redis-server of this test process's own: two suites running at once never share a broker."""
    server = PrivateRedis()
    yield server.url
    server.stop()


@contextmanager
def rabbitmq_vhost(name: str):
    """A virtual host of the machine's RabbitMQ, deleted afterwards; its broker URL."""
    ctl = ["rabbitmqctl", "--quiet"]
    subprocess.run([*ctl, "add_vhost", name], check=True, capture_output=True)
    subprocess.run([*ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True, capture_output=True)
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        subprocess.run([*ctl, "delete_vhost", name], capture_output=True)


@pytest.fixture(scope="session")
def amqp_broker_url():
    """A RabbitMQ virtual host private to this test process."""
    with rabbitmq_vhost(f"orders_test_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="session")
def base_env(database_url, stripe_emulator, redis_broker_url, tmp_path_factory) -> dict:
    """The environment every process of the service under test gets."""
    env = dict(os.environ)
    instance = tmp_path_factory.mktemp("instance")
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        JWT_SECRET_KEY=JWT_SECRET,
        STRIPE_SECRET_KEY=StripeEmulator.API_KEY,
        STRIPE_API_BASE=stripe_emulator.url,
        STRIPE_TIMEOUT_SECONDS="3",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CELERY_BROKER_URL=redis_broker_url,
        ORDERS_INSTANCE_DIR=str(instance),
        PROMETHEUS_MULTIPROC_DIR=str(instance / "metrics"),
    )
    return env


@pytest.fixture(scope="session")
def settings(base_env):
    from orders_service.config import Settings

    return Settings.from_env(base_env)


@pytest.fixture(scope="session")
def app(settings):
    from orders_service import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["orders.engine"].dispose()


@pytest.fixture(scope="session")
def engine(app):
    return app.extensions["orders.engine"]


_DB_FIXTURES = {"engine", "app", "client", "db", "session_factory", "live_server", "make"}


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Every test that touches the database starts from empty tables."""
    if not _DB_FIXTURES & set(request.fixturenames):
        yield
        return
    engine = request.getfixturevalue("engine")
    from orders_service.models import metadata

    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))
    request.getfixturevalue("stripe_emulator").flush()
    yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session_factory(app):
    return app.extensions["orders.session_factory"]


@pytest.fixture
def db(session_factory):
    session = session_factory()
    yield session
    session.close()


@pytest.fixture(scope="session")
def live_server(base_env):
    """The Procfile's `web` process (gunicorn) on a free port, for tests that need real concurrency."""
    port = free_port()
    env = dict(base_env, PORT=str(port), WEB_CONCURRENCY="2", WEB_THREADS="16")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    proc = start_process(["bash", "-c", f"exec {procfile_command('web')}"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
    except RuntimeError:
        proc.kill()
        raise RuntimeError(process_log(proc))
    yield url
    stop_process(proc)


def signed_event(event_type: str, obj: dict, event_id: str | None = None, secret: str = WEBHOOK_SECRET,
                 timestamp: int | None = None) -> tuple[bytes, dict]:
    """A Stripe event body and its headers, signed as Stripe signs them."""
    import json

    import stripe

    body = json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": event_type,
                       "created": int(time.time()), "livemode": False, "data": {"object": obj}})
    signature = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    return body.encode(), {"Stripe-Signature": signature, "Content-Type": "application/json"}


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.2):
    """Poll until `predicate()` is truthy; its last value, or AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout} s"
            return value
        time.sleep(interval)


class PrivateRedis:
    """A redis-server of a test's own, so that it can be stopped and started again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        self.proc = start_process(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"])
        wait_tcp(self.port)

    def stop(self):
        stop_process(self.proc)


@pytest.fixture(params=["redis", "rabbitmq"])
def private_broker(request):
    """A broker no other test uses: a private redis-server, or a fresh RabbitMQ virtual host."""
    if request.param == "redis":
        server = PrivateRedis()
        yield server.url
        server.stop()
        return
    with rabbitmq_vhost(f"orders_private_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture
def smtp_sink():
    """A real SMTP server (aiosmtpd) on a free port that keeps what it receives."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.url = f"smtp://127.0.0.1:{controller.port}"
    yield sink
    controller.stop()


# The periodic jobs run only when a test enqueues them; these make them act on young orders.
STACK_TIMINGS = {"ORDER_PAYMENT_TTL_SECONDS": "2", "RECONCILE_AFTER_SECONDS": "0", "REDRIVE_AFTER_SECONDS": "1"}


class Stack:
    """The Procfile's processes (web, worker, optionally beat) on one broker, as a deploy runs them."""

    def __init__(self, env: dict, processes=("web", "worker")):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, PORT=str(self.port), WEB_CONCURRENCY="2", WEB_THREADS="16", WORKER_CONCURRENCY="2")
        self.env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        self.procs: dict[str, subprocess.Popen] = {}
        for name in processes:
            self.start(name)
        if "web" in processes:
            wait_http(f"{self.url}/healthz")

    def start(self, name: str, **env) -> subprocess.Popen:
        self.procs[name] = start_process(["bash", "-c", f"exec {procfile_command(name)}"], env={**self.env, **env})
        return self.procs[name]

    def stop(self, name: str) -> None:
        stop_process(self.procs.pop(name))

    def enqueue(self, task: str, *args) -> None:
        from orders_service.config import Settings
        from orders_service.queue import TaskQueue

        assert TaskQueue(Settings.from_env(self.env)).enqueue(f"workers.tasks.{task}", *args)

    def ttl_passed(self, order) -> bool:
        from datetime import datetime, timedelta, timezone

        ttl = timedelta(seconds=int(self.env["ORDER_PAYMENT_TTL_SECONDS"]))
        return datetime.now(timezone.utc) - order.created_at > ttl

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture(scope="session", params=["redis", "rabbitmq"])
def stack(request, base_env, stripe_emulator):
    """web + worker on Redis, and again on RabbitMQ; the emulator delivers its webhooks to this web."""
    broker = request.getfixturevalue("redis_broker_url" if request.param == "redis" else "amqp_broker_url")
    running = Stack(dict(base_env, CELERY_BROKER_URL=broker, **STACK_TIMINGS))
    yield running
    running.close()


@pytest.fixture
def webhooks_on(stack, stripe_emulator):
    stripe_emulator.deliver_webhooks_to(f"{stack.url}/api/webhooks/stripe")
    yield stack
    stripe_emulator.deliver_webhooks_to(None)


from tests.factories import *  # noqa: E402,F401,F403  (factory fixtures)
