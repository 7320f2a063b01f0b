"""The payment gateway on the official Stripe SDK. The only module that imports `stripe`."""
from __future__ import annotations

import stripe

from orders_service.config import Settings
from orders_service.payments.gateway import InvalidWebhook, PaymentGatewayError, PaymentIntent, WebhookEvent

# Stripe's own default: a signature older than this is a replay.
WEBHOOK_TOLERANCE_SECONDS = 300


def _latest_charge_refunded(pi) -> int:
    # localstripe always expands latest_charge; real Stripe sends an id unless asked to expand.
    charge = getattr(pi, "latest_charge", None)
    if charge is None or isinstance(charge, str):
        return 0
    return int(getattr(charge, "amount_refunded", 0) or 0)


def to_payment_intent(pi) -> PaymentIntent:
    metadata = pi.metadata.to_dict() if getattr(pi, "metadata", None) else {}
    error = getattr(pi, "last_payment_error", None)
    failure = None
    if error:
        failure = getattr(error, "message", None) or getattr(error, "code", None) or "payment failed"
    return PaymentIntent(
        id=pi.id,
        status=pi.status,
        amount=int(pi.amount),
        currency=str(pi.currency).upper(),
        order_id=metadata.get("order_id"),
        client_secret=getattr(pi, "client_secret", None),
        failure=failure,
        amount_refunded=_latest_charge_refunded(pi),
    )


def _describe(exc: stripe.StripeError) -> str:
    """Stripe's own message, or what went wrong on the wire; never the request or our key."""
    if isinstance(exc, stripe.APIConnectionError):
        if "timed out" in str(exc).lower():
            return "the payment provider did not answer in time"
        return "could not reach the payment provider"
    message = getattr(exc, "user_message", None) or (exc.error.message if getattr(exc, "error", None) else None)
    if not message:
        status = getattr(exc, "http_status", None)
        message = f"payment provider answered {status}" if status else "payment provider error"
    return message


class StripeGateway:
    def __init__(self, settings: Settings):
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        timeout = settings.stripe_timeout_seconds
        self._emulated = settings.uses_stripe_emulator
        self._webhook_secret = settings.stripe_webhook_secret
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=base,
            # The emulator answers bare 500s that a retry cannot fix; real Stripe gets the SDK's retries.
            max_network_retries=0 if self._emulated else 2,
            http_client=stripe.RequestsClient(timeout=(min(timeout, 5.0), timeout)),
        )

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise PaymentGatewayError(_describe(exc)) from exc

    def create_payment_intent(self, order_id: str, amount: int, currency: str) -> PaymentIntent:
        params = {"amount": amount, "currency": currency.lower(), "metadata": {"order_id": order_id},
                  "payment_method_types": ["card"]}
        if not self._emulated:
            params["description"] = f"Order {order_id}"  # localstripe rejects `description`
        pi = self._call(self._client.v1.payment_intents.create, params=params,
                        options={"idempotency_key": f"order-{order_id}-payment-intent"})
        return to_payment_intent(pi)

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        return to_payment_intent(self._call(self._client.v1.payment_intents.retrieve, payment_intent_id))

    def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        return to_payment_intent(self._call(self._client.v1.payment_intents.cancel, payment_intent_id))

    def refund_payment_intent(self, payment_intent_id: str, order_id: str) -> None:
        self._call(self._client.v1.refunds.create, params={"payment_intent": payment_intent_id},
                   options={"idempotency_key": f"order-{order_id}-refund"})

    def verify_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        if not signature:
            raise InvalidWebhook("missing Stripe-Signature header")
        try:
            event = self._client.construct_event(payload, signature, self._webhook_secret, WEBHOOK_TOLERANCE_SECONDS)
            body = event.to_dict()
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(f"invalid webhook: {exc}") from None
        except (ValueError, TypeError, AttributeError):  # signed, but not JSON (or not a JSON object)
            raise InvalidWebhook("the body is not a Stripe event") from None
        data = body.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not (isinstance(obj, dict) and body.get("object") == "event" and isinstance(body.get("id"), str)
                and isinstance(body.get("type"), str) and 0 < len(body["id"]) <= 255):
            raise InvalidWebhook("the body is not a Stripe event")
        if obj.get("object") == "payment_intent":
            pi_id = obj.get("id")
        else:  # charges, refunds and disputes name their PaymentIntent
            pi_id = obj.get("payment_intent")
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        return WebhookEvent(id=body["id"], type=body["type"][:100],
                            payment_intent_id=pi_id if isinstance(pi_id, str) else None,
                            order_id=metadata.get("order_id"), payload=body)
