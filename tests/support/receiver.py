"""A real HTTP server in the test process that receives outbound webhooks, as another system would:
it records each request (headers and raw body), answers as the test says, and can hang."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from tests.support.processes import wait_until


@dataclass
class Received:
    headers: dict[str, str]  # lower-case names
    body: bytes
    path: str
    peer_port: int  # the sender's end of the connection: which process sent it (psutil)
    at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> dict:
        import json

        return json.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a sender that gave up on its answer: not our error
        pass


# An answer: (status, headers) — or a callable that makes one from the request.
Answer = tuple[int, dict]


class Receiver:
    def __init__(self, host: str = "127.0.0.1"):
        self.received: list[Received] = []
        self.answer: Answer | Callable[[Received], Answer] = (200, {})
        self.release = threading.Event()  # a hanging receiver holds each request until this is set
        self.hang = False
        self.drip = False  # answer one byte every 0.3 s
        self.closing = False
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
            disable_nagle_algorithm = True  # as real servers do: its answer is not held for our delayed ACK

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = Received({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length),
                                   self.path, self.client_address[1])
                with receiver._lock:
                    receiver.received.append(request)
                if receiver.hang:
                    while not receiver.release.wait(0.1) and not receiver.closing:
                        pass
                if receiver.drip:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                        if receiver.closing:
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.3)
                    return
                answer = receiver.answer(request) if callable(receiver.answer) else receiver.answer
                status, headers = answer
                body = b"ok" if 200 <= status < 300 else b"nope"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def requests(self, event_type: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if event_type is None or r.json()["type"] == event_type]

    def wait_for(self, count: int, event_type: str | None = None, timeout: float = 20.0) -> list[Received]:
        """Until at least `count` requests (of `event_type`) arrived; them."""
        wait_until(lambda: len(self.requests(event_type)) >= count, timeout=timeout,
                   message=lambda: f"{len(self.requests(event_type))} received: "
                                   f"{[r.json()['type'] for r in self.requests()]}")
        return self.requests(event_type)

    def close(self) -> None:
        self.closing = True
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
