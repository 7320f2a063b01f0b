"""The checkout use cases that talk to the payment provider: place an online order, confirm it paid,
cancel it (refunding or canceling its payment). They sit above `orders/` and call it; no transaction is
ever open while the provider answers.
"""
from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from orders_service.auth.actor import Actor
from orders_service.errors import Conflict, InvalidRequest, NotFound, PaymentProviderError, ProviderBusy
from orders_service.money import STRIPE_MAXIMUM_CHARGE, Currency
from orders_service.orders import actions, idempotency
from orders_service.orders.events import OrderEvents
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus
from orders_service.orders.service import get_order, load_order, place_order
from orders_service.payments.apply import CLOSED, apply_payment_intent
from orders_service.payments.gateway import (
    PaymentGateway,
    PaymentGatewayError,
    PaymentIntentStatus,
    PaymentProviderBusy,
    PaymentRefused,
)
from orders_service.payments.refunds import refund_what_is_left
from orders_service.payments.settlement import settle_closed_order

log = logging.getLogger(__name__)
BUSY = "The payment provider is busy; try again shortly"


def place_online_order(
    session: Session, gateway: PaymentGateway, actor: Actor, data: dict, cur: Currency,
    idempotency_key: str | None = None,
) -> Order:
    """Place an order (stock reserved and committed first), then open its PaymentIntent."""
    placed = place_order(session, actor, data, PaymentMethod.ONLINE, cur, idempotency_key, idempotency_scope="online",
                         total_limits=(cur.minimum_charge, STRIPE_MAXIMUM_CHARGE))
    if placed.replayed:
        if placed.order.status != OrderStatus.PENDING:  # its client secret must not be handed out again
            raise Conflict(f"The order of this Idempotency-Key is {placed.order.status}")
        if placed.order.client_secret is None:
            raise Conflict("The first request with this Idempotency-Key is still being processed; retry shortly")
        return placed.order
    start_payment(session, gateway, placed.order)
    return placed.order


def start_payment(session: Session, gateway: PaymentGateway, order: Order) -> str:
    """Create the order's PaymentIntent (no transaction open during the call) and store it; the client secret.

    An order canceled while the PaymentIntent was being created gets no client secret: its
    PaymentIntent is canceled instead.
    """
    try:
        intent = gateway.create_payment_intent(str(order.id), order.total_cents, order.currency)
    except PaymentProviderBusy as exc:
        _abandon_unstarted_payment(session, order.id, str(exc), surely_unopened=True)
        raise ProviderBusy(BUSY, exc.retry_after) from None
    except PaymentRefused as exc:
        _abandon_unstarted_payment(session, order.id, str(exc), surely_unopened=True)
        if exc.code == "amount_too_small":  # a currency whose minimum only Stripe knows
            raise InvalidRequest(f"The order total is below the smallest online payment: {exc}") from None
        raise PaymentProviderError(f"Failed to initialize payment: {exc}") from None
    except PaymentGatewayError as exc:
        _abandon_unstarted_payment(session, order.id, str(exc), surely_unopened=False)
        raise PaymentProviderError(f"Failed to initialize payment: {exc}") from None
    with session.begin():
        locked = actions.lock_order(session, order.id)
        actions.record_payment_intent(session, locked, intent.id, intent.client_secret)
        still_pending = locked.status == OrderStatus.PENDING
    if not still_pending:
        settle_closed_order(session, gateway, order.id, source="checkout")
        raise Conflict("The order was canceled while its payment was being set up")
    order.payment_intent_id, order.client_secret = intent.id, intent.client_secret
    return intent.client_secret


def _abandon_unstarted_payment(session: Session, order_id: uuid.UUID, reason: str, surely_unopened: bool) -> None:
    """The PaymentIntent could not be created: close the order and give its stock back, once."""
    with session.begin():
        order = actions.lock_order(session, order_id)
        if order.status != OrderStatus.PENDING or order.payment_intent_id is not None:
            return
        actions.abandon_unstarted_payment(session, order, reason, surely_unopened)
        # A failed start is not a response to replay: the same Idempotency-Key may try again.
        idempotency.forget_order(session, order.id)


def confirm_paid(session: Session, gateway: PaymentGateway, actor: Actor, order_id: uuid.UUID) -> str:
    """`PATCH …/paid`: ask the provider, never the client, whether the order is paid.

    `paid` (`authorized` when the card is only held, PAYMENT_CAPTURE=on_shipment), or `processing` when the
    provider accepted the payment and confirms it later (a bank debit): the order then waits, with its stock,
    for the provider's outcome (webhook or reconciliation).
    """
    order = get_order(session, actor, order_id)
    if order.payment_method != PaymentMethod.ONLINE:
        raise InvalidRequest("Cash-on-delivery orders are paid on delivery, not online")
    if order.payment_status in PaymentStatus.RECEIVED or order.payment_status == PaymentStatus.AUTHORIZED:
        raise InvalidRequest("Order has already been marked as paid")
    if order.status in CLOSED and order.payment_closed_at is not None:  # canceled at Stripe, or refunded
        raise InvalidRequest(f"Order is {order.status}: it can no longer be paid")
    if order.payment_intent_id is None:
        raise Conflict("Payment for this order has not been initialized")
    try:
        intent = gateway.retrieve_payment_intent(order.payment_intent_id)
    except PaymentProviderBusy as exc:
        raise ProviderBusy(f"{BUSY}; the webhook confirms the order meanwhile", exc.retry_after) from None
    except PaymentGatewayError as exc:
        raise PaymentProviderError(f"Failed to verify payment: {exc}") from None

    applied = apply_payment_intent(session, order.id, intent, source="paid_endpoint")
    if {OrderEvents.PAYMENT_SUCCEEDED, OrderEvents.LATE_PAYMENT_REVIVED} & set(applied.events):
        return PaymentStatus.PAID
    if OrderEvents.PAYMENT_AUTHORIZED in applied.events:  # PAYMENT_CAPTURE=on_shipment: held, captured at shipment
        return PaymentStatus.AUTHORIZED
    if intent.status == PaymentIntentStatus.PROCESSING and applied.order.payment_status == PaymentStatus.PROCESSING:
        return PaymentStatus.PROCESSING
    if applied.refund_due:
        refund_what_is_left(session, gateway, order.id, source="paid_endpoint")
        raise InvalidRequest(f"Order is {applied.order.status}: the payment is being refunded")
    if applied.order.payment_status in (*PaymentStatus.RECEIVED, PaymentStatus.AUTHORIZED):
        raise InvalidRequest("Order has already been marked as paid")
    if intent.status not in (PaymentIntentStatus.SUCCEEDED, PaymentIntentStatus.REQUIRES_CAPTURE):
        suffix = f" ({intent.failure})" if intent.failure else ""
        raise InvalidRequest(f"Payment has not succeeded: the PaymentIntent is {intent.status}{suffix}")
    raise InvalidRequest(f"Payment cannot be applied: {applied.reason}")


def cancel_order(session: Session, gateway: PaymentGateway, actor: Actor, order_id: uuid.UUID) -> Order:
    """Cancel before shipping: release the stock once; refund a paid order, cancel an unpaid PaymentIntent.

    The status change and the stock release commit first, under the order's row lock, so that of two
    concurrent cancels exactly one wins. The provider is called afterwards, with no lock held; whatever
    it does not finish now, reconciliation finishes (a closed order's payment stays open until it ends).
    """
    with session.begin():
        order = actions.lock_order(session, order_id)
        if not actor.may_see(order.customer_id):
            raise NotFound("Order not found")  # someone else's order is as good as unknown
        actions.cancel(session, order, by=actor.role)
    if order.payment_method == PaymentMethod.ONLINE and order.payment_intent_id is not None:
        settle_closed_order(session, gateway, order.id, source="cancel")
    with session.begin():
        return load_order(session, order.id)
