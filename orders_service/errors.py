"""Domain errors, and their mapping to the contract's JSON error body `{code, status, message, errors?}`."""
from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger(__name__)


class DomainError(Exception):
    status = 400

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors


class InvalidRequest(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class IdempotencyKeyReused(DomainError):
    status = 422


class InsufficientStock(DomainError):
    def __init__(self, name: str, available: int, requested: int):
        super().__init__(
            f"Product '{name}' has insufficient stock. Available: {available}, Requested: {requested}"
        )


class PaymentProviderError(DomainError):
    """The payment provider failed; the message carries its reason (never our internals or keys)."""

    status = 500


def error_body(status: int, message: str, errors=None):
    body = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), status


# Validation failures say which resource was being written; the order routes keep the seed's wording.
def _validation_message() -> str:
    if request.method == "POST" and request.path.startswith("/api/orders"):
        return "Invalid order data"
    return "Invalid request data"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        return error_body(exc.status, exc.message, exc.errors)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        data = getattr(exc, "data", None) or {}
        status = exc.code or 500
        errors = data.get("errors") or data.get("messages")
        if "messages" in data and "schema" in data:  # webargs validation (400: see web._Parser)
            # webargs nests messages by location ({"json": {...}}); the client only needs the fields.
            if isinstance(errors, dict) and len(errors) == 1 and next(iter(errors)) in ("json", "query", "headers"):
                errors = next(iter(errors.values()))
            message = _validation_message()
        elif "messages" in data:
            message = "Request body is not valid JSON"
        else:
            message = data.get("message") or exc.description or HTTPStatus(status).phrase
        response, status = error_body(status, message, errors)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_body(500, "Internal server error")
