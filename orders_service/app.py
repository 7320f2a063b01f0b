"""The Flask application factory: extensions, blueprints, error handlers — nothing else."""
from __future__ import annotations

from flask import Flask, request, send_from_directory
from flask_cors import CORS
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

from orders_service.auth.passwords import configure_hashing
from orders_service.config import Settings
from orders_service.fields import STORE_CURRENCY, Email
from orders_service.gate import RunGate
from orders_service.headers import init_security_headers
from orders_service.ops import metrics
from orders_service.ops.requests import init_request_logging
from orders_service.runtime import Runtime
from orders_service.web import (
    Api,
    CamelCasePathParameters,
    JSONProvider,
    error_response,
    init_request_session,
    register_error_handlers,
)

_BODY_METHODS = {"POST", "PUT", "PATCH"}
# CONTRACT §7: what a page on a listed origin may send and read.
CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
CORS_EXPOSED_HEADERS = ["Location", "X-Request-ID"]


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """The web app on `runtime` (built from `settings`, or the environment, when not given)."""
    runtime = runtime or Runtime(settings or Settings.from_env())
    settings = runtime.settings
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.json = JSONProvider(app)
    app.config.update(
        API_TITLE="orders-service",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served from the installed swagger-ui-bundle package: the docs work with no internet.
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearerAuth": []}],
        },
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions["orders.runtime"] = runtime
    if settings.proxy_hops:  # the client address (rate limits, logs) is the one the load balancer saw
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)
    init_request_session(app)
    configure_hashing(settings.password_hash_concurrency, wait_seconds=10)

    from orders_service.auth.tokens import init_jwt
    init_jwt(app, settings.jwt_secret_key, settings.access_token_minutes)

    api = Api(app, spec_kwargs={"extra_plugins": [CamelCasePathParameters()]})
    api.register_field(Email, "string", "email")  # Text underneath; the document still says it is an email
    from orders_service.api.client_config import blp as config_blp
    from orders_service.api.orders import admin_blp as admin_orders_blp
    from orders_service.api.orders import blp as orders_blp
    from orders_service.auth.routes import blp as auth_blp
    from orders_service.catalog.routes import blp as catalog_blp
    from orders_service.ops.health import blp as ops_blp
    from orders_service.payments.webhooks import blp as webhooks_blp
    from orders_service.storefront import blp as storefront_blp
    for blp in (auth_blp, catalog_blp, orders_blp, admin_orders_blp, webhooks_blp, config_blp):
        api.register_blueprint(blp)
    if settings.uses_stripe_emulator:  # the emulator's browser flow; with Stripe's own API these are 404
        from orders_service.api.emulator import blp as emulator_blp
        api.register_blueprint(emulator_blp)
    app.register_blueprint(ops_blp)
    app.register_blueprint(storefront_blp)
    if settings.cors_origins:
        init_cors(app, settings.cors_origins)
    from orders_service.rate_limits import init_rate_limits
    init_rate_limits(app, settings)
    register_error_handlers(app)
    init_request_logging(app)
    init_security_headers(app, settings)

    @app.get("/api/docs/assets/<path:filename>")
    def swagger_assets(filename):
        return send_from_directory(swagger_ui_path, filename)

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

    if settings.web_active_requests:
        app.wsgi_app = RunGate(app.wsgi_app, settings.web_active_requests, settings.web_gate_stall_ms / 1000,
                               on_wait=metrics.observe_gate_wait)
    return app


def init_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Pages on `origins` may call /api from a browser; any other origin gets no CORS headers at all."""

    @app.after_request
    def _route_methods_only(response):
        # flask-cors offers every method in a preflight; the contract offers the route's own (Flask's
        # automatic OPTIONS answer lists them in Allow). Registered first, so it runs after flask-cors.
        if request.method == "OPTIONS" and "Access-Control-Allow-Methods" in response.headers \
                and response.headers.get("Allow"):
            response.headers["Access-Control-Allow-Methods"] = response.headers["Allow"]
        return response

    CORS(app, resources={r"/api/*": {"origins": list(origins)}}, allow_headers=CORS_ALLOWED_HEADERS,
         expose_headers=CORS_EXPOSED_HEADERS, supports_credentials=False, max_age=600)
