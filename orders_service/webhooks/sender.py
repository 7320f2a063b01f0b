"""One endpoint's HTTP connection: POST a delivery, at most 15 seconds, no redirects, no private address.

The standard library's `http.client` sends the request on a socket this module connects itself: the
host name is resolved and every address checked (`urls.resolve`) when the connection opens, and the
connection goes to an address that was checked — a name that resolves elsewhere between check and
connect (DNS rebinding) cannot slip past. TLS verifies the certificate against the host name as usual.
`http.client` never follows a redirect: a 3xx is an answer like any other non-2xx, and fails.

The 15 seconds are a deadline for the whole attempt (connect, TLS, send, answer), kept by a watchdog
thread that shuts an overdue socket down, so that an endpoint dripping its answer a byte at a time
cannot hold a sender longer than that. A connection is kept alive for the endpoint's next delivery.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from orders_service.webhooks import urls

TIMEOUT_SECONDS = 15.0
BODY_LIMIT = 64 * 1024  # what is read of an answer; a longer one closes the connection instead
USER_AGENT = "orders-service-webhooks/1"


class Unreachable(Exception):
    """No HTTP answer: refused, timed out, reset, a name that does not resolve, a TLS failure."""


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    location: str | None
    excerpt: str  # the start of the body, for the delivery's last error


class _Watchdog:
    """Shuts down sockets that outlive their deadline (one thread per process, started on first use)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> None:
        with self._lock:
            self._deadlines[sock] = deadline
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-watchdog", daemon=True)
                self._thread.start()

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def _run(self) -> None:
        while True:
            time.sleep(0.2)
            now = time.monotonic()
            with self._lock:
                overdue = [sock for sock, deadline in self._deadlines.items() if deadline <= now]
                for sock in overdue:
                    del self._deadlines[sock]
            for sock in overdue:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once
                except OSError:
                    pass


_WATCHDOG = _Watchdog()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {TIMEOUT_SECONDS:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return f"{type(exc).__name__}: {exc}"[:300]


class EndpointConnection:
    """POSTs to one endpoint URL over a kept-alive connection (one thread uses it at a time)."""

    def __init__(self, url: str, allow_private: bool, https_only: bool, timeout: float = TIMEOUT_SECONDS):
        self.url = url
        self._allow_private = allow_private
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        try:
            self.target, self._refused = urls.parse(url, https_only), None
        except urls.UrlRefused as exc:  # e.g. an http URL kept from before the service ran in production
            self.target, self._refused = None, str(exc)
        self._tls = ssl.create_default_context() if self.target and self.target.scheme == "https" else None

    def _open(self, deadline: float) -> http.client.HTTPConnection:
        try:
            if self._refused:
                raise urls.UrlRefused(self._refused)
            addresses = urls.resolve(self.target, self._allow_private)  # again at each connection: rebinding
        except urls.UrlRefused as exc:
            raise Unreachable(f"not sent: the URL {exc}") from None
        error: BaseException | None = None
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                sock = socket.create_connection((address, self.target.port), timeout=remaining)
            except OSError as exc:
                error = exc
                continue
            try:
                # http.client sends the headers and the body in two writes: with Nagle's algorithm the body
                # would wait for the receiver's delayed ACK of the headers (40 ms a delivery, measured).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _WATCHDOG.watch(sock, deadline)
                if self._tls is not None:
                    sock = self._tls.wrap_socket(sock, server_hostname=self.target.host)
            except (OSError, ssl.SSLError) as exc:
                _WATCHDOG.release(sock)
                sock.close()
                raise Unreachable(_describe(exc)) from None
            # The Host header and TLS name are the URL's host; the socket is already connected to a checked
            # address, so http.client never resolves the name itself.
            conn = http.client.HTTPConnection(self.target.host, self.target.port, timeout=remaining)
            conn.sock = sock
            return conn
        raise Unreachable(_describe(error) if error else f"no answer within {self._timeout:g} s")

    def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        """Send one delivery; its answer, or Unreachable. A kept-alive connection the endpoint closed
        meanwhile is opened again once (the delivery is idempotent: the receiver knows its webhook-id)."""
        deadline = time.monotonic() + self._timeout
        reused = self._conn is not None
        try:
            return self._exchange(body, headers, deadline)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            self.close()
            if time.monotonic() >= deadline:  # the watchdog shut the socket down
                raise Unreachable(f"no answer within {self._timeout:g} s") from None
            if not reused:
                raise Unreachable(_describe(exc)) from None
        try:
            return self._exchange(body, headers, deadline)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise Unreachable(_describe(exc)) from None

    def _exchange(self, body: bytes, headers: dict[str, str], deadline: float) -> Answer:
        try:
            if self._conn is None:
                self._conn = self._open(deadline)
            sock = self._conn.sock
            _WATCHDOG.watch(sock, deadline)
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                self._conn.request("POST", self.target.path, body=body,
                                   headers={**headers, "user-agent": USER_AGENT, "content-length": str(len(body))})
                response = self._conn.getresponse()
                content = response.read(BODY_LIMIT)
                if not response.isclosed():  # longer than we read: this connection cannot be reused
                    self.close()
                elif response.will_close:
                    self.close()
            finally:
                _WATCHDOG.release(sock)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            raise
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            if time.monotonic() >= deadline:  # the watchdog shut it down: the deadline passed
                raise Unreachable(f"no answer within {self._timeout:g} s") from None
            raise Unreachable(_describe(exc)) from None
        return Answer(response.status, response.getheader("Retry-After"), response.getheader("Location"),
                      content[:200].decode("utf-8", "replace"))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
