"""The checkout use cases at the service level, on PostgreSQL, with an in-memory payment provider:
what each does to the order and which provider calls it makes, including when the provider fails."""
import pytest
from sqlalchemy import select

from orders_service.api.orders.schemas import OrderInSchema
from orders_service.auth.actor import Actor
from orders_service.catalog.models import Product
from orders_service.errors import Conflict, InvalidRequest, PaymentProviderError, ProviderBusy
from orders_service.money import currency
from orders_service.orders import actions
from orders_service.orders.models import IdempotencyRecord, Order, OrderEvent
from orders_service.payments import checkout, reconcile


@pytest.fixture
def shop(make):
    customer = make.customer()
    product = make.product(price_cents=20_00, stock=10)
    method = make.delivery_method(price_cents=5_00, countries=[])
    body = OrderInSchema().load(make.order_body(customer, method, [(product, 2)]))
    return Actor(customer.id, customer.role), product, body


def _place(db, fake_gateway, shop, key=None):
    actor, _product, body = shop
    return checkout.place_online_order(db, fake_gateway, actor, body, currency("USD"), key)


def _reconcile(session_factory, fake_gateway):
    """One reconciliation run, as the beat job makes it, with no grace for just-closed orders."""
    return reconcile.reconcile_payments(session_factory, fake_gateway, older_than_seconds=0)


def _state(db, make, order_id, product):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        events = list(db.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order_id)
                                 .order_by(OrderEvent.id)))
        return order.status, order.payment_status, make.stock_of(Product, product.id), events


def test_placing_opens_one_payment_intent_for_the_total(db, fake_gateway, shop, make):
    order = _place(db, fake_gateway, shop)
    intent = fake_gateway.intents[order.payment_intent_id]
    assert (intent.amount, intent.currency, intent.order_id) == (45_00, "USD", str(order.id))
    assert order.client_secret == intent.client_secret
    assert _state(db, make, order.id, shop[1]) == ("pending", "unpaid", 8, ["placed"])


def test_a_provider_failure_closes_the_order_and_frees_the_key(db, fake_gateway, shop, make):
    fake_gateway.failing.add("create")
    with pytest.raises(PaymentProviderError) as caught:
        _place(db, fake_gateway, shop, key="k1")
    assert caught.value.message == "Failed to initialize payment: the payment provider failed (create)"
    with db.begin():
        [order_id] = db.scalars(select(Order.id)).all()
        assert db.scalars(select(IdempotencyRecord)).all() == []
    assert _state(db, make, order_id, shop[1]) == ("canceled", "failed", 10,
                                                  ["placed", "payment_initialization_failed"])


def test_confirm_paid_asks_the_provider(db, fake_gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    with pytest.raises(InvalidRequest) as caught:
        checkout.confirm_paid(db, fake_gateway, actor, order.id)
    assert caught.value.message == "Payment has not succeeded: the PaymentIntent is requires_payment_method"

    fake_gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, fake_gateway, actor, order.id)
    assert _state(db, make, order.id, product) == ("confirmed", "paid", 8, ["placed", "payment_succeeded"])
    with pytest.raises(InvalidRequest) as caught:
        checkout.confirm_paid(db, fake_gateway, actor, order.id)
    assert caught.value.message == "Order has already been marked as paid"
    assert fake_gateway.count("retrieve") == 2  # the repeat is refused from the order, without asking again


def test_a_declined_payment_is_recorded_and_may_be_retried(db, fake_gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    fake_gateway.decline(order.payment_intent_id)
    with pytest.raises(InvalidRequest) as caught:
        checkout.confirm_paid(db, fake_gateway, actor, order.id)
    assert caught.value.message == ("Payment has not succeeded: the PaymentIntent is requires_payment_method "
                                    "(Your card was declined.)")
    assert _state(db, make, order.id, product)[:2] == ("pending", "failed")
    fake_gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, fake_gateway, actor, order.id)
    assert _state(db, make, order.id, product)[:2] == ("confirmed", "paid")


def test_cancel_unpaid_cancels_the_payment_intent(db, fake_gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    checkout.cancel_order(db, fake_gateway, actor, order.id)
    assert fake_gateway.intents[order.payment_intent_id].status == "canceled"
    assert fake_gateway.count("refund") == 0
    assert _state(db, make, order.id, product) == ("canceled", "unpaid", 10,
                                                  ["placed", "canceled", "payment_intent_closed"])


def test_cancel_paid_refunds_once(db, fake_gateway, shop, make):
    actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    fake_gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, fake_gateway, actor, order.id)
    checkout.cancel_order(db, fake_gateway, actor, order.id)
    assert fake_gateway.count("refund") == 1
    assert _state(db, make, order.id, product) == ("canceled", "refunded", 10,
                                                  ["placed", "payment_succeeded", "canceled", "refunded"])


def test_a_payment_that_lands_while_the_order_is_canceled_is_refunded(db, fake_gateway, shop, make):
    """The cancel at the provider fails because the customer paid a moment before: the money goes back."""
    actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    fake_gateway.pay(order.payment_intent_id)  # paid, but nobody told the service yet
    checkout.cancel_order(db, fake_gateway, actor, order.id)
    assert fake_gateway.count("refund") == 1
    assert _state(db, make, order.id, product)[:2] == ("canceled", "refunded")


def test_a_cancel_whose_refund_failed_is_finished_by_reconciliation(db, fake_gateway, shop, make, session_factory):
    actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    fake_gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, fake_gateway, actor, order.id)
    fake_gateway.failing.add("refund")
    checkout.cancel_order(db, fake_gateway, actor, order.id)
    assert _state(db, make, order.id, product)[:2] == ("canceled", "paid")  # a refund is due

    fake_gateway.failing.clear()
    _reconcile(session_factory, fake_gateway)
    assert _state(db, make, order.id, product)[:2] == ("canceled", "refunded")
    _reconcile(session_factory, fake_gateway)
    assert fake_gateway.count("refund") == 2  # the failed attempt and the one that went through; never a third


def test_expiry_cancels_the_payment_intent_and_releases_the_stock(db, fake_gateway, shop, make, session_factory):
    _actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    assert reconcile.expire_unpaid_orders(session_factory, fake_gateway, ttl_seconds=0) == 1
    assert fake_gateway.intents[order.payment_intent_id].status == "canceled"
    assert _state(db, make, order.id, product) == ("expired", "unpaid", 10, ["placed", "expired"])


def test_expiry_applies_a_payment_that_succeeded_meanwhile(db, fake_gateway, shop, make, session_factory):
    _actor, product, _body = shop
    order = _place(db, fake_gateway, shop)
    fake_gateway.pay(order.payment_intent_id)
    assert reconcile.expire_unpaid_orders(session_factory, fake_gateway, ttl_seconds=0) == 0
    assert _state(db, make, order.id, product) == ("confirmed", "paid", 8, ["placed", "payment_succeeded"])


def test_an_order_canceled_while_its_payment_intent_was_being_created_gets_no_client_secret(
        db, fake_gateway, shop, make, session_factory):
    """The customer cancels in another tab while the provider opens the PaymentIntent: the order stays
    canceled, its stock back once, and the PaymentIntent that arrives is canceled instead of handed out."""
    _actor, product, _body = shop

    def cancel_meanwhile():
        with session_factory() as other, other.begin():
            order = actions.lock_order(other, other.scalar(select(Order.id)))
            actions.cancel(other, order, by="customer")

    fake_gateway.meanwhile["create"] = cancel_meanwhile
    with pytest.raises(Conflict) as caught:
        _place(db, fake_gateway, shop)
    assert caught.value.message == "The order was canceled while its payment was being set up"
    with db.begin():
        order_id, pi_id, secret = db.execute(select(Order.id, Order.payment_intent_id, Order.client_secret)).one()
    assert fake_gateway.intents[pi_id].status == "canceled" and secret is None
    assert _state(db, make, order_id, product) == ("canceled", "unpaid", 10,
                                                  ["placed", "canceled", "payment_intent_closed"])


@pytest.mark.parametrize("provider, error, message", [
    ("busy", ProviderBusy, "The payment provider is busy; try again shortly"),
    ("amount_too_small", InvalidRequest, "The order total is below the smallest online payment: "
                                         "the payment provider refused (create)"),
    ("card_declined", PaymentProviderError, "Failed to initialize payment: the payment provider refused (create)"),
])
def test_a_payment_intent_the_provider_would_not_open_closes_the_order_at_once(
        db, fake_gateway, shop, make, provider, error, message):
    """Nothing was opened at the provider: the order closes, its stock back, and its payment is over too."""
    _actor, product, _body = shop
    if provider == "busy":
        fake_gateway.busy.add("create")
    else:
        fake_gateway.refusing["create"] = provider
    with pytest.raises(error) as caught:
        _place(db, fake_gateway, shop, key="k1")
    assert caught.value.message == message
    with db.begin():
        order = db.scalars(select(Order)).one()
        assert order.payment_closed_at is not None and db.scalars(select(IdempotencyRecord)).all() == []
    assert _state(db, make, order.id, product) == ("canceled", "failed", 10,
                                                  ["placed", "payment_initialization_failed"])
