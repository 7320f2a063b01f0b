"""The checkout use cases at the service level, on PostgreSQL, with an in-memory payment provider:
what each does to the order and which provider calls it makes, including when the provider fails."""
import pytest
from sqlalchemy import select

from orders_service.api.orders.schemas import OrderInSchema
from orders_service.auth.actor import Actor
from orders_service.catalog.models import Product
from orders_service.errors import InvalidRequest, PaymentProviderError
from orders_service.money import currency
from orders_service.orders.models import IdempotencyRecord, Order, OrderEvent
from orders_service.payments import checkout, reconcile
from tests.support.fake_gateway import FakeGateway


@pytest.fixture
def shop(make):
    customer = make.customer()
    product = make.product(price_cents=20_00, stock=10)
    method = make.delivery_method(price_cents=5_00, countries=[])
    body = OrderInSchema().load(make.order_body(customer, method, [(product, 2)]))
    return Actor(customer.id, customer.role), product, body


@pytest.fixture
def gateway():
    return FakeGateway()


def _place(db, gateway, shop, key=None):
    actor, _product, body = shop
    return checkout.place_online_order(db, gateway, actor, body, currency("USD"), key)


def _reconcile(session_factory, gateway):
    """One reconciliation run, as the beat job makes it, with no grace for just-closed orders."""
    return reconcile.reconcile_payments(session_factory, gateway, older_than_seconds=0)


def _state(db, make, order_id, product):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        events = list(db.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order_id)
                                 .order_by(OrderEvent.id)))
        return order.status, order.payment_status, make.stock_of(Product, product.id), events


def test_placing_opens_one_payment_intent_for_the_total(db, gateway, shop, make):
    order = _place(db, gateway, shop)
    intent = gateway.intents[order.payment_intent_id]
    assert (intent.amount, intent.currency, intent.order_id) == (45_00, "USD", str(order.id))
    assert order.client_secret == intent.client_secret
    assert _state(db, make, order.id, shop[1]) == ("pending", "unpaid", 8, ["placed"])


def test_a_provider_failure_closes_the_order_and_frees_the_key(db, gateway, shop, make):
    gateway.failing.add("create")
    with pytest.raises(PaymentProviderError) as caught:
        _place(db, gateway, shop, key="k1")
    assert caught.value.message == "Failed to initialize payment: the payment provider failed (create)"
    with db.begin():
        [order_id] = db.scalars(select(Order.id)).all()
        assert db.scalars(select(IdempotencyRecord)).all() == []
    assert _state(db, make, order_id, shop[1]) == ("canceled", "failed", 10,
                                                  ["placed", "payment_initialization_failed"])


def test_confirm_paid_asks_the_provider(db, gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, gateway, shop)
    with pytest.raises(InvalidRequest) as caught:
        checkout.confirm_paid(db, gateway, actor, order.id)
    assert caught.value.message == "Payment has not succeeded: the PaymentIntent is requires_payment_method"

    gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, gateway, actor, order.id)
    assert _state(db, make, order.id, product) == ("confirmed", "paid", 8, ["placed", "payment_succeeded"])
    with pytest.raises(InvalidRequest) as caught:
        checkout.confirm_paid(db, gateway, actor, order.id)
    assert caught.value.message == "Order has already been marked as paid"
    assert gateway.count("retrieve") == 2  # the repeat is refused from the order, without asking again


def test_a_declined_payment_is_recorded_and_may_be_retried(db, gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, gateway, shop)
    gateway.decline(order.payment_intent_id)
    with pytest.raises(InvalidRequest) as caught:
        checkout.confirm_paid(db, gateway, actor, order.id)
    assert caught.value.message == ("Payment has not succeeded: the PaymentIntent is requires_payment_method "
                                    "(Your card was declined.)")
    assert _state(db, make, order.id, product)[:2] == ("pending", "failed")
    gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, gateway, actor, order.id)
    assert _state(db, make, order.id, product)[:2] == ("confirmed", "paid")


def test_cancel_unpaid_cancels_the_payment_intent(db, gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, gateway, shop)
    checkout.cancel_order(db, gateway, actor, order.id)
    assert gateway.intents[order.payment_intent_id].status == "canceled"
    assert gateway.count("refund") == 0
    assert _state(db, make, order.id, product) == ("canceled", "unpaid", 10,
                                                  ["placed", "canceled", "payment_intent_closed"])


def test_cancel_paid_refunds_once(db, gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, gateway, shop)
    gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, gateway, actor, order.id)
    checkout.cancel_order(db, gateway, actor, order.id)
    assert gateway.count("refund") == 1
    assert _state(db, make, order.id, product) == ("canceled", "refunded", 10,
                                                  ["placed", "payment_succeeded", "canceled", "refunded"])


def test_a_payment_that_lands_while_the_order_is_canceled_is_refunded(db, gateway, shop, make):
    """The cancel at the provider fails because the customer paid a moment before: the money goes back."""
    actor, product, _body = shop
    order = _place(db, gateway, shop)
    gateway.pay(order.payment_intent_id)  # paid, but nobody told the service yet
    checkout.cancel_order(db, gateway, actor, order.id)
    assert gateway.count("refund") == 1
    assert _state(db, make, order.id, product)[:2] == ("canceled", "refunded")


def test_a_cancel_whose_refund_failed_is_finished_by_reconciliation(db, gateway, shop, make, session_factory):
    actor, product, _body = shop
    order = _place(db, gateway, shop)
    gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, gateway, actor, order.id)
    gateway.failing.add("refund")
    checkout.cancel_order(db, gateway, actor, order.id)
    assert _state(db, make, order.id, product)[:2] == ("canceled", "paid")  # a refund is due

    gateway.failing.clear()
    _reconcile(session_factory, gateway)
    assert _state(db, make, order.id, product)[:2] == ("canceled", "refunded")
    _reconcile(session_factory, gateway)
    assert gateway.count("refund") == 2  # the failed attempt and the one that went through; never a third


def test_expiry_cancels_the_payment_intent_and_releases_the_stock(db, gateway, shop, make, session_factory):
    _actor, product, _body = shop
    order = _place(db, gateway, shop)
    assert reconcile.expire_unpaid_orders(session_factory, gateway, ttl_seconds=0) == 1
    assert gateway.intents[order.payment_intent_id].status == "canceled"
    assert _state(db, make, order.id, product) == ("expired", "unpaid", 10, ["placed", "expired"])


def test_expiry_applies_a_payment_that_succeeded_meanwhile(db, gateway, shop, make, session_factory):
    _actor, product, _body = shop
    order = _place(db, gateway, shop)
    gateway.pay(order.payment_intent_id)
    assert reconcile.expire_unpaid_orders(session_factory, gateway, ttl_seconds=0) == 0
    assert _state(db, make, order.id, product) == ("confirmed", "paid", 8, ["placed", "payment_succeeded"])
