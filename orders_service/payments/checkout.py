"""The checkout use cases that talk to the payment provider: place an online order, confirm it paid,
cancel it (refunding or canceling its payment). They sit above `orders/` and call it; no transaction is
ever open while the provider answers.
"""
from __future__ import annotations

import logging
import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from orders_service.auth.actor import Actor
from orders_service.errors import Conflict, InvalidRequest, NotFound, PaymentProviderError
from orders_service.orders import actions, idempotency
from orders_service.orders.events import OrderEvents
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus
from orders_service.orders.service import get_order, load_order, place_order
from orders_service.payments.gateway import PaymentGateway, PaymentGatewayError, PaymentIntentStatus
from orders_service.payments.service import Applied, apply_payment_intent, settle_refund_due

log = logging.getLogger(__name__)

# Stripe's largest charge in two-decimal currencies (99,999,999 minor units).
MAX_ONLINE_PAYMENT_CENTS = 99_999_999


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
        _abandon_unstarted_payment(session, order.id, str(exc))
        raise PaymentProviderError(f"Failed to initialize payment: {exc}") from None
    with session.begin():
        session.execute(
            update(Order).where(Order.id == order.id)
            .values(payment_intent_id=intent.id, client_secret=intent.client_secret)
        )
    order.payment_intent_id, order.client_secret = intent.id, intent.client_secret
    return intent.client_secret


def _abandon_unstarted_payment(session: Session, order_id: uuid.UUID, reason: str) -> None:
    """The PaymentIntent could not be created: close the order and give its stock back, once."""
    with session.begin():
        order = actions.lock_order(session, order_id)
        if order.status != OrderStatus.PENDING or order.payment_intent_id is not None:
            return
        actions.abandon_unstarted_payment(session, order, reason)
        # A failed start is not a response to replay: the same Idempotency-Key may try again.
        idempotency.forget_order(session, order.id)


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
    if applied.event in (OrderEvents.PAYMENT_SUCCEEDED, OrderEvents.LATE_PAYMENT_REVIVED):
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


def cancel_order(session: Session, gateway: PaymentGateway, actor: Actor, order_id: uuid.UUID) -> Order:
    """Cancel before shipping: release the stock once; refund a paid order, cancel an unpaid PaymentIntent.

    The status change and the stock release commit first, under the order's row lock, so that of two
    concurrent cancels exactly one wins. The provider is called afterwards, with no lock held; if it
    fails, the reconciliation job finishes the refund (a canceled order that is paid is a refund due).
    """
    with session.begin():
        order = actions.lock_order(session, order_id)
        if not actor.may_see(order.customer_id):
            raise NotFound("Order not found")  # someone else's order is as good as unknown
        actions.cancel(session, order, by=actor.role)

    if order.payment_method == PaymentMethod.ONLINE and order.payment_intent_id:
        try:
            if order.payment_status == PaymentStatus.PAID:
                settle_refund_due(session, gateway, Applied(order, None), source="cancel")
            else:
                _cancel_payment_intent(session, gateway, order)
        except PaymentGatewayError:
            log.warning("payment of canceled order %s not undone yet; reconciliation will", order.id, exc_info=True)
    with session.begin():
        return load_order(session, order.id)


def _cancel_payment_intent(session: Session, gateway: PaymentGateway, order: Order) -> None:
    try:
        gateway.cancel_payment_intent(order.payment_intent_id)
    except PaymentGatewayError:
        # Perhaps it was paid a moment ago: then the money must go back.
        intent = gateway.retrieve_payment_intent(order.payment_intent_id)
        applied = apply_payment_intent(session, order.id, intent, source="cancel")
        settle_refund_due(session, gateway, applied, source="cancel")
