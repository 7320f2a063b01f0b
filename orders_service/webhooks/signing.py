"""Secrets and signatures of Standard Webhooks (standardwebhooks.com), through its own library.

A secret is `whsec_` and the base64 of 32 random bytes (the specification allows 24 to 64). A delivery
carries one `v1,<signature>` per live secret, space-separated: during a rotation the new secret's and
the old one's, so a receiver verifies with either while it changes over.
"""
from __future__ import annotations

import base64
import secrets
from datetime import datetime, timezone

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class Signer:
    """Signs deliveries with each of an endpoint's live secrets (the newest first)."""

    def __init__(self, live_secrets: list[str]):
        self._webhooks = [Webhook(secret) for secret in live_secrets]

    def headers(self, message_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt; `webhook-timestamp` is the attempt's own time, so
        that a verifier's five-minute tolerance accepts retries and replays of old events."""
        # The library wants a UTC datetime (older versions replace its tzinfo with UTC without converting).
        attempt = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
        signatures = " ".join(webhook.sign(message_id, attempt, body) for webhook in self._webhooks)
        return {"webhook-id": message_id, "webhook-timestamp": str(int(attempt.timestamp())),
                "webhook-signature": signatures, "content-type": "application/json"}
