"""Thin tasks: they take ids, open a session and call services. All of them are idempotent."""
from __future__ import annotations

from celery import shared_task

from orders_service.notifications import outbox
from orders_service.payments import inbox, reconcile
from orders_service.payments.gateway import PaymentGatewayError
from orders_service.queue import MAX_RETRY_DELAY_SECONDS
from workers.celery_app import runtime, settings


@shared_task(name="workers.tasks.process_stripe_event", bind=True, autoretry_for=(PaymentGatewayError,),
             retry_backoff=2, retry_backoff_max=MAX_RETRY_DELAY_SECONDS, retry_jitter=True, max_retries=12)
def process_stripe_event(self, event_id: str) -> str:
    with runtime.session_factory() as session:
        return inbox.process_event(session, runtime.gateway, event_id)


@shared_task(name="workers.tasks.reconcile_pending_orders")
def reconcile_pending_orders() -> int:
    with runtime.session_factory() as session:
        return reconcile.reconcile_pending_orders(session, runtime.gateway, settings.reconcile_after_seconds)


@shared_task(name="workers.tasks.expire_unpaid_orders")
def expire_unpaid_orders() -> int:
    with runtime.session_factory() as session:
        return reconcile.expire_unpaid_orders(session, runtime.gateway, settings.order_payment_ttl_seconds)


@shared_task(name="workers.tasks.redrive_events")
def redrive_events() -> int:
    with runtime.session_factory() as session:
        return inbox.redrive_events(session, runtime.queue, settings.redrive_after_seconds)


@shared_task(name="workers.tasks.send_notifications")
def send_notifications() -> int:
    with runtime.session_factory() as session:
        return outbox.send_unsent(session, runtime.mailer, settings.mail_from)
