"""Fixtures: a fresh PostgreSQL database per test process (migrated with Alembic, as in production),
the Flask app on it, the Procfile's processes on it for tests that need real servers, a private
localstripe and broker per process, and factories for test data. A test that writes gets empty tables
(`clean_database`). The helpers behind them live in `tests/support/`."""
from __future__ import annotations

import os
import sys
import uuid

import pytest
from sqlalchemy import text

from tests.support.database import PrivatePostgres, create_database, drop_database
from tests.support.factories import JWT_SECRET, Make
from tests.support.fake_gateway import FakeGateway
from tests.support.processes import (
    STACK_TIMINGS,
    PrivateRedis,
    Stack,
    free_port,
    process_log,
    procfile_command,
    rabbitmq_vhost,
    start_process,
    stop_process,
    wait_http,
    wait_tcp,
)
from tests.support.stripe import WEBHOOK_SECRET, StripeEmulator
from tests.support.stripe_proxy import RealStripe

pytest_plugins = ["tests.support.screenshots"]  # the browser tests' screenshot folder, in the run's summary


def pytest_configure(config):
    """One PostgreSQL server for this run, started before xdist starts its workers (they inherit its URL):
    a second `make test` at the same time has its own, and neither eats the other's connections."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("TEST_PG_ADMIN_URL"):
        return
    bindir = PrivatePostgres.binaries()
    if bindir is None:
        return  # the machine's server, as before
    config._private_postgres = PrivatePostgres(bindir, free_port())
    os.environ["TEST_PG_ADMIN_URL"] = config._private_postgres.url


def pytest_unconfigure(config):
    server = getattr(config, "_private_postgres", None)
    if server is not None:
        os.environ.pop("TEST_PG_ADMIN_URL", None)
        server.stop()


@pytest.fixture(scope="session")
def database_url():
    name = f"orders_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"  # this process's own
    url = create_database(name)
    from orders_service.migrate import upgrade

    upgrade(url)
    yield url
    drop_database(name)


@pytest.fixture(scope="session")
def stripe_emulator():
    port = free_port()
    proc = start_process([sys.executable, "-m", "orders_service.emulator.server", "--port", str(port)])
    try:
        wait_tcp(port)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(process_log(proc)) from None
    yield StripeEmulator(f"http://127.0.0.1:{port}")
    stop_process(proc)


@pytest.fixture(scope="session")
def real_stripe(stripe_emulator):
    """The service's Stripe: localstripe behind a proxy that answers (and sends webhooks) in the shapes of
    real Stripe since 2022-11-15, honours idempotency keys, and can be made slow, rate-limited or faulty.
    Tests pay and look at the truth through `stripe_emulator` directly, as a browser and Stripe would."""
    with RealStripe(stripe_emulator.url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def redis_broker_url():
    """A redis-server of this test process's own: two suites running at once never share a broker."""
    server = PrivateRedis()
    yield server.url
    server.stop()


def _redis_database(url: str, number: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{number}"


@pytest.fixture(scope="session")
def stack_broker_url(redis_broker_url):
    """The same redis-server, a database of its own for each session stack: a worker on another's broker
    would take (and apply with its own settings) the tasks a test means for its stack or wants to look at."""
    return _redis_database(redis_broker_url, 1)


@pytest.fixture(scope="session")
def amqp_broker_url():
    """A RabbitMQ virtual host private to this test process."""
    with rabbitmq_vhost(f"orders_test_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="session")
def base_env(database_url, real_stripe, redis_broker_url, tmp_path_factory) -> dict:
    """The environment every process of the service under test gets."""
    env = dict(os.environ)
    instance = tmp_path_factory.mktemp("instance")
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        JWT_SECRET_KEY=JWT_SECRET,
        STRIPE_SECRET_KEY=StripeEmulator.API_KEY,
        STRIPE_API_BASE=real_stripe.url,
        STRIPE_TIMEOUT_SECONDS="3",
        # Small pools: a test process runs several servers at once, and PostgreSQL's 100 connections are
        # shared with whatever else runs on the machine (another suite, a benchmark).
        DB_POOL_SIZE="4",
        # The run's own server allows PrivatePostgres.MAX_CONNECTIONS; the budget check (config.py) is for
        # deployments, and each test server here names its pool with DB_POOL_SIZE.
        DB_MAX_CONNECTIONS=str(PrivatePostgres.MAX_CONNECTIONS),
        # The suite signs in and orders far more often than any customer: the limits' own tests set small
        # ones on an app of their own (tests/integration/test_rate_limits.py).
        AUTH_RATE_LIMIT="100000/minute", ORDER_RATE_LIMIT="100000/minute", LOGIN_FAILURE_LIMIT="100000/minute",
        PAYMENT_CHECK_RATE_LIMIT="100000/minute",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CELERY_BROKER_URL=redis_broker_url,
        ORDERS_INSTANCE_DIR=str(instance),
        PROMETHEUS_MULTIPROC_DIR=str(instance / "metrics"),
        # Outbound webhooks go to receivers in the test process (127.0.0.1), and retry within seconds; every
        # worker of the run agrees, as any of them may send a delivery (the refusals have tests of their own).
        WEBHOOK_ALLOW_PRIVATE_URLS="true", WEBHOOK_RETRY_SCHEDULE="1,1,1",
    )
    return env


@pytest.fixture(scope="session")
def settings(base_env):
    from orders_service.config import Settings

    return Settings.from_env(base_env)


@pytest.fixture(scope="session")
def runtime(settings):
    from orders_service.runtime import Runtime

    built = Runtime(settings)
    yield built
    built.dispose()


@pytest.fixture(scope="session")
def app(runtime):
    from orders_service.app import create_app

    application = create_app(runtime=runtime)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def app_with(settings):
    """`app_with(**settings)`: another app on the test database, with these settings changed (small rate
    limits, a guarded /metrics, a database that refuses…); its runtime is disposed after the test."""
    import dataclasses

    from orders_service.app import create_app
    from orders_service.runtime import Runtime

    runtimes = []

    def build(**overrides):
        runtimes.append(Runtime(dataclasses.replace(settings, **overrides)))
        application = create_app(runtime=runtimes[-1])
        application.config["TESTING"] = True
        return application

    yield build
    for built in runtimes:
        built.dispose()


@pytest.fixture(scope="session")
def engine(runtime):
    return runtime.engine


@pytest.fixture
def clean_database(engine, stripe_emulator, real_stripe):
    """Empty tables and a Stripe that remembers nothing: where every test that writes starts from. The
    fixtures a test writes through (`session_factory`, `client`, and so `db`, `make`…) ask for it."""
    from orders_service.models import metadata

    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))
    stripe_emulator.flush()
    real_stripe.reset()


@pytest.fixture(autouse=True)
def _clean_first(request):
    """A test that wants a clean database gets it before any other fixture runs (one that sets up faults
    at Stripe, say), not in the middle of them."""
    if "clean_database" in request.fixturenames:
        request.getfixturevalue("clean_database")


@pytest.fixture
def client(app, clean_database):
    return app.test_client()


@pytest.fixture
def session_factory(runtime, clean_database):
    return runtime.session_factory


@pytest.fixture
def db(session_factory):
    session = session_factory()
    yield session
    session.close()


@pytest.fixture
def make(app, session_factory):
    return Make(app, session_factory)


@pytest.fixture
def fake_gateway():
    """An in-memory payment provider (`tests/support/fake_gateway.py`) for the use cases' own branches: put a
    payment in any state, or make the provider fail, with no network. Stripe itself is `real_stripe`."""
    return FakeGateway()


@pytest.fixture
def shop(make):
    """A shopper, a product at 20.00 with 10 in stock, free delivery everywhere; a module wanting other
    figures defines its own `shop` with `make.shop(...)`."""
    return make.shop()


@pytest.fixture(scope="session")
def live_server(base_env):
    """The Procfile's `web` process (gunicorn) on a free port, for tests that need real concurrency."""
    port = free_port()
    # Races: twenty concurrent requests held inside their transactions may all land on one process, whose
    # pool has no overflow (tests/integration/payments/test_with_payment.py).
    env = dict(base_env, PORT=str(port), WEB_CONCURRENCY="2", WEB_THREADS="16", DB_POOL_SIZE="20")
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    proc = start_process(["bash", "-c", f"exec {procfile_command('web')}"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
    except RuntimeError:
        proc.kill()
        raise RuntimeError(process_log(proc)) from None
    yield url
    stop_process(proc)


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


@pytest.fixture(scope="session", params=["redis", "rabbitmq"])
def stack(request, base_env, stripe_emulator):
    """web + worker on Redis, and again on RabbitMQ; the emulator delivers its webhooks to this web."""
    broker = request.getfixturevalue("stack_broker_url" if request.param == "redis" else "amqp_broker_url")
    running = Stack(dict(base_env, CELERY_BROKER_URL=broker, **STACK_TIMINGS))
    yield running
    running.close()


@pytest.fixture(scope="session")
def redis_stack(base_env, redis_broker_url):
    """web + worker on this test process's Redis only, for tests that need the workers but not both brokers
    (their modules share `xdist_group("redis_stack")`, so that one test process starts it once)."""
    running = Stack(dict(base_env, CELERY_BROKER_URL=_redis_database(redis_broker_url, 2)))
    yield running
    running.close()


def _webhooks_to(real_stripe, stack):
    real_stripe.forward_webhooks_to(f"{stack.url}/api/webhooks/stripe", WEBHOOK_SECRET)
    yield stack
    real_stripe.forward_webhooks_to(None)
    real_stripe.webhooks_paused = False  # a test that held them back has them delivered now, not later


@pytest.fixture
def webhooks_on(stack, real_stripe):
    """Stripe's webhooks (real-shaped) go to this stack's web while the test runs."""
    yield from _webhooks_to(real_stripe, stack)


@pytest.fixture
def redis_webhooks_on(redis_stack, real_stripe):
    """Stripe's webhooks (real-shaped) go to `redis_stack`'s web while the test runs."""
    yield from _webhooks_to(real_stripe, redis_stack)
