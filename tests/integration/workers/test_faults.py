"""Faults at the process and network level: a worker killed mid-task, a broker that is down."""
import os
import signal
import subprocess
import time

import pytest
import requests
from sqlalchemy import func, select

from orders_service.orders.models import Order, OrderEvent
from orders_service.payments.models import StripeEvent
from tests.support.database import TrailGate
from tests.support.orders import paid_orders
from tests.support.processes import STACK_TIMINGS, PrivateRedis, Stack, wait_until
from tests.support.stripe import signed_event

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    yield server
    server.stop()



def _state(db, order_id):
    db.expire_all()
    with db.begin():
        order = db.get(Order, order_id)
        succeeded = db.scalar(select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == order_id, OrderEvent.type == "payment_succeeded"))
        return order.payment_status, succeeded


def _children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_worker_killed_mid_task_gets_the_event_again_and_applies_it_once(
        base_env, database_url, private_broker, client, make, db, shop, stripe_emulator):
    [(order_id, intent)] = paid_orders(client, make, shop, stripe_emulator, 1)
    # The message given back after the kill finds the dead process's claim: the re-drive sends the event
    # again once the claim lapses. Reconciliation and expiry would pay the order too: out of the way.
    env = dict(base_env, CELERY_BROKER_URL=private_broker, MAINTENANCE_INTERVAL_SECONDS="1",
               **dict(STACK_TIMINGS, RECONCILE_AFTER_SECONDS="3600", ORDER_PAYMENT_TTL_SECONDS="3600"))
    stack = Stack(env, processes=("web", "beat"))
    try:
        with TrailGate(database_url, "payment_succeeded") as gate:
            worker = stack.start("worker", WORKER_CONCURRENCY="1")
            body, headers = signed_event("payment_intent.succeeded", intent.to_dict())
            assert requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30).ok

            # The pool process is inside the task, in the middle of its transaction: kill it there.
            gate.wait_for_waiters(1)
            [child] = wait_until(lambda: _children(worker.pid), timeout=5)
            os.kill(child, signal.SIGKILL)
            assert _state(db, order_id) == ("unpaid", 0)
            gate.open()  # the dead process's transaction goes on to nowhere: it can only roll back

        wait_until(lambda: _state(db, order_id) == ("paid", 1), timeout=60)  # sent again, applied once
        assert _event_attempts(db) >= 2
        time.sleep(1)
        assert _state(db, order_id) == ("paid", 1)
    finally:
        stack.close()


def test_a_whole_worker_killed_mid_task_is_finished_by_the_redrive_job(
        base_env, database_url, private_broker, client, make, db, shop, stripe_emulator):
    [(order_id, intent)] = paid_orders(client, make, shop, stripe_emulator, 1)
    # Reconciliation and expiry would pay the order too; this test is about the re-drive, so they stay out of the way.
    env = dict(base_env, CELERY_BROKER_URL=private_broker, MAINTENANCE_INTERVAL_SECONDS="1",
               **dict(STACK_TIMINGS, RECONCILE_AFTER_SECONDS="3600", ORDER_PAYMENT_TTL_SECONDS="3600"))
    stack = Stack(env, processes=("web",))
    try:
        with TrailGate(database_url, "payment_succeeded") as gate:
            worker = stack.start("worker", WORKER_CONCURRENCY="1")
            body, headers = signed_event("payment_intent.succeeded", intent.to_dict())
            assert requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30).ok
            gate.wait_for_waiters(1)
            os.killpg(worker.pid, signal.SIGKILL)  # main process and pool child at once: nobody gives it back
            stack.procs.pop("worker")
            assert _state(db, order_id) == ("unpaid", 0)
            gate.open()

        stack.start("worker")
        stack.start("beat")
        wait_until(lambda: _state(db, order_id) == ("paid", 1), timeout=60)
    finally:
        stack.close()


def _event_attempts(db):
    with db.begin():
        return db.scalar(select(func.max(StripeEvent.attempts)))


def test_webhooks_arriving_while_the_broker_is_down_are_applied_once_it_is_back(
        base_env, private_redis, client, make, db, shop, stripe_emulator):
    paid = paid_orders(client, make, shop, stripe_emulator, 20)
    env = dict(base_env, CELERY_BROKER_URL=private_redis.url, MAINTENANCE_INTERVAL_SECONDS="1",
               # only the re-drive may apply them: reconciliation and expiry would pay the orders too
               **dict(STACK_TIMINGS, RECONCILE_AFTER_SECONDS="3600", ORDER_PAYMENT_TTL_SECONDS="3600"))
    stack = Stack(env, processes=("web", "worker", "beat"))
    try:
        private_redis.stop()
        for _order_id, intent in paid:
            body, headers = signed_event("payment_intent.succeeded", intent.to_dict())
            response = requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30)
            assert response.status_code == 200
        with db.begin():
            assert db.scalar(select(func.count()).select_from(StripeEvent)) == 20
        assert all(_state(db, order_id) == ("unpaid", 0) for order_id, _ in paid)

        private_redis.start()

        def unprocessed():
            with db.begin():
                return db.scalar(select(func.count()).select_from(StripeEvent)
                                 .where(StripeEvent.processed_at.is_(None)))

        wait_until(lambda: unprocessed() == 0, timeout=90, interval=1)
        assert all(_state(db, order_id) == ("paid", 1) for order_id, _ in paid)
    finally:
        stack.close()


def test_the_redrive_never_sends_again_an_event_a_worker_holds(base_env, database_url, private_broker, client, make,
                                                               db, shop, stripe_emulator, session_factory):
    from orders_service.config import Settings
    from orders_service.payments import inbox
    from orders_service.queue import TaskQueue

    [(order_id, intent)] = paid_orders(client, make, shop, stripe_emulator, 1)
    env = dict(base_env, CELERY_BROKER_URL=private_broker, **STACK_TIMINGS)
    stack = Stack(env, processes=("web",))
    try:
        with TrailGate(database_url, "payment_succeeded") as gate:
            stack.start("worker", WORKER_CONCURRENCY="1")
            body, headers = signed_event("payment_intent.succeeded", intent.to_dict())
            assert requests.post(f"{stack.url}/api/webhooks/stripe", data=body, headers=headers, timeout=30).ok
            gate.wait_for_waiters(1)  # a worker holds it, in the middle of applying it
            time.sleep(1.5)  # older than REDRIVE_AFTER_SECONDS: the re-drive would take it, were it not held
            with session_factory() as session:
                assert inbox.redrive_events(session, TaskQueue(Settings.from_env(env)), older_than_seconds=1) == 0
            gate.open()
        wait_until(lambda: _state(db, order_id) == ("paid", 1), timeout=20)
        assert _event_attempts(db) == 1  # it was in flight once
    finally:
        stack.close()
