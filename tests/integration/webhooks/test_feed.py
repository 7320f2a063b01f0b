"""`sequence` and the pull feed `GET /api/admin/events`: numbered in commit order, so that a reader going
on from `next` never misses an event that commits after it read, whenever that event was written."""
import pytest
from sqlalchemy import select

from orders_service.api.orders.schemas import OrderInSchema
from orders_service.auth.actor import Actor
from orders_service.money import currency
from orders_service.orders import actions
from orders_service.orders.models import PaymentMethod
from orders_service.orders.service import place_order
from orders_service.webhooks.models import EventSequencer, OutboundEvent
from orders_service.webhooks.sequencer import sequence_events
from tests.support.webhooks import number_all


@pytest.fixture
def orders(make, db):
    """Place cash-on-delivery orders through the service: order_ids."""
    customer = make.customer()
    product = make.product(stock=100)
    method = make.delivery_method(countries=[])

    def place(n=1):
        return [place_order(db, Actor(customer.id, customer.role),
                            OrderInSchema().load(make.order_body(customer, method, [(product, 1)])),
                            PaymentMethod.CASH_ON_DELIVERY, currency("USD")).order.id for _ in range(n)]
    return place


@pytest.fixture
def admin_auth(make):
    return make.admin()[1]


def _feed(client, admin_auth, **query):
    response = client.get("/api/admin/events", query_string=query, headers=admin_auth)
    assert response.status_code == 200, response.json
    return response.json


def _sequence_all(session_factory):
    number_all(session_factory)


def test_the_feed_lists_numbered_events_in_order_and_goes_on_from_next(client, orders, admin_auth, session_factory):
    first, second = orders(2)
    _sequence_all(session_factory)  # (a worker of the run polling this database may number them first)

    page = _feed(client, admin_auth, after=0, limit=1)
    [event] = page["items"]
    assert (event["type"], event["sequence"], page["next"]) == ("order.created", 1, 1)
    assert event["id"].startswith("evt_") and event["data"]["orderSequence"] == 1
    assert event["data"]["order"]["id"] == str(first) and event["data"]["order"]["status"] == "confirmed"
    assert event["timestamp"].endswith("+00:00")
    page = _feed(client, admin_auth, after=page["next"])
    assert [(e["sequence"], e["data"]["order"]["id"]) for e in page["items"]] == [(2, str(second))]
    assert _feed(client, admin_auth, after=page["next"]) == {"items": [], "next": 2}
    assert _feed(client, admin_auth, after=0, type="order.canceled") == {"items": [], "next": 0}


def test_a_reader_never_misses_an_event_that_commits_after_it_read(client, orders, admin_auth, session_factory, db):
    """A's change is written first and commits last: numbering at write time would give it 3 and B's 4, and a
    reader that saw 4 first would go on after 4 and never see 3. Numbered in commit order, it gets 4."""
    slow_order, fast_order = orders(2)
    _sequence_all(session_factory)
    assert _feed(client, admin_auth)["next"] == 2

    with session_factory() as slow:
        with slow.begin():  # A: ships its order, and stays open
            actions.ship(slow, actions.lock_order(slow, slow_order), "1Z-SLOW", None)
            with session_factory() as fast, fast.begin():  # B: ships another order, and commits
                actions.ship(fast, actions.lock_order(fast, fast_order), "1Z-FAST", None)
            _sequence_all(session_factory)
            seen = _feed(client, admin_auth, after=2)
            assert [e["data"]["order"]["trackingNumber"] for e in seen["items"]] == ["1Z-FAST"]
            assert seen["next"] == 3
        # A commits now.
    _sequence_all(session_factory)
    later = _feed(client, admin_auth, after=seen["next"])
    assert [(e["sequence"], e["data"]["order"]["trackingNumber"]) for e in later["items"]] == [(4, "1Z-SLOW")]
    with db.begin():
        written = dict(db.execute(select(OutboundEvent.sequence, OutboundEvent.occurred_at)
                                  .where(OutboundEvent.sequence.in_([3, 4]))).all())
    assert written[4] < written[3]  # A's event was written first, and numbered after B's: the order it committed in


def test_an_order_s_events_are_numbered_in_its_own_order(client, orders, admin_auth, session_factory, db):
    [order_id] = orders(1)
    with session_factory() as session, session.begin():
        actions.ship(session, actions.lock_order(session, order_id), "1Z", None)
    with session_factory() as session, session.begin():
        actions.deliver(session, actions.lock_order(session, order_id))
    _sequence_all(session_factory)  # all three in one run
    items = _feed(client, admin_auth)["items"]
    assert [(e["type"], e["data"]["orderSequence"]) for e in items] == [
        ("order.created", 1), ("order.shipped", 2), ("order.delivered", 3)]
    assert [e["sequence"] for e in items] == [1, 2, 3]


@pytest.mark.parametrize("query", [{"after": -1}, {"after": "x"}, {"after": 2**63}, {"limit": 0}, {"limit": 1001},
                                   {"type": "order.nope"}, {"type": "ping"}])
def test_a_bad_cursor_or_type_is_a_400(client, admin_auth, query):
    response = client.get("/api/admin/events", query_string=query, headers=admin_auth)
    assert response.status_code == 400 and response.json["code"] == 400


def test_the_feed_is_the_admin_s(client, make):
    assert client.get("/api/admin/events").status_code == 401
    assert client.get("/api/admin/events", headers=make.shopper()[1]).status_code == 403


def test_a_sequencer_that_finds_the_counter_taken_skips_its_turn(orders, session_factory, db):
    orders(1)
    _sequence_all(session_factory)
    [later] = orders(1)
    with session_factory() as holder, holder.begin():
        holder.scalar(select(EventSequencer).where(EventSequencer.id == 1).with_for_update())  # another's turn
        with session_factory() as other:
            assert sequence_events(other) == 0  # no wait, nothing numbered twice
        with db.begin():  # nobody numbers while the turn is taken (a worker of the run skips too)
            assert db.scalar(select(OutboundEvent.sequence).where(OutboundEvent.order_id == later)) is None
    _sequence_all(session_factory)
    db.expire_all()
    with db.begin():
        assert sorted(db.scalars(select(OutboundEvent.sequence))) == [1, 2]
