"""Each task lands in exactly one queue, on both brokers (queues must not share a binding)."""
import time

from kombu import Connection

from orders_service.config import Settings
from orders_service.queue import QUEUES, TaskQueue, Tasks
from tests.support.processes import wait_until


def test_a_webhook_task_goes_to_the_payments_queue_only(base_env, private_broker):
    queue = TaskQueue(Settings.from_env(dict(base_env, CELERY_BROKER_URL=private_broker)))
    declared = queue._celery.amqp.queues
    with Connection(private_broker) as connection:
        channel = connection.channel()
        for name in QUEUES:  # declared as a worker would, so that the broker routes to them
            declared[name].bind(channel).declare()
        assert queue.enqueue(Tasks.PROCESS_STRIPE_EVENT, "evt_1")

        def waiting():
            if private_broker.startswith("redis"):
                import redis

                return {name: redis.Redis.from_url(private_broker).llen(name) for name in QUEUES}
            return {name: declared[name].bind(channel).queue_declare(passive=True).message_count for name in QUEUES}

        wait_until(lambda: sum(waiting().values()) >= 1, timeout=10)  # publishing is asynchronous
        time.sleep(0.5)  # time for any wrongly routed copies to land too
        assert waiting() == {"payments": 1, "notifications": 0, "maintenance": 0, "webhooks": 0}
