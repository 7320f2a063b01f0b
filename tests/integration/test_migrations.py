"""Alembic migrations: they build the schema on an empty database and match the models exactly."""
import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from orders_service.migrate import upgrade
from orders_service.models import metadata
from tests.support.database import create_database, drop_database


def _differences(url):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_upgrade_on_empty_postgresql_matches_the_models():
    name = f"orders_migrate_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        upgrade(url)
        upgrade(url)  # the release process runs on every deploy: a second run is a no-op
        assert _differences(url) == []
    finally:
        drop_database(name)


def test_upgrade_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade(url)
    assert _differences(url) == []
