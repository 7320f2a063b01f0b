"""A connection PostgreSQL refuses (too many clients, nothing listening) or a pool with none free in time
answers 503 with Retry-After, never 500: it is a burst or an outage, not a fault of the request."""
import os

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.database import admin_url
from tests.support.processes import free_port


@pytest.fixture
def app_on(app_with):
    """`app_on(**settings)`: a test client of an app with these settings, and its runtime."""
    def build(**overrides):
        app = app_with(**overrides)
        return app.test_client(), app.extensions["orders.runtime"]

    return build


def _unavailable(response):
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json and response.json["code"] == 503 and response.json["message"]
    assert "psycopg" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) >= 1


ROUTES = [
    ("post", "/api/auth/login", {"email": "ada@example.com", "password": "correct horse battery"}),
    ("post", "/api/auth/register", {"email": "ada@example.com", "password": "correct horse battery", "name": "A"}),
    ("get", "/api/products", None),
]


@pytest.fixture
def role_without_connections(database_url):
    """A PostgreSQL role that may log in but has CONNECTION LIMIT 0: PostgreSQL refuses it as it refuses
    a client past max_connections ("too many connections")."""
    role = f"orders_test_nolimit_{os.getpid()}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    yield make_url(database_url).set(username=role).render_as_string(hide_password=False)
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize("method, path, body", ROUTES, ids=[r[1] for r in ROUTES])
def test_too_many_connections_is_503(app_on, role_without_connections, method, path, body):
    with pytest.raises(psycopg.OperationalError, match="too many connections"):  # the refusal is real
        psycopg.connect(role_without_connections.replace("+psycopg", "")).close()
    client, _runtime = app_on(database_url=role_without_connections)
    _unavailable(getattr(client, method)(path, json=body))


@pytest.mark.parametrize("method, path, body", ROUTES, ids=[r[1] for r in ROUTES])
def test_a_database_not_listening_is_503(app_on, database_url, method, path, body):
    client, _runtime = app_on(database_url=make_url(database_url).set(port=free_port()).render_as_string())
    _unavailable(getattr(client, method)(path, json=body))


def test_a_pool_with_no_free_connection_in_time_is_503(app_on, make):
    client, runtime = app_on(db_pool_size=1, db_pool_timeout_seconds=1)
    assert client.get("/api/products").status_code == 200
    with runtime.engine.connect():  # the pool's one connection, held as a long transaction would
        _unavailable(client.get("/api/products"))
    assert client.get("/api/products").status_code == 200
