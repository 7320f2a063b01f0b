"""Engine, sessions and the declarative base, shared by web and workers."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, MetaData, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

# Named constraints so that Alembic migrations are stable on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# Amounts in the currency's minor units (cents for USD, yen for JPY: `money.py`): 64-bit, so that no
# accepted quantity × price can overflow a column.
Cents = BigInteger


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """A stored time, aware: SQLite hands back naive datetimes that were written as UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}


class UUIDKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


def make_engine(url: str, pool_size: int = 15, pool_timeout: float = 5.0) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    # Threads hold a connection only inside a transaction (never while Stripe answers), so a pool
    # well below the thread count serves them all, each waiting its turn at most `pool_timeout`.
    # `pool_size` is this process's share of max_connections (config.py), so there is no overflow
    # beyond it. A short connect timeout makes an unreachable database a quick 503.
    return create_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout,
                         pool_pre_ping=True, connect_args={"connect_timeout": 3})


def make_session_factory(engine: Engine, lock_timeout_ms: int = 0, statement_timeout_ms: int = 0
                         ) -> sessionmaker[Session]:
    """Sessions on `engine`. With timeouts (PostgreSQL), each transaction waits at most `lock_timeout_ms`
    for a lock and runs each statement at most `statement_timeout_ms` (0: no bound); PostgreSQL then
    cancels the statement (SQLSTATE 55P03 or 57014) and the transaction rolls back.

    The bounds are set at the start of each transaction with `set_config(…, true)` (SET LOCAL): they end
    with it, so a connection a transaction-mode pooler (PgBouncer) hands to another client next carries
    nothing over, and no pooler setting is needed (PgBouncer refuses an `options` startup parameter it
    does not track). One short statement per transaction.
    """
    # expire_on_commit=False: services return loaded objects that routes serialise after commit.
    factory = sessionmaker(engine, expire_on_commit=False)
    if engine.dialect.name == "postgresql" and (lock_timeout_ms or statement_timeout_ms):
        bounds = text("SELECT set_config('lock_timeout', :lock, true), "
                      "set_config('statement_timeout', :statement, true)").bindparams(
            lock=f"{lock_timeout_ms}ms", statement=f"{statement_timeout_ms}ms")

        @event.listens_for(factory, "after_begin")
        def _bound_waits(_session, _transaction, connection):
            connection.execute(bounds)

    return factory


def insert_ignoring_conflicts(session: Session, model, values: dict) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was inserted.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction, so exactly
    one caller wins and the others see its committed row.
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    key = model.__table__.primary_key.columns.values()[0]
    statement = insert(model).values(**values).on_conflict_do_nothing().returning(key)
    return session.execute(statement).first() is not None
