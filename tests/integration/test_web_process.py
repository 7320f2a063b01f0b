"""The Procfile's `web` process as a load balancer meets it: idle keep-alive connections are kept longer
than common balancers keep theirs (75 s), so a reused connection gets an answer, not a reset."""
import socket
import time

import pytest

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
    from tests.support.processes import procfile_command

    command = procfile_command("web")
    assert "--keep-alive ${WEB_KEEP_ALIVE:-90}" in command and "gthread" in command
