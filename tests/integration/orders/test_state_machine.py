"""Every (status, action) pair the API offers, through the API: allowed ones succeed with one trail event,
forbidden ones are 400 and change nothing. The expected outcomes are written by hand from docs/api.md, "Orders"."""
import pytest
from sqlalchemy import func, select, update

from orders_service.catalog.models import Product
from orders_service.orders.models import Order, OrderEvent

API_ACTIONS = {
    "cancel": lambda client, order_id, admin: client.post(f"/api/orders/{order_id}/cancel", headers=admin),
    "ship": lambda client, order_id, admin: client.patch(
        f"/api/admin/orders/{order_id}", json={"status": "shipped", "trackingNumber": "1Z999"}, headers=admin),
    "deliver": lambda client, order_id, admin: client.patch(
        f"/api/admin/orders/{order_id}", json={"status": "delivered"}, headers=admin),
    "collect_payment": lambda client, order_id, admin: client.patch(
        f"/api/admin/orders/{order_id}", json={"paymentCollected": True}, headers=admin),
}
REFUSED = 400
# A cash-on-delivery order put in each status, then each admin action (docs/api.md, "Fulfilment and
# refunds"): cancel before it has shipped; ship a confirmed order; deliver a shipped one; collect the cash
# once it is confirmed.
EXPECTED = {
    ("pending", "cancel"): "canceled", ("pending", "ship"): REFUSED,
    ("pending", "deliver"): REFUSED, ("pending", "collect_payment"): REFUSED,
    ("confirmed", "cancel"): "canceled", ("confirmed", "ship"): "shipped",
    ("confirmed", "deliver"): REFUSED, ("confirmed", "collect_payment"): "confirmed",
    ("shipped", "cancel"): REFUSED, ("shipped", "ship"): REFUSED,
    ("shipped", "deliver"): "delivered", ("shipped", "collect_payment"): "shipped",
    ("delivered", "cancel"): REFUSED, ("delivered", "ship"): REFUSED,
    ("delivered", "deliver"): REFUSED, ("delivered", "collect_payment"): "delivered",
    ("expired", "cancel"): REFUSED, ("expired", "ship"): REFUSED,
    ("expired", "deliver"): REFUSED, ("expired", "collect_payment"): REFUSED,
    ("canceled", "cancel"): REFUSED, ("canceled", "ship"): REFUSED,
    ("canceled", "deliver"): REFUSED, ("canceled", "collect_payment"): REFUSED,
}


def _cash_order(client, make, quantity):
    """A cash-on-delivery order of `quantity` of a product with 5 in stock: (order id, product, admin auth)."""
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product = make.product(stock=5)
    method = make.delivery_method(countries=[])
    placed = client.post("/api/orders", json=make.order_body(customer, method, [(product, quantity)]), headers=auth)
    return placed.headers["Location"].rsplit("/", 1)[1], product, admin_auth


def _snapshot(db, order_id, product_id):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        events = db.scalar(select(func.count()).select_from(OrderEvent).where(OrderEvent.order_id == order_id))
        return (order.status, order.payment_status, order.tracking_number, events, db.get(Product, product_id).stock)


@pytest.mark.parametrize("status, action", sorted(EXPECTED), ids=[f"{s}-{a}" for s, a in sorted(EXPECTED)])
def test_state_action_table(client, make, db, status, action):
    order_id, product, admin_auth = _cash_order(client, make, quantity=2)
    with db.begin():  # put the cash-on-delivery order in the state under test
        db.execute(update(Order).where(Order.id == order_id).values(status=status))
    before = _snapshot(db, order_id, product.id)

    response = API_ACTIONS[action](client, order_id, admin_auth)

    expected = EXPECTED[(status, action)]
    if expected == REFUSED:
        assert response.status_code == 400, response.json
        assert response.json["message"]
        assert _snapshot(db, order_id, product.id) == before
    else:
        assert response.status_code == 200, response.json
        assert response.json["status"] == expected
        after = _snapshot(db, order_id, product.id)
        assert after[3] == before[3] + 1  # exactly one event per transition
        assert after[4] == before[4] + (2 if action == "cancel" else 0)  # only a cancel gives stock back
        assert after[1] == ("paid" if action == "collect_payment" else "unpaid")


@pytest.mark.parametrize("value", ["yes", "true", 1, "1"], ids=["yes", "true-string", "one", "one-string"])
def test_payment_collected_is_json_true_only(client, make, db, value):
    """`paymentCollected: "yes"` used to be taken as true: booleans are strict, like integers."""
    order_id, product, admin_auth = _cash_order(client, make, quantity=1)
    before = _snapshot(db, order_id, product.id)
    response = client.patch(f"/api/admin/orders/{order_id}", json={"paymentCollected": value}, headers=admin_auth)
    assert response.status_code == 400, response.json
    assert "paymentCollected" in response.json["errors"]
    assert _snapshot(db, order_id, product.id) == before
