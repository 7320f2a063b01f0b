"""The senders of one worker process: a loop that numbers new events and hands due endpoints to lanes.

Outbound HTTP never runs on a Celery pool slot: an endpoint that takes its 15 seconds to answer, or
never answers, would hold that slot, and the slots also apply Stripe's events. Each worker process
that consumes the webhooks queue runs, beside its Celery work, one loop thread and WEBHOOK_CONCURRENCY
lane threads. Every half second (or at once when a lane finishes) the loop numbers the events committed
since (`sequencer.py`) and gives each endpoint with due deliveries a lane of its own, the longest
waiting first: one endpoint never has two lanes in a process, so a slow or dead endpoint holds one
lane, and the others go on at full speed. A lane sends its endpoint's due deliveries for up to ten
seconds, then lets another endpoint have its turn. Across processes and hosts the claims
(`sending.py`) keep any delivery from being sent twice at once.

Nothing here is held only in memory: deliveries live in the database, and a process that dies (even
by SIGKILL) leaves claims that lapse, after which another sender makes the attempt.
"""
from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from orders_service.config import Settings
from orders_service.webhooks.sending import due_endpoints, send_due
from orders_service.webhooks.sequencer import BATCH, sequence_events

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
LANE_SECONDS = 10.0
ERROR_PAUSE_SECONDS = 2.0  # after the loop itself failed (the database away): then it tries again


class DeliveryEngine:
    def __init__(self, session_factory, settings: Settings):
        self._session_factory = session_factory
        self._settings = settings
        self._lanes = settings.webhook_concurrency
        self._busy: set[uuid.UUID] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def ensure_running(self) -> bool:
        """Start the loop unless it runs; True if it was started now."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._lanes, thread_name_prefix="webhook-lane")
            self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
            self._thread.start()
            return True

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                self.tick()
            except Exception:  # the database away, a bug: logged, and the loop goes on after a pause
                log.warning("webhook sender loop failed; trying again", exc_info=True)
                self._wake.wait(ERROR_PAUSE_SECONDS)

    def tick(self) -> int:
        """Number what was committed, then start a lane for each due endpoint a lane is free for; how many."""
        with self._session_factory() as session:
            while sequence_events(session) == BATCH:
                pass
            with self._lock:
                free, busy = self._lanes - len(self._busy), set(self._busy)
            if free <= 0:
                return 0
            endpoints = due_endpoints(session, exclude=busy, limit=free)
        for endpoint_id in endpoints:
            with self._lock:
                self._busy.add(endpoint_id)
            self._pool.submit(self._lane, endpoint_id)
        return len(endpoints)

    def _lane(self, endpoint_id: uuid.UUID) -> None:
        settings = self._settings
        try:
            send_due(self._session_factory, endpoint_id, settings.webhook_retry_schedule,
                     settings.webhook_allow_private_urls, settings.is_production, LANE_SECONDS)
        except Exception:  # its claims lapse and another lane tries again
            log.warning("webhook lane for endpoint %s failed", endpoint_id, exc_info=True)
        finally:
            with self._lock:
                self._busy.discard(endpoint_id)
            self._wake.set()


_engine: DeliveryEngine | None = None
_engine_lock = threading.Lock()


def process_engine(session_factory, settings: Settings) -> DeliveryEngine:
    """This process's engine (one per process, built on first use: after a prefork, never before)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = DeliveryEngine(session_factory, settings)
        return _engine
