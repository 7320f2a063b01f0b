"""Paying by card in a browser while the Stripe emulator stands in for Stripe.

localstripe's Stripe.js cannot confirm a PaymentIntent with card data. Its page saves the card with a
SetupIntent instead (`confirmCardSetup`), the service confirms the order's PaymentIntent with that
card, and a 3-D Secure card then asks the page for `confirmCardPayment`. With Stripe's own API none
of this is served: the page pays with Stripe's Payment Element (`stripe.confirmPayment`) itself.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from orders_service.auth.actor import Actor
from orders_service.emulator.gateway import LocalStripeGateway
from orders_service.errors import Conflict, InvalidRequest, PaymentProviderError, ProviderBusy
from orders_service.orders import actions
from orders_service.orders.events import OrderEvents
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus
from orders_service.orders.service import get_order
from orders_service.payments.apply import apply_payment_intent
from orders_service.payments.checkout import BUSY
from orders_service.payments.gateway import (
    PaymentGatewayError,
    PaymentIntent,
    PaymentIntentStatus,
    PaymentProviderBusy,
    PaymentRefused,
)

log = logging.getLogger(__name__)
SOURCE = "emulator_checkout"


@dataclass(frozen=True)
class CardPayment:
    """Where the attempt stands: `succeeded` (the page confirms with `PATCH …/paid`), `requires_action`
    (3-D Secure: the page calls `confirmCardPayment(clientSecret)`), or declined with `error`."""

    order_id: uuid.UUID
    status: str
    client_secret: str | None
    error: str | None = None


def _provider(call, *args):
    try:
        return call(*args)
    except PaymentProviderBusy as exc:
        raise ProviderBusy(BUSY, exc.retry_after) from None
    except PaymentGatewayError as exc:
        raise PaymentProviderError(f"Failed to confirm payment: {exc}") from None


def start_card_setup(gateway: LocalStripeGateway) -> str:
    """A SetupIntent's client secret, for the page to save the customer's card with."""
    return _provider(gateway.create_setup_intent)


def pay_with_saved_card(session: Session, gateway: LocalStripeGateway, actor: Actor, order_id: uuid.UUID,
                        payment_method_id: str) -> CardPayment:
    """Charge the order's PaymentIntent with a card the page saved; a declined customer may call it again."""
    order = get_order(session, actor, order_id)
    if order.payment_method != PaymentMethod.ONLINE:
        raise InvalidRequest("Cash-on-delivery orders are paid on delivery, not online")
    if order.payment_status in PaymentStatus.RECEIVED:
        raise InvalidRequest("Order has already been marked as paid")
    if order.status != OrderStatus.PENDING:
        raise InvalidRequest(f"Order is {order.status}: it can no longer be paid")
    if order.payment_intent_id is None:
        raise Conflict("Payment for this order has not been initialized")
    intent = _provider(gateway.retrieve_payment_intent, order.payment_intent_id)
    if intent.status == PaymentIntentStatus.SUCCEEDED:
        return CardPayment(order.id, intent.status, order.client_secret)
    if intent.failure or intent.status == PaymentIntentStatus.REQUIRES_ACTION:
        # An earlier attempt was declined (localstripe never charges such a PaymentIntent again) or
        # left waiting for 3-D Secure: this attempt gets a PaymentIntent of its own.
        intent = _replace_payment_intent(session, gateway, order, intent)
    elif intent.status not in (PaymentIntentStatus.REQUIRES_PAYMENT_METHOD, "requires_confirmation"):
        raise Conflict(f"The payment is {intent.status}; wait for it to finish")
    try:
        confirmed = gateway.confirm_with_payment_method(intent.id, payment_method_id)
    except PaymentRefused as exc:
        declined = _provider(gateway.retrieve_payment_intent, intent.id)
        if not declined.failure:  # refused before any charge (an unknown card …): nothing was attempted
            raise InvalidRequest(f"The card could not be used: {exc}") from None
        # declined: the PaymentIntent says why, and the order records it
        apply_payment_intent(session, order.id, declined, source=SOURCE)
        return CardPayment(order.id, declined.status, intent.client_secret, declined.failure)
    except PaymentProviderBusy as exc:
        raise ProviderBusy(BUSY, exc.retry_after) from None
    except PaymentGatewayError as exc:
        raise PaymentProviderError(f"Failed to confirm payment: {exc}") from None
    return CardPayment(order.id, confirmed.status, intent.client_secret, confirmed.failure)


def _replace_payment_intent(session: Session, gateway: LocalStripeGateway, order: Order,
                            old: PaymentIntent) -> PaymentIntent:
    """Open the next attempt's PaymentIntent, make it the order's, then cancel the old one.

    In that order: once the order names the new one, the old one's `payment_intent.canceled` event no
    longer belongs to the order and cannot close it.
    """
    attempt = 1 + sum(1 for e in order.events if e.type == OrderEvents.PAYMENT_INTENT_REPLACED)
    new = _provider(gateway.create_payment_intent, str(order.id), order.total_cents, order.currency, attempt)
    with session.begin():
        locked = actions.lock_order(session, order.id)
        superseded = locked.payment_intent_id != old.id  # another tab got there first
        if not superseded:
            actions.replace_payment_intent(session, locked, new.id, new.client_secret)
    stale = new if superseded else old
    try:
        gateway.cancel_payment_intent(stale.id)
    except PaymentGatewayError as exc:  # a declined or unused PaymentIntent holds no money
        log.warning("could not cancel replaced payment intent %s: %s", stale.id, exc)
    if superseded:
        raise Conflict("The order is being paid in another window; reload it")
    return new
