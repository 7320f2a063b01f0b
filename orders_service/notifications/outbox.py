"""Customer notifications through an outbox: written with the change, sent by a worker, each once.

`notify()` adds the message in the caller's transaction, so a rolled-back change never notifies and a
committed one is never forgotten. A periodic Celery task (every few seconds) sends what is unsent:
it claims a message before sending it and marks it sent afterwards, so two senders never send the
same message, and a message survives a worker or a mail server that is down. The one window left —
a sender that dies after the SMTP server took the message but before it is marked sent — sends it
again once the claim lapses; the Message-ID is the notification's id, so the receiving side can drop
that duplicate. Polling (rather than enqueueing each message) keeps the broker out of the order path.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from orders_service.auth.models import Customer
from orders_service.db import utcnow
from orders_service.notifications.mailer import Mailer
from orders_service.notifications.models import Notification

log = logging.getLogger(__name__)
CLAIM = timedelta(minutes=2)
BATCH = 100
# Built once: a Core INSERT on the table skips the ORM's per-call statement work (every order writes one).
_ADD = insert(Notification.__table__)


def notify(session: Session, order_id: uuid.UUID, customer_id: uuid.UUID, kind: str, subject: str, body: str) -> None:
    """Add a message to a customer about an order to the outbox, inside the caller's transaction."""
    session.execute(_ADD, dict(id=uuid.uuid4(), order_id=order_id, customer_id=customer_id, kind=kind,
                               subject=subject, body=body, attempts=0, created_at=utcnow()))


def send_notification(session: Session, mailer: Mailer, notification_id: uuid.UUID, sender: str) -> bool:
    """Send one message unless it was sent or another sender holds it. True when this call sent it."""
    now = utcnow()
    with session.begin():
        claimed = session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.sent_at.is_(None),
                   or_(Notification.claimed_until.is_(None), Notification.claimed_until < now))
            .values(claimed_until=now + CLAIM, attempts=Notification.attempts + 1)
            .returning(Notification.customer_id, Notification.subject, Notification.body)
        ).first()
        if claimed is None:
            return False
        recipient = session.scalar(select(Customer.email).where(Customer.id == claimed.customer_id))
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, recipient, claimed.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{notification_id}@orders-service>"  # stable: a resend can be recognised
    message.set_content(claimed.body)
    try:
        mailer.send(message)
    except Exception as exc:  # SMTP and socket errors alike: release the claim; the next outbox run retries
        with session.begin():
            session.execute(update(Notification).where(Notification.id == notification_id)
                            .values(claimed_until=None, last_error=str(exc)[:500]))
        raise
    with session.begin():
        session.execute(update(Notification).where(Notification.id == notification_id)
                        .values(sent_at=utcnow(), recipient=recipient, claimed_until=None, last_error=None))
    return True


def send_unsent(session: Session, mailer: Mailer, sender: str) -> int:
    """Send every message not yet sent (oldest first, a batch at a time); the number sent.

    A message the mail server refuses stays unsent with its error, and the next run tries it again.
    """
    now = utcnow()
    with session.begin():
        ids = list(session.scalars(
            select(Notification.id)
            .where(Notification.sent_at.is_(None),
                   or_(Notification.claimed_until.is_(None), Notification.claimed_until < now))
            .order_by(Notification.created_at).limit(BATCH)
        ))
    sent = 0
    for notification_id in ids:
        try:
            sent += send_notification(session, mailer, notification_id, sender)
        except Exception:  # already recorded on the message; go on with the others
            log.warning("notification %s not sent; next run retries", notification_id, exc_info=True)
    return sent
