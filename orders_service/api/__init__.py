"""Every HTTP route of the service, and the web plumbing around them.

One module (or package) per resource, each a flask-smorest Blueprint of thin routes: parse with a
schema, call one service function, serialise the result. A new route goes beside its resource's
(`orders/`, `catalog/`, `auth/`, `admin/`, …), or in a new module listed in `BLUEPRINTS` below.
The plumbing: `blueprint.py` (the Blueprint and what it writes into the OpenAPI document), `parsing.py`
(JSON bodies), `errors.py` (the error body), `context.py` (what a route reaches), `security.py`
(tokens), `rate_limits.py`, `cors.py`, `headers.py`, `request_log.py`, `fields.py` and `pages.py`
(shared schema parts).
"""
from __future__ import annotations

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from orders_service.api.blueprint import CamelCasePathParameters
from orders_service.api.errors import Api
from orders_service.api.fields import Email
from orders_service.config import Settings

OPENAPI_CONFIG = dict(
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
        # Every operation needs a token unless it says otherwise (blueprint.py marks the public ones).
        "security": [{"bearerAuth": []}],
    },
)


def _blueprints(settings: Settings) -> list:
    """The API's blueprints, in the order the document lists them."""
    from orders_service.api import client_config, stripe_webhooks
    from orders_service.api.admin import orders as admin_orders
    from orders_service.api.admin import webhooks as admin_webhooks
    from orders_service.api.auth import routes as auth
    from orders_service.api.catalog import routes as catalog
    from orders_service.api.orders import routes as orders

    blueprints = [auth.blp, catalog.blp, orders.blp, admin_orders.blp, admin_webhooks.blp, stripe_webhooks.blp,
                  client_config.blp]
    if settings.stripe_emulator:  # the emulator's browser flow; with Stripe's own API these are 404
        from orders_service.api import emulator

        blueprints.append(emulator.blp)
    return blueprints


def init_api(app: Flask, settings: Settings) -> Api:
    """Register every route on `app`: the documented API, the operations routes and the storefront."""
    from orders_service.api import ops, storefront

    app.config.update(OPENAPI_CONFIG)
    api = Api(app, spec_kwargs={"extra_plugins": [CamelCasePathParameters()]})
    api.register_field(Email, "string", "email")  # Text underneath; the document still says it is an email
    for blp in _blueprints(settings):
        api.register_blueprint(blp)
    app.register_blueprint(ops.blp)
    app.register_blueprint(storefront.blp)

    @app.get("/api/docs/assets/<path:filename>")
    def swagger_assets(filename):
        return send_from_directory(swagger_ui_path, filename)

    return api
