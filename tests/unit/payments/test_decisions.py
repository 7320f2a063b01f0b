"""The payment decision table: (order state, PaymentIntent) → the action it calls for, or none.

Every order status × payment status × PaymentIntent status × amount/currency match × belongs-or-not,
with the expected answer written out by hand from docs/api.md, "Orders" and "Stripe webhooks in" (paid only
for the exact amount and currency; forward only; a canceled order is never revived; a refund at the provider
is reflected).
Changing any branch of `decide` fails a row here.
"""
import uuid

import pytest

from orders_service.orders.models import Order, PaymentMethod
from orders_service.payments.decisions import Action, decide
from orders_service.payments.gateway import PaymentIntent

CONFIRM, REVIVE, LATE, REFUND, CANCEL, FAIL = (Action.CONFIRM, Action.REVIVE, Action.RECORD_LATE_PAYMENT,
                                                Action.RECORD_REFUND, Action.CANCEL, Action.RECORD_FAILURE)
__ = None  # nothing to change

STATUSES = ("pending", "confirmed", "shipped", "delivered", "expired", "canceled")
PAYMENTS = ("unpaid", "failed", "paid", "partially_refunded", "refunded")
TOTAL, CURRENCY = 45998, "USD"
# What the order shows as refunded so far, for each payment status.
REFUNDED_ON_ORDER = {"unpaid": 0, "failed": 0, "paid": 0, "partially_refunded": 500, "refunded": TOTAL}

# For each kind of PaymentIntent: one row per order status, one column per payment status
# (unpaid, failed, paid, partially_refunded, refunded), when the PaymentIntent is the order's and its
# amount and currency match.
TABLE = {
    "succeeded": {               # the customer paid
        "pending":   (CONFIRM, CONFIRM, __, __, __),
        "confirmed": (LATE,    LATE,    __, __, __),
        "shipped":   (LATE,    LATE,    __, __, __),
        "delivered": (LATE,    LATE,    __, __, __),
        "expired":   (REVIVE,  REVIVE,  __, __, __),   # fulfilled if its stock is still there, else refunded
        "canceled":  (LATE,    LATE,    __, __, __),   # never revived: the money goes back
    },
    "partly_refunded": {         # succeeded, then 1000 of it refunded at the provider
        "pending":   (CONFIRM, CONFIRM, REFUND, REFUND, __),   # first paid; the refund is the next change
        "confirmed": (LATE,    LATE,    REFUND, REFUND, __),
        "shipped":   (LATE,    LATE,    REFUND, REFUND, __),
        "delivered": (LATE,    LATE,    REFUND, REFUND, __),
        "expired":   (REVIVE,  REVIVE,  REFUND, REFUND, __),
        "canceled":  (LATE,    LATE,    REFUND, REFUND, __),
    },
    "refunded": {                # succeeded, then refunded in full at the provider
        "pending":   (REFUND, REFUND, REFUND, REFUND, __),
        "confirmed": (REFUND, REFUND, REFUND, REFUND, __),
        "shipped":   (REFUND, REFUND, REFUND, REFUND, __),
        "delivered": (REFUND, REFUND, REFUND, REFUND, __),
        "expired":   (REFUND, REFUND, REFUND, REFUND, __),
        "canceled":  (REFUND, REFUND, REFUND, REFUND, __),
    },
    "canceled": {                # the PaymentIntent was canceled at the provider
        "pending":   (CANCEL, CANCEL, CANCEL, CANCEL, CANCEL),
        "confirmed": (__, __, __, __, __),
        "shipped":   (__, __, __, __, __),
        "delivered": (__, __, __, __, __),
        "expired":   (__, __, __, __, __),
        "canceled":  (__, __, __, __, __),
    },
    "declined": {                # the last attempt failed; the customer may try again
        "pending":   (FAIL, __, __, __, __),
        "confirmed": (__, __, __, __, __),
        "shipped":   (__, __, __, __, __),
        "delivered": (__, __, __, __, __),
        "expired":   (__, __, __, __, __),
        "canceled":  (__, __, __, __, __),
    },
}
# PaymentIntents on their way (nothing decided yet at the provider) ask for nothing, whatever the order.
IN_PROGRESS = ("requires_payment_method", "requires_confirmation", "requires_action", "processing",
               "requires_capture")
REFUNDED_AT_PROVIDER = {"partly_refunded": 1000, "refunded": TOTAL}


def _intent(kind: str, order_id, pi_id="pi_1", amount=TOTAL, currency=CURRENCY) -> PaymentIntent:
    status = {"refunded": "succeeded", "partly_refunded": "succeeded", "declined": "requires_payment_method"}.get(
        kind, kind)
    return PaymentIntent(id=pi_id, status=status, amount=amount, currency=currency, order_id=str(order_id),
                         failure="Your card was declined." if kind == "declined" else None,
                         amount_refunded=min(REFUNDED_AT_PROVIDER.get(kind, 0), amount))


def _order(status, payment, pi_id="pi_1", method=PaymentMethod.ONLINE) -> Order:
    return Order(id=uuid.uuid4(), status=status, payment_status=payment, payment_method=method,
                 total_cents=TOTAL, currency=CURRENCY, payment_intent_id=pi_id,
                 refunded_cents=REFUNDED_ON_ORDER[payment])


CASES = [(kind, status, payment, TABLE[kind][status][i])
         for kind in TABLE for status in STATUSES for i, payment in enumerate(PAYMENTS)]


@pytest.mark.parametrize("kind, status, payment, expected", CASES,
                         ids=[f"{k}-{s}-{p}" for k, s, p, _ in CASES])
def test_the_decision_table(kind, status, payment, expected):
    order = _order(status, payment)
    decision = decide(order, _intent(kind, order.id))
    assert decision.action == expected
    assert bool(decision.reason) is (expected is None)  # a refusal always says why, an action needs no reason


@pytest.mark.parametrize("kind", list(TABLE))
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("payment", PAYMENTS)
@pytest.mark.parametrize("mismatch", ["amount", "currency"])
def test_a_payment_of_another_amount_or_currency_is_never_applied(kind, status, payment, mismatch):
    """Only a success (or its refund) moves money; a canceled or declined intent means the same at any amount."""
    order = _order(status, payment)
    wrong = {"amount": TOTAL - 1} if mismatch == "amount" else {"currency": "EUR"}
    decision = decide(order, _intent(kind, order.id, **wrong))
    if kind in ("succeeded", "partly_refunded", "refunded"):
        assert (decision.action, decision.reason) == (None, "amount or currency differs from the order")
    else:
        assert decision.action == TABLE[kind][status][PAYMENTS.index(payment)]


@pytest.mark.parametrize("kind", [*TABLE, *IN_PROGRESS])
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("payment", PAYMENTS)
@pytest.mark.parametrize("stranger", ["metadata names another order", "the order opened another intent",
                                      "a cash-on-delivery order"])
def test_a_payment_intent_that_is_not_the_orders_own_changes_nothing(kind, status, payment, stranger):
    order = _order(status, payment, method=PaymentMethod.CASH_ON_DELIVERY if "cash" in stranger
                   else PaymentMethod.ONLINE)
    intent = _intent(kind, uuid.uuid4() if "metadata" in stranger else order.id,
                     pi_id="pi_other" if "another intent" in stranger else "pi_1")
    decision = decide(order, intent)
    assert decision.action is None
    assert decision.reason == ("not an online order" if "cash" in stranger
                               else "payment intent belongs to another order")


@pytest.mark.parametrize("kind", IN_PROGRESS)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("payment", PAYMENTS)
def test_a_payment_intent_still_in_progress_asks_for_nothing(kind, status, payment):
    order = _order(status, payment)
    decision = decide(order, _intent(kind, order.id))
    assert (decision.action, decision.reason) == (None, f"payment intent is {kind}")


def test_a_view_of_the_orders_own_intent_without_metadata_is_the_orders():
    """A refunded Charge names its PaymentIntent by id and may carry no metadata (Stripe's charge.refunded)."""
    order = _order("confirmed", "paid")
    intent = _intent("refunded", order.id)
    assert decide(order, PaymentIntent(**{**intent.__dict__, "order_id": None})).action == REFUND
    stranger = _order("confirmed", "paid", pi_id=None)  # an order that never stored a PaymentIntent
    assert decide(stranger, PaymentIntent(**{**intent.__dict__, "order_id": None})).action is None


def test_an_order_that_does_not_know_its_intent_yet_accepts_the_one_naming_it():
    """The create answer may be stored after the first event arrives: metadata is enough then."""
    order = _order("pending", "unpaid", pi_id=None)
    assert decide(order, _intent("succeeded", order.id, pi_id="pi_new")).action == CONFIRM


@pytest.mark.parametrize("kind, status, payment, reason", [
    ("succeeded", "pending", "paid", "already paid"),
    ("succeeded", "confirmed", "partially_refunded", "already paid"),
    ("succeeded", "confirmed", "refunded", "already refunded"),
    ("refunded", "canceled", "refunded", "already refunded"),
    ("canceled", "shipped", "paid", "order is shipped"),
    ("canceled", "expired", "unpaid", "order is expired"),
    ("declined", "pending", "failed", "payment is failed"),
    ("declined", "canceled", "unpaid", "order is canceled"),
])
def test_refusals_say_why(kind, status, payment, reason):
    order = _order(status, payment)
    assert decide(order, _intent(kind, order.id)).reason == reason
