"""Outbound webhook helpers for tests."""
from sqlalchemy import func, select

from orders_service.webhooks.models import OutboundEvent
from orders_service.webhooks.sequencer import sequence_events
from tests.support.processes import wait_until


def number_all(session_factory, timeout: float = 10.0) -> None:
    """Until every committed order event has its `sequence`: numbered here, or by a worker of the run that
    polls the same database (while one holds the sequencer's turn, this one skips it, and looks again)."""
    def done() -> bool:
        with session_factory() as session:
            while sequence_events(session):
                pass
            with session.begin():
                return not session.scalar(select(func.count()).select_from(OutboundEvent).where(
                    OutboundEvent.sequence.is_(None), OutboundEvent.order_id.is_not(None)))
    wait_until(done, timeout=timeout, interval=0.05)
