"""HTTP/1.1 over a bare socket, for tests that need what a client library hides: a body sent while the
answer is read, a head that never ends, pipelined requests, whether the server closed the connection."""
from __future__ import annotations

import socket
import threading
from typing import BinaryIO

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"


class Connection:
    """A socket to the server and a buffered reader of what it answers."""

    def __init__(self, port: int, timeout: float = 10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader: BinaryIO = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def upload(self, head: bytes, pieces) -> Connection:
        """Send `head`, then the body's pieces as fast as the server takes them, from a thread of its own
        (as a client writes its upload while it reads the answer)."""

        def run():
            try:
                self.sock.sendall(head)
                for piece in pieces:
                    self.sock.sendall(piece)
            except OSError:
                pass  # the server stopped reading: what matters is the answer it gave

        threading.Thread(target=run, daemon=True).start()
        return self

    def response(self) -> tuple[int, dict, bytes]:
        """The next response (with a Content-Length, or none for a 1xx): status, headers (lower-case
        names), body."""
        status_line = self.reader.readline()
        assert status_line, "the connection ended before an answer"
        headers = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, value = line.decode("latin-1").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = self.reader.read(int(headers.get("content-length", 0)))
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        """Whether the server has closed its end (after whatever it sent), within the socket's timeout."""
        try:
            while self.reader.read1(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
