"""Fixtures: a fresh PostgreSQL database per test process (migrated with Alembic, as in production),
the Flask app on it, the Procfile's gunicorn on it for tests that need a real HTTP server, and
factories for test data. Tables are emptied before each test."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
JWT_SECRET = "test-jwt-secret-that-is-long-enough"


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
    name = f"orders_test_{worker_id_suffix}"
    url = create_database(name)
    from orders_service.migrate import upgrade

    upgrade(url)
    yield url
    drop_database(name)


@pytest.fixture(scope="session")
def base_env(database_url, tmp_path_factory) -> dict:
    """The environment every process of the service under test gets."""
    env = dict(os.environ)
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        JWT_SECRET_KEY=JWT_SECRET,
        ORDERS_INSTANCE_DIR=str(tmp_path_factory.mktemp("instance")),
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
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {procfile_command('web')}"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
    except RuntimeError:
        proc.kill()
        raise RuntimeError(proc.stderr.read().decode()[-3000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


from tests.factories import *  # noqa: E402,F401,F403  (factory fixtures)
