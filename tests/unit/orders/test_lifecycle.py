"""The order state machine on transient orders, no database. The expected answers are written out by
hand from docs/api.md ("The order"), not read from the table under test: a wrong entry in `TRANSITIONS` fails here."""
import pytest

from orders_service.errors import InvalidRequest
from orders_service.orders.lifecycle import ACTIONS, TRANSITIONS, allowed, transition
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus

P, C, S, D, E, X = "pending", "confirmed", "shipped", "delivered", "expired", "canceled"
COD, ONLINE = PaymentMethod.CASH_ON_DELIVERY, PaymentMethod.ONLINE
NO = None  # refused: 400, nothing changes

# docs/api.md, "The order": pending → confirmed (paid) → shipped → delivered; pending → expired (unpaid past the TTL);
# any state before shipped → canceled; an expired order whose late payment could take its stock again is
# revived; cash on delivery is collected from confirmed on and keeps the status; a card held (authorized)
# confirms a pending order like a payment.
EXPECTED = {
    #                   pending  confirmed shipped  delivered expired canceled
    "pay":             (C,       NO,       NO,      NO,       NO,     NO),
    "authorize":       (C,       NO,       NO,      NO,       NO,     NO),   # PAYMENT_CAPTURE=on_shipment
    "expire":          (E,       NO,       NO,      NO,       NO,     NO),
    "revive":          (NO,      NO,       NO,      NO,       C,      NO),
    "cancel":          (X,       X,        NO,      NO,       NO,     NO),
    "ship":            (NO,      S,        NO,      NO,       NO,     NO),
    "deliver":         (NO,      NO,       D,       NO,       NO,     NO),
    "collect_payment": (NO,      C,        S,       D,        NO,     NO),
}
STATUSES = (P, C, S, D, E, X)
CASES = [(status, action, row[i]) for action, row in EXPECTED.items() for i, status in enumerate(STATUSES)]


def _order(status, method=ONLINE, payment=PaymentStatus.UNPAID):
    return Order(status=status, payment_method=method, payment_status=payment)


def test_the_statuses_are_the_contracts():
    assert set(OrderStatus.ALL) == set(STATUSES)


def test_the_actions_are_the_ones_the_service_offers():
    assert set(ACTIONS) == set(EXPECTED)


@pytest.mark.parametrize("status, action, expected", CASES, ids=[f"{s}-{a}" for s, a, _ in CASES])
def test_every_status_and_action(status, action, expected):
    # collect_payment is for unpaid cash-on-delivery orders (checked below); every other action for online ones.
    order = _order(status, COD if action == "collect_payment" else ONLINE)
    assert allowed(status, action) is (expected is not NO)
    if expected is NO:
        with pytest.raises(InvalidRequest) as caught:
            transition(order, action)
        assert caught.value.status == 400 and caught.value.message
    else:
        assert transition(order, action) == expected
    assert order.status == status  # transition() only answers; actions set the status


def test_the_table_has_no_entry_the_contract_lacks():
    assert {(s, a): t for (s, a), t in TRANSITIONS.items()} == {
        (s, a): t for s, a, t in CASES if t is not NO}


@pytest.mark.parametrize("status, message", [
    (S, "Order has already shipped and can no longer be canceled"),
    (D, "Order has already been delivered and can no longer be canceled"),
    (X, "Order is already canceled"),
    (E, "Order has expired"),
])
def test_cancel_refusals_say_why(status, message):
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(status, COD, PaymentStatus.PAID), "cancel")
    assert caught.value.message == message


@pytest.mark.parametrize("status, action, message", [
    (P, "ship", "An order that is pending cannot be shipped"),
    (C, "pay", "An order that is confirmed cannot be paid"),
    (C, "expire", "An order that is confirmed cannot expire"),
    (X, "revive", "An order that is canceled cannot be revived"),
    (C, "deliver", "An order that is confirmed cannot be delivered"),
    (E, "collect_payment", "An order that is expired cannot have its cash collected"),
])
def test_other_refusals_name_the_action_and_the_status(status, action, message):
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(status, COD if action == "collect_payment" else ONLINE), action)
    assert caught.value.message == message


@pytest.mark.parametrize("status, method, payment", [
    (C, ONLINE, PaymentStatus.PAID),
    (C, ONLINE, PaymentStatus.UNPAID),
    (S, COD, PaymentStatus.PAID),
    (D, COD, PaymentStatus.REFUNDED),
    (C, COD, PaymentStatus.FAILED),
])
def test_collect_payment_only_for_an_unpaid_cash_on_delivery_order(status, method, payment):
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(status, method, payment), "collect_payment")
    assert caught.value.message == "Only an unpaid cash-on-delivery order can have its payment collected"


# The public API: a pending order whose payment the provider is processing keeps its stock and does not
# expire, and cancelling it answers 400 until the provider settles it; every other payment state of a
# pending online order may be canceled or expire. (status, payment) → allowed for cancel and expire.
PAYMENT_STATES = {
    #                  cancel  expire
    "unpaid":          (X,     E),
    "action_required": (X,     E),
    "processing":      (NO,    NO),
    "failed":          (X,     E),
}


@pytest.mark.parametrize("payment", sorted(PAYMENT_STATES))
@pytest.mark.parametrize("action", ["cancel", "expire"])
def test_a_pending_order_while_its_payment_is_processing(payment, action):
    expected = PAYMENT_STATES[payment][("cancel", "expire").index(action)]
    order = _order(P, ONLINE, payment)
    if expected is NO:
        with pytest.raises(InvalidRequest) as caught:
            transition(order, action)
        assert caught.value.status == 400
    else:
        assert transition(order, action) == expected


def test_cancelling_while_processing_says_when_it_can_be():
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(P, ONLINE, PaymentStatus.PROCESSING), "cancel")
    assert caught.value.message == ("The payment for this order is still being processed; the order can be "
                                    "canceled once the payment has gone through or failed")


@pytest.mark.parametrize("status", [C, S, D, E, X])
def test_other_refusals_come_first_whatever_the_payment(status):
    """A processing payment on an order that is not pending (a stale state) is refused for its status."""
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(status, ONLINE, PaymentStatus.PROCESSING), "expire")
    assert caught.value.message == f"An order that is {status} cannot expire"


def test_the_payment_statuses_are_the_contracts():
    assert set(PaymentStatus.ALL) == {"unpaid", "action_required", "processing", "authorized", "paid", "failed",
                                      "partially_refunded", "refunded"}


def test_an_authorized_order_ships_only_once_its_payment_is_captured():
    """The capture's path applies the capture (paid) before shipping: a ship that skipped it is refused."""
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(C, ONLINE, PaymentStatus.AUTHORIZED), "ship")
    assert "only authorized" in caught.value.message
    assert transition(_order(C, ONLINE, PaymentStatus.AUTHORIZED), "cancel") == X  # the hold is released
    assert transition(_order(C, ONLINE, PaymentStatus.PAID), "ship") == S
