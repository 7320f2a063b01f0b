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


# A pending online order in each payment state before the money arrives (the public API's promise): cancelling is
# refused only while the provider processes the payment; the client secret is handed out while it can
# be paid, the step to finish while there is one, the last decline while the last attempt failed.
STEP = {"type": "redirect_to_url", "redirectUrl": "https://hooks.stripe.com/redirect/authenticate/src_1"}
DECLINE = "Your card was declined."
ONLINE_EXPECTED = {
    #                   cancel      secret  nextAction  lastError  payment once canceled (nothing waits on a step)
    "unpaid":          ("canceled", True,   None,       None,      "unpaid"),
    "action_required": ("canceled", True,   STEP,       None,      "unpaid"),
    "processing":      (REFUSED,    False,  None,       None,      None),
    "failed":          ("canceled", True,   None,       DECLINE,   "failed"),
}


def _online_order(client, make, db, payment):
    """A pending online order of 2 from a stock of 5, put in the payment state under test."""
    customer, auth = make.shopper()
    product = make.product(stock=5)
    method = make.delivery_method(countries=[])
    placed = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 2)]),
                         headers=auth)
    assert placed.status_code == 200, placed.json
    order_id = placed.json["orderId"]
    with db.begin():
        db.execute(update(Order).where(Order.id == order_id).values(
            payment_status=payment, payment_next_action=STEP if payment == "action_required" else None,
            payment_error=DECLINE))  # the last decline stays on the order; it is shown only while failed
    return order_id, placed.json["clientSecret"], product, auth


@pytest.mark.parametrize("payment", sorted(ONLINE_EXPECTED))
def test_a_pending_online_orders_payment_states(client, make, db, payment):
    order_id, secret, product, auth = _online_order(client, make, db, payment)
    cancel, gives_secret, next_action, last_error, payment_after = ONLINE_EXPECTED[payment]

    state = client.get(f"/api/orders/{order_id}/payment", headers=auth)

    assert state.status_code == 200, state.json
    assert state.json == {"orderId": order_id, "paymentStatus": payment, "clientSecret": secret if gives_secret
                          else None, "nextAction": next_action, "lastError": last_error}
    before = _snapshot(db, order_id, product.id)

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth)

    if cancel == REFUSED:
        assert response.status_code == 400, response.json
        assert response.json["message"].startswith("The payment for this order is still being processed")
        assert _snapshot(db, order_id, product.id) == before
    else:
        assert response.status_code == 200, response.json
        assert (response.json["status"], response.json["paymentStatus"]) == (cancel, payment_after)
        after = _snapshot(db, order_id, product.id)
        assert after[4] == before[4] + 2  # the stock goes back
        # the PaymentIntent was canceled at Stripe too: the order's payment is over
        assert client.get(f"/api/orders/{order_id}/payment", headers=auth).json["clientSecret"] is None
