"""Thin tasks: they take ids, open a session and call services. All of them are idempotent."""
from __future__ import annotations

from celery import shared_task

from orders_service.notifications import outbox
from orders_service.payments import capture, inbox, reconcile
from orders_service.queue import Tasks
from orders_service.webhooks import deliveries
from workers.celery_app import runtime, settings, webhook_senders


@shared_task(name=Tasks.PROCESS_STRIPE_EVENT)
def process_stripe_event(event_id: str) -> str:
    """Apply one stored webhook event. Nothing here waits on Stripe; an event that fails is re-driven
    from the inbox by the beat job, so no retry is held in the broker (it would be lost with it)."""
    with runtime.task_session() as session:
        return inbox.process_event(session, runtime.gateway, event_id)


@shared_task(name=Tasks.RECONCILE_PAYMENTS)
def reconcile_payments() -> int:
    return reconcile.reconcile_payments(runtime.session_factory, runtime.gateway, settings.reconcile_after_seconds,
                                        settings.provider_concurrency, _time_budget(),
                                        processing_every_seconds=settings.reconcile_processing_every_seconds,
                                        confirmed_every_seconds=settings.reconcile_confirmed_seconds)


@shared_task(name=Tasks.EXPIRE_UNPAID_ORDERS)
def expire_unpaid_orders() -> int:
    return reconcile.expire_unpaid_orders(runtime.session_factory, runtime.gateway, settings.order_payment_ttl_seconds,
                                          settings.provider_concurrency, _time_budget())


@shared_task(name=Tasks.CAPTURE_EXPIRING_AUTHORIZATIONS)
def capture_expiring_authorizations() -> int:
    return capture.capture_expiring_authorizations(runtime.session_factory, runtime.gateway,
                                                   concurrency=settings.provider_concurrency,
                                                   time_budget_seconds=_time_budget())


def _time_budget() -> float:
    """A run stops taking new batches before the next one is due (what is left, it takes)."""
    return settings.maintenance_interval_seconds * 0.8


@shared_task(name=Tasks.REDRIVE_EVENTS)
def redrive_events() -> int:
    with runtime.session_factory() as session:
        return inbox.redrive_events(session, runtime.queue, settings.redrive_after_seconds)


@shared_task(name=Tasks.SEND_NOTIFICATIONS)
def send_notifications() -> int:
    with runtime.session_factory() as session:
        return outbox.send_unsent(session, runtime.mailer, settings.mail_from)


@shared_task(name=Tasks.DELIVER_WEBHOOKS)
def deliver_webhooks() -> bool:
    """Make sure this process's webhook senders run, and have them look for work now. The sending itself
    happens on their own threads, never on this pool slot. True if they were started now."""
    senders = webhook_senders()
    started = senders.ensure_running()
    senders.wake()
    return started


@shared_task(name=Tasks.PRUNE_WEBHOOK_DELIVERIES)
def prune_webhook_deliveries() -> int:
    with runtime.session_factory() as session:
        return deliveries.prune(session, settings.webhook_retention_days)
