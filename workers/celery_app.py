"""The Celery app of the `worker` and `beat` processes: configured from the service's settings."""
from __future__ import annotations

from functools import cached_property

from celery import signals

from orders_service.config import Settings
from orders_service.ops.logs import configure_logging
from orders_service.queue import make_celery

settings = Settings.from_env()
celery = make_celery(settings)
celery.conf.beat_schedule = {
    name: {"task": f"workers.tasks.{name}", "schedule": float(settings.maintenance_interval_seconds)}
    for name in ("reconcile_pending_orders", "expire_unpaid_orders", "redrive_events")
}
# The outbox is polled often: that is how long a customer waits for an email at most.
celery.conf.beat_schedule["send_notifications"] = {
    "task": "workers.tasks.send_notifications", "schedule": float(settings.notification_interval_seconds),
    "options": {"expires": float(settings.notification_interval_seconds) * 2},  # no pile-up while workers are down
}
celery.conf.imports = ("workers.tasks",)


@signals.setup_logging.connect
def _json_logs(**_kwargs):
    """Workers and beat log JSON lines like the web (Celery leaves logging alone when this is connected)."""
    configure_logging()


class Runtime:
    """What tasks use, built lazily in each worker process (after the prefork, never before)."""

    @cached_property
    def session_factory(self):
        from orders_service.db import make_engine, make_session_factory

        return make_session_factory(make_engine(settings.database_url, pool_size=2))

    @cached_property
    def gateway(self):
        from orders_service.payments.stripe_gateway import StripeGateway

        return StripeGateway(settings)

    @cached_property
    def queue(self):
        from orders_service.queue import TaskQueue

        return TaskQueue(settings)

    @cached_property
    def mailer(self):
        from orders_service.notifications.mailer import make_mailer

        return make_mailer(settings.smtp_url, settings.mail_folder)


runtime = Runtime()
