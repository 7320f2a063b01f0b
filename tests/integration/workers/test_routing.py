"""Each task lands in exactly one queue, on both brokers (queues must not share a binding)."""
import subprocess
import time
import uuid

import pytest
from kombu import Connection

from orders_service.config import Settings
from orders_service.queue import PROCESS_STRIPE_EVENT, QUEUES, TaskQueue
from tests.conftest import PrivateRedis, wait_until


@pytest.fixture(params=["redis", "rabbitmq"])
def empty_broker(request):
    if request.param == "redis":
        server = PrivateRedis()
        yield server.url
        server.stop()
        return
    vhost = f"orders_routing_{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "--quiet", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "--quiet", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "--quiet", "delete_vhost", vhost], capture_output=True)


def test_a_webhook_task_goes_to_the_payments_queue_only(base_env, empty_broker):
    queue = TaskQueue(Settings.from_env(dict(base_env, CELERY_BROKER_URL=empty_broker)))
    declared = queue._celery.amqp.queues
    with Connection(empty_broker) as connection:
        channel = connection.channel()
        for name in QUEUES:  # declared as a worker would, so that the broker routes to them
            declared[name].bind(channel).declare()
        assert queue.enqueue(PROCESS_STRIPE_EVENT, "evt_1")

        def waiting():
            if empty_broker.startswith("redis"):
                import redis

                return {name: redis.Redis.from_url(empty_broker).llen(name) for name in QUEUES}
            return {name: declared[name].bind(channel).queue_declare(passive=True).message_count for name in QUEUES}

        wait_until(lambda: sum(waiting().values()) >= 1, timeout=10)  # publishing is asynchronous
        time.sleep(0.5)  # time for any wrongly routed copies to land too
        assert waiting() == {"payments": 1, "notifications": 0, "maintenance": 0}
