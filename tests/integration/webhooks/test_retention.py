"""Retention: delivered deliveries and pings go after WEBHOOK_RETENTION_DAYS; what is still to be
delivered, dead deliveries and the events themselves (the feed) stay."""
from datetime import timedelta

from sqlalchemy import select, update

from orders_service.db import utcnow
from orders_service.webhooks import deliveries, endpoints
from orders_service.webhooks.models import OutboundEvent, WebhookDelivery, WebhookEndpoint
from tests.support.webhooks import number_all

POLICY = endpoints.UrlPolicy(https_only=False, allow_private=True)


def test_old_delivered_rows_and_pings_are_pruned(make, db, session_factory, client):
    customer, auth = make.shopper()
    product, method = make.product(stock=10), make.delivery_method(countries=[])
    hook = endpoints.create_endpoint(db, {"url": "http://127.0.0.1:9/hooks"}, POLICY)
    with db.begin():  # no sender of the run touches it (see test_endpoints_api.py)
        db.execute(update(WebhookEndpoint).values(paused_until=utcnow() + timedelta(days=1)))
    for _ in range(4):
        assert client.post("/api/orders", json=make.order_body(customer, method, [(product, 1)]),
                           headers=auth).status_code == 204
    number_all(session_factory)
    old_ping = endpoints.send_ping(db, hook.id)
    new_ping = endpoints.send_ping(db, hook.id)
    long_ago = utcnow() - timedelta(days=31)
    with db.begin():
        rows = db.scalars(select(WebhookDelivery.id).join(OutboundEvent).where(OutboundEvent.type != "ping")
                          .order_by(WebhookDelivery.id)).all()
        old_done, new_done, old_dead, old_waiting = rows
        db.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_([old_done, new_done]))
                   .values(status="succeeded", delivered_at=utcnow()))
        db.execute(update(WebhookDelivery).where(WebhookDelivery.id == old_dead).values(status="dead"))
        db.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_([old_done, old_dead, old_waiting,
                                                                          old_ping.delivery_id]))
                   .values(created_at=long_ago))
        db.execute(update(OutboundEvent).where(OutboundEvent.id == old_ping.event_id).values(occurred_at=long_ago))

    assert deliveries.prune(db, keep_days=30) == 2  # the old delivered one, and the old ping (with its delivery)
    with db.begin():
        left = set(db.scalars(select(WebhookDelivery.id)))
        events = db.scalars(select(OutboundEvent.type)).all()
    assert left == {new_done, old_dead, old_waiting, new_ping.delivery_id}
    assert sorted(events) == ["order.created"] * 4 + ["ping"]
