"""Money never stuck, one order at a time (`payments/settlement.py`): every branch of settling a closed order's
payment, with an in-memory provider put in the state each branch needs, on PostgreSQL."""
import pytest
from sqlalchemy import select, update

from orders_service.api.orders.schemas import OrderInSchema
from orders_service.auth.actor import Actor
from orders_service.catalog.models import Product
from orders_service.errors import PaymentProviderError
from orders_service.money import currency
from orders_service.orders import actions
from orders_service.orders.models import Order, OrderEvent
from orders_service.payments import checkout, settlement
from orders_service.payments.gateway import PaymentGatewayError


@pytest.fixture
def order(db, fake_gateway, make):
    """A pending online order for 2 × 20.00 with its PaymentIntent open at the provider."""
    shop = make.shop()
    body = OrderInSchema().load(shop.body(quantity=2))
    return checkout.place_online_order(db, fake_gateway, Actor(shop.customer.id, shop.customer.role), body,
                                       currency("USD"))


def _close(db, order_id, paid_first=False):
    """The customer cancels (after paying, with `paid_first`): the order is closed, its payment not yet."""
    with db.begin():
        locked = actions.lock_order(db, order_id)
        if paid_first:
            actions.confirm_payment(db, locked, locked.payment_intent_id, locked.total_cents, "test")
        actions.cancel(db, locked, by="customer")


def _state(db, order_id):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        trail = list(db.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)))
        after_closing = trail[trail.index("canceled") + 1:] if "canceled" in trail else trail[1:]
        return order.payment_status, order.payment_closed_at is not None, after_closing


def test_an_open_payment_intent_is_canceled_with_one_call(db, fake_gateway, order):
    _close(db, order.id)
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")
    assert fake_gateway.intents[order.payment_intent_id].status == "canceled"
    assert [op for op, _ in fake_gateway.calls] == ["create", "cancel"]
    assert _state(db, order.id) == ("unpaid", True, ["payment_intent_closed"])
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")  # settled: nothing more is asked
    assert fake_gateway.count("cancel") == 1


def test_money_held_by_a_closed_order_goes_back(db, fake_gateway, order):
    fake_gateway.pay(order.payment_intent_id)
    _close(db, order.id, paid_first=True)
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")
    assert fake_gateway.count("cancel") == 0 and fake_gateway.count("refund") == 1
    assert _state(db, order.id) == ("refunded", True, ["refunded"])


def test_a_payment_intent_paid_while_the_order_closed_is_refunded(db, fake_gateway, order):
    """The cancel is refused (the customer paid a moment before): what the provider says then decides."""
    _close(db, order.id)
    fake_gateway.pay(order.payment_intent_id)
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")
    assert [op for op, _ in fake_gateway.calls][1:] == ["cancel", "retrieve", "refund"]
    assert _state(db, order.id) == ("refunded", True, ["late_payment_refund_due", "refunded"])


def test_a_payment_intent_canceled_elsewhere_is_closed_without_more(db, fake_gateway, order):
    _close(db, order.id)
    fake_gateway.cancel_payment_intent(order.payment_intent_id)  # in the provider's dashboard, say
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")
    assert fake_gateway.count("refund") == 0
    assert _state(db, order.id) == ("unpaid", True, ["payment_intent_closed"])


@pytest.mark.parametrize("failing", ["cancel", "retrieve"])
def test_a_provider_that_does_not_answer_leaves_the_payment_open_for_the_next_run(db, fake_gateway, order, failing):
    _close(db, order.id)
    if failing == "retrieve":  # the cancel is refused, and the look that would say why fails
        fake_gateway.pay(order.payment_intent_id)
    fake_gateway.failing.add(failing)
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")
    assert _state(db, order.id) == ("unpaid", False, [])  # still open: reconciliation asks again

    fake_gateway.failing.clear()
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")
    assert _state(db, order.id)[1] is True


def _lost_create(db, fake_gateway, make, **gateway_state):
    """An order whose create answer never came: closed with its stock back, its payment still open."""
    shop = make.shop()
    body = OrderInSchema().load(shop.body(quantity=2))
    fake_gateway.losing.add("create")
    for name, value in gateway_state.items():
        setattr(fake_gateway, name, value)
    with pytest.raises(PaymentProviderError, match="could not reach the payment provider"):
        checkout.place_online_order(db, fake_gateway, Actor(shop.customer.id, shop.customer.role), body,
                                    currency("USD"))
    with db.begin():
        order_id = db.scalar(select(Order.id))
    assert make.stock_of(Product, shop.product.id) == 10
    assert _state(db, order_id)[:2] == ("failed", False)
    return order_id


def test_a_payment_intent_whose_create_answer_was_lost_is_found_and_closed(db, fake_gateway, make):
    """The create went through at the provider, its answer never came: its payment stays open until the
    PaymentIntent is found (by the order id its metadata carries, not by creating again) and canceled."""
    order_id = _lost_create(db, fake_gateway, make)

    settlement.settle_closed_order(db, fake_gateway, order_id, "test")
    [pi_id] = fake_gateway.intents
    assert fake_gateway.intents[pi_id].status == "canceled"
    assert (fake_gateway.count("create"), fake_gateway.count("find")) == (1, 1)
    db.expire_all()
    with db.begin():
        assert db.get(Order, order_id).payment_intent_id == pi_id
    assert _state(db, order_id)[1] is True


def test_an_order_still_open_is_not_touched(db, fake_gateway, order):
    settlement.settle_closed_order(db, fake_gateway, order.id, "test")
    assert fake_gateway.count("cancel") == 0 and _state(db, order.id)[:2] == ("unpaid", False)


def test_a_payment_intent_the_provider_never_opened_is_closed_once_the_order_is_old_enough(db, fake_gateway, make):
    """Nothing names the order at the provider: asked again while its create might still be arriving, then
    closed as never opened, and nothing is created to find out."""
    shop = make.shop()
    body = OrderInSchema().load(shop.body(quantity=2))
    fake_gateway.failing.add("create")
    with pytest.raises(PaymentProviderError):
        checkout.place_online_order(db, fake_gateway, Actor(shop.customer.id, shop.customer.role), body,
                                    currency("USD"))
    with db.begin():
        order_id = db.scalar(select(Order.id))
    fake_gateway.failing.clear()

    settlement.settle_closed_order(db, fake_gateway, order_id, "test")
    assert _state(db, order_id)[1] is False  # young: asked again next run
    with db.begin():
        db.execute(update(Order).values(created_at=Order.created_at - settlement.NEVER_OPENED_AFTER))
    settlement.settle_closed_order(db, fake_gateway, order_id, "test")

    assert _state(db, order_id) == ("failed", True, ["payment_initialization_failed", "payment_intent_closed"])
    assert (fake_gateway.count("find"), fake_gateway.count("create"), fake_gateway.intents) == (2, 1, {})


def test_a_provider_that_cannot_be_asked_for_a_lost_payment_intent_leaves_the_payment_open(db, fake_gateway, make):
    order_id = _lost_create(db, fake_gateway, make)
    fake_gateway.failing.add("find")
    with pytest.raises(PaymentGatewayError):  # reconciliation logs it and asks again next run
        settlement.settle_closed_order(db, fake_gateway, order_id, "test")
    assert _state(db, order_id)[:2] == ("failed", False)
