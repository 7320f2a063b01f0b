"""The Flask application factory: extensions, routes, error handlers — nothing else.

How the web process runs it (gunicorn, the worker class, the run gate) is `server/`'s.
"""
from __future__ import annotations

from flask import Flask, request

from orders_service.api import init_api
from orders_service.api.context import init_request_session
from orders_service.api.cors import init_cors
from orders_service.api.errors import error_response, register_error_handlers
from orders_service.api.fields import STORE_CURRENCY
from orders_service.api.headers import init_security_headers
from orders_service.api.parsing import JSONProvider
from orders_service.api.rate_limits import init_rate_limits
from orders_service.api.request_log import init_request_logging
from orders_service.api.security import init_jwt
from orders_service.config import MAX_BODY_BYTES, Settings
from orders_service.runtime import Runtime

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """The web app on `runtime` (built from `settings`, or the environment, when not given)."""
    runtime = runtime or Runtime(settings or Settings.from_env())
    settings = runtime.settings
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.json = JSONProvider(app)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.extensions["orders.runtime"] = runtime
    if settings.proxy_hops:  # the client address (rate limits, logs) is the one the load balancer saw
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)
    init_request_session(app)
    init_jwt(app, settings.jwt_secret_key, settings.access_token_minutes)
    init_api(app, settings)
    if settings.cors_origins:
        init_cors(app, settings.cors_origins)
    init_rate_limits(app, settings)
    register_error_handlers(app)
    init_request_logging(app)
    init_security_headers(app, settings)

    @app.before_request
    def _store_currency():
        STORE_CURRENCY.set(settings.store_currency)  # what request amounts and catalog prices are in

    @app.before_request
    def _require_json_body():
        # A body that is not JSON is refused up front; webargs would otherwise read it as "no body".
        if request.method in _BODY_METHODS and (request.content_length or request.headers.get("Transfer-Encoding")):
            if not request.is_json:
                return error_response(415, "Content-Type must be application/json")
        return None

    return app
