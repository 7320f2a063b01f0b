"""The run gate: at most a few requests of one web process run Python at a time.

gunicorn's gthread worker keeps dozens of threads so that requests waiting on Stripe or on a slow
client cost nothing; but when they all want the CPU at once they share one GIL, and a request that
holds a hot product's row lock is switched out for every other thread's turn (the lock is then held
for the whole queue's work, and everyone behind it waits: the multi-second tail of a flash sale).
The gate lets `active` requests in at a time, first come first served (`FifoSlots`), and a request steps
out of it while it waits on something other than Python (`outside_gate()`, which the composition root
hands the Stripe gateway and the password hasher: argon2 hashes without the GIL), so waiting stays cheap.

A request that has waited `stall_seconds` for its turn goes in anyway: a gate holder stuck on
something the gate does not know about (a lock wait, a slow disk) slows the others, never stops them.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable

_local = threading.local()


class FifoSlots:
    """A semaphore that serves its waiters in arrival order. `threading.Semaphore` does not: a thread
    that arrives while a woken waiter is still waiting for the GIL takes the free slot, and the waiter
    goes to the back of the queue (Condition.wait queues it anew), again and again until its stall
    time — the tail. Here a release hands the slot straight to the first waiter."""

    def __init__(self, count: int):
        self._lock = threading.Lock()
        self._free = count
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=timeout):
            return True
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return True  # handed the slot just as the wait timed out: it is ours
        return False

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1


class RunGate:
    """WSGI middleware around the Flask app (see the module's docstring)."""

    def __init__(self, app, active: int, stall_seconds: float,
                 on_wait: Callable[[float, bool], None] = lambda seconds, admitted: None):
        self.app = app
        self._slots = FifoSlots(active)
        self._stall_seconds = stall_seconds
        self._on_wait = on_wait  # (seconds waited, whether the request got a slot): the metrics

    def _enter(self) -> None:
        started = time.perf_counter()
        admitted = self._slots.acquire(self._stall_seconds)
        self._on_wait(time.perf_counter() - started, admitted)
        _local.holding = self if admitted else None

    def _leave(self) -> None:
        if getattr(_local, "holding", None) is self:
            _local.holding = None
            self._slots.release()

    def __call__(self, environ, start_response):
        self._enter()
        try:
            # Flask builds the whole body before it returns: nothing costly is left for the iterable.
            return self.app(environ, start_response)
        finally:
            self._leave()


@contextmanager
def outside_gate():
    """Around a wait that is not Python's (the network, argon2): lets another request run meanwhile. A
    no-op outside a gated request (workers, tests, a request that went in after a stall)."""
    gate = getattr(_local, "holding", None)
    if gate is None:
        yield
        return
    gate._leave()
    try:
        yield
    finally:
        gate._enter()
