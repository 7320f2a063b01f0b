"""Every change to an order, one function each: its status, its stock, its trail and its email, together.

Each action runs inside the caller's transaction, on an order the caller holds locked
(`lock_order`), and asks the state machine before it moves anything; a move the machine forbids
raises before anything is written. This module is the only code that writes an order's trail, queues
a message to its customer or reports an event to other systems (`_publish`), so a change can never
happen with one of its parts missing.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from orders_service.auth.models import Role
from orders_service.db import as_utc, utcnow
from orders_service.errors import DomainError, InvalidRequest, NotFound
from orders_service.notifications.outbox import notify
from orders_service.orders.events import CustomerMessages, OrderEvents
from orders_service.orders.lifecycle import allowed, transition
from orders_service.orders.messages import customer_message
from orders_service.orders.models import Order, OrderEvent, OrderStatus, PaymentMethod, PaymentStatus
from orders_service.orders.representation import order_document
from orders_service.orders.stock import StockLine, release_stock, reserve_stock
from orders_service.webhooks.events import EventTypes, record_order_events


def lock_order(session: Session, order_id: uuid.UUID) -> Order:
    """The order, row-locked until the caller's transaction ends, with fresh attributes; 404 if unknown."""
    order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        raise NotFound("Order not found")
    return order


# --- the parts of a change (private: callers use the actions below) ----------------------------------

_APPEND_EVENT = insert(OrderEvent.__table__)  # built once: Core skips the ORM's per-call statement work


def _record(session: Session, order: Order, event_type: str, **detail) -> dict:
    row = dict(order_id=order.id, type=event_type, at=utcnow(), detail=detail)
    session.execute(_APPEND_EVENT, row)
    return row


def _publish(session: Session, order: Order, *types: str, placed: dict | None = None,
             items: list[dict] | None = None) -> None:
    """Report the change to other systems: an outbound event per type (`EventTypes`), recorded in the
    change's transaction with the order as the change left it — so an action calls it last.

    `placed` is a new order's one trail entry and `items` its lines' rows (all known: nothing is read
    back; its count starts at 1); any other order's trail is read back, with what this transaction has
    written to it.
    """
    if placed is not None:
        trail = [placed]
    else:
        trail = session.execute(select(OrderEvent.type, OrderEvent.at, OrderEvent.detail)
                                .where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)).all()
    record_order_events(session, order.id, types, order_document(order, trail, items), first=placed is not None)


def _tell(session: Session, order: Order, kind: str) -> None:
    subject, body = customer_message(order, kind)
    notify(session, order.id, order.customer_id, kind, subject, body)


def _stock_lines(order: Order) -> list[StockLine]:
    return [StockLine(i.product_id, i.variant_id, i.name, i.quantity) for i in order.items]


def _close(session: Session, order: Order) -> None:
    """Cancel the order and give its stock back; the state machine allows each order to close once."""
    order.status = transition(order, "cancel")
    _drop_pending_step(order)
    release_stock(session, _stock_lines(order))


def _drop_pending_step(order: Order) -> None:
    """A closed order waits on no step of its customer and holds nothing on a card: nothing was taken, its
    payment is unpaid (an authorization's hold is released by canceling its PaymentIntent: the caller's)."""
    if order.payment_status in (PaymentStatus.ACTION_REQUIRED, PaymentStatus.AUTHORIZED):
        order.payment_status = PaymentStatus.UNPAID
    order.payment_next_action = None
    order.capture_before = order.capture_claimed_until = order.capture_claim_token = None


# A cancel or a ship meeting a capture under way: a 400, as any state that forbids it for now.
BEING_CAPTURED = "The payment of this order is being captured right now; try again in a moment"


def capture_claimed(order: Order) -> bool:
    """A ship or the capture job is asking the provider to capture the order's payment right now."""
    until = order.capture_claimed_until
    return until is not None and as_utc(until) > utcnow()


def _mark_paid(order: Order) -> None:
    order.payment_status, order.paid_at = PaymentStatus.PAID, utcnow()
    order.payment_next_action = None


# --- placing ----------------------------------------------------------------------------------------

def record_placed(session: Session, order: Order, items: list[dict] | None = None) -> None:
    """A new order's first trail event; a cash-on-delivery order is confirmed at once and says so.

    `place_order` has inserted it (and its lines, `items`: their rows), and takes its stock, in the same
    transaction.
    """
    placed = _record(session, order, OrderEvents.PLACED, paymentMethod=order.payment_method)
    if order.payment_method == PaymentMethod.CASH_ON_DELIVERY:
        _tell(session, order, CustomerMessages.ORDER_CONFIRMED)
    _publish(session, order, EventTypes.ORDER_CREATED, placed=placed, items=items)


# --- the customer or an admin -----------------------------------------------------------------------

def cancel(session: Session, order: Order, by: str) -> None:
    """Cancel before shipping: the stock goes back. Undoing an online payment is the caller's (payments).

    Cash on delivery already collected is for an admin to cancel: the shop hands the cash back, and the
    trail says how much (the order is then `refunded` for the whole of it).
    """
    cash_collected = (order.payment_method == PaymentMethod.CASH_ON_DELIVERY
                      and order.payment_status == PaymentStatus.PAID)
    if cash_collected and by != Role.ADMIN:
        raise InvalidRequest("The cash for this order was collected: only the shop can cancel it now")
    if order.payment_status == PaymentStatus.AUTHORIZED and capture_claimed(order):
        raise InvalidRequest(BEING_CAPTURED)
    held = order.payment_status == PaymentStatus.AUTHORIZED
    _close(session, order)
    _record(session, order, OrderEvents.CANCELED, by=by, **({"holdReleased": True} if held else {}))
    if cash_collected:
        order.payment_status, order.refunded_cents = PaymentStatus.REFUNDED, order.total_cents
        _record(session, order, OrderEvents.CASH_TO_HAND_BACK, amount=order.total_cents)
    _tell(session, order, CustomerMessages.CANCELED)
    _publish(session, order, EventTypes.CANCELED, *([EventTypes.REFUNDED] if cash_collected else []))


def ship(session: Session, order: Order, tracking_number: str, carrier: str | None) -> None:
    order.status = transition(order, "ship")
    order.tracking_number, order.carrier = tracking_number, carrier
    _record(session, order, OrderEvents.SHIPPED, trackingNumber=tracking_number, carrier=carrier)
    _tell(session, order, CustomerMessages.SHIPPED)
    _publish(session, order, EventTypes.SHIPPED)


def deliver(session: Session, order: Order) -> None:
    order.status = transition(order, "deliver")
    _record(session, order, OrderEvents.DELIVERED)
    _publish(session, order, EventTypes.DELIVERED)


def collect_cash(session: Session, order: Order) -> None:
    """Cash on delivery: the courier has the money; the status stays where it is."""
    order.status = transition(order, "collect_payment")
    _mark_paid(order)
    _record(session, order, OrderEvents.PAYMENT_COLLECTED, amount=order.total_cents)
    _publish(session, order, EventTypes.CASH_COLLECTED)


# --- the payment provider ---------------------------------------------------------------------------

def abandon_unstarted_payment(session: Session, order: Order, reason: str, surely_unopened: bool) -> None:
    """The PaymentIntent could not be opened: the order closes and its stock goes back.

    When the provider's answer was lost the PaymentIntent may exist all the same: the order's payment
    stays open until reconciliation has asked for it again and closed it.
    """
    _close(session, order)
    order.payment_status = PaymentStatus.FAILED
    if surely_unopened:
        order.payment_closed_at = utcnow()
    _record(session, order, OrderEvents.PAYMENT_INITIALIZATION_FAILED, error=reason)
    _publish(session, order, EventTypes.CANCELED)


def confirm_payment(session: Session, order: Order, payment_intent_id: str, amount: int, source: str) -> None:
    """The payment succeeded for a pending order: it is confirmed."""
    order.status = transition(order, "pay")
    _mark_paid(order)
    _record(session, order, OrderEvents.PAYMENT_SUCCEEDED, paymentIntentId=payment_intent_id, amount=amount,
            source=source)
    _tell(session, order, CustomerMessages.ORDER_CONFIRMED)
    _publish(session, order, EventTypes.PAID)


def authorize_payment(session: Session, order: Order, payment_intent_id: str, amount: int,
                      capture_before: datetime, source: str) -> None:
    """The card is held for a pending order (PAYMENT_CAPTURE=on_shipment): it is confirmed, and its payment
    is captured when it ships (or by the capture job before `capture_before`, when the hold lapses)."""
    order.status = transition(order, "authorize")
    order.payment_status, order.payment_next_action = PaymentStatus.AUTHORIZED, None
    order.capture_before = capture_before
    _record(session, order, OrderEvents.PAYMENT_AUTHORIZED, paymentIntentId=payment_intent_id, amount=amount,
            captureBefore=capture_before.isoformat(), source=source)
    _tell(session, order, CustomerMessages.ORDER_CONFIRMED)
    _publish(session, order, EventTypes.PAYMENT_AUTHORIZED)


def record_capture_deadline(session: Session, order: Order, capture_before: datetime) -> None:
    """The provider told when the hold lapses (an event's snapshot does not): not a change of state, no event."""
    order.capture_before = capture_before


def claim_capture(session: Session, order: Order, until: datetime, token: str) -> None:
    """The caller holding `token` asks the provider to capture the authorized payment; no other does until
    `until`."""
    order.capture_claimed_until, order.capture_claim_token = until, token


def release_capture_claim(session: Session, order: Order, token: str) -> None:
    """The capture was refused or unanswered: the order is as it was, and may be captured again. Only the claim
    `token` names is let go: a caller whose claim ran out meanwhile leaves a newer caller's alone."""
    if order.capture_claim_token == token:
        order.capture_claimed_until = order.capture_claim_token = None


def next_capture_attempt(session: Session, order: Order, attempt: int) -> None:
    """The provider refused capture request `attempt` and still holds the payment, uncaptured: it keeps that
    refusal under the request's idempotency key, so the next capture is a request of its own. Once per
    attempt, whoever sees it first."""
    if order.capture_attempt == attempt:
        order.capture_attempt = attempt + 1


def record_capture(session: Session, order: Order, payment_intent_id: str, amount: int, source: str) -> None:
    """The held payment was captured (at shipment, by the capture job, or seen captured at the provider): the
    order is paid now, and says so once (`order.paid`); its status stays where it is."""
    if order.payment_status != PaymentStatus.AUTHORIZED:
        raise InvalidRequest(f"Order's payment is {order.payment_status}: there is no authorization to capture")
    _mark_paid(order)
    order.capture_before = order.capture_claimed_until = order.capture_claim_token = None
    _record(session, order, OrderEvents.PAYMENT_CAPTURED, paymentIntentId=payment_intent_id, amount=amount,
            source=source)
    _publish(session, order, EventTypes.PAID)


def lapse_authorization(session: Session, order: Order, payment_intent_id: str, reason: str | None,
                        source: str) -> None:
    """The authorized order's PaymentIntent was canceled at the provider (the hold lapsed: `automatic`; or
    canceled there by a person): nothing can be captured, so the order is canceled, its stock goes back and
    its customer is told. The trail says which."""
    _close(session, order)
    order.payment_closed_at = utcnow()
    lapsed = reason in (None, "automatic")
    _record(session, order, OrderEvents.AUTHORIZATION_LAPSED if lapsed else OrderEvents.PAYMENT_CANCELED,
            paymentIntentId=payment_intent_id, cancellationReason=reason, source=source)
    _tell(session, order, CustomerMessages.AUTHORIZATION_LAPSED if lapsed else CustomerMessages.CANCELED)
    _publish(session, order, EventTypes.CANCELED)


def record_payment_failure(session: Session, order: Order, payment_intent_id: str, error: str, source: str) -> None:
    """The last attempt failed; the order stays pending and the customer may pay again until it expires.

    A payment the provider was processing that fails (a bank debit returned, days later) gives the
    customer a whole payment time again, counted from now; so does nothing else (declines of a card
    do not extend the hold on the stock).
    """
    if order.payment_status == PaymentStatus.PROCESSING:
        order.payable_since = utcnow()
    told = order.payment_status == PaymentStatus.FAILED  # a second decline in a row: one email is enough
    order.payment_status, order.payment_error, order.payment_next_action = PaymentStatus.FAILED, error, None
    _record(session, order, OrderEvents.PAYMENT_FAILED, paymentIntentId=payment_intent_id, error=error,
            source=source)
    if not told:
        _tell(session, order, CustomerMessages.PAYMENT_FAILED)
    _publish(session, order, EventTypes.PAYMENT_FAILED)


def record_action_required(session: Session, order: Order, payment_intent_id: str, next_action: dict | None,
                           source: str) -> None:
    """The customer must finish a step at the provider (3-D Secure, a bank's or wallet's page): no email,
    the customer is paying at this moment; the step is kept for them to resume after a reload."""
    order.payment_status, order.payment_next_action = PaymentStatus.ACTION_REQUIRED, next_action
    _record(session, order, OrderEvents.PAYMENT_ACTION_REQUIRED, paymentIntentId=payment_intent_id,
            nextAction=(next_action or {}).get("type"), source=source)
    _publish(session, order, EventTypes.PAYMENT_ACTION_REQUIRED)


def record_processing(session: Session, order: Order, payment_intent_id: str, source: str) -> None:
    """The provider accepted the payment and tells the outcome later (a bank debit: days). The order keeps
    its stock and does not expire meanwhile (`lifecycle.transition` refuses it, and a cancel)."""
    order.payment_status, order.payment_next_action = PaymentStatus.PROCESSING, None
    _record(session, order, OrderEvents.PAYMENT_PROCESSING, paymentIntentId=payment_intent_id,
            paymentMethodType=order.payment_method_type, source=source)
    _tell(session, order, CustomerMessages.PAYMENT_PROCESSING)
    _publish(session, order, EventTypes.PAYMENT_PROCESSING)


def record_payment_method_type(session: Session, order: Order, method_type: str | None) -> None:
    """The provider told the type of the method used (`card`, `sepa_debit`, …). Not a change of state: no event."""
    order.payment_method_type = method_type


def cancel_by_provider(session: Session, order: Order, payment_intent_id: str, source: str) -> None:
    """The PaymentIntent was canceled at the provider: the pending order closes with it.

    Nothing was taken: a payment the order still showed as under way (its failure may not have been
    heard of, events come in any order) is over, and unpaid.
    """
    if order.payment_status == PaymentStatus.PROCESSING:
        order.payment_status = PaymentStatus.UNPAID
    _close(session, order)
    order.payment_closed_at = utcnow()
    _record(session, order, OrderEvents.PAYMENT_CANCELED, paymentIntentId=payment_intent_id, source=source)
    _tell(session, order, CustomerMessages.CANCELED)
    _publish(session, order, EventTypes.CANCELED)


def record_refund(session: Session, order: Order, payment_intent_id: str, refunded_total: int, source: str) -> None:
    """The provider's running total of refunds grew to `refunded_total`: in part, or in full.

    A full refund of an order that had not shipped cancels it and releases its stock; the order's
    payment is then over at the provider. Only growth is recorded, so the same total seen again (a
    repeated event, a reconciliation run) changes nothing.
    """
    refunded_total = min(refunded_total, order.total_cents)  # a provider never refunds more than was paid
    refunded = refunded_total - order.refunded_cents
    if refunded <= 0:
        return
    if order.payment_status not in PaymentStatus.RECEIVED:  # refunded before the service saw it paid
        order.paid_at = utcnow()
    order.refunded_cents = refunded_total
    in_full = refunded_total >= order.total_cents
    order.payment_status = PaymentStatus.REFUNDED if in_full else PaymentStatus.PARTIALLY_REFUNDED
    closes = in_full and allowed(order.status, "cancel")
    if closes:
        _close(session, order)
    if in_full:
        order.payment_closed_at = order.payment_closed_at or utcnow()
    _record(session, order, OrderEvents.REFUNDED, paymentIntentId=payment_intent_id, amount=refunded,
            refundedAmount=refunded_total, source=source)
    _tell(session, order, CustomerMessages.REFUNDED if in_full else CustomerMessages.PARTIALLY_REFUNDED)
    _publish(session, order, EventTypes.REFUNDED, *([EventTypes.CANCELED] if closes else []))


def record_refund_failure(session: Session, order: Order, amount: int, error: str, source: str) -> None:
    """The provider refused a refund: nothing went back; the trail says why."""
    _record(session, order, OrderEvents.REFUND_FAILED, amount=amount, error=error, source=source)


def defer_refund(session: Session, order: Order, retry_at: datetime | None) -> None:
    """The provider refused the refund a closed order is due: the next try waits until `retry_at`; with
    none, the service stops trying and the order waits for a person (the trail says so)."""
    order.refund_failures += 1
    order.refund_retry_at = retry_at
    if retry_at is None:
        _record(session, order, OrderEvents.REFUND_NEEDS_ATTENTION, failures=order.refund_failures)


def record_payment_closed(session: Session, order: Order, payment_intent_id: str | None, how: str) -> None:
    """The closed order's PaymentIntent is over at the provider (canceled there, or never opened)."""
    if order.payment_closed_at is None:
        order.payment_closed_at = utcnow()
        _record(session, order, OrderEvents.PAYMENT_INTENT_CLOSED, paymentIntentId=payment_intent_id, how=how)


def revive(session: Session, order: Order, payment_intent_id: str, amount: int, source: str) -> bool:
    """A payment arrived after the order expired: confirm it if its stock can be taken again. False if not."""
    was = order.status
    try:
        with session.begin_nested():
            reserve_stock(session, _stock_lines(order))
    except DomainError:
        return False
    order.status = transition(order, "revive")
    _mark_paid(order)
    _record(session, order, OrderEvents.LATE_PAYMENT_REVIVED, paymentIntentId=payment_intent_id, amount=amount,
            was=was, source=source)
    _tell(session, order, CustomerMessages.ORDER_CONFIRMED)
    _publish(session, order, EventTypes.PAID)
    return True


def record_late_payment(session: Session, order: Order, payment_intent_id: str, amount: int, source: str) -> None:
    """Money arrived for an order that can no longer be fulfilled: it is paid, and a refund is due."""
    _mark_paid(order)
    _record(session, order, OrderEvents.LATE_PAYMENT_REFUND_DUE, paymentIntentId=payment_intent_id, amount=amount,
            was=order.status, source=source)
    _publish(session, order, EventTypes.PAID)


def expire(session: Session, order: Order, canceled_at_provider: bool, note: str | None = None) -> None:
    """Unpaid past its time: the order expires and its stock goes back (no email: nothing was paid)."""
    order.status = transition(order, "expire")
    _drop_pending_step(order)
    release_stock(session, _stock_lines(order))
    if canceled_at_provider:
        order.payment_closed_at = utcnow()
    detail = {"paymentIntentCanceled": canceled_at_provider}
    if note:
        detail["note"] = note
    _record(session, order, OrderEvents.EXPIRED, **detail)
    _publish(session, order, EventTypes.EXPIRED)


def flag_dispute(session: Session, order: Order, dispute_id: str | None, reason: str | None) -> bool:
    """A chargeback was opened: flag the order for a person to look at (once). False if already flagged."""
    if order.disputed_at is not None:
        return False
    order.disputed_at = utcnow()
    _record(session, order, OrderEvents.DISPUTE_OPENED, disputeId=dispute_id, reason=reason)
    _publish(session, order, EventTypes.DISPUTE_OPENED)
    return True


def record_payment_intent(session: Session, order: Order, payment_intent_id: str, client_secret: str | None) -> None:
    """The order's PaymentIntent was opened (or found again after its answer was lost)."""
    order.payment_intent_id = payment_intent_id
    if client_secret is not None and order.status == "pending":
        order.client_secret = client_secret


def replace_payment_intent(session: Session, order: Order, payment_intent_id: str, client_secret: str) -> None:
    """The pending order is paid through a new PaymentIntent from now on; the old one is for the caller to close.

    The Stripe emulator cannot charge a PaymentIntent again once a charge of it was declined, so a
    customer paying again there needs a new one. Events of the old one no longer belong to the order.
    """
    if order.status != OrderStatus.PENDING or order.payment_status in PaymentStatus.RECEIVED:
        raise InvalidRequest(f"Order is {order.status} and {order.payment_status}: it takes no new payment")
    replaced = order.payment_intent_id
    order.payment_intent_id, order.client_secret = payment_intent_id, client_secret
    _record(session, order, OrderEvents.PAYMENT_INTENT_REPLACED, paymentIntentId=payment_intent_id,
            replaced=replaced)


def record_webhook(session: Session, order: Order, event_id: str, event_type: str, outcome: str) -> None:
    """A provider event about the order was applied (or found to change nothing): the trail says so."""
    _record(session, order, OrderEvents.WEBHOOK_RECEIVED, eventId=event_id, eventType=event_type, outcome=outcome)
