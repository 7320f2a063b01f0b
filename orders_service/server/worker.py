"""gunicorn's gthread worker, but a new connection goes to the web process holding the fewest.

A kept-alive connection stays with the process that accepted it, and which one does is a race: measured
with 32 callers on 3 processes, one process held 24 connections and the others 4 each. Each process
then serves the same number of requests a second (each gets its share of the CPU), so the callers of the
crowded one wait several times longer: that was the service's p99 (docs/decisions.md, "The hot path").

Every process publishes its connection count in a table shared by all the processes gunicorn forks
(the table is mapped when gunicorn's master loads this class, before it forks). Every process is woken
when a connection waits on the shared listening socket; one that holds more connections than another
live process waits `HANDOFF_SECONDS` before it accepts, which lets the less crowded one take it. If
that one is busy, the crowded one accepts after the wait: nothing is ever refused, it only comes later.
Connections that were placed unevenly anyway (a burst of them at once, or others closing since) are
moved: a process holding more than one connection above the least crowded answers one request every
`SHED_INTERVAL_SECONDS` with `Connection: close`, and the client's reconnection lands where there is room.
"""
from __future__ import annotations

import mmap
import struct
import time

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 64  # more than any sane WEB_CONCURRENCY; a process's slot is its gunicorn age modulo this
HANDOFF_SECONDS = 0.001
SHED_INTERVAL_SECONDS = 0.1
STALE_SECONDS = 2.0  # a process that has not published for this long (exited, or stuck) does not count

_ENTRY = struct.Struct("dq")  # when published (CLOCK_MONOTONIC, the same in every process), connections
_table = mmap.mmap(-1, SLOTS * _ENTRY.size)  # anonymous and shared: inherited by every forked process


class BalancedThreadWorker(ThreadWorker):
    """Procfile `web`: `--worker-class orders_service.server.worker.BalancedThreadWorker`."""

    def init_process(self) -> None:
        self._offset = (self.age % SLOTS) * _ENTRY.size
        self._last_shed = 0.0
        self._publish()
        super().init_process()

    def _publish(self) -> None:
        _ENTRY.pack_into(_table, self._offset, time.monotonic(), self.nr_conns)

    def _fewest_elsewhere(self) -> int | None:
        oldest = time.monotonic() - STALE_SECONDS
        counts = [connections for offset in range(0, len(_table), _ENTRY.size)
                  if offset != self._offset
                  for published, connections in [_ENTRY.unpack_from(_table, offset)]
                  if published > oldest]
        return min(counts, default=None)

    def notify(self) -> None:
        # Called on every turn of the worker's loop (at least once a second): keeps the count fresh.
        super().notify()
        self._publish()

    def accept(self, listener) -> None:
        fewest = self._fewest_elsewhere()
        if fewest is not None and self.nr_conns > fewest:
            time.sleep(HANDOFF_SECONDS)
        super().accept(listener)  # a process that took the connection meanwhile leaves EAGAIN: ignored
        self._publish()

    def handle_request(self, req, conn):
        # Runs on the request's thread; two threads may both shed at once, which does no harm.
        now = time.monotonic()
        if now - self._last_shed >= SHED_INTERVAL_SECONDS:
            fewest = self._fewest_elsewhere()
            if fewest is not None and self.nr_conns > fewest + 1:
                self._last_shed = now
                req.force_close()
        return super().handle_request(req, conn)
