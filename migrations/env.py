"""Alembic environment: the URL comes from the service's settings (DATABASE_URL), never from alembic.ini."""
from alembic import context
from sqlalchemy import text

from orders_service.config import Settings
from orders_service.db import make_engine
from orders_service.models import metadata

config = context.config

# pg_advisory_xact_lock's key for migrations: two `release` runs at once (two hosts deploying) take turns, and
# the second finds the schema already at head.
MIGRATION_LOCK = 0x6F72646572730001


def run_migrations() -> None:
    url = config.attributes.get("database_url")
    pooler = config.attributes.get("db_pooler")
    if not url or not pooler:
        settings = Settings.from_env()
        url, pooler = url or settings.database_url, pooler or settings.db_pooler
    engine = make_engine(url, pool_size=1, pooler=pooler)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        # On PostgreSQL Alembic runs every migration in this one transaction; its lock and its setting are the
        # transaction's own (nothing stays on the connection), so PgBouncer in transaction mode may run it
        # on any server connection.
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                # Fail fast rather than queue behind live traffic while holding DDL locks.
                connection.execute(text("SELECT set_config('lock_timeout', '10s', true)"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations()
