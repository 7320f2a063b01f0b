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
# Outbound webhooks: a worker consuming it runs the webhook senders (webhooks/engine.py), on threads of
# their own, so that slow endpoints never hold the slots that apply payments.
WEBHOOKS_QUEUE = "webhooks"
QUEUES = (PAYMENTS_QUEUE, NOTIFICATIONS_QUEUE, MAINTENANCE_QUEUE, WEBHOOKS_QUEUE)


class Tasks:
    """Every task's name, once: the workers' decorators (`workers/tasks.py`), the web's `enqueue`, the beat
    schedule and the queues' routes all use these."""

    PROCESS_STRIPE_EVENT = "workers.tasks.process_stripe_event"
    SEND_NOTIFICATIONS = "workers.tasks.send_notifications"
    RECONCILE_PAYMENTS = "workers.tasks.reconcile_payments"
    EXPIRE_UNPAID_ORDERS = "workers.tasks.expire_unpaid_orders"
    REDRIVE_EVENTS = "workers.tasks.redrive_events"
    CAPTURE_EXPIRING_AUTHORIZATIONS = "workers.tasks.capture_expiring_authorizations"
    DELIVER_WEBHOOKS = "workers.tasks.deliver_webhooks"
    PRUNE_WEBHOOK_DELIVERIES = "workers.tasks.prune_webhook_deliveries"


TASK_ROUTES = {
    Tasks.PROCESS_STRIPE_EVENT: {"queue": PAYMENTS_QUEUE},
    Tasks.SEND_NOTIFICATIONS: {"queue": NOTIFICATIONS_QUEUE},
    Tasks.RECONCILE_PAYMENTS: {"queue": MAINTENANCE_QUEUE},
    Tasks.EXPIRE_UNPAID_ORDERS: {"queue": MAINTENANCE_QUEUE},
    Tasks.REDRIVE_EVENTS: {"queue": MAINTENANCE_QUEUE},
    Tasks.CAPTURE_EXPIRING_AUTHORIZATIONS: {"queue": MAINTENANCE_QUEUE},
    Tasks.DELIVER_WEBHOOKS: {"queue": WEBHOOKS_QUEUE},
    Tasks.PRUNE_WEBHOOK_DELIVERIES: {"queue": MAINTENANCE_QUEUE},
}
# The broker carries only work the database can re-derive: a webhook event stays in the inbox until
# applied (the re-drive job sends it again), the periodic jobs and the outbox run again on the next
# tick. So no retry waits in the broker (a countdown held by a worker is lost with it), and on Redis
# kombu's "ack emulation" is off: a Redis that restarts while a worker holds unacknowledged messages
# kills the Celery 5.7 worker when it gives them back (celery#10242 closes the connection twice; the
# second close reads a transport client that is already gone). Without it the worker reconnects, and
# what it held is re-driven from the database.


def _transport_options(settings: Settings) -> dict:
    url = settings.broker_url
    if url.startswith("filesystem://"):
        # The embedded default: a broker in files under instance/ (runtime.prepare_process creates them).
        folders = settings.broker_folders
        return {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
                "control_folder": str(folders["control"])}
    if url.startswith(("redis://", "rediss://")):
        return {"ack_emulation": False, "socket_connect_timeout": 2, "socket_timeout": 5}
    # RabbitMQ: a publish counts once the broker has it (a node killed right after keeps it).
    return {"connect_timeout": 2, "confirm_publish": True}


# Redis's timeouts for the readiness check (RabbitMQ's connect timeout is 2 s already).
READY_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}


def make_celery(settings: Settings) -> Celery:
    app = Celery("orders_service")
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=_transport_options(settings),
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        # A worker that lost its broker keeps trying (every 2 to 30 s) for as long as it takes.
        broker_connection_max_retries=None,
        broker_heartbeat=30,  # RabbitMQ: a frozen or vanished node is noticed within a minute
        # On a lost connection the tasks running cannot be acknowledged any more: stop them and let the
        # broker (RabbitMQ) give them to the next worker, instead of running them twice at once.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A task is acknowledged after it ran, and given back if its pool process died: tasks are idempotent.
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
        self._ready_options = READY_TRANSPORT_OPTIONS if settings.broker_url.startswith(("redis", "rediss")) else {}

    def reachable(self) -> bool:
        """Whether the broker answers now (for /readyz): within a second or two, as a balancer's health check
        waits. A Redis that accepts connections but does not answer (frozen) held it for the transport's
        5 s read timeout."""
        try:
            with self._celery.connection_for_write(transport_options=self._ready_options) as connection:
                connection.ensure_connection(max_retries=0, timeout=2)  # one try: a health check asks again
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
