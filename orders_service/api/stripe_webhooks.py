"""Stripe's webhooks in: `POST /api/webhooks/stripe` verifies the signature on the raw body, stores the
event in the inbox and enqueues it for the workers."""
from flask import request

from orders_service.api.blueprint import Blueprint
from orders_service.api.context import db_session, payment_gateway, task_queue
from orders_service.errors import InvalidRequest
from orders_service.payments import inbox
from orders_service.payments.gateway import InvalidWebhook

blp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks", description="Provider webhooks")


@blp.route("/stripe", methods=["POST"])
@blp.doc(description="Authenticated by the Stripe-Signature header, not a token.")
@blp.response(200)
@blp.alt_response(400, description="Missing or bad signature, a timestamp over 300 s old or ahead, or not an event")
def receive_stripe_webhook():
    try:
        event = payment_gateway().verify_webhook(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except InvalidWebhook as exc:
        raise InvalidRequest(str(exc)) from None
    new = inbox.receive_event(db_session(), task_queue(), event)
    return {"received": True, "duplicate": not new}
