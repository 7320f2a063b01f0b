"""Routes that exist only while the Stripe emulator stands in for Stripe (`STRIPE_EMULATOR`): the card flow of
`emulator/checkout.py`.

With Stripe's own API they are not registered (404): the storefront then pays with Stripe.js alone.
"""
from uuid import UUID

from marshmallow import Schema, fields, validate

from orders_service.api.blueprint import Blueprint
from orders_service.api.context import db_session, payment_gateway
from orders_service.api.security import authenticated, current_actor
from orders_service.emulator import checkout as emulated_checkout

blp = Blueprint("emulator", __name__, url_prefix="/api/emulator",
                description="The Stripe emulator's card flow (development and tests only)")


class SetupIntentSchema(Schema):
    clientSecret = fields.String(required=True)


class SavedCardSchema(Schema):
    paymentMethodId = fields.String(required=True, validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$"))


class CardPaymentSchema(Schema):
    orderId = fields.UUID(required=True, attribute="order_id")
    status = fields.String(required=True, metadata={"description": "the PaymentIntent's status"})
    clientSecret = fields.String(allow_none=True, attribute="client_secret")
    error = fields.String(allow_none=True, metadata={"description": "why the card was declined"})


@blp.route("/setup-intents", methods=["POST"])
@authenticated()
@blp.response(201, SetupIntentSchema)
def create_setup_intent():
    return {"clientSecret": emulated_checkout.start_card_setup(payment_gateway())}


@blp.route("/orders/<uuid:order_id>/pay", methods=["POST"])
@authenticated()
@blp.arguments(SavedCardSchema)
@blp.response(200, CardPaymentSchema)
@blp.alt_response(400, description="Paid already, closed, or a cash-on-delivery order")
def pay_with_saved_card(body, order_id: UUID):
    return emulated_checkout.pay_with_saved_card(db_session(), payment_gateway(), current_actor(), order_id,
                                                 body["paymentMethodId"])
