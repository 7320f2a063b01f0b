"""The composition root: what the web and the workers are made of, built from one `Settings`.

`create_app` and the Celery worker both hold a `Runtime`; each part is built on first use, so a
prefork worker builds its engine and clients after the fork, never before.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from orders_service.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def prepare_process(settings: Settings) -> None:
    """What a process must do before importing the rest of the service (entry points call it first).

    prometheus-client chooses its multiprocess mode when it is first imported, from an environment
    variable, so the folder is named here; the embedded file broker needs its folders to exist.
    """
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.metrics_dir)
    if settings.broker_url.startswith("filesystem://"):
        for folder in settings.broker_folders.values():
            folder.mkdir(parents=True, exist_ok=True)


class Runtime:
    """Engine, sessions, payment gateway, password hasher, task queue and mailer for one process.

    `waiting` is what the parts that wait on something other than Python (the payment gateway's calls,
    password hashing) enter meanwhile: the web's run gate hands its `outside_gate` (server/wsgi.py), so
    that another request runs; elsewhere it does nothing.
    """

    def __init__(self, settings: Settings, db_pool_size: int | None = None,
                 waiting: Callable[[], AbstractContextManager] = nullcontext):
        self.settings = settings
        self._db_pool_size = db_pool_size or settings.db_pool_size
        self.waiting = waiting

    @cached_property
    def engine(self):
        from orders_service.db import make_engine

        return make_engine(self.settings.database_url, self._db_pool_size, self.settings.db_pool_timeout_seconds,
                           self.settings.db_pooler, self.settings.db_idle_transaction_timeout_ms)

    @property
    def _idle_transaction_bound_ms(self) -> int:
        """Set per transaction only through a pooler: on a direct connection the session carries it."""
        return self.settings.db_idle_transaction_timeout_ms if self.settings.db_pooler != "none" else 0

    @cached_property
    def session_factory(self):
        from orders_service.db import make_session_factory

        return make_session_factory(self.engine, idle_transaction_timeout_ms=self._idle_transaction_bound_ms)

    @cached_property
    def request_session_factory(self):
        """Sessions for web requests: their transactions wait a bounded time for locks and statements
        (DB_LOCK_TIMEOUT_MS, DB_STATEMENT_TIMEOUT_MS); a request past a bound answers 503."""
        from orders_service.db import make_session_factory

        return make_session_factory(self.engine, self.settings.db_lock_timeout_ms,
                                    self.settings.db_statement_timeout_ms, self._idle_transaction_bound_ms)

    @contextmanager
    def task_session(self) -> Iterator[Session]:
        """A session on one connection for the few short transactions of one task: one pool checkout
        (and pre-ping) per task instead of one per transaction. No transaction spans the task."""
        with self.engine.connect() as connection, self.session_factory(bind=connection) as session:
            yield session

    @cached_property
    def gateway(self):
        """Stripe, or the Stripe emulator's gateway when the emulator stands in (STRIPE_EMULATOR)."""
        if self.settings.stripe_emulator:
            from orders_service.emulator.gateway import LocalStripeGateway as Gateway
        else:
            from orders_service.payments.stripe_gateway import StripeGateway as Gateway
        return Gateway(self.settings, waiting=self.waiting)

    @cached_property
    def passwords(self):
        from orders_service.auth.passwords import Passwords

        # A sign-in waits at most 10 s for its turn to hash, then gets a 503.
        return Passwords(self.settings.password_hash_concurrency, wait_seconds=10, waiting=self.waiting)

    @cached_property
    def queue(self):
        from orders_service.queue import TaskQueue

        return TaskQueue(self.settings)

    @cached_property
    def mailer(self):
        from orders_service.notifications.mailer import make_mailer

        return make_mailer(self.settings.smtp_url, self.settings.mail_folder)

    def dispose(self) -> None:
        """Close the database connections this process holds (tests, CLI commands)."""
        if "engine" in self.__dict__:
            self.engine.dispose()
