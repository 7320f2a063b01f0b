"""The Celery app of the `worker` and `beat` processes: configured from the service's settings."""
from __future__ import annotations

from celery import signals

from orders_service.config import Settings
from orders_service.runtime import Runtime, prepare_process

settings = Settings.from_env()
prepare_process(settings)  # before the services' imports: prometheus-client reads its folder when imported

from orders_service.ops.logs import configure_logging  # noqa: E402
from orders_service.queue import WEBHOOKS_QUEUE, Tasks, make_celery  # noqa: E402
from orders_service.webhooks.engine import process_engine  # noqa: E402

celery = make_celery(settings)


def _every(task: str, seconds: int) -> dict:
    """Each run re-derives its work from the database, so a run still queued when the next is due is
    dropped rather than run late: a worker slower than the interval never builds a backlog of them."""
    return {"task": task, "schedule": float(seconds), "options": {"expires": float(seconds) * 2}}


maintenance = settings.maintenance_interval_seconds
celery.conf.beat_schedule = {
    "reconcile_payments": _every(Tasks.RECONCILE_PAYMENTS, maintenance),
    "expire_unpaid_orders": _every(Tasks.EXPIRE_UNPAID_ORDERS, maintenance),
    "redrive_events": _every(Tasks.REDRIVE_EVENTS, maintenance),
    # Authorizations still uncaptured a day before they lapse (PAYMENT_CAPTURE=on_shipment); finds none otherwise.
    "capture_expiring_authorizations": _every(Tasks.CAPTURE_EXPIRING_AUTHORIZATIONS, maintenance),
    # The outbox is polled often: that is how long a customer waits for an email at most.
    "send_notifications": _every(Tasks.SEND_NOTIFICATIONS, settings.notification_interval_seconds),
    # The webhook senders poll on their own; this only makes sure they run (and wakes them).
    "deliver_webhooks": _every(Tasks.DELIVER_WEBHOOKS, 5),
    "prune_webhook_deliveries": _every(Tasks.PRUNE_WEBHOOK_DELIVERIES, 3600),
}
celery.conf.imports = ("workers.tasks",)
# Each worker process builds its own engine and clients on first use, after the prefork.
# The periodic jobs' threads each want a connection for a moment; never more than DB_POOL_SIZE.
runtime = Runtime(settings, db_pool_size=min(settings.provider_concurrency + 1, settings.db_pool_size))


def webhook_senders():
    """This process's webhook senders (webhooks/engine.py)."""
    return process_engine(runtime.session_factory, settings)


@signals.worker_process_init.connect
def _start_webhook_senders(**_kwargs):
    """A pool process of a worker that consumes the webhooks queue starts its senders as it starts: they
    need no task to run (beat's `deliver_webhooks` restarts them should their thread have died)."""
    if WEBHOOKS_QUEUE in celery.amqp.queues.consume_from:
        webhook_senders().ensure_running()


@signals.setup_logging.connect
def _json_logs(**_kwargs):
    """Workers and beat log JSON lines like the web (Celery leaves logging alone when this is connected)."""
    configure_logging(fmt=settings.log_format)
