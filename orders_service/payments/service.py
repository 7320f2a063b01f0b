"""An order's payment state is moved by one function, `apply_payment_intent`."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from orders_service.ops import metrics
from orders_service.orders import actions
from orders_service.orders.events import OrderEvents
from orders_service.orders.models import Order, OrderStatus, PaymentStatus
from orders_service.payments.decisions import Action, Decision, decide
from orders_service.payments.gateway import PaymentGateway, PaymentIntent

CLOSED = (OrderStatus.EXPIRED, OrderStatus.CANCELED)


@dataclass(frozen=True)
class Applied:
    """What `apply_payment_intent` did: `event` is the trail event it appended, None when nothing changed."""

    order: Order
    event: str | None
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.event is not None

    @property
    def refund_due(self) -> bool:
        """Money arrived for an order that can no longer be fulfilled: it must go back."""
        return self.order.status in CLOSED and self.order.payment_status == PaymentStatus.PAID


def _carry_out(session: Session, order: Order, decision: Decision, intent: PaymentIntent, source: str) -> str | None:
    """Do what the decision says, through the order's actions; the trail event written."""
    pi = intent.id
    match decision.action:
        case Action.CONFIRM:
            actions.confirm_payment(session, order, pi, intent.amount, source)
            return OrderEvents.PAYMENT_SUCCEEDED
        case Action.REVIVE | Action.RECORD_LATE_PAYMENT:
            if decision.action == Action.REVIVE and actions.revive(session, order, pi, intent.amount, source):
                return OrderEvents.LATE_PAYMENT_REVIVED
            actions.record_late_payment(session, order, pi, intent.amount, source)
            return OrderEvents.LATE_PAYMENT_REFUND_DUE
        case Action.REFUND:
            actions.refund(session, order, pi, intent.amount_refunded, source)
            return OrderEvents.REFUNDED
        case Action.CANCEL:
            actions.cancel_by_provider(session, order, pi, source)
            return OrderEvents.PAYMENT_CANCELED
        case Action.RECORD_FAILURE:
            actions.record_payment_failure(session, order, pi, intent.failure, source)
            return OrderEvents.PAYMENT_FAILED
    return None


def apply_payment_intent(session: Session, order_id: uuid.UUID, intent: PaymentIntent, source: str) -> Applied:
    """Move the order's payment state to what the provider says, forward only, with one event.

    Used by `PATCH …/paid`, the webhook worker, reconciliation, expiry and cancel alike. The order row
    is locked for the decision, so concurrent callers are applied one after the other and only the
    first one that changes something appends an event.
    """
    with session.begin():
        order = actions.lock_order(session, order_id)
        decision = decide(order, intent)
        event = _carry_out(session, order, decision, intent, source)
    if event is not None:
        metrics.PAYMENTS.labels(event).inc()
    return Applied(order, event, decision.reason)


def settle_refund_due(session: Session, gateway: PaymentGateway, applied: Applied, source: str) -> Applied:
    """Refund a payment that arrived for a closed order (outside any transaction), then record it."""
    if not applied.refund_due:
        return applied
    order = applied.order
    gateway.refund_payment_intent(order.payment_intent_id, str(order.id))
    return apply_payment_intent(session, order.id, gateway.retrieve_payment_intent(order.payment_intent_id), source)
