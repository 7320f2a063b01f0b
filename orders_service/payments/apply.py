"""An order's payment state is moved by one function, `apply_payment_intent`."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.orm import Session

from orders_service.db import utcnow
from orders_service.ops import metrics
from orders_service.orders import actions
from orders_service.orders.events import OrderEvents
from orders_service.orders.models import Order, OrderStatus, PaymentStatus
from orders_service.payments.decisions import (
    Action,
    Decision,
    belongs_to,
    capture_deadline,
    decide,
    method_type_of,
    next_action_of,
    received,
    refunded_total,
)
from orders_service.payments.gateway import PaymentIntent

CLOSED = (OrderStatus.EXPIRED, OrderStatus.CANCELED)


@dataclass(frozen=True)
class Applied:
    """What `apply_payment_intent` did: the trail events it appended (none when nothing changed), or why not."""

    order: Order
    events: tuple[str, ...] = ()
    reason: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.events)

    @property
    def refund_due(self) -> bool:
        """Money is held for an order that can no longer be fulfilled: it must go back."""
        return refund_due(self.order)


def refund_due(order: Order) -> bool:
    """A closed order (expired or canceled) keeps none of the customer's money."""
    return order.status in CLOSED and order.payment_status in PaymentStatus.HELD


def _carry_out(session: Session, order: Order, decision: Decision, intent: PaymentIntent, source: str) -> str | None:
    """Do what the decision says, through the order's actions; the trail event written (None: no event).

    The type of the method used is recorded first, so that the change and its trail event see it.
    """
    pi = intent.id
    method_type = method_type_of(order, intent)
    if method_type != order.payment_method_type:
        actions.record_payment_method_type(session, order, method_type)
    match decision.action:
        case Action.RECORD_ACTION_REQUIRED:
            actions.record_action_required(session, order, pi, next_action_of(intent), source)
            return OrderEvents.PAYMENT_ACTION_REQUIRED
        case Action.RECORD_PROCESSING:
            actions.record_processing(session, order, pi, source)
            return OrderEvents.PAYMENT_PROCESSING
        case Action.RECORD_METHOD_TYPE:
            return None  # recorded above
        case Action.CONFIRM:
            actions.confirm_payment(session, order, pi, intent.amount, source)
            return OrderEvents.PAYMENT_SUCCEEDED
        case Action.REVIVE | Action.RECORD_LATE_PAYMENT:
            if decision.action == Action.REVIVE and actions.revive(session, order, pi, intent.amount, source):
                return OrderEvents.LATE_PAYMENT_REVIVED
            actions.record_late_payment(session, order, pi, intent.amount, source)
            return OrderEvents.LATE_PAYMENT_REFUND_DUE
        case Action.RECORD_REFUND:
            actions.record_refund(session, order, pi, refunded_total(intent), source)
            return OrderEvents.REFUNDED
        case Action.CANCEL:
            actions.cancel_by_provider(session, order, pi, source)
            return OrderEvents.PAYMENT_CANCELED
        case Action.AUTHORIZE:
            actions.authorize_payment(session, order, pi, intent.amount, capture_deadline(intent, utcnow()), source)
            return OrderEvents.PAYMENT_AUTHORIZED
        case Action.RECORD_CAPTURE_DEADLINE:
            actions.record_capture_deadline(session, order, intent.capture_before)
            return None
        case Action.RECORD_CAPTURE:
            actions.record_capture(session, order, pi, received(intent), source)
            return OrderEvents.PAYMENT_CAPTURED
        case Action.LAPSE:
            actions.lapse_authorization(session, order, pi, intent.cancellation_reason, source)
            return OrderEvents.AUTHORIZATION_LAPSED
        case Action.RECORD_FAILURE:
            actions.record_payment_failure(session, order, pi, intent.failure, source)
            return OrderEvents.PAYMENT_FAILED
    raise AssertionError(f"no action {decision.action!r}")  # decide() answers only the actions above


def apply_payment_intent(session: Session, order_id: uuid.UUID, intent: PaymentIntent, source: str,
                         then: Callable[[Session, Order], None] | None = None) -> Applied:
    """Move the order's payment state to what the provider says, forward only, with one event.

    Used by `PATCH …/paid`, the webhook worker, reconciliation, expiry and cancel alike. The order row
    is locked for the decision, so concurrent callers are applied one after the other and only the
    first one that changes something appends an event. `then(session, order)` runs last in the same
    transaction (a ship after its capture); it must not raise a refusal, or the payment's change is lost.
    """
    events = []
    with session.begin():
        order = actions.lock_order(session, order_id)
        if order.payment_intent_id is None and belongs_to(order, intent):
            # Its create answer was lost: the provider's word names the order; from now on its id does
            # (a refund of it must name it).
            actions.record_payment_intent(session, order, intent.id, intent.client_secret)
        decision = decide(order, intent)
        # One PaymentIntent may ask for more than one change (paid, then partly refunded, and the type of
        # the method used): decide again after each.
        for _ in range(4):
            if decision.action is None:
                break
            event = _carry_out(session, order, decision, intent, source)
            events += [event] if event else []
            decision = decide(order, intent)
        if then is not None:
            then(session, order)
    for event in events:
        metrics.PAYMENTS.labels(event).inc()
    return Applied(order, tuple(events), "" if events else decision.reason)
