"""Per-request plumbing shared by the blueprints: the database session and the settings."""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from orders_service.config import Settings


def settings() -> Settings:
    return current_app.extensions["orders.settings"]


def payment_gateway():
    return current_app.extensions["orders.payments"]


def db_session() -> Session:
    """The request's session; services open and commit their own transactions on it."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["orders.session_factory"]()
    return g.db_session


def init_request_session(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
