"""Refunds' own rules (`payments/refunds.py`), one branch each, with an in-memory provider put in the state each
branch needs, on PostgreSQL: what may be refunded, idempotency keys, and what a refusal or a lost answer
leaves behind. The HTTP route against Stripe's shapes is `test_refunds.py`."""
import pytest
from sqlalchemy import select

from orders_service.api.orders.schemas import OrderInSchema
from orders_service.auth.actor import Actor
from orders_service.errors import IdempotencyKeyReused, InvalidRequest
from orders_service.money import currency
from orders_service.orders import actions
from orders_service.orders.models import Order, OrderEvent, Refund
from orders_service.payments import checkout, refunds


@pytest.fixture
def paid(db, fake_gateway, make):
    """An order of 2 × 20.00 paid online (40.00)."""
    shop = make.shop()
    body = OrderInSchema().load(shop.body(quantity=2))
    actor = Actor(shop.customer.id, shop.customer.role)
    order = checkout.place_online_order(db, fake_gateway, actor, body, currency("USD"))
    fake_gateway.pay(order.payment_intent_id)
    checkout.confirm_paid(db, fake_gateway, actor, order.id)
    return order


def _order(db, order_id):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        trail = list(db.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)))
        return order.payment_status, order.refunded_cents, trail


def _refund_rows(db):
    db.expire_all()
    with db.begin():
        return [(r.amount_cents, r.status) for r in db.scalars(select(Refund).order_by(Refund.created_at))]


def test_a_partial_refund_then_the_rest(db, fake_gateway, paid):
    first = refunds.refund_order(db, fake_gateway, paid.id, 15_00, "damaged box")
    assert (first.amount_cents, first.status) == (15_00, "succeeded")
    assert _order(db, paid.id)[:2] == ("partially_refunded", 15_00)
    rest = refunds.refund_order(db, fake_gateway, paid.id, None, None)
    assert rest.amount_cents == 25_00
    assert _order(db, paid.id)[:2] == ("refunded", 40_00)
    assert fake_gateway.intents[paid.payment_intent_id].amount_refunded == 40_00


@pytest.mark.parametrize("amount, message", [
    (40_01, "Refund of 40.01 USD exceeds what is left to refund (40.00 USD)"),
    (0, "A refund must be more than 0"),
])
def test_a_refund_beyond_what_is_left_is_refused_before_the_provider_is_asked(db, fake_gateway, paid, amount,
                                                                              message):
    with pytest.raises(InvalidRequest) as caught:
        refunds.refund_order(db, fake_gateway, paid.id, amount, None)
    assert caught.value.message == message
    assert fake_gateway.count("refund") == 0 and _refund_rows(db) == []


def test_nothing_is_left_after_a_full_refund(db, fake_gateway, paid):
    refunds.refund_order(db, fake_gateway, paid.id, None, None)
    with pytest.raises(InvalidRequest, match="Nothing is left to refund"):
        refunds.refund_order(db, fake_gateway, paid.id, None, None)


def test_an_unpaid_order_cannot_be_refunded(db, fake_gateway, make):
    shop = make.shop()
    body = OrderInSchema().load(shop.body())
    order = checkout.place_online_order(db, fake_gateway, Actor(shop.customer.id, shop.customer.role), body,
                                        currency("USD"))
    with pytest.raises(InvalidRequest, match="Only an order paid online can be refunded"):
        refunds.refund_order(db, fake_gateway, order.id, None, None)


def test_an_idempotency_key_gives_the_same_refund_and_refuses_another_body(db, fake_gateway, paid):
    first = refunds.refund_order(db, fake_gateway, paid.id, 10_00, "late", idempotency_key="k1")
    again = refunds.refund_order(db, fake_gateway, paid.id, 10_00, "late", idempotency_key="k1")
    assert again.id == first.id and fake_gateway.count("refund") == 1
    with pytest.raises(IdempotencyKeyReused):
        refunds.refund_order(db, fake_gateway, paid.id, 20_00, "late", idempotency_key="k1")
    assert _refund_rows(db) == [(10_00, "succeeded")]


def test_a_refusal_is_recorded_and_changes_nothing_else(db, fake_gateway, paid):
    fake_gateway.refusing["refund"] = "charge_disputed"
    refund = refunds.refund_order(db, fake_gateway, paid.id, 10_00, None)
    assert (refund.status, refund.failure) == ("failed", "the payment provider refused (refund)")
    status, refunded, trail = _order(db, paid.id)
    assert (status, refunded, trail[-1]) == ("paid", 0, "refund_failed")
    fake_gateway.refusing.clear()
    assert refunds.refund_order(db, fake_gateway, paid.id, 10_00, None).status == "succeeded"  # may ask again


def test_a_lost_answer_leaves_the_refund_pending_and_asking_again_refunds_once(db, fake_gateway, paid):
    fake_gateway.losing.add("refund")
    refund = refunds.refund_order(db, fake_gateway, paid.id, 10_00, None)
    refund_id, status = refund.id, refund.status
    assert status == "pending" and _order(db, paid.id)[:2] == ("paid", 0)
    with pytest.raises(InvalidRequest, match=r"exceeds what is left to refund \(30.00 USD\)"):
        refunds.refund_order(db, fake_gateway, paid.id, 30_01, None)  # the one under way counts

    assert refunds.send_refund(db, fake_gateway, refund_id).status == "succeeded"  # reconciliation's retry
    assert fake_gateway.intents[paid.payment_intent_id].amount_refunded == 10_00  # the provider refunded once
    assert _order(db, paid.id)[:2] == ("partially_refunded", 10_00)


def test_a_closed_order_gets_what_is_left_once_and_a_refund_under_way_is_asked_again(db, fake_gateway, paid):
    refunds.refund_order(db, fake_gateway, paid.id, 15_00, None)
    with db.begin():
        actions.cancel(db, actions.lock_order(db, paid.id), by="admin")
    fake_gateway.losing.add("refund")
    refunds.refund_what_is_left(db, fake_gateway, paid.id, "cancel")
    assert _refund_rows(db) == [(15_00, "succeeded"), (25_00, "pending")]
    refunds.refund_what_is_left(db, fake_gateway, paid.id, "reconciliation")  # no second row: the same one
    assert _refund_rows(db) == [(15_00, "succeeded"), (25_00, "succeeded")]
    assert _order(db, paid.id)[:2] == ("refunded", 40_00)
    refunds.refund_what_is_left(db, fake_gateway, paid.id, "reconciliation")
    assert fake_gateway.count("refund") == 3  # 15.00, 25.00 whose answer was lost, and its retry
