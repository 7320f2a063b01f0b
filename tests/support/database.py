"""PostgreSQL for the tests: a server of the test run's own when PostgreSQL's binaries are installed
(so that two runs at once never share max_connections), else the machine's; databases of each test
process's own on it."""
from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time

import psycopg

MACHINE_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    """The server the tests use: TEST_PG_ADMIN_URL (set by the run's private server), else the machine's."""
    return os.environ.get("TEST_PG_ADMIN_URL", MACHINE_PG_ADMIN_URL)


def pg_url(dbname: str) -> str:
    base = admin_url().rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


def create_database(name: str) -> str:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivatePostgres:
    """A PostgreSQL server in a temporary folder, on a free port, for one test run (all its xdist workers).

    Its own max_connections (the suite runs many servers with pools of their own); durability off, as
    nothing in it outlives the run. initdb refuses to run as root: as root, the server runs as the
    `postgres` user. None of this is needed when the binaries are missing: the suite then uses the
    machine's server (`.ci/ensure-services` starts it).
    """

    MAX_CONNECTIONS = 300

    def __init__(self, bindir: str, port: int):
        self.bindir, self.port = bindir, port
        self.base = tempfile.mkdtemp(prefix="orders-test-pg-")
        self.data = os.path.join(self.base, "data")
        self.as_user = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        options = (f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections={self.MAX_CONNECTIONS}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB")
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.base, "server.log"), "-w",
                  "-t", "60", "start")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    @classmethod
    def binaries(cls) -> str | None:
        """The newest installed PostgreSQL's bin folder, or None."""
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        if not found or (os.geteuid() == 0 and not _has_user("postgres")) or not shutil.which("runuser"):
            return None
        return os.path.dirname(found[-1])

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, os.path.join(self.bindir, tool), *args], capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


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
