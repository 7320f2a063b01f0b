"""The order state machine (CONTRACT §5) on transient orders: no database."""
import pytest

from orders_service.errors import InvalidRequest
from orders_service.orders.lifecycle import ACTIONS, TRANSITIONS, allowed, transition
from orders_service.orders.models import Order, OrderStatus, PaymentMethod, PaymentStatus

TERMINAL = (OrderStatus.DELIVERED, OrderStatus.EXPIRED, OrderStatus.CANCELED)
COD, ONLINE = PaymentMethod.CASH_ON_DELIVERY, PaymentMethod.ONLINE


def _order(status, method=ONLINE, payment=PaymentStatus.UNPAID):
    return Order(status=status, payment_method=method, payment_status=payment)


def test_every_transition_is_between_known_states():
    for (source, _action), target in TRANSITIONS.items():
        assert source in OrderStatus.ALL and target in OrderStatus.ALL


def test_no_transition_leaves_a_terminal_state_except_reviving_an_expired_order():
    leaving = {(s, a): t for (s, a), t in TRANSITIONS.items() if s in TERMINAL and t != s}
    assert leaving == {(OrderStatus.EXPIRED, "revive"): OrderStatus.CONFIRMED}


def test_nothing_returns_to_pending():
    assert OrderStatus.PENDING not in TRANSITIONS.values()


@pytest.mark.parametrize("status, can_cancel", [
    (OrderStatus.PENDING, True), (OrderStatus.CONFIRMED, True), (OrderStatus.SHIPPED, False),
    (OrderStatus.DELIVERED, False), (OrderStatus.EXPIRED, False), (OrderStatus.CANCELED, False),
])
def test_only_orders_before_shipping_can_be_canceled(status, can_cancel):
    assert allowed(status, "cancel") is can_cancel
    if can_cancel:
        assert transition(_order(status), "cancel") == OrderStatus.CANCELED


@pytest.mark.parametrize("status, message", [
    (OrderStatus.SHIPPED, "Order has already shipped and can no longer be canceled"),
    (OrderStatus.DELIVERED, "Order has already been delivered and can no longer be canceled"),
    (OrderStatus.CANCELED, "Order is already canceled"),
    (OrderStatus.EXPIRED, "Order has expired"),
])
def test_cancel_refusals_say_why(status, message):
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(status, COD, PaymentStatus.PAID), "cancel")
    assert caught.value.status == 400 and caught.value.message == message


@pytest.mark.parametrize("status, action, target", [
    (OrderStatus.PENDING, "pay", OrderStatus.CONFIRMED),
    (OrderStatus.PENDING, "expire", OrderStatus.EXPIRED),
    (OrderStatus.EXPIRED, "revive", OrderStatus.CONFIRMED),
    (OrderStatus.CONFIRMED, "ship", OrderStatus.SHIPPED),
    (OrderStatus.SHIPPED, "deliver", OrderStatus.DELIVERED),
])
def test_the_forward_path(status, action, target):
    assert transition(_order(status), action) == target


@pytest.mark.parametrize("status, action", [
    (OrderStatus.PENDING, "ship"), (OrderStatus.CONFIRMED, "deliver"), (OrderStatus.CONFIRMED, "pay"),
    (OrderStatus.CANCELED, "revive"), (OrderStatus.DELIVERED, "ship"), (OrderStatus.CONFIRMED, "expire"),
    (OrderStatus.SHIPPED, "expire"), (OrderStatus.CANCELED, "pay"),
])
def test_forbidden_moves_are_refused(status, action):
    order = _order(status)
    with pytest.raises(InvalidRequest):
        transition(order, action)
    assert order.status == status


@pytest.mark.parametrize("status", [OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED])
def test_collecting_cash_keeps_the_status(status):
    assert transition(_order(status, COD, PaymentStatus.UNPAID), "collect_payment") == status


@pytest.mark.parametrize("status, method, payment", [
    (OrderStatus.CONFIRMED, ONLINE, PaymentStatus.PAID),
    (OrderStatus.CONFIRMED, ONLINE, PaymentStatus.UNPAID),
    (OrderStatus.SHIPPED, COD, PaymentStatus.PAID),
    (OrderStatus.DELIVERED, COD, PaymentStatus.REFUNDED),
    (OrderStatus.CANCELED, COD, PaymentStatus.UNPAID),
    (OrderStatus.EXPIRED, COD, PaymentStatus.UNPAID),
])
def test_collect_payment_only_for_an_unpaid_cash_on_delivery_order(status, method, payment):
    with pytest.raises(InvalidRequest):
        transition(_order(status, method, payment), "collect_payment")


def test_collect_payment_refusal_message_for_an_online_order():
    with pytest.raises(InvalidRequest) as caught:
        transition(_order(OrderStatus.CONFIRMED, ONLINE, PaymentStatus.PAID), "collect_payment")
    assert caught.value.message == "Only an unpaid cash-on-delivery order can have its payment collected"


def test_actions_lists_each_action_once():
    assert ACTIONS == sorted({a for _s, a in TRANSITIONS})
    assert {"pay", "expire", "revive", "cancel", "ship", "deliver", "collect_payment"} == set(ACTIONS)
