"""What a route reaches through the app: the process's runtime parts, and the request's database session."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

if TYPE_CHECKING:  # the composition root is above the routes; they only reach it through the app
    from orders_service.auth.passwords import Passwords
    from orders_service.config import Settings
    from orders_service.payments.gateway import PaymentGateway
    from orders_service.queue import TaskQueue
    from orders_service.runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["orders.runtime"]


def settings() -> Settings:
    return runtime().settings


def payment_gateway() -> PaymentGateway:
    return runtime().gateway


def pause(seconds: float) -> None:
    """Wait without holding the web process's run gate: other requests run meanwhile."""
    with runtime().waiting():
        time.sleep(seconds)


def task_queue() -> TaskQueue:
    return runtime().queue


def passwords() -> Passwords:
    return runtime().passwords


def db_session() -> Session:
    """The request's session; services open and commit their own transactions on it (each one's lock
    waits and statements bounded: `Runtime.request_session_factory`)."""
    if "db_session" not in g:
        g.db_session = runtime().request_session_factory()
    return g.db_session


def init_request_session(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
