"""Slow clients never stop the web from answering the others: 200 connections sending their headers or
their body a byte every two seconds, or nothing at all, for 30 s, while `/healthz` and orders answer
within a second — against the Procfile's `web` as deployed (2 processes × 48 threads), and at the
same time through HAProxy configured as docs/operations.md recommends (`deploy/haproxy.cfg`).

And what the web's event loop does for them, one at a time: a request that does not arrive within
WEB_REQUEST_ARRIVAL_SECONDS gets a 408, a client waiting for "100 Continue" gets it, pipelined requests
are all answered, and clients that never close their end after a last answer hold nothing."""
import json
import os
import shutil
import signal
import threading
import time

import psutil
import pytest
import requests

from tests.support.processes import ROOT, free_port, procfile_web, serving
from tests.support.raw_http import HEALTHZ, Connection
from tests.support.slow_clients import SlowClients

# Its own group: half a minute of one test process, while the other runs the rest of the suite.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slow_clients")]

SLOW_CONNECTIONS = 200
FLOOD_SECONDS = 30
ANSWER_WITHIN = 1.0
ARRIVAL_SECONDS = 10  # WEB_REQUEST_ARRIVAL_SECONDS's default, and HAProxy's `timeout http-request`


@pytest.fixture
def deployed_web(base_env):
    """The Procfile's web with its own defaults (WEB_CONCURRENCY, WEB_THREADS unset)."""
    with procfile_web(base_env, WEB_CONCURRENCY=None, WEB_THREADS=None) as (port, _proc):
        yield port


@pytest.fixture
def haproxy(deployed_web):
    """HAProxy with the repository's configuration, in front of the web; its port and process."""
    binary = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")
    if binary is None:
        pytest.skip("HAProxy is not installed (`make haproxy`, part of `make test`, installs Debian's package)")
    port = free_port()
    env = dict(os.environ, ORDERS_LISTEN=f"127.0.0.1:{port}", ORDERS_WEB_1=f"127.0.0.1:{deployed_web}")
    with serving([binary, "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")], env,
                 f"http://127.0.0.1:{port}/healthz") as proc:
        yield port, psutil.Process(proc.pid)


class Probe:
    """Asks `url` every `every` seconds on a new connection (as a balancer's health check does) and keeps
    each answer's status and time."""

    def __init__(self, name: str, every: float, call):
        self.name, self.every, self.call = name, every, call
        self.answers: list[tuple[int | str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status = self.call()
            except requests.RequestException as exc:
                status = type(exc).__name__
            self.answers.append((status, time.monotonic() - started))
            self._stop.wait(self.every)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def summary(self) -> str:
        times = sorted(t for _s, t in self.answers)
        return (f"{self.name}: {len(times)} answers, median {times[len(times) // 2] * 1000:.0f} ms, "
                f"p99 {times[int(len(times) * 0.99)] * 1000:.0f} ms, slowest {times[-1] * 1000:.0f} ms")


def _backend_connections(haproxy_process: psutil.Process, web_port: int) -> int:
    return sum(1 for c in haproxy_process.net_connections("tcp") if c.raddr and c.raddr.port == web_port)


def test_slow_clients_never_stop_the_web_answering(deployed_web, haproxy, make):
    web_port = deployed_web
    proxy_port, proxy_process = haproxy
    product = make.product(stock=100_000)
    method = make.delivery_method(countries=[])

    def health(port):
        return lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code

    def order(port):
        customer, auth = make.shopper()
        body = make.order_body(customer, method, [(product, 1)])
        return lambda: requests.post(f"http://127.0.0.1:{port}/api/orders", json=body, headers=auth,
                                     timeout=5).status_code

    for port in (web_port, proxy_port):  # every process has served an order: the timings are a warm web's
        for _ in range(4):
            assert order(port)() == 204
    floods = [SlowClients(("127.0.0.1", port), SLOW_CONNECTIONS).start() for port in (web_port, proxy_port)]
    probes = [Probe(f"{what} {path}", every, call).start()
              for path, port in (("directly", web_port), ("through HAProxy", proxy_port))
              for what, every, call in (("/healthz", 0.25, health(port)), ("order", 0.5, order(port)))]
    held_by_haproxy = []
    deadline = time.monotonic() + FLOOD_SECONDS
    while time.monotonic() < deadline:
        held_by_haproxy.append(_backend_connections(proxy_process, web_port))
        time.sleep(1)
    for probe in probes:
        probe.stop()
    for flood in floods:
        flood.stop()

    print(f"\n{SLOW_CONNECTIONS} slow connections directly and {SLOW_CONNECTIONS} through HAProxy for "
          f"{FLOOD_SECONDS} s; connections the server dropped {[f.dropped for f in floods]}, after at most "
          f"{[round(max(f.lifetimes), 1) for f in floods]} s; HAProxy's connections to the web at most "
          f"{max(held_by_haproxy)}")
    for probe in probes:
        print("  " + probe.summary())
    for probe in probes:
        expected = 204 if probe.name.startswith("order") else 200
        late = [(s, round(t, 2)) for s, t in probe.answers if s != expected or t > ANSWER_WITHIN]
        assert probe.answers and not late, f"{probe.name}: {late[:10]} of {len(probe.answers)}"
    # The web and HAProxy drop a request that has not arrived in time (HAProxy notices it on a head that
    # comes a byte at a time when the next byte comes, up to the clients' 2 s later).
    for flood, late in zip(floods, (1, 3), strict=True):
        assert flood.dropped >= SLOW_CONNECTIONS, flood.dropped
        assert max(flood.lifetimes) < ARRIVAL_SECONDS + late, sorted(flood.lifetimes)[-5:]
    # Slow requests stay in HAProxy until they are whole: they never take a connection to the web.
    assert max(held_by_haproxy) < 20, held_by_haproxy


@pytest.fixture(scope="module")
def impatient_web(base_env):
    """One web process that gives a request 2 s to arrive."""
    with procfile_web(base_env, WEB_CONCURRENCY="1", WEB_THREADS="4", WEB_REQUEST_ARRIVAL_SECONDS="2") as (port, _):
        yield port


LOGIN = b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
NOBODY = json.dumps({"email": "nobody@example.com", "password": "not this one"}).encode()


@pytest.mark.parametrize("sent", [b"GET /healthz HTTP/1.1\r\nHost: loc",
                                  LOGIN + b"Content-Length: %d\r\n\r\n" % len(NOBODY) + NOBODY[:5]],
                         ids=["part of the head", "part of the body"])
def test_a_request_that_does_not_arrive_in_time_gets_408(impatient_web, sent):
    with Connection(impatient_web) as client:
        started = time.monotonic()
        client.send(sent)
        status, headers, body = client.response()
        waited = time.monotonic() - started
        assert status == 408, body
        assert json.loads(body) == {"code": 408, "status": "Request Timeout",
                                    "message": "The request did not arrive within 2 s"}
        assert headers["connection"] == "close" and client.closed_by_server()
        assert 2 <= waited < 4, waited


def test_a_connection_that_sends_nothing_is_closed_without_a_word(impatient_web):
    with Connection(impatient_web) as client:
        started = time.monotonic()
        assert client.reader.read1(100) == b""  # closed, nothing sent
        assert 2 <= time.monotonic() - started < 4


def test_an_idle_kept_alive_connection_is_not_a_late_request(impatient_web):
    # The time to arrive starts with a request's first byte: idling between requests is keep-alive's (90 s).
    with Connection(impatient_web) as client:
        client.send(HEALTHZ)
        assert client.response()[0] == 200
        time.sleep(3)  # longer than the 2 s a request has to arrive
        client.send(HEALTHZ)
        assert client.response()[0] == 200


def test_a_client_waiting_for_100_continue_gets_it(impatient_web):
    # curl and others send a body of more than 1 KiB only after "100 Continue" (or a second without it).
    with Connection(impatient_web) as client:
        client.send(LOGIN + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(NOBODY))
        assert client.response()[0] == 100
        client.send(NOBODY)
        status, _headers, body = client.response()
        assert status == 401, body  # the login was read whole: nobody has that password


def test_pipelined_requests_are_all_answered(impatient_web):
    login = LOGIN + b"Content-Length: %d\r\n\r\n" % len(NOBODY) + NOBODY
    with Connection(impatient_web) as client:
        client.send(HEALTHZ + login + HEALTHZ[:20])  # the third one's end comes later
        assert client.response()[0] == 200
        assert client.response()[0] == 401
        client.send(HEALTHZ[20:])
        assert client.response()[0] == 200


def test_clients_that_never_close_hold_nothing(impatient_web):
    # Each asks to close after its answer, reads it, and keeps its end open. The web's loop lingers on
    # such a connection for a while (so that a client still sending reads its answer, not a reset), but
    # never blocks on it: the next clients are answered at once.
    idle = [Connection(impatient_web) for _ in range(20)]
    try:
        for client in idle:
            client.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        for client in idle:
            assert client.response()[0] == 200
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"http://127.0.0.1:{impatient_web}/healthz", timeout=5).status_code == 200
            assert time.monotonic() - started < ANSWER_WITHIN
    finally:
        for client in idle:
            client.close()


def test_a_stopping_web_does_not_wait_for_slow_requests(base_env):
    # A deploy stops the web with SIGTERM: requests still arriving get 2 s more, as kept-alive connections
    # do, not the rest of their time to arrive (nor gunicorn's 30 s graceful timeout).
    with procfile_web(base_env, WEB_CONCURRENCY="1", WEB_THREADS="4") as (port, proc):
        with Connection(port) as silent, Connection(port) as slow:
            slow.send(b"GET /healthz HTTP/1.1\r\n")
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            started = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            assert silent.closed_by_server() and slow.closed_by_server()
            assert time.monotonic() - started < 4
