"""Per-request plumbing shared by the blueprints: the runtime's parts, the database session, errors."""
from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import TYPE_CHECKING

import flask_smorest
from apispec import BasePlugin
from flask import Flask, current_app, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import MethodNotAllowed

from orders_service.errors import DomainError, InvalidRequest

if TYPE_CHECKING:  # the composition root is above the routes; they only reach it through the app
    from orders_service.config import Settings
    from orders_service.runtime import Runtime

log = logging.getLogger(__name__)


def runtime() -> Runtime:
    return current_app.extensions["orders.runtime"]


def settings() -> Settings:
    return runtime().settings


def payment_gateway():
    return runtime().gateway


def task_queue():
    return runtime().queue


def db_session() -> Session:
    """The request's session; services open and commit their own transactions on it."""
    if "db_session" not in g:
        g.db_session = runtime().session_factory()
    return g.db_session


def init_request_session(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


# The widest integer the service stores (BIGINT). Longer digit strings are refused before int() sees
# them: past 4,300 digits int() raises ValueError (CPython's guard against quadratic conversion).
_MAX_INT_DIGITS = 19


class IntegerTooLong(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > _MAX_INT_DIGITS:
        raise IntegerTooLong(digits[:20])
    return int(digits)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading integers no wider than the service stores (every request body comes here)."""

    def loads(self, s, **kwargs):
        kwargs.setdefault("parse_int", _bounded_int)
        return super().loads(s, **kwargs)


class _Parser(FlaskParser):
    # The contract answers 400 for a body that fails validation; 422 is kept for Idempotency-Key reuse.
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return missing
        try:
            return current_app.json.loads(req.get_data(cache=True))
        except IntegerTooLong:
            raise InvalidRequest(f"Request body has an integer of more than {_MAX_INT_DIGITS} digits, "
                                 "more than the service stores") from None
        except RecursionError:  # absurdly nested JSON: not a body we read
            return self._handle_invalid_json_error(json.JSONDecodeError("too deeply nested", "", 0), req)
        except UnicodeDecodeError as exc:
            return self._handle_invalid_json_error(exc, req)


def camel_case(name: str) -> str:
    """`place_order_with_payment` → `placeOrderWithPayment`: operation ids and path parameters alike."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


operation_id = camel_case  # what a generated client names the call


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the contract's validation status, and a document generators can use.

    Every operation gets an `operationId` from its view's name (CONTRACT §7), and the errors any
    route of its kind can give: 401 (and 403 for an admin route) behind `authenticated`, 404 for a
    route that names a resource in its path. A route documents its own further errors.
    """

    ARGUMENTS_PARSER = _Parser()

    def arguments(self, schema, *args, **kwargs):
        # webargs builds a schema per request when handed a class (a third of the parsing cost on the
        # order path); one instance per route is safe: loading keeps no state on the schema.
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

    def alt_response(self, status_code, response=None, *, schema=None, **kwargs):
        # An error documented by its description alone still has the contract's body: say so, or a
        # generated client reads nothing from it.
        if response is None and schema is None and int(status_code) >= 400:
            schema = flask_smorest.Api.ERROR_SCHEMA
        return super().alt_response(status_code, response, schema=schema, **kwargs)

    def add_url_rule(self, rule, endpoint=None, view_func=None, provide_automatic_options=None, **options):
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **options)
        # flask-smorest keeps each endpoint's doc in `_docs` until the blueprint is registered; the last
        # endpoint is the one just added (it may have been renamed to be unique).
        endpoint = self._endpoints[-1]
        auth = getattr(view_func, "required_role", None)  # set by auth.tokens.authenticated
        errors = []
        if auth is not None:
            errors += [401, 403] if auth != "any" else [401]
        if "<" in rule:
            errors.append(404)
        for method, doc in self._docs[endpoint].items():
            if method == "parameters":
                continue
            doc.setdefault("manual_doc", {}).setdefault("operationId", operation_id(view_func.__name__))
            responses = doc.setdefault("response", {}).setdefault("responses", {})
            for status in errors:
                if status not in responses and str(status) not in responses:
                    responses[status] = [HTTPStatus(status).name]  # flask-smorest's ErrorSchema response


PUBLIC = {"security": []}  # `@blp.doc(**PUBLIC)`: the OpenAPI document shows the route needs no token


# --- errors: the contract's body `{code, status, message, errors?}` -------------------------------

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


class CamelCasePathParameters(BasePlugin):
    """The document names path parameters as the contract does (`{orderId}`), not as Flask's rules do
    (`{order_id}`): a generated client's arguments then match the contract's names."""

    def path_helper(self, path=None, operations=None, parameters=None, **kwargs):
        for parameter in parameters or ():
            if isinstance(parameter, dict) and parameter.get("in") == "path":
                parameter["name"] = camel_case(parameter["name"])
        return re.sub(r"\{(\w+)\}", lambda m: "{" + camel_case(m.group(1)) + "}", path) if path else None


class Api(flask_smorest.Api):
    """flask-smorest's Api, whose error body is the contract's; this only words it for clients."""

    def handle_http_exception(self, error):
        payload, status, headers = super().handle_http_exception(error)
        data = getattr(error, "data", None) or {}
        if "messages" in data and "schema" in data:  # webargs validation (400: see _Parser)
            errors = payload.get("errors")
            # webargs nests messages by location ({"json": {...}}); the client only needs the fields.
            if isinstance(errors, dict) and len(errors) == 1 and next(iter(errors)) in ("json", "query", "headers"):
                payload["errors"] = next(iter(errors.values()))
            payload["message"] = _validation_message()
        elif "messages" in data:
            payload["message"] = "Request body is not valid JSON"
        payload.setdefault("message", error.description or HTTPStatus(status).phrase)
        if not payload.get("errors"):
            payload.pop("errors", None)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**headers, "Allow": ", ".join(error.valid_methods)}
        return payload, status, headers


# What a client should wait when the database refuses a connection (too many clients, not listening)
# or the pool has none free in time: it is usually a burst, over in a moment.
DATABASE_RETRY_AFTER = 2


def _database_unavailable(exc: Exception) -> bool:
    """A connection the database (or the pool) would not give: not a fault of this request."""
    if isinstance(exc, PoolTimeout):
        return True
    # SQLAlchemy wraps a failed connect with no statement; a connection lost mid-way is "invalidated".
    return isinstance(exc, OperationalError) and (exc.statement is None or exc.connection_invalidated)


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
        if _database_unavailable(exc):
            log.warning("database unavailable: %s", type(exc.__cause__ or exc).__name__)
            response, status = error_response(503, "The service is busy; try again shortly")
            response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
            return response, status
        log.exception("unhandled error")
        return error_response(500, "Internal server error")
