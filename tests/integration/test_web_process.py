"""The Procfile's `web` process as a load balancer meets it: idle keep-alive connections are kept longer
than common balancers keep theirs (75 s), so a reused connection gets an answer, not a reset; and kept-alive
connections end up spread evenly over gunicorn's processes, however they were accepted."""
import http.client
import json
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
from tests.support.raw_http import HEALTHZ, Connection

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


# Bodies over the limit (1 MiB): a 413 that the client reads whole, and that closes the connection (its
# body is not read, so nothing else can be on it); the client's next request, on a new connection, answers.
OVER_LIMIT = 2 * 1024 * 1024
LOGIN = b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_and_the_next_request_answers(live_server, framing):
    port = int(live_server.rsplit(":", 1)[1])
    piece = b" " * 65536
    if framing == "content-length":
        head = LOGIN + b"Content-Length: %d\r\n\r\n" % OVER_LIMIT
        pieces = [piece] * (OVER_LIMIT // len(piece))
    else:
        head = LOGIN + b"Transfer-Encoding: chunked\r\n\r\n"
        pieces = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (OVER_LIMIT // len(piece)) + [b"0\r\n\r\n"]
    with Connection(port).upload(head, pieces) as client:
        status, headers, body = client.response()
        assert status == 413, (status, body[:200])
        assert json.loads(body) == {"code": 413, "status": "Request Entity Too Large",
                                    "message": "The request body is larger than 1 MiB, the most the service reads"}
        assert headers.get("connection") == "close", headers
        assert client.closed_by_server(), "the connection stayed open after a 413 that said it would close"
    with Connection(port) as client:  # the client's next request, on a new connection as the 413 told it
        client.send(HEALTHZ)
        assert client.response()[0] == 200


def test_a_chunked_body_within_the_limit_is_read(live_server):
    # The same framing under the limit reaches the route whole: a login for nobody is a 401, not a 400.
    port = int(live_server.rsplit(":", 1)[1])
    body = json.dumps({"email": "nobody@example.com", "password": "not this one"}).encode()
    pieces = [b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])] + [b"0\r\n\r\n"]
    with Connection(port).upload(LOGIN + b"Transfer-Encoding: chunked\r\n\r\n", pieces) as client:
        status, headers, answer = client.response()
        assert status == 401, answer
        assert headers.get("connection") == "keep-alive"
        client.send(HEALTHZ)  # and the connection serves the next request
        assert client.response()[0] == 200


def test_a_body_of_many_tiny_chunks_is_read_in_linear_time(live_server):
    # 100,000 one-byte chunks (600 kB on the wire): gunicorn's chunked reader, fed the whole body at once,
    # copied the rest of it for every chunk (over ten minutes); fed what arrived a socket read at a time,
    # about a second of CPU (the bound leaves room for a machine busy with other runs).
    port = int(live_server.rsplit(":", 1)[1])
    body = json.dumps({"email": "nobody@example.com", "password": "not this one"}).encode() + b" " * 100_000
    pieces = [b"".join(b"1\r\n%s\r\n" % body[at:at + 1] for at in range(start, min(start + 4096, len(body))))
              for start in range(0, len(body), 4096)] + [b"0\r\n\r\n"]
    started = time.monotonic()
    with Connection(port, timeout=60).upload(LOGIN + b"Transfer-Encoding: chunked\r\n\r\n", pieces) as client:
        status, _headers, answer = client.response()
        assert status == 401, answer
    assert time.monotonic() - started < 30
