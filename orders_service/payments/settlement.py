"""Money never stuck: every PaymentIntent the service opened ends applied to a live order, canceled at
the provider, or refunded. These make it so for one order; reconciliation runs them until it is."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from orders_service.db import as_utc, utcnow
from orders_service.orders import actions
from orders_service.orders.models import Order, OrderStatus, PaymentStatus
from orders_service.payments.apply import CLOSED, apply_payment_intent
from orders_service.payments.gateway import PaymentGateway, PaymentGatewayError, PaymentIntentStatus, PaymentRefused
from orders_service.payments.refunds import refund_what_is_left

log = logging.getLogger(__name__)
# A closed order for which the provider has no PaymentIntent this long after it was placed never had one:
# its create (and every retry of it) is long over, and the provider's list has no lag.
NEVER_OPENED_AFTER = timedelta(minutes=10)


def recover_payment_intent(session: Session, gateway: PaymentGateway, order_id: uuid.UUID) -> str | None:
    """Find the PaymentIntent of an order whose create answer was lost, by the order id its metadata carries,
    and store it; its id, or None when the provider has none. Raises PaymentGatewayError when the provider
    cannot be asked now (the next run asks again).

    Not by repeating the create with its idempotency key: the provider keeps keys for 24 hours, refuses a
    repeat whose parameters differ (a deploy may change them), and after that would open a second
    PaymentIntent while the first, perhaps paid, stayed unknown.
    """
    with session.begin():
        order = session.get(Order, order_id, populate_existing=True)
        if order.payment_intent_id is not None:
            return order.payment_intent_id
        placed_at = as_utc(order.created_at)
    intent = gateway.find_payment_intent(str(order_id), placed_at)
    if intent is None:
        return None
    with session.begin():
        order = actions.lock_order(session, order_id)
        if order.payment_intent_id is None:
            actions.record_payment_intent(session, order, intent.id, intent.client_secret)
        return order.payment_intent_id


def settle_closed_order(session: Session, gateway: PaymentGateway, order_id: uuid.UUID, source: str) -> None:
    """A closed order's payment must end: cancel its open PaymentIntent, or refund what it holds.

    Safe to repeat, and cheap: one provider call when the PaymentIntent can simply be canceled.
    """
    with session.begin():
        order = session.get(Order, order_id, populate_existing=True)
        if order.status not in CLOSED or order.payment_closed_at is not None:
            return
        pi_id, held, placed_at = order.payment_intent_id, order.payment_status in PaymentStatus.HELD, order.created_at
    if pi_id is None:
        pi_id = recover_payment_intent(session, gateway, order_id)
        if pi_id is None:
            if utcnow() - as_utc(placed_at) >= NEVER_OPENED_AFTER:  # the provider has none, and will have none
                _closed(session, order_id, None, "never opened")
            return
    if held:
        refund_what_is_left(session, gateway, order_id, source)
        return
    try:
        gateway.cancel_payment_intent(pi_id)
    except PaymentRefused:
        # Not cancelable: already canceled, or paid a moment ago. Then what it says decides.
        try:
            intent = gateway.retrieve_payment_intent(pi_id)
        except PaymentGatewayError:
            return
        applied = apply_payment_intent(session, order_id, intent, source)
        if applied.refund_due:
            refund_what_is_left(session, gateway, order_id, source)
        elif intent.status == PaymentIntentStatus.CANCELED:
            _closed(session, order_id, pi_id, "already canceled")
        return
    except PaymentGatewayError:
        log.warning("PaymentIntent of closed order %s not canceled yet; reconciliation asks again", order_id,
                    exc_info=True)
        return
    _closed(session, order_id, pi_id, "canceled")


def _closed(session: Session, order_id: uuid.UUID, pi_id: str, how: str) -> None:
    with session.begin():
        order = actions.lock_order(session, order_id)
        if order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            actions.record_payment_closed(session, order, pi_id, how)
