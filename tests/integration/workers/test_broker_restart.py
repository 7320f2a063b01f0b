"""A broker that restarts while the worker holds work: the worker lives on, and payments are confirmed
again within a minute of the broker being back, each once (issue 10; both brokers, restarted empty)."""
import time

import pytest
import requests
from sqlalchemy import func, select

from orders_service.config import Settings
from orders_service.orders.models import Order, OrderEvent
from orders_service.payments.models import StripeEvent
from orders_service.queue import TaskQueue, Tasks
from tests.support.database import TrailGate
from tests.support.orders import paid_orders
from tests.support.processes import STACK_TIMINGS, PrivateRabbitMQ, PrivateRedis, Stack, wait_until
from tests.support.stripe import signed_event

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("broker_restart")]


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request):
    """A broker of the test's own that it can stop and start; a Redis keeps nothing across the restart."""
    server = PrivateRedis() if request.param == "redis" else PrivateRabbitMQ()
    yield server
    server.close()



def _post(stack, intent):
    body, headers = signed_event("payment_intent.succeeded", intent.to_dict())
    assert requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30).ok


def _applied_once(db, order_ids):
    db.expire_all()
    with db.begin():
        paid = db.scalar(select(func.count()).select_from(Order).where(
            Order.id.in_(order_ids), Order.payment_status == "paid"))
        events = db.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id.in_(order_ids), OrderEvent.type == "payment_succeeded"))
    return paid == events == len(order_ids)


def test_the_worker_rides_out_a_broker_restart_with_work_in_flight(base_env, database_url, broker, client, make, db,
                                                                  shop, stripe_emulator):
    held = paid_orders(client, make, shop, stripe_emulator, 4)
    # Only the webhooks (and the re-drive) may confirm these orders: reconciliation and expiry stay away.
    env = dict(base_env, CELERY_BROKER_URL=broker.url, MAINTENANCE_INTERVAL_SECONDS="1",
               **dict(STACK_TIMINGS, RECONCILE_AFTER_SECONDS="3600", ORDER_PAYMENT_TTL_SECONDS="3600"))
    stack = Stack(env, processes=("web", "worker", "beat"))
    try:
        with TrailGate(database_url, "payment_succeeded") as gate:
            _post(stack, held[0][1])
            gate.wait_for_waiters(1)  # one pool process inside its task, in the middle of its transaction
            # A retry waiting in the worker (a countdown, as older code or an operator may send): with
            # kombu's Redis ack emulation, giving such a message back on a lost connection killed the worker.
            with db.begin():
                event_id = db.scalar(select(StripeEvent.id))
            TaskQueue(Settings.from_env(env))._celery.send_task(Tasks.PROCESS_STRIPE_EVENT, args=(event_id,),
                                                                countdown=20)
            time.sleep(2)  # the worker has reserved it, waiting for its time
            for _order_id, intent in held[1:]:
                _post(stack, intent)
            gate.wait_for_waiters(2)  # the other process is inside a task too; the other messages wait
            broker.stop()  # while the worker holds those two unacknowledged, and has others reserved
            time.sleep(3)  # long enough for the worker to notice
            broker.start()
            back = time.monotonic()
            time.sleep(1)
        # The gate opens: the two tasks finish on a connection that is gone.

        later = paid_orders(client, make, shop, stripe_emulator, 2)
        for _order_id, intent in later:  # new payments, told after the broker is back
            _post(stack, intent)

        wait_until(lambda: _applied_once(db, [o for o, _ in held + later]), timeout=60, interval=0.5)
        assert time.monotonic() - back < 60
        assert stack.procs["worker"].poll() is None, "the worker exited"
        time.sleep(2)  # nothing is applied twice afterwards either
        assert _applied_once(db, [o for o, _ in held + later])
    finally:
        stack.close()
