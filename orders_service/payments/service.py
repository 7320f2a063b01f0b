"""An order's payment state: started here, and moved by one function, `apply_payment_intent`."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from orders_service.auth.tokens import Actor
from orders_service.db import utcnow
from orders_service.errors import Conflict, DomainError, InvalidRequest, NotFound, PaymentProviderError
from orders_service.orders.models import (
    IdempotencyRecord,
    Order,
    OrderEvent,
    OrderStatus,
    PaymentMethod,
    PaymentStatus,
)
from orders_service.notifications.outbox import notify
from orders_service.ops import metrics
from orders_service.orders.lifecycle import allowed, transition
from orders_service.orders.service import get_order, place_order, release_order_stock
from orders_service.orders.stock import StockLine, reserve_stock
from orders_service.payments.gateway import PaymentGateway, PaymentGatewayError, PaymentIntent, PaymentIntentStatus

# Stripe's largest charge in two-decimal currencies (99,999,999 minor units).
MAX_ONLINE_PAYMENT_CENTS = 99_999_999
CLOSED = (OrderStatus.EXPIRED, OrderStatus.CANCELED)


@dataclass(frozen=True)
class Applied:
    """What `apply_payment_intent` did: `event` is the event it appended, None when nothing changed."""

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


def place_online_order(
    session: Session, gateway: PaymentGateway, actor: Actor, data: dict, currency: str,
    idempotency_key: str | None = None,
) -> Order:
    """Place an order (stock reserved and committed first), then open its PaymentIntent."""
    placed = place_order(session, actor, data, PaymentMethod.ONLINE, currency, idempotency_key, route="online",
                         max_total_cents=MAX_ONLINE_PAYMENT_CENTS)
    if placed.replayed:
        if placed.order.client_secret is None:
            raise Conflict("The first request with this Idempotency-Key is still being processed; retry shortly")
        return placed.order
    start_payment(session, gateway, placed.order)
    return placed.order


def start_payment(session: Session, gateway: PaymentGateway, order: Order) -> str:
    """Create the order's PaymentIntent (no transaction open during the call) and store it; the client secret."""
    try:
        intent = gateway.create_payment_intent(str(order.id), order.total_cents, order.currency)
    except PaymentGatewayError as exc:
        abandon_unstarted_payment(session, order.id, str(exc))
        raise PaymentProviderError(f"Failed to initialize payment: {exc}") from None
    with session.begin():
        session.execute(
            update(Order).where(Order.id == order.id)
            .values(payment_intent_id=intent.id, client_secret=intent.client_secret)
        )
    order.payment_intent_id, order.client_secret = intent.id, intent.client_secret
    return intent.client_secret


def abandon_unstarted_payment(session: Session, order_id: uuid.UUID, reason: str) -> None:
    """The PaymentIntent could not be created: close the order and give its stock back, once."""
    with session.begin():
        order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
        if order.status != OrderStatus.PENDING or order.payment_intent_id is not None:
            return
        order.status = OrderStatus.CANCELED
        order.payment_status = PaymentStatus.FAILED
        release_order_stock(session, order)
        session.add(OrderEvent(order_id=order.id, type="payment_initialization_failed", detail={"error": reason}))
        # A failed start is not a response to replay: the same Idempotency-Key may try again.
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.order_id == order.id))


def _belongs_to(order: Order, intent: PaymentIntent) -> bool:
    return intent.order_id == str(order.id) and order.payment_intent_id in (None, intent.id)


def _reserve_again(session: Session, order: Order) -> bool:
    """Try to take a closed order's stock again (a payment arrived after it expired)."""
    try:
        with session.begin_nested():
            reserve_stock(session, [StockLine(i.product_id, i.variant_id, i.name, i.quantity) for i in order.items])
        return True
    except DomainError:
        return False


def _decide(session: Session, order: Order, intent: PaymentIntent) -> tuple[str | None, dict | str]:
    """The transition the PaymentIntent asks for: (event, detail), or (None, why not). Mutates `order`."""
    ref = {"paymentIntentId": intent.id}
    if intent.status == PaymentIntentStatus.SUCCEEDED:
        if intent.amount != order.total_cents or intent.currency != order.currency:
            return None, "amount or currency differs from the order"
        if intent.amount_refunded >= intent.amount:
            if order.payment_status == PaymentStatus.REFUNDED:
                return None, "already refunded"
            order.payment_status = PaymentStatus.REFUNDED
            if allowed(order.status, "cancel"):  # refunded at the provider before it shipped
                order.status = transition(order, "cancel")
                release_order_stock(session, order)
            notify(session, order, "refunded")
            return "refunded", {**ref, "amount": intent.amount_refunded}
        if order.payment_status in (PaymentStatus.PAID, PaymentStatus.REFUNDED):
            return None, "already paid"
        order.payment_status = PaymentStatus.PAID
        order.paid_at = utcnow()
        if allowed(order.status, "pay"):
            order.status = transition(order, "pay")
            notify(session, order, "order_confirmed")
            return "payment_succeeded", {**ref, "amount": intent.amount}
        # The money came after the order expired: fulfil it if the stock is still there. A canceled
        # order is never revived: the customer asked for it to stop.
        was = order.status
        if allowed(order.status, "revive") and _reserve_again(session, order):
            order.status = transition(order, "revive")
            notify(session, order, "order_confirmed")
            return "late_payment_revived", {**ref, "amount": intent.amount, "was": was}
        return "late_payment_refund_due", {**ref, "amount": intent.amount, "was": was}

    if intent.status == PaymentIntentStatus.CANCELED:
        if order.status != OrderStatus.PENDING:
            return None, f"order is {order.status}"
        order.status = transition(order, "cancel")
        release_order_stock(session, order)
        notify(session, order, "canceled")
        return "payment_canceled", ref

    if intent.failure and intent.status == PaymentIntentStatus.REQUIRES_PAYMENT_METHOD:
        if order.payment_status != PaymentStatus.UNPAID or order.status != OrderStatus.PENDING:
            return None, f"payment is {order.payment_status}"
        order.payment_status = PaymentStatus.FAILED
        notify(session, order, "payment_failed")
        return "payment_failed", {**ref, "error": intent.failure}

    return None, f"payment intent is {intent.status}"


def apply_payment_intent(session: Session, order_id: uuid.UUID, intent: PaymentIntent, source: str) -> Applied:
    """Move the order's payment state to what the provider says, forward only, with one event.

    Used by `PATCH …/paid`, the webhook worker and the reconciliation job alike. The order row is
    locked for the decision, so concurrent callers are applied one after the other and only the
    first one that changes something appends an event.
    """
    with session.begin():
        order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
        if order is None:
            raise NotFound("Order not found")
        if not _belongs_to(order, intent):
            return Applied(order, None, "payment intent belongs to another order")
        event, detail = _decide(session, order, intent)
        if event is None:
            return Applied(order, None, detail)
        session.add(OrderEvent(order_id=order.id, type=event, detail={**detail, "source": source}))
    metrics.PAYMENTS.labels(event).inc()
    return Applied(order, event)


def settle_refund_due(session: Session, gateway: PaymentGateway, applied: Applied, source: str) -> Applied:
    """Refund a payment that arrived for a closed order (outside any transaction), then record it."""
    if not applied.refund_due:
        return applied
    order = applied.order
    gateway.refund_payment_intent(order.payment_intent_id, str(order.id))
    return apply_payment_intent(session, order.id, gateway.retrieve_payment_intent(order.payment_intent_id), source)


def confirm_paid(session: Session, gateway: PaymentGateway, actor: Actor, order_id: uuid.UUID) -> None:
    """`PATCH …/paid`: ask the provider, never the client, whether the order is paid."""
    order = get_order(session, actor, order_id)
    if order.payment_method != PaymentMethod.ONLINE:
        raise InvalidRequest("Cash-on-delivery orders are paid on delivery, not online")
    if order.payment_status in (PaymentStatus.PAID, PaymentStatus.REFUNDED):
        raise InvalidRequest("Order has already been marked as paid")
    if order.payment_intent_id is None:
        raise Conflict("Payment for this order has not been initialized")
    try:
        intent = gateway.retrieve_payment_intent(order.payment_intent_id)
    except PaymentGatewayError as exc:
        raise PaymentProviderError(f"Failed to verify payment: {exc}") from None

    applied = apply_payment_intent(session, order.id, intent, source="paid_endpoint")
    if applied.event == "payment_succeeded" or applied.event == "late_payment_revived":
        return
    if applied.refund_due:
        try:
            settle_refund_due(session, gateway, applied, source="paid_endpoint")
        except PaymentGatewayError:
            pass  # the reconciliation job refunds it
        raise InvalidRequest(f"Order is {applied.order.status}: the payment is being refunded")
    if applied.order.payment_status in (PaymentStatus.PAID, PaymentStatus.REFUNDED):
        raise InvalidRequest("Order has already been marked as paid")
    if intent.status != PaymentIntentStatus.SUCCEEDED:
        suffix = f" ({intent.failure})" if intent.failure else ""
        raise InvalidRequest(f"Payment has not succeeded: the PaymentIntent is {intent.status}{suffix}")
    raise InvalidRequest(f"Payment cannot be applied: {applied.reason}")
