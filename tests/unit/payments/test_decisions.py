"""The payment decision table: (order state, PaymentIntent) → the action it calls for, or none.

Every order status × payment status × PaymentIntent status × amount/currency match × belongs-or-not,
with the expected answer written out by hand from docs/api.md, "Orders" and "Stripe webhooks in" (paid only
for the exact amount and currency; forward only once the money arrived; a canceled order is never revived;
a refund at the provider is reflected; a step for the customer and a processing payment are shown; a
processing payment that fails is payable again). Changing any branch of `decide` fails a row here.
"""
import uuid
from dataclasses import replace

import pytest

from orders_service.orders.models import Order, PaymentMethod
from orders_service.payments.decisions import Action, decide, method_type_of, next_action_of
from orders_service.payments.gateway import NextAction, PaymentIntent

CONFIRM, REVIVE, LATE, REFUND, CANCEL, FAIL = (Action.CONFIRM, Action.REVIVE, Action.RECORD_LATE_PAYMENT,
                                                Action.RECORD_REFUND, Action.CANCEL, Action.RECORD_FAILURE)
ACT, PROC, TYPE = Action.RECORD_ACTION_REQUIRED, Action.RECORD_PROCESSING, Action.RECORD_METHOD_TYPE
AUTH, CAPT, LAPSE = Action.AUTHORIZE, Action.RECORD_CAPTURE, Action.LAPSE
__ = None  # nothing to change

STATUSES = ("pending", "confirmed", "shipped", "delivered", "expired", "canceled")
PAYMENTS = ("unpaid", "action_required", "processing", "failed", "paid", "partially_refunded", "refunded",
            "authorized")
TOTAL, CURRENCY = 45998, "USD"
# What the order shows as refunded so far, for each payment status.
REFUNDED_ON_ORDER = {"unpaid": 0, "action_required": 0, "processing": 0, "failed": 0, "paid": 0,
                     "partially_refunded": 500, "refunded": TOTAL, "authorized": 0}
DECLINE = "Your card was declined."
BANK_PAGE = "https://hooks.stripe.com/redirect/authenticate/src_1?client_secret=src_client_secret_1"
STEP = NextAction("redirect_to_url", BANK_PAGE)

# For each kind of PaymentIntent: one row per order status, one column per payment status
# (unpaid, action_required, processing, failed, paid, partially_refunded, refunded, authorized), when the
# PaymentIntent is the order's and its amount and currency match. An `action_required` order waits on
# the same step the intent shows; a `failed` one has recorded the same decline.
TABLE = {
    "succeeded": {               # the customer paid
        #             unpaid   action   process  failed   paid  part  refunded  authorized
        "pending":   (CONFIRM, CONFIRM, CONFIRM, CONFIRM, __,   __,   __, CAPT),
        "confirmed": (LATE,    LATE,    LATE,    LATE,    __,   __,   __, CAPT),
        "shipped":   (LATE,    LATE,    LATE,    LATE,    __,   __,   __, CAPT),
        "delivered": (LATE,    LATE,    LATE,    LATE,    __,   __,   __, CAPT),
        "expired":   (REVIVE,  REVIVE,  REVIVE,  REVIVE,  __,   __,   __, CAPT),   # fulfilled if the stock is left
        "canceled":  (LATE,    LATE,    LATE,    LATE,    __,   __,   __, CAPT),   # never revived: the money goes back
    },
    "partly_refunded": {         # succeeded, then 1000 of it refunded at the provider
        "pending":   (CONFIRM, CONFIRM, CONFIRM, CONFIRM, REFUND, REFUND, __, CAPT),   # first paid; the refund next
        "confirmed": (LATE,    LATE,    LATE,    LATE,    REFUND, REFUND, __, CAPT),
        "shipped":   (LATE,    LATE,    LATE,    LATE,    REFUND, REFUND, __, CAPT),
        "delivered": (LATE,    LATE,    LATE,    LATE,    REFUND, REFUND, __, CAPT),
        "expired":   (REVIVE,  REVIVE,  REVIVE,  REVIVE,  REFUND, REFUND, __, CAPT),
        "canceled":  (LATE,    LATE,    LATE,    LATE,    REFUND, REFUND, __, CAPT),
    },
    "refunded": {                # succeeded, then refunded in full at the provider
        "pending":   (REFUND, REFUND, REFUND, REFUND, REFUND, REFUND, __, REFUND),
        "confirmed": (REFUND, REFUND, REFUND, REFUND, REFUND, REFUND, __, REFUND),
        "shipped":   (REFUND, REFUND, REFUND, REFUND, REFUND, REFUND, __, REFUND),
        "delivered": (REFUND, REFUND, REFUND, REFUND, REFUND, REFUND, __, REFUND),
        "expired":   (REFUND, REFUND, REFUND, REFUND, REFUND, REFUND, __, REFUND),
        "canceled":  (REFUND, REFUND, REFUND, REFUND, REFUND, REFUND, __, REFUND),
    },
    "canceled": {                # the PaymentIntent was canceled at the provider
        "pending":   (CANCEL, CANCEL, CANCEL, CANCEL, CANCEL, CANCEL, CANCEL, CANCEL),
        "confirmed": (__, __, __, __, __, __, __, LAPSE),
        "shipped":   (__, __, __, __, __, __, __, __),
        "delivered": (__, __, __, __, __, __, __, __),
        "expired":   (__, __, __, __, __, __, __, __),
        "canceled":  (__, __, __, __, __, __, __, __),
    },
    "declined": {                # the last attempt failed (a card declined, a step failed, a bank debit
        "pending":   (FAIL, FAIL, FAIL, __, __, __, __, __),   # returned): the customer may pay again
        "confirmed": (__, __, __, __, __, __, __, __),
        "shipped":   (__, __, __, __, __, __, __, __),
        "delivered": (__, __, __, __, __, __, __, __),
        "expired":   (__, __, __, __, __, __, __, __),
        "canceled":  (__, __, __, __, __, __, __, __),
    },
    "requires_action": {         # an event: the customer must finish a step (3-D Secure, a bank's page)
        "pending":   (ACT, __, __, ACT, __, __, __, __),   # processing never goes back to a step: an older event
        "confirmed": (__, __, __, __, __, __, __, __),
        "shipped":   (__, __, __, __, __, __, __, __),
        "delivered": (__, __, __, __, __, __, __, __),
        "expired":   (__, __, __, __, __, __, __, __),
        "canceled":  (__, __, __, __, __, __, __, __),
    },
    "requires_action_read": {    # the same, read from the provider now: a processing attempt failed since
        "pending":   (ACT, __, ACT, ACT, __, __, __, __),
        "confirmed": (__, __, __, __, __, __, __, __),
        "shipped":   (__, __, __, __, __, __, __, __),
        "delivered": (__, __, __, __, __, __, __, __),
        "expired":   (__, __, __, __, __, __, __, __),
        "canceled":  (__, __, __, __, __, __, __, __),
    },
    "processing": {              # the provider accepted the payment and tells the outcome later
        "pending":   (PROC, PROC, __, PROC, __, __, __, __),
        "confirmed": (__, __, __, __, __, __, __, __),
        "shipped":   (__, __, __, __, __, __, __, __),
        "delivered": (__, __, __, __, __, __, __, __),
        "expired":   (__, __, __, __, __, __, __, __),
        "canceled":  (__, __, __, __, __, __, __, __),
    },
    "requires_capture": {        # the card is held (manual capture): authorized, captured at shipment
        "pending":   (AUTH, AUTH, AUTH, AUTH, __, __, __, __),   # already authorized: nothing new
        "confirmed": (__, __, __, __, __, __, __, __),
        "shipped":   (__, __, __, __, __, __, __, __),
        "delivered": (__, __, __, __, __, __, __, __),
        "expired":   (__, __, __, __, __, __, __, __),   # a closed order's hold is released, never captured
        "canceled":  (__, __, __, __, __, __, __, __),
    },
}
# PaymentIntents with nothing decided or tried ask for nothing, whatever the order.
IN_PROGRESS = ("requires_payment_method", "requires_confirmation")
REFUNDED_AT_PROVIDER = {"partly_refunded": 1000, "refunded": TOTAL}
_STATUS_OF = {"refunded": "succeeded", "partly_refunded": "succeeded", "declined": "requires_payment_method",
              "requires_action_read": "requires_action"}


def _intent(kind: str, order_id, pi_id="pi_1", amount=TOTAL, currency=CURRENCY, **changes) -> PaymentIntent:
    status = _STATUS_OF.get(kind, kind)
    return replace(PaymentIntent(id=pi_id, status=status, amount=amount, currency=currency, order_id=str(order_id),
                                 failure=DECLINE if kind == "declined" else None,
                                 amount_refunded=min(REFUNDED_AT_PROVIDER.get(kind, 0), amount),
                                 next_action=STEP if status == "requires_action" else None,
                                 amount_capturable=amount if status == "requires_capture" else 0,
                                 live=kind.endswith("_read")), **changes)


def _order(status, payment, pi_id="pi_1", method=PaymentMethod.ONLINE, **columns) -> Order:
    waiting = {"action_required": {"payment_next_action": {"type": "redirect_to_url", "redirectUrl": BANK_PAGE}},
               "failed": {"payment_error": DECLINE}}.get(payment, {})
    return Order(id=uuid.uuid4(), status=status, payment_status=payment, payment_method=method,
                 total_cents=TOTAL, currency=CURRENCY, payment_intent_id=pi_id,
                 refunded_cents=REFUNDED_ON_ORDER[payment], **{**waiting, **columns})


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
    if kind in ("succeeded", "partly_refunded", "refunded", "requires_capture"):
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
    ("declined", "pending", "paid", "payment is paid"),
    ("processing", "pending", "processing", "payment is processing"),
    ("processing", "expired", "unpaid", "order is expired"),
    ("processing", "pending", "paid", "payment is paid"),
    ("requires_action", "pending", "action_required", "payment is action_required"),
    ("requires_action", "pending", "processing", "payment is processing"),
    ("requires_action", "confirmed", "paid", "order is confirmed"),
])
def test_refusals_say_why(kind, status, payment, reason):
    order = _order(status, payment)
    assert decide(order, _intent(kind, order.id)).reason == reason


def test_another_step_than_the_one_the_order_shows_is_recorded():
    """The customer tried again (another bank, another card needing 3-D Secure): the step to resume changes."""
    order = _order("pending", "action_required")
    other = NextAction("redirect_to_url", "https://hooks.stripe.com/redirect/authenticate/src_2")
    assert decide(order, _intent("requires_action", order.id, next_action=other)).action == ACT
    assert decide(order, _intent("requires_action", order.id, next_action=NextAction("use_stripe_sdk"))).action == ACT


def test_another_decline_than_the_one_the_order_shows_is_recorded():
    """The last decline's message is what a customer resuming the payment reads: a new one replaces it."""
    order = _order("pending", "failed")
    assert decide(order, _intent("declined", order.id, failure="Your card has insufficient funds.")).action == FAIL
    assert decide(order, _intent("declined", order.id)).action is None


@pytest.mark.parametrize("next_action, kept", [
    (STEP, {"type": "redirect_to_url", "redirectUrl": BANK_PAGE}),
    (NextAction("use_stripe_sdk"), {"type": "use_stripe_sdk"}),   # Stripe.js finishes it with the client secret
    (None, None),
])
def test_the_step_is_kept_as_a_client_reads_it(next_action, kept):
    assert next_action_of(_intent("requires_action", "o", next_action=next_action)) == kept


# The type of the method used, when nothing else changes (a processing order read again, a paid order's
# refund event): (what the order shows, what the intent tells, read now?) → what the order shows after.
# A read is the payment as it is; a snapshot (a webhook's) only fills what the order does not know.
METHOD_TYPES = [
    (None, None, False, None),
    (None, None, True, None),
    (None, "sepa_debit", False, "sepa_debit"),
    (None, "sepa_debit", True, "sepa_debit"),
    ("card", "sepa_debit", False, "card"),        # an older event of a declined card attempt
    ("card", "sepa_debit", True, "sepa_debit"),   # the customer paid another way: the provider says so now
    ("sepa_debit", None, True, "sepa_debit"),     # an intent that does not tell changes nothing
    ("sepa_debit", "sepa_debit", True, "sepa_debit"),
]


@pytest.mark.parametrize("known, told, live, after", METHOD_TYPES)
@pytest.mark.parametrize("status, payment, kind", [("pending", "processing", "processing"),
                                                   ("confirmed", "paid", "succeeded"),
                                                   ("confirmed", "partially_refunded", "partly_refunded"),
                                                   ("canceled", "unpaid", "canceled")])
def test_the_type_of_the_method_used_is_recorded_when_it_is_news(known, told, live, after, status, payment, kind):
    order = _order(status, payment, payment_method_type=known)
    if kind == "partly_refunded":
        order.refunded_cents = 1000  # what the provider shows: no refund to record
    intent = _intent(kind, order.id, method_type=told, live=live)
    assert method_type_of(order, intent) == after
    decision = decide(order, intent)
    assert decision.action == (TYPE if after != known else None)
    assert bool(decision.reason) is (decision.action is None)


@pytest.mark.parametrize("kind", ["succeeded", "refunded"])
def test_a_payment_of_another_amount_tells_no_method_type_either(kind):
    order = _order("confirmed", "paid")
    decision = decide(order, _intent(kind, order.id, amount=TOTAL - 1, method_type="card", live=True))
    assert (decision.action, decision.reason) == (None, "amount or currency differs from the order")


def test_a_change_is_decided_before_the_type_of_the_method_used():
    """The change comes first; `apply_payment_intent` records the type with it (and asks again after)."""
    order = _order("pending", "unpaid")
    assert decide(order, _intent("processing", order.id, method_type="sepa_debit", live=True)).action == PROC


def test_an_authorization_records_the_deadline_the_provider_tells_once():
    """A snapshot (a webhook's) tells no deadline: the order keeps its estimate until a read tells the real one."""
    from datetime import datetime, timezone

    deadline = datetime(2026, 12, 14, 12, 0, tzinfo=timezone.utc)
    order = _order("confirmed", "authorized", capture_before=datetime(2026, 12, 15, tzinfo=timezone.utc))
    assert decide(order, _intent("requires_capture", order.id)).reason == "payment is authorized"
    told = _intent("requires_capture", order.id, capture_before=deadline, live=True)
    assert decide(order, told).action == Action.RECORD_CAPTURE_DEADLINE
    order.capture_before = deadline
    assert decide(order, told).action is None


def test_an_authorization_of_less_than_the_total_is_not_one():
    order = _order("pending", "unpaid")
    short = _intent("requires_capture", order.id, amount_capturable=TOTAL - 1)
    assert (decide(order, short).action, decide(order, short).reason) == (None, "amount or currency differs from the "
                                                                                 "order")


@pytest.mark.parametrize("reason", ["automatic", "requested_by_customer", None])
def test_a_canceled_authorization_closes_the_confirmed_order_whatever_the_reason(reason):
    """Nothing can be captured any more: lapsed (`automatic`), or canceled at Stripe by a person."""
    order = _order("confirmed", "authorized")
    assert decide(order, _intent("canceled", order.id, cancellation_reason=reason)).action == LAPSE


def test_a_hold_captured_in_part_is_paid_and_the_rest_refunded():
    """A person captured part of the hold in the Dashboard: the order is paid (the capture names what was taken),
    then the rest, released to the customer, is recorded as refunded; never paid in full."""
    order = _order("confirmed", "authorized")
    part = _intent("succeeded", order.id, amount_received=TOTAL - 1000)
    assert decide(order, part).action == CAPT
    order.payment_status = "paid"
    assert decide(order, part).action == REFUND
    order.payment_status, order.refunded_cents = "partially_refunded", 1000
    assert decide(order, part).action is None
    whole = _order("confirmed", "authorized")
    assert decide(whole, _intent("succeeded", whole.id, amount_received=TOTAL)).action == CAPT
