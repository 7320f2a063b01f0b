"""Alembic environment: the URL comes from the service's settings (DATABASE_URL), never from alembic.ini."""
from alembic import context
from sqlalchemy import text

from orders_service.config import Settings
from orders_service.db import make_engine
from orders_service.models import metadata

config = context.config


def run_migrations() -> None:
    url = config.attributes.get("database_url") or Settings.from_env().database_url
    engine = make_engine(url, pool_size=1)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Fail fast rather than queue behind live traffic while holding DDL locks.
            connection.execute(text("SET lock_timeout = '10s'"))
            connection.commit()  # SQLAlchemy began a transaction for the SET; Alembic must own its own
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations()
