"""What order tests do again and again: place an online order, read it back, post a signed event."""
import requests
from sqlalchemy import func, select

from orders_service.orders.models import Order, OrderEvent
from tests.support.stripe import payment_intent_of, signed_event


def place_online(client, make, shop, quantity=1):
    """An online order through the API; (order id, PaymentIntent id)."""
    customer, auth, product, method = shop
    response = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, quantity)]),
                           headers=auth)
    assert response.status_code == 200, response.json
    return response.json["orderId"], payment_intent_of(response.json["clientSecret"])


def place_online_over_http(url, make, shop, quantity=1):
    """An online order through a running web's API (a stack's); (order id, PaymentIntent id)."""
    customer, auth, product, method = shop
    answer = requests.post(f"{url}/api/orders/with-payment", headers=auth, timeout=30,
                           json=make.order_body(customer, method, [(product, quantity)]))
    assert answer.status_code == 200, answer.text
    return answer.json()["orderId"], payment_intent_of(answer.json()["clientSecret"])


def fresh_order(db, order_id):
    db.expire_all()
    with db.begin():
        return db.get(Order, order_id)


def count_events(db, order_id, event_type):
    with db.begin():
        return db.scalar(select(func.count()).select_from(OrderEvent)
                         .where(OrderEvent.order_id == order_id, OrderEvent.type == event_type))


def post_event(stack, event_type, obj: dict, event_id=None):
    """POST a signed event to the stack's webhook; its body and headers, to send again."""
    body, headers = signed_event(event_type, obj, event_id)
    response = requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return body, headers, response.json()


def paid_orders(client, make, shop, stripe_emulator, n):
    """`n` with-payment orders, each paid at the emulator (no webhook sent): [(order id, PaymentIntent)]."""
    customer, auth, product, method = shop
    paid = []
    for _ in range(n):
        created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 1)]),
                              headers=auth).json
        paid.append((created["orderId"], stripe_emulator.pay(payment_intent_of(created["clientSecret"]))))
    return paid
