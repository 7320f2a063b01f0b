"""The run gate lets `active` requests of a process run at once, lets one step out while it waits on the
network, and lets a request in anyway once it has waited the stall time."""
from __future__ import annotations

import threading
import time

from orders_service.gate import RunGate, outside_gate


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
