"""The `orders-service` console script, run as an operator runs it, against the test database."""
import subprocess
import uuid

from sqlalchemy import func, select, text

from orders_service.auth.models import Customer
from orders_service.catalog.models import DeliveryMethod, Product, Variant
from tests.support.processes import ROOT

CLI = str(ROOT / ".venv" / "bin" / "orders-service")


def _run(base_env, *args):
    return subprocess.run([CLI, *args], env=base_env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _counts(db):
    db.expire_all()
    with db.begin():
        return {model.__name__: db.scalar(select(func.count()).select_from(model))
                for model in (Product, Variant, DeliveryMethod, Customer)}


def test_seed_twice_duplicates_nothing(base_env, db):
    first = _run(base_env, "seed")
    assert first.returncode == 0, first.stderr
    after_first = _counts(db)
    assert all(after_first.values()), after_first

    second = _run(base_env, "seed")
    assert second.returncode == 0, second.stderr
    assert _counts(db) == after_first
    assert second.stdout == first.stdout  # the same demo customer and admin


def test_a_customer_token_is_accepted_by_the_api(base_env, client, make):
    customer = make.customer()
    result = _run(base_env, "token", "--customer", str(customer.id))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    response = client.get("/api/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.json
    refused = client.post("/api/delivery-methods", json={"name": "Drone", "price": 5},
                          headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403


def test_an_admin_token_may_create_delivery_methods(base_env, client):
    result = _run(base_env, "token", "--admin")
    assert result.returncode == 0, result.stderr
    response = client.post("/api/delivery-methods", json={"name": "Drone", "price": 5},
                           headers={"Authorization": f"Bearer {result.stdout.strip()}"})
    assert response.status_code == 201, response.json


def test_token_for_a_bad_or_unknown_customer_fails(base_env, db):
    bad = _run(base_env, "token", "--customer", "not-a-uuid")
    assert bad.returncode != 0 and bad.stdout == ""
    unknown_id = uuid.uuid4()
    unknown = _run(base_env, "token", "--customer", str(unknown_id))
    assert unknown.returncode != 0 and unknown.stdout == ""
    assert str(unknown_id) in unknown.stderr
    neither = _run(base_env, "token")
    assert neither.returncode != 0 and neither.stdout == ""
    assert "Traceback" not in bad.stderr + unknown.stderr + neither.stderr


def test_migrate_is_idempotent_and_says_so(base_env, db):
    result = _run(base_env, "migrate")
    assert result.returncode == 0, result.stderr
    assert "latest migration" in result.stdout
    from alembic.script import ScriptDirectory

    from orders_service.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(base_env["DATABASE_URL"])).get_current_head()
    with db.begin():
        assert db.scalar(text("SELECT version_num FROM alembic_version")) == head


def test_the_walk_through_starts_with_the_storefront(base_env, db, monkeypatch):
    from orders_service.cli import try_it_guide
    from orders_service.config import Settings

    for name, value in base_env.items():
        monkeypatch.setenv(name, value)  # the guide's app reads the environment, as under `make run`
    guide = try_it_guide("http://127.0.0.1:5000", Settings.from_env(base_env))
    first = next(line for line in guide.splitlines() if line.strip())
    assert first.startswith("Storefront: http://127.0.0.1:5000/shop/")
    assert "4242 4242 4242 4242" in guide
