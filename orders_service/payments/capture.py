"""Authorized payments (PAYMENT_CAPTURE=on_shipment) captured: when the order ships, or by the periodic job
before the hold lapses.

A capture never runs under a row lock: a short transaction claims the order (one caller at a time asks the
provider), the provider is asked with no transaction open, with an idempotency key of the order's own, and
what it answers is applied by `apply_payment_intent` in another short transaction — the same path as a
webhook or reconciliation, so a `payment_intent.succeeded` that races the capture, a second caller or a
retry after a lost answer all end in one capture and one `order.paid`. "Already captured" is a success.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from orders_service.db import utcnow
from orders_service.errors import InvalidRequest, PaymentProviderError, ProviderBusy
from orders_service.orders import actions, fulfilment
from orders_service.orders.lifecycle import allowed, transition
from orders_service.orders.models import Order, OrderStatus, PaymentStatus
from orders_service.orders.service import load_order
from orders_service.payments.apply import apply_payment_intent
from orders_service.payments.gateway import (
    PaymentGateway,
    PaymentGatewayError,
    PaymentIntentStatus,
    PaymentProviderBusy,
    PaymentRefused,
)
from orders_service.payments.reconcile import BATCH, _batches, _each

log = logging.getLogger(__name__)

# A caller owns an order's capture for as long as the provider's answer may take (the gateway's timeouts, every
# SDK retry and the waits between them: `longest_call`), and this margin for the short transactions around the
# call. After that the call has failed for good, and another caller may ask (with the same key: safe).
CLAIM_MARGIN = timedelta(seconds=5)
# The job captures an authorization still uncaptured this long before the provider lets it lapse.
CAPTURE_LEAD = timedelta(hours=24)
# A ship meeting another's capture under way waits for it this long (seconds), then answers 400.
SHIP_WAITS_FOR_CAPTURE = 3.0
_SHIP_POLL_SECONDS = 0.1
BEING_CAPTURED = actions.BEING_CAPTURED


def claim_length(gateway: PaymentGateway) -> timedelta:
    return gateway.longest_call + CLAIM_MARGIN


def capture_key(order_id: uuid.UUID, attempt: int = 0) -> str:
    """The provider's idempotency key of the order's capture request `attempt` (a new one only after a refusal
    that left the payment held: the provider replays a key's refusal for a day)."""
    return f"capture-{order_id}" + (f"-{attempt}" if attempt else "")


@dataclass(frozen=True)
class _Claim:
    """A caller's capture of one order: its PaymentIntent, the claim's token, the capture request it makes."""

    payment_intent_id: str
    token: str
    attempt: int


class CaptureInProgress(InvalidRequest):
    """Another caller (a ship, the job) is capturing the order's payment at this moment (400: a state that
    forbids it for now)."""


class CaptureRefused(InvalidRequest):
    """The provider refused the capture; the order is as it was (or closed, when the hold had lapsed)."""


def capture_payment(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, source: str) -> bool:
    """Capture the order's authorized payment, once; True when this call captured it (or found it captured at
    the provider), False when the order holds no authorization (paid at once, captured already, …).

    Raises CaptureInProgress when another caller holds the capture, CaptureRefused (400) when the provider
    refuses it, and PaymentGatewayError when its answer did not come (the claim is let go: asking again is
    safe, with the same key).
    """
    with session.begin():
        order = actions.lock_order(session, order_id)
        if order.payment_status != PaymentStatus.AUTHORIZED:
            return False
        claim = _claim(session, gateway, order)
    return _capture(session, gateway, order_id, claim, source)


def _claim(session: Session, gateway: PaymentGateway, order: Order) -> _Claim:
    """Take the authorized order's capture for this caller (its row locked by the caller)."""
    if actions.capture_claimed(order):
        raise CaptureInProgress(BEING_CAPTURED)
    token = uuid.uuid4().hex
    actions.claim_capture(session, order, utcnow() + claim_length(gateway), token)
    return _Claim(order.payment_intent_id, token, order.capture_attempt)


def _capture(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, claim: _Claim, source: str,
             then: Callable[[Session, Order], None] | None = None) -> bool:
    """Ask the provider to capture (no transaction open), then apply its answer (and `then`, in the same
    transaction). The claimed order's claim is let go whatever happens."""
    pi_id = claim.payment_intent_id
    try:
        intent = gateway.capture_payment_intent(pi_id, capture_key(order_id, claim.attempt))
    except PaymentRefused as exc:
        # "Already captured" (Stripe: payment_intent_unexpected_state) is a success; a lapsed hold is not.
        # The PaymentIntent as it is now tells which, and is applied like any other word of the provider.
        try:
            intent = gateway.retrieve_payment_intent(pi_id)
        except PaymentGatewayError:
            _let_go(session, order_id, claim)
            raise exc from None
        if intent.status == PaymentIntentStatus.SUCCEEDED:
            apply_payment_intent(session, order_id, intent, source, then)
            return True
        apply_payment_intent(session, order_id, intent, source)
        # Still held, nothing captured: the provider keeps this refusal under the key and would answer it to
        # every later try for a day, so the next one is a new request.
        _let_go(session, order_id, claim, next_attempt=intent.status == PaymentIntentStatus.REQUIRES_CAPTURE)
        raise CaptureRefused(f"The payment could not be captured: {exc}") from None
    except PaymentGatewayError:
        _let_go(session, order_id, claim)
        raise
    applied = apply_payment_intent(session, order_id, intent, source, then)
    return applied.order.payment_status in PaymentStatus.RECEIVED


def _let_go(session: Session, order_id: uuid.UUID, claim: _Claim, next_attempt: bool = False) -> None:
    with session.begin():
        order = actions.lock_order(session, order_id)
        if next_attempt:
            actions.next_capture_attempt(session, order, claim.attempt)
        actions.release_capture_claim(session, order, claim.token)


def ship(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, tracking_number: str,
         carrier: str | None, pause: Callable[[float], None] = time.sleep) -> Order:
    """Ship a confirmed order; one whose payment is only authorized is captured first, outside any
    transaction, and ships in the transaction that records the capture. A refused capture is a 400 naming
    the reason, and ships nothing. An order paid at once ships in one transaction, as it always did.

    Meeting another caller's capture under way, it waits for it (`pause`, no transaction open) up to
    SHIP_WAITS_FOR_CAPTURE seconds, then answers 400 (CaptureInProgress)."""
    waited = 0.0
    while True:
        try:
            with session.begin():
                order = actions.lock_order(session, order_id)
                claim = (_claim(session, gateway, order) if order.payment_status == PaymentStatus.AUTHORIZED
                         else None)
                if claim is None:
                    actions.ship(session, order, tracking_number, carrier)
            break
        except CaptureInProgress:
            if waited >= SHIP_WAITS_FOR_CAPTURE:
                raise
            pause(_SHIP_POLL_SECONDS)
            waited += _SHIP_POLL_SECONDS

    def ship_captured(session: Session, order: Order) -> None:
        # Never a refusal here, which would undo the capture's record: shipping is only checked first.
        if order.payment_status in PaymentStatus.RECEIVED and allowed(order.status, "ship"):
            actions.ship(session, order, tracking_number, carrier)

    if claim is not None:
        try:
            _capture(session, gateway, order_id, claim, "ship", then=ship_captured)
        except PaymentRefused as exc:  # the provider refused, and could not be asked what it holds now
            raise CaptureRefused(f"The payment could not be captured: {exc}") from None
        except PaymentProviderBusy as exc:
            raise ProviderBusy("The payment provider is busy; try shipping again shortly", exc.retry_after) from None
        except PaymentGatewayError as exc:
            raise PaymentProviderError(f"Failed to capture payment: {exc}") from None
    with session.begin():
        shipped = load_order(session, order_id)
    if shipped.status != OrderStatus.SHIPPED:  # captured, but closed meanwhile: as the state machine says
        transition(shipped, "ship")
    return shipped


def update_fulfilment(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, data: dict,
                      pause: Callable[[float], None] = time.sleep) -> Order:
    """`PATCH /api/admin/orders/{id}`: shipped (an authorized payment captured first), delivered, or cash
    collected. `pause(seconds)` is how a ship waits for another's capture (the web steps out of its run gate)."""
    if data.get("status") == "shipped":
        return ship(session, gateway, order_id, data["trackingNumber"], data.get("carrier"), pause)
    return fulfilment.update_fulfilment(session, order_id, data)


def capture_expiring_authorizations(session_factory: sessionmaker, gateway: PaymentGateway,
                                    lead: timedelta = CAPTURE_LEAD, concurrency: int = 6,
                                    time_budget_seconds: float = 50.0) -> int:
    """Capture every authorization still uncaptured `lead` before its hold lapses (the order has not shipped
    in time: the money is taken rather than lost); how many were captured."""
    deadline = time.monotonic() + time_budget_seconds
    seen: set = set()

    def batch():
        now = utcnow()
        with session_factory() as session, session.begin():
            ids = list(session.scalars(select(Order.id).where(
                Order.payment_status == PaymentStatus.AUTHORIZED, Order.status == OrderStatus.CONFIRMED,
                Order.capture_before <= now + lead,
                or_(Order.capture_claimed_until.is_(None), Order.capture_claimed_until <= now))
                .order_by(Order.capture_before).limit(BATCH)))
        fresh = [i for i in ids if i not in seen]  # one attempt per order and run
        seen.update(fresh)
        return fresh

    def capture(session: Session, order_id: uuid.UUID) -> bool:
        try:
            return capture_payment(session, gateway, order_id, source="capture_job")
        except CaptureInProgress:
            return False  # a ship is capturing it now
        except CaptureRefused as exc:
            log.warning("order %s: the provider refused to capture its authorized payment before the hold "
                        "lapses: %s", order_id, exc)
            return False

    captured = 0
    for ids in _batches(batch, deadline):
        captured += _each(session_factory, capture, ids, concurrency)
    return captured
