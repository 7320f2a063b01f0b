"""`orders/actions.py` at the service level, on PostgreSQL: each change moves status, stock, trail and
email together, and a change the state machine refuses writes none of them."""
import pytest
from sqlalchemy import select, update

from orders_service.auth.actor import Actor
from orders_service.catalog.models import Product
from orders_service.errors import InvalidRequest, NotFound
from orders_service.money import currency
from orders_service.notifications.models import Notification
from orders_service.orders import actions
from orders_service.orders.models import Order, OrderEvent, PaymentMethod
from orders_service.orders.service import place_order


@pytest.fixture
def placed(make, db):
    """A cash-on-delivery order of 3 from a stock of 10, and a way to read back what changed."""
    customer = make.customer()
    product = make.product(stock=10)
    method = make.delivery_method(countries=[])
    body = make.order_body(customer, method, [(product, 3)])
    from orders_service.api.orders.schemas import OrderInSchema

    order = place_order(db, Actor(customer.id, customer.role), OrderInSchema().load(body),
                        PaymentMethod.CASH_ON_DELIVERY, currency("USD")).order

    def state():
        db.expire_all()
        with db.begin():
            row = db.get(Order, order.id)
            return {
                "status": row.status, "payment": row.payment_status,
                "stock": db.get(Product, product.id).stock,
                "events": list(db.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order.id)
                                          .order_by(OrderEvent.id))),
                "mails": list(db.scalars(select(Notification.kind).where(Notification.order_id == order.id)
                                         .order_by(Notification.created_at))),
            }
    return order, state


def _act(db, order_id, action, *args):
    with db.begin():
        order = actions.lock_order(db, order_id)
        return action(db, order, *args)


def test_placing_records_the_order_and_confirms_cash_on_delivery(placed):
    _order, state = placed
    assert state() == {"status": "confirmed", "payment": "unpaid", "stock": 7, "events": ["placed"],
                       "mails": ["order_confirmed"]}


def test_cancel_releases_the_stock_and_tells_the_customer(placed, db):
    order, state = placed
    _act(db, order.id, actions.cancel, "customer")
    assert state() == {"status": "canceled", "payment": "unpaid", "stock": 10, "events": ["placed", "canceled"],
                       "mails": ["order_confirmed", "canceled"]}


def test_a_refused_change_writes_nothing(placed, db):
    order, state = placed
    _act(db, order.id, actions.cancel, "customer")
    before = state()
    with pytest.raises(InvalidRequest):
        _act(db, order.id, actions.cancel, "admin")
    with pytest.raises(InvalidRequest):
        _act(db, order.id, actions.ship, "1Z", None)
    assert state() == before  # the stock was not released twice, no event, no email


def test_ship_deliver_and_collect_cash(placed, db):
    order, state = placed
    _act(db, order.id, actions.ship, "1Z999", "UPS")
    _act(db, order.id, actions.deliver)
    _act(db, order.id, actions.collect_cash)
    assert state() == {"status": "delivered", "payment": "paid", "stock": 7,
                       "events": ["placed", "shipped", "delivered", "payment_collected"],
                       "mails": ["order_confirmed", "shipped"]}


def test_expire_releases_stock_without_an_email(placed, db):
    order, state = placed
    with db.begin():
        db.execute(update(Order).where(Order.id == order.id).values(status="pending", payment_method="online"))
    _act(db, order.id, actions.expire, True)
    assert state()["status"] == "expired" and state()["stock"] == 10
    assert state()["events"][-1] == "expired" and state()["mails"] == ["order_confirmed"]


def test_revive_takes_the_stock_again_or_reports_it_cannot(placed, db, make):
    order, state = placed
    with db.begin():
        db.execute(update(Order).where(Order.id == order.id).values(status="pending", payment_method="online"))
    _act(db, order.id, actions.expire, False)
    assert _act(db, order.id, actions.revive, "pi_1", 1, "test") is True
    assert (state()["status"], state()["payment"], state()["stock"]) == ("confirmed", "paid", 7)

    with db.begin():
        db.execute(update(Order).where(Order.id == order.id).values(status="expired", payment_status="unpaid"))
        db.execute(update(Product).values(stock=2))  # sold meanwhile: 3 can no longer be taken
    assert _act(db, order.id, actions.revive, "pi_1", 1, "test") is False
    assert (state()["status"], state()["payment"], state()["stock"]) == ("expired", "unpaid", 2)


def test_a_dispute_is_flagged_once(placed, db):
    order, state = placed
    assert _act(db, order.id, actions.flag_dispute, "dp_1", "fraudulent") is True
    assert _act(db, order.id, actions.flag_dispute, "dp_1", "fraudulent") is False
    assert state()["events"].count("dispute_opened") == 1


def test_lock_order_of_an_unknown_order_is_404(db):
    import uuid

    with pytest.raises(NotFound), db.begin():
        actions.lock_order(db, uuid.uuid4())
