"""The service through a real PgBouncer in transaction mode (deploy/pgbouncer.ini, DB_POOLER=pgbouncer), with a
pool smaller than its clients, so that consecutive transactions of one client run on different server
connections: no 500 from a prepared statement another server connection does not know, the workers' claims
and the migrations work through it, a pooler restart is a 503 at worst, and a client frozen inside a
transaction loses its locks within seconds (also without a pooler)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg
import pytest
import requests
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from orders_service.migrate import alembic_config
from orders_service.notifications.models import Notification
from orders_service.orders.models import Order
from tests.support import pgbouncer
from tests.support.database import create_database, drop_database
from tests.support.processes import ROOT, STACK_TIMINGS, PrivateRedis, Stack, wait_until
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pgbouncer"),
              pytest.mark.skipif(pgbouncer.binary() is None, reason=pgbouncer.MISSING)]

CLI = str(ROOT / ".venv" / "bin" / "orders-service")


@pytest.fixture
def bouncer():
    """PgBouncer with 2 server connections per database for however many clients."""
    running = pgbouncer.PgBouncer(default_pool_size=2)
    yield running
    running.close()


@pytest.fixture
def pooled_env(base_env, bouncer):
    """The service's environment through `bouncer`, on a broker of its own."""
    broker = PrivateRedis()
    yield dict(base_env, DATABASE_URL=bouncer.url(base_env["DATABASE_URL"]), DB_POOLER="pgbouncer",
               CELERY_BROKER_URL=broker.url, NOTIFICATION_INTERVAL_SECONDS="1", **STACK_TIMINGS)
    broker.stop()


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Clients:
    """`count` clients, each placing a cash-on-delivery order then listing its orders, `rounds` times over
    (or until stopped); every answer's status, and every 503's Retry-After."""

    def __init__(self, url: str, make, product, method, count: int, rounds: int | None = None):
        self.url, self.rounds = url, rounds
        self.statuses: Counter = Counter()
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        shoppers = [make.shopper() for _ in range(count)]
        self._threads = [threading.Thread(target=self._run, args=(make.order_body(customer, method, [(product, 1)]),
                                                                  auth), daemon=True)
                         for customer, auth in shoppers]

    def _record(self, response) -> None:
        with self._lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                ok = response.status_code == 503 and int(response.headers.get("Retry-After", "0")) >= 1
                if not ok:
                    self.errors.append(f"{response.status_code} {response.headers.get('Retry-After')} "
                                       f"{response.text[:300]}")

    def _run(self, body, auth) -> None:
        with requests.Session() as http:
            done = 0
            while not self.stopping.is_set() and (self.rounds is None or done < self.rounds):
                self._record(http.post(f"{self.url}/api/orders", json=body, headers=auth, timeout=60))
                self._record(http.get(f"{self.url}/api/orders", headers=auth, timeout=60))
                done += 2

    def start(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        assert not any(t.is_alive() for t in self._threads), "clients still running"

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def test_eight_clients_through_pgbouncer_never_get_a_500_and_the_workers_claim_through_it(pooled_env, make, db):
    receiver = Receiver()
    stack = Stack(pooled_env, processes=("web", "worker", "beat"))
    try:
        _admin, admin_auth = make.admin()
        endpoint = requests.post(f"{stack.url}/api/admin/webhook-endpoints", headers=admin_auth, timeout=30,
                                 json={"url": receiver.url, "eventTypes": ["order.created"]})
        assert endpoint.status_code == 201, endpoint.text
        product, method = make.product(stock=10_000), make.delivery_method(countries=[])

        clients = Clients(stack.url, make, product, method, count=8, rounds=80).start()
        clients.join()

        # 640 requests, each of a transaction or more on whichever of 2 server connections was free.
        assert sum(clients.statuses.values()) == 640
        assert clients.statuses == {204: 320, 200: 320}, (clients.statuses, clients.errors[:5])
        db.expire_all()
        with db.begin():
            assert db.scalar(select(func.count()).select_from(Order)) == 320
        # The worker's claims through the pooler: every confirmation e-mail sent once (the outbox), every
        # order.created delivered (the webhook sender).
        wait_until(lambda: _unsent(db) == 0, timeout=90, message=lambda: f"{_unsent(db)} e-mails unsent")
        receiver.wait_for(320, "order.created", timeout=90)
        assert len({r.json()["id"] for r in receiver.requests("order.created")}) == 320
    finally:
        stack.close()
        receiver.close()


def _unsent(db) -> int:
    db.expire_all()
    with db.begin():
        return db.scalar(select(func.count()).select_from(Notification).where(Notification.sent_at.is_(None)))


@pytest.fixture
def fresh_database():
    name = f"orders_test_pgbouncer_migrate_{os.getpid()}"
    yield create_database(name)
    drop_database(name)


def test_two_releases_at_once_migrate_through_pgbouncer_and_leave_no_setting_behind(base_env, bouncer,
                                                                                    fresh_database):
    env = dict(base_env, DATABASE_URL=bouncer.url(fresh_database), DB_POOLER="pgbouncer")
    releases = [subprocess.Popen([CLI, "migrate"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for release in releases:  # the second waits for the first's lock, then finds the schema at head
        output, _ = release.communicate(timeout=120)
        assert release.returncode == 0, output
    direct = _psycopg_url(fresh_database)
    with psycopg.connect(direct) as conn:
        head = ScriptDirectory.from_config(alembic_config(direct)).get_current_head()
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
    # Both server connections PgBouncer holds, at once: neither kept the migrations' lock_timeout.
    pooled = [psycopg.connect(_psycopg_url(env["DATABASE_URL"])) for _ in range(2)]
    try:
        backends = {conn.execute("SELECT pg_backend_pid()").fetchone()[0] for conn in pooled}
        assert len(backends) == 2
        assert [conn.execute("SHOW lock_timeout").fetchone()[0] for conn in pooled] == ["0", "0"]
    finally:
        for conn in pooled:
            conn.close()


def test_a_pgbouncer_restart_under_load_is_503_at_worst_and_the_service_recovers(pooled_env, bouncer, make):
    stack = Stack(pooled_env, processes=("web",))
    try:
        product, method = make.product(stock=100_000), make.delivery_method(countries=[])
        clients = Clients(stack.url, make, product, method, count=6).start()
        wait_until(lambda: clients.statuses[204] >= 10, timeout=60)
        bouncer.kill()
        time.sleep(2)  # requests meanwhile find nothing listening
        bouncer.start()
        restarted = sum(clients.statuses.values())
        wait_until(lambda: sum(clients.statuses.values()) >= restarted + 60, timeout=60)
        clients.stop()
        assert clients.errors == [], clients.errors[:5]
        assert set(clients.statuses) <= {200, 204, 503}, clients.statuses
        # Recovered without a restart of the service: every client's next order and list succeed.
        after = Clients(stack.url, make, product, method, count=4, rounds=10).start()
        after.join()
        assert after.statuses == {204: 20, 200: 20}, (after.statuses, after.errors[:5])
    finally:
        stack.close()


HOLDER = """
import sys, time, uuid
from sqlalchemy import select, text
from orders_service.catalog.models import Product
from orders_service.config import Settings
from orders_service.runtime import Runtime

runtime = Runtime(Settings.from_env())
with runtime.session_factory() as session, session.begin():
    session.scalar(select(Product).where(Product.id == uuid.UUID(sys.argv[1])).with_for_update())
    print("locked", session.scalar(text("SELECT pg_backend_pid()")), flush=True)
    time.sleep(3600)  # stopped here with SIGSTOP: silent inside its transaction
"""


@pytest.mark.parametrize("pooler", ["none", "pgbouncer"])
def test_a_client_frozen_inside_a_transaction_loses_its_locks_within_seconds(base_env, bouncer, app_with, make,
                                                                             settings, pooler):
    url = bouncer.url(base_env["DATABASE_URL"]) if pooler == "pgbouncer" else base_env["DATABASE_URL"]
    customer, auth = make.shopper()
    product, method = make.product(stock=5), make.delivery_method(countries=[])
    client = app_with(database_url=url, db_pooler=pooler).test_client()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(product.id)], cwd=ROOT, text=True,
                              env=dict(base_env, DATABASE_URL=url, DB_POOLER=pooler), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        said, _, backend = holder.stdout.readline().strip().partition(" ")
        assert said == "locked", holder.stdout.read()
        holder.send_signal(signal.SIGSTOP)  # a host that froze (or lost its network) holding the row lock
        assert int(backend) in _idle_in_transaction(base_env["DATABASE_URL"])
        started = time.monotonic()
        placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
        waited = time.monotonic() - started
        assert placed.status_code == 204, placed.get_data(as_text=True)
        # The holder went idle in its transaction: PostgreSQL ended it after DB_IDLE_TRANSACTION_TIMEOUT_MS
        # (3 s), within the order's own wait for the lock (DB_LOCK_TIMEOUT_MS, 5 s).
        assert settings.db_idle_transaction_timeout_ms == 3000 and waited < 5.0, waited
        assert int(backend) not in _sessions(base_env["DATABASE_URL"])  # ended, with its transaction
        assert make.stock_of(type(product), product.id) == 4
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait(10)


def _idle_in_transaction(database_url: str) -> list[int]:
    """The backends of the test database idle inside a transaction (the holder's, while it lives)."""
    with psycopg.connect(_psycopg_url(database_url)) as conn:
        return [pid for pid, in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'")]


def _sessions(database_url: str) -> list[int]:
    """The backends of the test database."""
    with psycopg.connect(_psycopg_url(database_url)) as conn:
        return [pid for pid, in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]


def test_the_template_names_every_placeholder_the_tests_fill(tmp_path):
    rendered = pgbouncer.render(LISTEN_ADDR="127.0.0.1", LISTEN_PORT=6432, DB_HOST="db", DB_PORT=5432,
                                AUTH_TYPE="scram-sha-256", AUTH_FILE="/etc/pgbouncer/userlist.txt",
                                DEFAULT_POOL_SIZE=20, MAX_CLIENT_CONN=500)
    assert "${" not in rendered and "pool_mode = transaction" in rendered
    with pytest.raises(KeyError):  # a placeholder left out is an error, not an empty setting
        pgbouncer.render(LISTEN_ADDR="127.0.0.1")
