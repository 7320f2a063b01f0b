"""The run gate lets `active` requests of a process run at once, lets one step out while it waits on the
network, and lets a request in anyway once it has waited the stall time."""
from __future__ import annotations

import threading
import time

from orders_service.server.gate import FifoSlots, RunGate, outside_gate


class Probe:
    """A WSGI app that notes how many requests run inside it at once."""

    def __init__(self, hold: float, network: float = 0.0):
        self.hold, self.network = hold, network
        self.inside = self.most = 0
        self.lock = threading.Lock()

    def _count(self, step: int) -> None:
        with self.lock:
            self.inside += step
            self.most = max(self.most, self.inside)

    def __call__(self, environ, start_response):
        self._count(1)
        time.sleep(self.hold)
        if self.network:
            self._count(-1)
            with outside_gate():
                time.sleep(self.network)
            self._count(1)
        self._count(-1)
        start_response("200 OK", [])
        return [b"ok"]


def _serve(gate: RunGate, requests: int) -> float:
    started = time.perf_counter()
    threads = [threading.Thread(target=gate, args=({}, lambda *a: None)) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def test_no_more_than_the_active_count_run_at_once():
    probe = Probe(hold=0.02)
    _serve(RunGate(probe, active=2, stall_seconds=5), requests=12)
    assert probe.most == 2


def test_a_request_waiting_on_the_network_lets_others_run():
    # Ten requests that each spend 0.2 s on the network behind a gate of one: stepping out lets them
    # wait together (about 0.2 s in all); holding the gate through the wait would take 2 s.
    probe = Probe(hold=0.005, network=0.2)
    elapsed = _serve(RunGate(probe, active=1, stall_seconds=5), requests=10)
    assert probe.most == 1
    assert elapsed < 1.0


def test_a_request_goes_in_anyway_after_the_stall_time():
    probe = Probe(hold=0.3)
    _serve(RunGate(probe, active=1, stall_seconds=0.05), requests=3)
    assert probe.most >= 2


def test_outside_a_gated_request_stepping_out_is_a_no_op():
    with outside_gate():
        pass


def _waiting(slots: FifoSlots, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(slots._waiters) < count:
        assert time.monotonic() < deadline, "the waiters never queued"
        time.sleep(0.001)


def test_slots_go_to_waiters_in_arrival_order():
    slots, order = FifoSlots(1), []
    assert slots.acquire(timeout=1)

    def wait_then_note(number: int) -> None:
        assert slots.acquire(timeout=5)
        order.append(number)
        slots.release()

    threads = []
    for number in range(6):
        threads.append(threading.Thread(target=wait_then_note, args=(number,)))
        threads[-1].start()
        _waiting(slots, number + 1)
    slots.release()
    for thread in threads:
        thread.join()
    assert order == list(range(6))


def test_a_released_slot_is_handed_to_the_waiter_not_to_a_newcomer():
    # threading.Semaphore lets a thread that arrives just after a release take the slot ahead of the
    # woken waiter, which then queues again at the back: over and over, that was the gate's tail.
    slots = FifoSlots(1)
    assert slots.acquire(timeout=1)
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire(timeout=5)))
    waiter.start()
    _waiting(slots, 1)
    slots.release()
    assert not slots.acquire(timeout=0.01), "a newcomer overtook the waiting request"
    waiter.join()
    assert got == [True]


def test_a_waiter_that_timed_out_leaves_the_queue():
    slots = FifoSlots(1)
    assert slots.acquire(timeout=1)
    assert not slots.acquire(timeout=0.02)
    assert not slots._waiters
    slots.release()
    assert slots.acquire(timeout=0)  # the slot went back to the free count, not to the gone waiter
