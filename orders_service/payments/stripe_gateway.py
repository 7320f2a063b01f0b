"""The payment gateway on the official Stripe SDK. The only module that imports `stripe`.

Written against Stripe's real object shapes (API 2022-11-15 and later): `latest_charge` is an id unless
expanded, there is no `charges` list, a charge's refunds are its `amount_refunded` running total, and a
webhook's `data.object` is never expanded. localstripe (an older API) sends expanded objects; both read
the same here.
"""
from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta, timezone
from typing import Callable

import stripe

from orders_service.config import Settings
from orders_service.payments.gateway import (
    InvalidWebhook,
    NextAction,
    PaymentGatewayError,
    PaymentIntent,
    PaymentIntentStatus,
    PaymentProviderBusy,
    PaymentRefused,
    Refund,
    WebhookEvent,
)
from orders_service.payments.provider_events import StripeEvents

# Stripe's own default: a signature older than this is a replay.
WEBHOOK_TOLERANCE_SECONDS = 300
# Where, around the time its order was placed, a PaymentIntent the service opened was created at Stripe: the
# create runs right after the order commits and with the SDK's retries is over within a minute; the rest
# is room for the two clocks to differ. Listed in pages of 100, at most LIST_PAGES of them.
CREATED_AROUND_ORDER = (timedelta(minutes=5), timedelta(minutes=15))
LIST_PAGES = 20
# A PaymentIntent holding (or about to hold) the customer's money is the one an order must not lose.
HOLDING_MONEY = ("succeeded", "processing", "requires_capture")
# Stripe sends no Retry-After with a 429; a second is what its rate-limit guide suggests to start with.
DEFAULT_RETRY_AFTER_SECONDS = 1.0


def _as_dict(obj) -> dict | None:
    if obj is None or isinstance(obj, str):
        return None
    return obj if isinstance(obj, dict) else obj.to_dict()


def _captured(charge: dict) -> int:
    """What of a charge was captured: an authorization (`captured: false`) none of it; a charge of an API version
    (or an emulator) without `amount_captured` all of it once captured."""
    if charge.get("captured") is False:
        return 0
    return int(charge["amount_captured"] if charge.get("amount_captured") is not None else charge.get("amount") or 0)


def _refunded_total(charge) -> int:
    """A charge's running total of refunds of money taken; a charge given only by its id says nothing (0).

    Stripe counts a released hold as refunded: the uncaptured part of a charge (all of an authorization that was
    canceled or lapsed, the rest of one captured in part) is in its `amount_refunded`, though it was never taken.
    """
    charge = _as_dict(charge)
    if not charge:
        return 0
    released = int(charge.get("amount") or 0) - _captured(charge)
    return max(0, int(charge.get("amount_refunded") or 0) - released)


def naming(intents, order_id: str) -> list[dict]:
    """The PaymentIntents (SDK objects) whose metadata names the order, as dicts."""
    return [pi for pi in map(_as_dict, intents) if (pi.get("metadata") or {}).get("order_id") == order_id]


def pick_payment_intent(intents: list[dict]) -> PaymentIntent | None:
    """Of the PaymentIntents naming one order, the one holding its money, else the newest."""
    if not intents:
        return None
    return to_payment_intent(max(intents, key=lambda pi: (pi["status"] in HOLDING_MONEY, pi["created"])), live=True)




def _type_of(obj) -> str | None:
    obj = _as_dict(obj)
    kind = obj.get("type") if obj else None
    return kind[:64] if isinstance(kind, str) and kind else None


# Statuses a PaymentIntent reaches only once the customer has tried a payment method.
_ATTEMPTED = ("processing", "succeeded", "requires_action", "requires_capture")


def _method_type(pi: dict) -> str | None:
    """The type of the payment method used, from what the object carries. Its `payment_method_types` is what
    it offered (with automatic payment methods, every method enabled in the Dashboard), so it tells only when
    it offered a single one; the charge (`payment_method_details`, expanded) or the PaymentMethod (expanded,
    or inside `last_payment_error`) tell always."""
    charge = _as_dict(pi.get("latest_charge")) or {}
    error = _as_dict(pi.get("last_payment_error")) or {}
    for found in (_type_of(charge.get("payment_method_details")), _type_of(pi.get("payment_method")),
                  _type_of(error.get("payment_method"))):
        if found:
            return found
    offered = pi.get("payment_method_types") or []
    if (pi.get("status") in _ATTEMPTED or error) and len(offered) == 1 and isinstance(offered[0], str):
        return offered[0][:64]
    return None


# Where a next action names a page for the customer: a redirect's `url`, a voucher's or instructions' page.
_NEXT_ACTION_URLS = ("url", "hosted_voucher_url", "hosted_instructions_url", "hosted_verification_url")


def _next_action(pi: dict) -> NextAction | None:
    action = _as_dict(pi.get("next_action"))
    kind = _type_of(action)
    if pi.get("status") != PaymentIntentStatus.REQUIRES_ACTION or kind is None:
        return None
    details = _as_dict(action.get(kind)) or {}
    url = next((details[f] for f in _NEXT_ACTION_URLS if isinstance(details.get(f), str) and details[f]), None)
    return NextAction(kind, url[:2048] if url else None)


def _capture_before(pi: dict) -> datetime | None:
    """When an authorization lapses: its charge's `payment_method_details.card.capture_before` (Unix seconds),
    told only when the charge is expanded."""
    charge = _as_dict(pi.get("latest_charge")) or {}
    card = (_as_dict(charge.get("payment_method_details")) or {}).get("card")
    deadline = (_as_dict(card) or {}).get("capture_before")
    if not isinstance(deadline, (int, float)) or isinstance(deadline, bool):
        return None
    return datetime.fromtimestamp(deadline, tz=timezone.utc)


def to_payment_intent(pi, live: bool = False) -> PaymentIntent:
    """A Stripe PaymentIntent (an SDK object or its dict), `latest_charge` an id, null or expanded."""
    pi = _as_dict(pi)
    metadata = pi.get("metadata") or {}
    error = pi.get("last_payment_error") or {}
    failure = (error.get("message") or error.get("code") or "payment failed") if error else None
    return PaymentIntent(
        id=pi["id"],
        status=pi["status"],
        amount=int(pi["amount"]),
        currency=str(pi["currency"]).upper(),
        order_id=metadata.get("order_id"),
        client_secret=pi.get("client_secret"),
        failure=failure,
        amount_refunded=_refunded_total(pi.get("latest_charge")),
        method_type=_method_type(pi),
        next_action=_next_action(pi),
        # An API version (or an emulator) without the field: all of it, while authorized; an explicit 0 is 0.
        amount_capturable=int(pi["amount_capturable"] if pi.get("amount_capturable") is not None else (
            pi["amount"] if pi["status"] == PaymentIntentStatus.REQUIRES_CAPTURE else 0)),
        # Without the field (localstripe): all of it once succeeded.
        amount_received=int(pi["amount_received"]) if pi.get("amount_received") is not None else None,
        capture_before=_capture_before(pi),
        cancellation_reason=pi.get("cancellation_reason"),
        live=live,
    )


def charge_payment_intent(charge) -> PaymentIntent | None:
    """What a Charge (the object of `charge.*` events) says of its PaymentIntent: paid, and refunded so far."""
    charge = _as_dict(charge)
    pi_id = charge.get("payment_intent")
    pi_id = pi_id if isinstance(pi_id, str) else (pi_id or {}).get("id")
    if not pi_id or not charge.get("paid", True) or charge.get("status", "succeeded") != "succeeded":
        return None
    if charge.get("captured") is False:
        # A hold released (our cancel of an authorized order, or Stripe's when it lapses): Stripe sends
        # charge.refunded for it, `amount_refunded` the whole amount. No money was taken: not a payment.
        return None
    return PaymentIntent(id=pi_id, status=PaymentIntentStatus.SUCCEEDED, amount=int(charge["amount"]),
                         currency=str(charge["currency"]).upper(),
                         order_id=(charge.get("metadata") or {}).get("order_id"),
                         amount_refunded=_refunded_total(charge), amount_received=_captured(charge),
                         method_type=_type_of(charge.get("payment_method_details")))


def to_refund(refund) -> Refund:
    """A Stripe Refund; with `charge` expanded it also tells the charge's new running total: all that went back
    of the order's amount, the part of a hold never captured included (as the order counts it: `decisions`)."""
    refund = _as_dict(refund)
    charge = _as_dict(refund.get("charge"))
    return Refund(id=refund["id"], amount=int(refund["amount"]),
                  refunded_total=int(charge.get("amount_refunded") or 0) if charge else None)


def _signed_at(signature: str) -> int | None:
    """The `t=` of a Stripe-Signature header: when Stripe signed the payload (Unix seconds)."""
    for item in signature.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


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


def _translate(exc: stripe.StripeError) -> PaymentGatewayError:
    if isinstance(exc, stripe.RateLimitError):
        retry_after = (exc.headers or {}).get("Retry-After") if hasattr(exc, "headers") else None
        try:
            seconds = float(retry_after) if retry_after else DEFAULT_RETRY_AFTER_SECONDS
        except ValueError:
            seconds = DEFAULT_RETRY_AFTER_SECONDS
        return PaymentProviderBusy(_describe(exc), retry_after=seconds)
    # A 4xx other than a conflict is Stripe deciding: nothing was done. A 409 (a concurrent request with
    # the same idempotency key), a 5xx or no answer at all leave the outcome unknown.
    status = getattr(exc, "http_status", None) or 0
    if 400 <= status < 500 and status != 409 and not isinstance(exc, stripe.AuthenticationError):
        code = getattr(exc, "code", None) or (getattr(getattr(exc, "error", None), "code", None))
        return PaymentRefused(_describe(exc), code)
    return PaymentGatewayError(_describe(exc))


class StripeGateway:
    """Stripe, through the official SDK. `waiting` is entered around every call: the web's run gate lets
    another request run while this one waits on Stripe (the composition root hands it over)."""

    # Connection errors, 409s and 5xx are retried by the SDK, each with the request's idempotency key, so
    # never done twice.
    NETWORK_RETRIES = 2
    # Expanded when a PaymentIntent is read, in the same call: the charge's refunded total is part of the
    # payment's state, and the charge (or, before there is one, the PaymentMethod) tells the type of the
    # method used.
    READ_EXPANDED = ("latest_charge", "payment_method")

    def __init__(self, settings: Settings, waiting: Callable[[], AbstractContextManager] = nullcontext):
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        timeout = settings.stripe_timeout_seconds
        self.longest_call = self._longest_call(min(timeout, 5.0), timeout)
        self._waiting = waiting
        self._webhook_secret = settings.stripe_webhook_secret
        self._payment_methods = settings.stripe_payment_methods
        self.holds_cards = settings.payment_capture == "on_shipment"
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=base,
            max_network_retries=self.NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=(min(timeout, 5.0), timeout)),
        )

    @classmethod
    def _longest_call(cls, connect_timeout: float, read_timeout: float) -> timedelta:
        """How long one call may take before it fails for good: every attempt connecting and waiting for its
        answer as long as allowed, with the SDK's waits between them (half a second, doubling, at most
        `MAX_DELAY`; its jitter only shortens them)."""
        attempts = cls.NETWORK_RETRIES + 1
        waits = sum(min(stripe.HTTPClient.INITIAL_DELAY * 2 ** n, stripe.HTTPClient.MAX_DELAY)
                    for n in range(cls.NETWORK_RETRIES))
        return timedelta(seconds=attempts * (connect_timeout + read_timeout) + waits)

    def _call(self, fn, *args, **kwargs):
        try:
            with self._waiting():
                return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    def _payment_intent_params(self, order_id: str, amount: int, currency: str) -> dict:
        params = {"amount": amount, "currency": currency.lower(), "metadata": {"order_id": order_id},
                  "description": f"Order {order_id}"}
        if self._payment_methods is None:  # the methods enabled in the Dashboard (Payment Element)
            params["automatic_payment_methods"] = {"enabled": True}
        else:
            params["payment_method_types"] = list(self._payment_methods)
        if self.holds_cards:
            # Cards only: a method that cannot be held (iDEAL, bank debits) is charged at once, as before.
            params["payment_method_options"] = {"card": {"capture_method": "manual"}}
        return params

    def create_payment_intent(self, order_id: str, amount: int, currency: str, attempt: int = 0) -> PaymentIntent:
        params = self._payment_intent_params(order_id, amount, currency)
        # The same key and parameters within 24 h return the same PaymentIntent: an answer lost on the
        # way back can be asked for again (reconciliation does). A replacement has a key of its own.
        key = f"order-{order_id}-payment-intent" + (f"-{attempt}" if attempt else "")
        pi = self._call(self._client.v1.payment_intents.create, params=params, options={"idempotency_key": key})
        return to_payment_intent(pi, live=True)

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        return to_payment_intent(self._call(self._client.v1.payment_intents.retrieve, payment_intent_id,
                                            params={"expand": list(self.READ_EXPANDED)}), live=True)

    def find_payment_intent(self, order_id: str, placed_at: datetime) -> PaymentIntent | None:
        """The PaymentIntent whose metadata names the order; None when Stripe has none.

        Search first (one call, `metadata['order_id']:'…'`); its index lags writes, "under a minute" normally
        and up to an hour during Stripe's incidents (and it is not offered in every country), so when it
        finds nothing the list of PaymentIntents created around the order's time, which has no such lag,
        decides. Repeating the create with its idempotency key is no way to find one: Stripe keeps keys 24
        hours, refuses a repeat whose parameters differ, and after that would open a second PaymentIntent.
        """
        expand = ["data.latest_charge"]  # the refunded total is part of what the order must learn
        found = self._call(self._client.v1.payment_intents.search, params={
            "query": f"metadata['order_id']:'{order_id}'", "limit": 100, "expand": expand})
        intents = naming(found.data, order_id)
        if not intents:
            intents = self._created_around(order_id, placed_at, expand)
        return pick_payment_intent(intents)

    def _created_around(self, order_id: str, placed_at: datetime, expand: list[str]) -> list:
        earliest, latest = placed_at - CREATED_AROUND_ORDER[0], placed_at + CREATED_AROUND_ORDER[1]
        params = {"created": {"gte": int(earliest.timestamp()), "lte": int(latest.timestamp())}, "limit": 100,
                  "expand": expand}
        for _page in range(LIST_PAGES):
            listed = self._call(self._client.v1.payment_intents.list, params=params)
            intents = naming(listed.data, order_id)
            if intents or not listed.has_more:
                return intents
            params = {**params, "starting_after": listed.data[-1].id}
        raise PaymentGatewayError(f"more than {LIST_PAGES * 100} PaymentIntents were created around the order")

    def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        return to_payment_intent(self._call(self._client.v1.payment_intents.cancel, payment_intent_id), live=True)

    def refund_payment_intent(self, payment_intent_id: str, amount: int, idempotency_key: str) -> Refund:
        refund = self._call(self._client.v1.refunds.create,
                            params={"payment_intent": payment_intent_id, "amount": amount, "expand": ["charge"]},
                            options={"idempotency_key": idempotency_key})
        return to_refund(refund)

    def capture_payment_intent(self, payment_intent_id: str, idempotency_key: str) -> PaymentIntent:
        # The key is the order's own: a retry after a lost answer (the SDK's, or the caller's later) and a
        # second caller at the same moment get the one capture's answer, never a second capture.
        pi = self._call(self._client.v1.payment_intents.capture, payment_intent_id,
                        params={"expand": list(self.READ_EXPANDED)}, options={"idempotency_key": idempotency_key})
        return to_payment_intent(pi, live=True)

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
        # The SDK refuses a signature older than the tolerance, not one dated ahead of it: a payload signed
        # "in the future" (a leaked secret, or a clock far off) would be replayable for as long.
        signed_at = _signed_at(signature)
        if signed_at is None or signed_at > time.time() + WEBHOOK_TOLERANCE_SECONDS:
            raise InvalidWebhook("invalid webhook: the signature's timestamp is in the future")
        data = body.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not (isinstance(obj, dict) and body.get("object") == "event" and isinstance(body.get("id"), str)
                and isinstance(body.get("type"), str) and 0 < len(body["id"]) <= 255):
            raise InvalidWebhook("the body is not a Stripe event")
        if obj.get("object") == "payment_intent":
            pi_id = obj.get("id")
        else:  # charges, refunds and disputes name their PaymentIntent
            pi_id = obj.get("payment_intent")
            pi_id = pi_id.get("id") if isinstance(pi_id, dict) else pi_id
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        return WebhookEvent(id=body["id"], type=body["type"][:100],
                            payment_intent_id=pi_id if isinstance(pi_id, str) else None,
                            order_id=metadata.get("order_id"), payload=body, raw=payload.decode())

    def event_payment_intent(self, payload: dict) -> PaymentIntent | None:
        """Stripe's signed snapshot of the payment: a PaymentIntent event's object, or a refunded Charge."""
        obj = (payload.get("data") or {}).get("object") or {}
        try:
            if payload.get("type") in StripeEvents.PAYMENT_INTENT and obj.get("object") == "payment_intent":
                return to_payment_intent(obj)
            if payload.get("type") == StripeEvents.CHARGE_REFUNDED and obj.get("object") == "charge":
                return charge_payment_intent(obj)
        except (KeyError, TypeError, ValueError):  # a verified event of a shape we cannot read
            return None
        return None
