"""The Celery configuration (one home for web and workers) and the producer the web uses to enqueue.

The web never imports the workers' entry point: it sends tasks by name.
"""
from __future__ import annotations

import logging

from celery import Celery
from kombu import Exchange, Queue

from orders_service.config import Settings

log = logging.getLogger(__name__)

PAYMENTS_QUEUE = "payments"  # webhook events: latency matters
NOTIFICATIONS_QUEUE = "notifications"  # customer emails: a slow mail server must not hold up payments
MAINTENANCE_QUEUE = "maintenance"  # periodic jobs: reconciliation, expiry, re-drive
QUEUES = (PAYMENTS_QUEUE, NOTIFICATIONS_QUEUE, MAINTENANCE_QUEUE)

PROCESS_STRIPE_EVENT = "workers.tasks.process_stripe_event"
TASK_ROUTES = {
    PROCESS_STRIPE_EVENT: {"queue": PAYMENTS_QUEUE},
    "workers.tasks.send_notifications": {"queue": NOTIFICATIONS_QUEUE},
    "workers.tasks.*": {"queue": MAINTENANCE_QUEUE},
}
# Longest wait before a retried task runs again; the Redis visibility timeout must exceed it,
# or Redis would hand a task that is merely waiting to a second worker.
MAX_RETRY_DELAY_SECONDS = 600


def _transport_options(settings: Settings) -> dict:
    url = settings.broker_url
    if url.startswith("filesystem://"):
        # The embedded default: a broker in files under instance/ (runtime.prepare_process creates them).
        folders = settings.broker_folders
        return {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
                "control_folder": str(folders["control"])}
    if url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": MAX_RETRY_DELAY_SECONDS * 6, "socket_connect_timeout": 2,
                "socket_timeout": 5}
    return {"connect_timeout": 2}


def make_celery(settings: Settings) -> Celery:
    app = Celery("orders_service")
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=_transport_options(settings),
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A task is acknowledged after it ran, and given back if its worker died: tasks are idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Each queue its own exchange and key: queues sharing a binding would each get every task.
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_queue=MAINTENANCE_QUEUE,
        task_routes=TASK_ROUTES,
        enable_utc=True,
        beat_schedule_filename=str(settings.instance_dir / "celerybeat-schedule"),
    )
    return app


class TaskQueue:
    """Enqueues tasks by name. A broker that is down is logged, not raised: the inbox keeps the work."""

    def __init__(self, settings: Settings):
        self._celery = make_celery(settings)

    def reachable(self) -> bool:
        """Whether the broker answers now (for /readyz)."""
        try:
            with self._celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:  # refused, timed out, authentication: all "not reachable"
            return False

    def enqueue(self, task_name: str, *args) -> bool:
        try:
            self._celery.send_task(task_name, args=args, retry=False)
            return True
        except Exception:  # any broker or network failure; the re-drive job enqueues it later
            log.warning("could not enqueue %s%r; the re-drive job will", task_name, args, exc_info=True)
            return False
