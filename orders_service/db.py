"""Engine, sessions and the declarative base, shared by web and workers."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, MetaData, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
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


# TCP bounds of a database connection, on both ends (values in seconds, tcp_user_timeout in ms): an idle
# connection is probed after 5 s, every 2 s, and given up after 3 unanswered probes; data sent and not
# acknowledged for 10 s gives the connection up too. This side (libpq) thus notices a database or a pooler
# that vanished within about 11 s instead of the kernel's ~2 h, and PostgreSQL (the `options` below) notices
# a client host that vanished (network lost, powered off) as soon, ending its session, its transaction and
# its locks. A client that is frozen but whose host still answers (a stopped process) is ended by the idle
# transaction bound instead. Fixed values: nothing legitimate stays silent on a connection for seconds
# without TCP acknowledging it.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
              "tcp_user_timeout": 10_000}
SERVER_KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3,
                     "tcp_user_timeout": 10_000}
POOLER_PGBOUNCER = "pgbouncer"


def make_engine(url: str, pool_size: int = 15, pool_timeout: float = 5.0, pooler: str = "none",
                idle_transaction_timeout_ms: int = 0) -> Engine:
    """An engine on `url`: PostgreSQL itself (`pooler="none"`) or PgBouncer in transaction mode (`"pgbouncer"`).

    Through PgBouncer, consecutive transactions of one connection run on whichever server connection is free,
    so nothing may live on a server connection between transactions: psycopg prepares no statement (it
    would after five runs of one, and the next transaction's server connection does not know `_pg3_0`), and
    no startup `options` are sent (PgBouncer refuses them): the idle transaction bound is then set in each
    transaction (`make_session_factory`), and PgBouncer's own settings (deploy/pgbouncer.ini) keep watch over
    the clients' sockets.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    # A short connect timeout makes an unreachable database a quick 503.
    connect_args: dict = {"connect_timeout": 3, **KEEPALIVES}
    if pooler == POOLER_PGBOUNCER:
        connect_args["prepare_threshold"] = None
    else:
        server = dict(SERVER_KEEPALIVES)
        if idle_transaction_timeout_ms:
            server["idle_in_transaction_session_timeout"] = idle_transaction_timeout_ms
        # Added to any `options` DATABASE_URL carries (connect_args would replace them).
        given = make_url(url).query.get("options")
        connect_args["options"] = " ".join([*([given] if isinstance(given, str) else given or ()),
                                            *(f"-c {name}={value}" for name, value in server.items())])
    # Threads hold a connection only inside a transaction (never while Stripe answers), so a pool
    # well below the thread count serves them all, each waiting its turn at most `pool_timeout`.
    # `pool_size` is this process's share of max_connections (config.py), so there is no overflow
    # beyond it. pool_pre_ping is one `SELECT 1` at checkout, a transaction of its own: pooler-safe.
    return create_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout,
                         pool_pre_ping=True, connect_args=connect_args)


def make_session_factory(engine: Engine, lock_timeout_ms: int = 0, statement_timeout_ms: int = 0,
                         idle_transaction_timeout_ms: int = 0) -> sessionmaker[Session]:
    """Sessions on `engine`. With timeouts (PostgreSQL), each transaction waits at most `lock_timeout_ms`
    for a lock, runs each statement at most `statement_timeout_ms` and stays idle between two statements
    at most `idle_transaction_timeout_ms` (0: no bound); PostgreSQL then cancels the statement (SQLSTATE
    55P03 or 57014) and the transaction rolls back, or ends an idle transaction's session.

    The bounds are set at the start of each transaction with `set_config(…, true)` (SET LOCAL): they end
    with it, so a connection a transaction-mode pooler (PgBouncer) hands to another client next carries
    nothing over, and no pooler setting is needed (PgBouncer refuses an `options` startup parameter it
    does not track). One short statement per transaction.
    """
    # expire_on_commit=False: services return loaded objects that routes serialise after commit.
    factory = sessionmaker(engine, expire_on_commit=False)
    bounds = {}
    if lock_timeout_ms or statement_timeout_ms:  # both, so that a 0 means "no bound" whatever the server's default
        bounds.update(lock_timeout=f"{lock_timeout_ms}ms", statement_timeout=f"{statement_timeout_ms}ms")
    if idle_transaction_timeout_ms:
        bounds["idle_in_transaction_session_timeout"] = f"{idle_transaction_timeout_ms}ms"
    if engine.dialect.name == "postgresql" and bounds:
        statement = text("SELECT " + ", ".join(f"set_config('{name}', :{name}, true)" for name in bounds)
                         ).bindparams(**bounds)

        @event.listens_for(factory, "after_begin")
        def _bound_waits(_session, _transaction, connection):
            connection.execute(statement)

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
