"""`GET /api/config`: what a browser needs to load Stripe.js and pay, and nothing secret."""
from marshmallow import Schema, fields

from orders_service.api.blueprint import Blueprint
from orders_service.api.context import settings

blp = Blueprint("config", __name__, url_prefix="/api/config", description="What a storefront needs to pay")


class ClientConfigSchema(Schema):
    publishableKey = fields.String(required=True, metadata={"example": "pk_test_…"})
    currency = fields.String(required=True, metadata={"description": "ISO 4217, as STORE_CURRENCY",
                                                      "example": "USD"})
    stripeJsUrl = fields.String(required=True, metadata={"example": "https://js.stripe.com/v3/"})


@blp.route("", methods=["GET"])
@blp.response(200, ClientConfigSchema)
def get_client_config():
    config = settings()
    return {"publishableKey": config.stripe_publishable_key, "currency": config.store_currency,
            "stripeJsUrl": config.stripe_js_url}
