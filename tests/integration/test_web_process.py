"""The Procfile's `web` process as a load balancer meets it: idle keep-alive connections are kept longer
than common balancers keep theirs (75 s), so a reused connection gets an answer, not a reset; and kept-alive
connections end up spread evenly over gunicorn's processes, however they were accepted."""
import http.client
import os
import socket
import sys
import time

import psutil
import pytest

from tests.support.processes import (
    free_port,
    process_log,
    procfile_command,
    start_process,
    stop_process,
    wait_http,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live_server")]

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"


def _answer(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


def test_an_idle_keep_alive_connection_still_answers(live_server):
    port = int(live_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(REQUEST)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(5)  # gunicorn's default keep-alive (2 s) would have closed it by now
        sock.sendall(REQUEST)
        assert _answer(sock).startswith(b"HTTP/1.1 200"), "the server closed an idle keep-alive connection"


def test_the_procfile_keeps_idle_connections_longer_than_load_balancers(live_server):
    command = procfile_command("web")
    assert "--keep-alive ${WEB_KEEP_ALIVE:-90}" in command
    assert "--worker-class orders_service.server.worker.BalancedThreadWorker" in command


@pytest.fixture
def three_process_web(base_env):
    port = free_port()
    env = dict(base_env, PORT=str(port), WEB_CONCURRENCY="3", WEB_THREADS="8")
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    proc = start_process(["bash", "-c", f"exec {procfile_command('web')}"], env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
    except RuntimeError:
        stop_process(proc)
        raise RuntimeError(process_log(proc)) from None
    yield proc, port
    stop_process(proc)


def _connections_per_process(master: psutil.Process, port: int) -> list[int]:
    return sorted(sum(1 for c in worker.net_connections("tcp")
                      if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
                  for worker in master.children())


def test_kept_alive_connections_spread_evenly_over_the_processes(three_process_web):
    # Twelve connections opened at once (as a balancer's pool or a load test opens them): whichever
    # process wins each accept, after a few rounds of requests every process holds four.
    proc, port = three_process_web
    master = psutil.Process(proc.pid)
    clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(12)]
    for client in clients:
        client.connect()

    def spread_evenly() -> bool:
        for client in clients:  # http.client reconnects by itself after a `Connection: close`
            client.request("GET", "/healthz")
            response = client.getresponse()
            response.read()
            assert response.status == 200
        counts = _connections_per_process(master, port)
        return sum(counts) == 12 and counts[-1] - counts[0] <= 1

    try:
        wait_until(spread_evenly, timeout=20, interval=0.05,
                   message=lambda: f"connections per process: {_connections_per_process(master, port)}")
    finally:
        for client in clients:
            client.close()
