"""`Idempotency-Key` on the order routes: one key, one body, one order."""
from __future__ import annotations

import hashlib
import json
import uuid

from sqlalchemy import delete
from sqlalchemy.orm import Session

from orders_service.db import insert_ignoring_conflicts
from orders_service.errors import IdempotencyKeyReused
from orders_service.orders.models import IdempotencyRecord


def request_fingerprint(scope: str, body: dict) -> str:
    """A hash of what was asked: the idempotency scope (the way of ordering) and the validated body, in a
    canonical form. (Its key is "route", its name before: fingerprints already stored stay valid.)"""
    canonical = json.dumps({"route": scope, "body": body}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_key(session: Session, customer_id: uuid.UUID, key: str, fingerprint: str, order_id: uuid.UUID):
    """Claim the key for a new order inside the caller's transaction.

    Returns None when the key is new (the caller goes on to create `order_id`), or the id of the
    order an earlier request with the same key and body created. A concurrent request with the same
    key waits here until the first one commits or rolls back.
    """
    values = dict(customer_id=customer_id, key=key, request_hash=fingerprint, order_id=order_id)
    if insert_ignoring_conflicts(session, IdempotencyRecord, values):
        return None
    record = session.get(IdempotencyRecord, (customer_id, key), populate_existing=True)
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused("Idempotency-Key has already been used with a different request")
    return record.order_id


def forget_order(session: Session, order_id: uuid.UUID) -> None:
    """Drop the key that created `order_id`, so that the same key may try again (its start failed)."""
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.order_id == order_id))
