"""Fulfilment and the notification outbox, sent by a real worker to a real SMTP server."""
import time

import pytest
import requests
from sqlalchemy import select

from orders_service.catalog.models import Product
from orders_service.notifications.models import Notification
from tests.support.processes import STACK_TIMINGS, PrivateRedis, Stack, wait_until
from tests.support.stripe import payment_intent_of, signed_event

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("notifications")]


@pytest.fixture
def mail_stack(base_env, smtp_sink):
    """web on a private broker, mailing through the SMTP sink; tests start the worker themselves."""
    broker = PrivateRedis()
    env = dict(base_env, CELERY_BROKER_URL=broker.url, SMTP_URL=smtp_sink.url, MAIL_FROM="shop@example.com",
               NOTIFICATION_INTERVAL_SECONDS="1", **STACK_TIMINGS)
    stack = Stack(env, processes=("web",))
    yield stack
    stack.close()
    broker.stop()


def _notifications(db, kind=None):
    db.expire_all()
    with db.begin():
        query = select(Notification).order_by(Notification.created_at)
        return list(db.scalars(query.where(Notification.kind == kind) if kind else query))


def _place(stack, make, customer, auth, product, method):
    response = requests.post(f"{stack.url}/api/orders", json=make.order_body(customer, method, [(product, 1)]),
                             headers=auth, timeout=30)
    assert response.status_code == 204, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def test_shipped_with_tracking_is_shown_and_notified_once(mail_stack, smtp_sink, client, make, db):
    customer, auth = make.shopper()
    _admin, admin_auth = make.admin()
    product, method = make.product(stock=5), make.delivery_method(countries=[])
    mail_stack.start("worker")
    mail_stack.start("beat")
    order_id = _place(mail_stack, make, customer, auth, product, method)

    shipped = requests.patch(f"{mail_stack.url}/api/admin/orders/{order_id}", headers=admin_auth, timeout=30,
                             json={"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"})
    assert shipped.status_code == 200, shipped.text

    order = client.get(f"/api/orders/{order_id}", headers=auth).json
    assert (order["status"], order["trackingNumber"], order["carrier"]) == ("shipped", "1Z999AA10123456784", "UPS")
    [note] = _notifications(db, "shipped")
    assert "1Z999AA10123456784" in note.body
    wait_until(lambda: _notifications(db, "shipped")[0].sent_at is not None)
    mails = [m for m in smtp_sink.messages if "has shipped" in m["Subject"]]
    assert len(mails) == 1
    assert mails[0]["To"] == customer.email and "1Z999AA10123456784" in mails[0].get_payload()
    time.sleep(2)  # the outbox is polled every second in this stack: it must not send it again
    assert len([m for m in smtp_sink.messages if "has shipped" in m["Subject"]]) == 1


def test_notifications_queued_while_the_worker_is_stopped_are_sent_once_it_starts(mail_stack, smtp_sink, make, db):
    customer, auth = make.shopper()
    product, method = make.product(stock=5), make.delivery_method(countries=[])
    orders = [_place(mail_stack, make, customer, auth, product, method) for _ in range(3)]
    time.sleep(1)
    assert smtp_sink.messages == []
    assert all(n.sent_at is None for n in _notifications(db))

    mail_stack.start("beat")  # polls the outbox every second while no worker runs: sends pile up in the broker
    time.sleep(2)
    mail_stack.start("worker")

    wait_until(lambda: len(_notifications(db)) == 3 and all(n.sent_at for n in _notifications(db)), timeout=30)
    time.sleep(3)
    confirmed = [m for m in smtp_sink.messages if "confirmed" in m["Subject"]]
    assert len(confirmed) == 3
    assert sorted(m["Message-ID"] for m in confirmed) == sorted(f"<{n.id}@orders-service>" for n in _notifications(db))
    assert {str(n.order_id) for n in _notifications(db)} == set(orders)


def test_a_refund_made_in_the_stripe_dashboard_is_reflected(stack, client, make, db, stripe_emulator):
    customer, auth = make.shopper()
    product, method = make.product(stock=5), make.delivery_method(countries=[])
    created = client.post("/api/orders/with-payment", json=make.order_body(customer, method, [(product, 2)]),
                          headers=auth).json
    pi_id = payment_intent_of(created["clientSecret"])
    stripe_emulator.pay(pi_id)
    assert client.patch(f"/api/orders/{created['orderId']}/paid", headers=auth).status_code == 204

    stripe_emulator.client.v1.refunds.create(params={"payment_intent": pi_id})  # "in the dashboard"
    charge = stripe_emulator.client.v1.charges.retrieve(stripe_emulator.payment_intent(pi_id).latest_charge.id)
    assert charge.amount_refunded == charge.amount
    body, headers = signed_event("charge.refunded", charge.to_dict())
    assert requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30).ok

    wait_until(lambda: client.get(f"/api/orders/{created['orderId']}", headers=auth).json["paymentStatus"]
               == "refunded")
    order = client.get(f"/api/orders/{created['orderId']}", headers=auth).json
    assert order["status"] == "canceled"
    assert make.stock_of(Product, product.id) == 5
    assert [e["type"] for e in order["events"]].count("refunded") == 1
