"""Stripe for the tests: a private localstripe driven with the real SDK, and signed webhook events."""
from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
import stripe

WEBHOOK_SECRET = "whsec_orders_service_tests"


class StripeEmulator:
    """A private localstripe on a free port, driven with the real SDK the way a browser would pay."""

    API_KEY = "sk_test_orders_service_tests"

    def __init__(self, url: str):
        self.url = url
        self.client = stripe.StripeClient(self.API_KEY, base_addresses={"api": url}, max_network_retries=0)

    def flush(self) -> None:
        requests.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()

    def payment_intent(self, pi_id: str):
        return self.client.v1.payment_intents.retrieve(pi_id)

    def pay(self, pi_id: str, payment_method: str = "pm_card_visa"):
        """Attach a card and confirm, as Stripe.js would after the customer pays."""
        self.client.v1.payment_intents.update(pi_id, params={"payment_method": payment_method})
        return self.client.v1.payment_intents.confirm(pi_id)

    def deliver_webhooks_to(self, url: str | None) -> None:
        """Register (or, with None, silence) the emulator's webhook endpoint; registrations cannot be deleted."""
        data = {"url": url or "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET}
        if url is None:
            data["events"] = ["plan.created"]  # an event the tests never cause
        requests.post(f"{self.url}/_config/webhooks/orders-service", json=data, timeout=10).raise_for_status()

    def decline(self, pi_id: str):
        """Pay with a card that is declined on charge (localstripe declines 4000000000000341)."""
        pm = self.client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": "4000000000000341", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
        with pytest.raises(stripe.CardError):
            self.pay(pi_id, pm.id)
        return self.payment_intent(pi_id)

    def refunds(self, pi_id: str) -> list:
        return self.client.v1.refunds.list(params={"payment_intent": pi_id}).data


def signed_event(event_type: str, obj: dict, event_id: str | None = None, secret: str = WEBHOOK_SECRET,
                 timestamp: int | None = None) -> tuple[bytes, dict]:
    """A Stripe event body and its headers, signed as Stripe signs them."""
    body = json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": event_type,
                       "created": int(time.time()), "livemode": False, "data": {"object": obj}})
    signature = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    return body.encode(), {"Stripe-Signature": signature, "Content-Type": "application/json"}


def payment_intent_of(client_secret: str) -> str:
    """The PaymentIntent id a client secret belongs to (`pi_…_secret_…`), as Stripe.js reads it."""
    return client_secret.split("_secret_")[0]
