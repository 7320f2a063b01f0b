"""Every error answer has the body of docs/api.md, "Errors": `{code, status, message, errors?}`, for domain
errors, HTTP errors, validation failures, a database that refuses, and whatever else went wrong."""
from __future__ import annotations

import logging
from http import HTTPStatus

import flask_smorest
from flask import Flask, jsonify, request
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import MethodNotAllowed, RequestEntityTooLarge

from orders_service.config import MAX_BODY_BYTES
from orders_service.errors import DomainError

log = logging.getLogger(__name__)

# What a client should wait when the database refuses a connection (too many clients, not listening)
# or the pool has none free in time: it is usually a burst, over in a moment.
DATABASE_RETRY_AFTER = 2


def error_response(status: int, message: str, errors=None):
    body = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), status


def _validation_message() -> str:
    """Validation failures say which resource was being written; the order routes keep the seed's wording."""
    if request.method == "POST" and request.path.startswith("/api/orders"):
        return "Invalid order data"
    return "Invalid request data"


class Api(flask_smorest.Api):
    """flask-smorest's Api, whose error body is already the API's; this only words it for clients."""

    def handle_http_exception(self, error):
        payload, status, headers = super().handle_http_exception(error)
        data = getattr(error, "data", None) or {}
        if "messages" in data and "schema" in data:  # webargs validation (400: see parsing.Parser)
            errors = payload.get("errors")
            # webargs nests messages by location ({"json": {...}}); the client only needs the fields.
            if isinstance(errors, dict) and len(errors) == 1 and next(iter(errors)) in ("json", "query", "headers"):
                payload["errors"] = next(iter(errors.values()))
            payload["message"] = _validation_message()
        elif "messages" in data:
            payload["message"] = "Request body is not valid JSON"
        elif isinstance(error, RequestEntityTooLarge):
            payload["message"] = (f"The request body is larger than {MAX_BODY_BYTES // 2**20} MiB, "
                                  "the most the service reads")
        payload.setdefault("message", error.description or HTTPStatus(status).phrase)
        if not payload.get("errors"):
            payload.pop("errors", None)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**headers, "Allow": ", ".join(error.valid_methods)}
        return payload, status, headers


def _database_unavailable(exc: Exception) -> bool:
    """A connection the database (or the pool) would not give: not a fault of this request."""
    if isinstance(exc, PoolTimeout):
        return True
    # SQLAlchemy wraps a failed connect with no statement; a connection lost mid-way is "invalidated".
    return isinstance(exc, OperationalError) and (exc.statement is None or exc.connection_invalidated)


# PostgreSQL canceled the statement: a lock waited for longer than lock_timeout (55P03), or a statement ran
# past statement_timeout (57014). Another transaction held on too long: the request may simply try again.
WAITED_TOO_LONG = {"55P03", "57014"}


def _waited_too_long(exc: Exception) -> bool:
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) in WAITED_TOO_LONG


def register_error_handlers(app: Flask) -> None:
    """Domain errors and unexpected ones; HTTP errors are the Api's (above)."""

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        response, status = error_response(exc.status, exc.message, exc.errors)
        if getattr(exc, "retry_after", None) is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if _database_unavailable(exc) or _waited_too_long(exc):
            log.warning("database unavailable or too slow: %s", type(exc.__cause__ or exc).__name__)
            response, status = error_response(503, "The service is busy; try again shortly")
            response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
            return response, status
        log.exception("unhandled error")
        return error_response(500, "Internal server error")


def error_example(status: int, message: str) -> dict:
    """An error body as the OpenAPI document shows it in an example."""
    return {"code": status, "status": HTTPStatus(status).phrase, "message": message}
