"""Per-request plumbing shared by the blueprints: the database session and the settings."""
from __future__ import annotations

import json

import flask_smorest
from flask import Flask, current_app, g
from sqlalchemy.orm import Session
from webargs.flaskparser import FlaskParser

from orders_service.config import Settings


def settings() -> Settings:
    return current_app.extensions["orders.settings"]


def payment_gateway():
    return current_app.extensions["orders.payments"]


def task_queue():
    return current_app.extensions["orders.queue"]


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


class _Parser(FlaskParser):
    # The contract answers 400 for a body that fails validation; 422 is kept for Idempotency-Key reuse.
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:  # absurdly nested JSON: not a body we read
            return self._handle_invalid_json_error(json.JSONDecodeError("too deeply nested", "", 0), req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the contract's validation status."""

    ARGUMENTS_PARSER = _Parser()


PUBLIC = {"security": []}  # `@blp.doc(**PUBLIC)`: the OpenAPI document shows the route needs no token
