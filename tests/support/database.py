"""PostgreSQL databases of the tests' own, on the machine's server."""
from __future__ import annotations

import os
import re
import time

import psycopg

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


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


class TrailGate:
    """A gate in the test's own database that stops, inside its transaction, whoever writes an `event_type`
    trail event, until the test opens it. A test-only trigger: it makes a race real — the racers are all
    inside their transactions at once — so a missing row lock shows as a double change every time.

        with TrailGate(database_url, "payment_succeeded") as gate:
            ...start the racers...
            gate.wait_for_waiters(2)   # the first racer at the gate, the others blocked behind it
            gate.open()
    """

    KEY = 4_242_001  # the advisory lock the trigger waits on

    def __init__(self, database_url: str, event_type: str):
        assert re.fullmatch(r"[a-z_]+", event_type), event_type  # it goes into DDL, which takes no parameters
        self.event_type = event_type
        self.conn = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)

    def __enter__(self):
        self.conn.execute(f"""
            CREATE OR REPLACE FUNCTION orders_test_gate() RETURNS trigger AS $$
            BEGIN PERFORM pg_advisory_xact_lock({self.KEY}); RETURN NEW; END $$ LANGUAGE plpgsql""")
        self.conn.execute("DROP TRIGGER IF EXISTS orders_test_gate ON order_events")
        self.conn.execute(f"CREATE TRIGGER orders_test_gate BEFORE INSERT ON order_events FOR EACH ROW "
                          f"WHEN (NEW.type = '{self.event_type}') EXECUTE FUNCTION orders_test_gate()")
        self.close()
        return self

    def __exit__(self, *exc):
        self.conn.execute("SELECT pg_advisory_unlock_all()")
        self.conn.execute("DROP TRIGGER IF EXISTS orders_test_gate ON order_events")
        self.conn.close()

    def close(self) -> None:
        self.conn.execute("SELECT pg_advisory_lock(%s)", (self.KEY,))

    def open(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.KEY,))

    def waiters(self) -> int:
        """Transactions of this database waiting on a lock: at the gate, or on a row the first one holds."""
        return self.conn.execute(
            "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()").fetchone()[0]

    def wait_for_waiters(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.waiters() < count:
            assert time.monotonic() < deadline, f"{self.waiters()} of {count} racers reached their locks"
            time.sleep(0.01)
