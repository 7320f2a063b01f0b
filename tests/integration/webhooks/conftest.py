import pytest

from tests.support.processes import Stack
from tests.support.receiver import Receiver


@pytest.fixture(scope="session")
def webhook_stack(base_env, redis_broker_url):
    """web + worker on a Redis database of their own; the worker's webhook senders deliver (their waits
    come from base_env's WEBHOOK_RETRY_SCHEDULE, the same for every worker of the run)."""
    # Database 6: it lives for the whole session, so no module's stack may share it (the payment states' stack
    # on 3 did, and this worker took that stack's expiry runs and applied its own TTL to them).
    running = Stack(dict(base_env, CELERY_BROKER_URL=redis_broker_url.rsplit("/", 1)[0] + "/6"))
    yield running
    running.close()


@pytest.fixture
def receiver():
    """Another system's webhook endpoint: a real HTTP server in the test process."""
    server = Receiver()
    yield server
    server.close()
