"""Web transactions wait for a row lock a bounded time (`DB_LOCK_TIMEOUT_MS`) and run a bounded time
(`DB_STATEMENT_TIMEOUT_MS`): a request stuck behind another connection's lock answers 503 with Retry-After,
never 500 and never after an unbounded wait. The bounds are per transaction (`SET LOCAL`), so nothing
stays on a connection that a transaction-mode pooler would hand to another client."""
import threading
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from orders_service.orders.models import Order


@pytest.fixture
def locked_row(database_url):
    """`locked_row(table, id)`: another connection takes the row's lock (SELECT … FOR UPDATE) and holds it
    until the test ends, as a frozen host or a slow transaction would."""
    held = []

    def lock(table, row_id):
        conn = psycopg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(
            hide_password=False))
        conn.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", (row_id,))  # the transaction stays open
        held.append(conn)

    yield lock
    for conn in held:
        conn.rollback()
        conn.close()


@pytest.fixture
def order_of(make):
    customer, auth = make.shopper()
    product, method = make.product(stock=5), make.delivery_method(countries=[])

    def place(client):
        response = client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]), headers=auth)
        assert response.status_code == 204, response.json
        return response.headers["Location"].rsplit("/", 1)[1], auth

    return place


def test_a_request_behind_a_held_row_lock_answers_503_with_retry_after(app_with, order_of, locked_row, db):
    client = app_with(db_lock_timeout_ms=300).test_client()
    order_id, auth = order_of(client)
    locked_row("orders", order_id)

    started = time.monotonic()
    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth)
    waited = time.monotonic() - started

    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.json["message"] == "The service is busy; try again shortly"
    assert "psycopg" not in response.get_data(as_text=True) and "lock" not in response.json["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert 0.3 <= waited < 3, waited  # it waited for the lock its bound, not for ever
    with db.begin():
        assert db.get(Order, order_id).status == "confirmed"  # nothing changed


def test_the_lock_is_waited_for_while_the_bound_allows(app_with, order_of, database_url):
    """A lock released within the bound is simply waited for: the bound is for stuck holders."""
    client = app_with(db_lock_timeout_ms=5000).test_client()
    order_id, auth = order_of(client)
    conn = psycopg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False))
    conn.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (order_id,))
    release = threading.Timer(0.5, conn.rollback)
    release.start()
    try:
        response = client.post(f"/api/orders/{order_id}/cancel", headers=auth)
    finally:
        release.join()
        conn.close()
    assert response.status_code == 200, response.json
    assert response.json["status"] == "canceled"


def test_the_bounds_are_per_transaction_and_leave_the_connection_as_it_was(app_with):
    """SET LOCAL: inside a web transaction the bounds hold; after it, the same server connection has the
    server's defaults again (a transaction-mode pooler may hand it to any client next)."""
    from orders_service.api.context import db_session

    app = app_with(db_lock_timeout_ms=1234, db_statement_timeout_ms=5678, db_pool_size=1)
    settings = "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), pg_backend_pid()"
    with app.test_request_context():
        session = db_session()
        with session.begin():
            inside = session.execute(text(settings)).one()
        session.close()
    with app.extensions["orders.runtime"].engine.connect() as conn:  # the pool's one connection, outside
        after = conn.execute(text(settings)).one()
    assert inside[:2] == ("1234ms", "5678ms")
    assert after[2] == inside[2] and after[:2] == ("0", "0")
