"""Slow clients as an attacker (or a crowd on a very bad network) runs them: connections that send their
request's headers a byte every few seconds, or their body, or nothing at all. A connection the server
closes (or answers) is opened again at once, so that `count` of them are open all the time.

All of them run on one thread with non-blocking sockets: a few hundred cost the test machine nothing.
"""
from __future__ import annotations

import errno
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

# One request of each kind, sent a byte at a time from where `sent` says. The header kind never ends its
# headers; the body kind sends its headers at once and then a body that would take hours at this pace.
_PATH = b"/api/orders"
_HEAD = b"POST " + _PATH + b" HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: application/json\r\n"
KINDS = {
    "headers": (b"", _HEAD + b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 40) for n in range(40))),
    "body": (_HEAD + b"Content-Length: 4000\r\n\r\n", b'{"items": [' + b" " * 3980 + b"]}"),
    "silent": (b"", b""),
}


@dataclass(eq=False)
class _Connection:
    kind: str
    sock: socket.socket
    opened: float
    head: bytes = b""  # what is still to send at once (a non-blocking connect may not be done yet)
    sent: int = 0
    next_send: float = field(default=0.0)


class SlowClients:
    """`count` slow connections to `address`, kinds taken in turn from `kinds`, one byte per connection
    every `interval` seconds; `start()`, `stop()`; `opened` and `dropped` count connections, `lifetimes`
    says how long the server kept each one it dropped."""

    def __init__(self, address: tuple[str, int], count: int, interval: float = 2.0,
                 kinds=("headers", "body", "silent")):
        self.address = address
        self.count = count
        self.interval = interval
        self.kinds = kinds
        self.opened = 0
        self.dropped = 0
        self.lifetimes: list[float] = []
        self._selector = selectors.DefaultSelector()
        self._connections: set[_Connection] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def start(self) -> SlowClients:
        for n in range(self.count):
            self._open(self.kinds[n % len(self.kinds)])
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for connection in list(self._connections):
            self._close(connection)
        self._selector.close()

    def _open(self, kind: str) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        err = sock.connect_ex(self.address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            return
        now = time.monotonic()
        connection = _Connection(kind, sock, now, head=KINDS[kind][0],
                                 next_send=now + random.uniform(0, self.interval))
        self._connections.add(connection)
        self._selector.register(sock, selectors.EVENT_READ, connection)
        self.opened += 1

    def _close(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _events in self._selector.select(timeout=0.05):
                connection = key.data
                try:
                    data = connection.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    continue  # an answer (a 408, a 400): the server will close it; count it then
                self.dropped += 1
                self.lifetimes.append(time.monotonic() - connection.opened)
                self._close(connection)
                self._open(connection.kind)
            now = time.monotonic()
            for connection in list(self._connections):
                body = KINDS[connection.kind][1]
                try:
                    if connection.head:
                        connection.head = connection.head[connection.sock.send(connection.head):]
                    elif connection.next_send <= now and connection.sent < len(body):
                        connection.sent += connection.sock.send(body[connection.sent:connection.sent + 1])
                        connection.next_send = now + self.interval
                except OSError:
                    pass  # not connected yet (tried again next turn), or reset (the selector reports it)
