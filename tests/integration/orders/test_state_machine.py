"""Every (state, action) pair the API offers: allowed ones succeed, forbidden ones are 400 and change nothing."""
import pytest
from sqlalchemy import func, select, update

from orders_service.catalog.models import Product
from orders_service.orders.lifecycle import TRANSITIONS
from orders_service.orders.models import Order, OrderEvent, OrderStatus

API_ACTIONS = {
    "cancel": lambda client, order_id, admin: client.post(f"/api/orders/{order_id}/cancel", headers=admin),
    "ship": lambda client, order_id, admin: client.patch(
        f"/api/admin/orders/{order_id}", json={"status": "shipped", "trackingNumber": "1Z999"}, headers=admin),
    "deliver": lambda client, order_id, admin: client.patch(
        f"/api/admin/orders/{order_id}", json={"status": "delivered"}, headers=admin),
    "collect_payment": lambda client, order_id, admin: client.patch(
        f"/api/admin/orders/{order_id}", json={"paymentCollected": True}, headers=admin),
}


def _snapshot(db, order_id, product_id):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        events = db.scalar(select(func.count()).select_from(OrderEvent).where(OrderEvent.order_id == order_id))
        return (order.status, order.payment_status, order.tracking_number, events, db.get(Product, product_id).stock)


@pytest.mark.parametrize("action", sorted(API_ACTIONS))
@pytest.mark.parametrize("status", OrderStatus.ALL)
def test_state_action_table(client, make, db, status, action):
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product = make.product(stock=5)
    method = make.delivery_method(countries=[])
    placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, 2)]), headers=auth)
    order_id = placed.headers["Location"].rsplit("/", 1)[1]
    with db.begin():  # put the cash-on-delivery order in the state under test
        db.execute(update(Order).where(Order.id == order_id).values(status=status))
    before = _snapshot(db, order_id, product.id)

    response = API_ACTIONS[action](client, order_id, admin_auth)

    target = TRANSITIONS.get((status, action))
    if target is None:
        assert response.status_code == 400, response.json
        assert response.json["message"]
        assert _snapshot(db, order_id, product.id) == before
    else:
        assert response.status_code == 200, response.json
        assert response.json["status"] == target
        after = _snapshot(db, order_id, product.id)
        assert after[3] == before[3] + 1  # exactly one event per transition
        assert after[4] == before[4] + (2 if action == "cancel" else 0)  # only a cancel gives stock back
        assert after[1] == ("paid" if action == "collect_payment" else "unpaid")
