"""gunicorn's gthread worker, changed in two ways: a request goes to a thread only once it has arrived
whole, and a new connection goes to the web process holding the fewest.

Arrival. gthread hands a connection to a thread as soon as a byte is there; the thread then reads the
head, and the app the body, at the client's pace: a hundred clients sending a byte every few seconds
held all 2 × 48 threads, so that /healthz and every route timed out, and a slow body was read inside the
run gate. Here the worker's event loop (its main thread, one selector) reads what every connection
sends, without blocking, until gunicorn's own parser finds a whole request in it (`arrival.py`); only
then does a thread take the request, whose parser reads it from memory, and the app finds its body there
(outside the run gate and at no client's pace). A slow client costs a file descriptor and the bytes it
sent, never a thread. A request has WEB_REQUEST_ARRIVAL_SECONDS to arrive, head and body, counted from
the connection's opening (a new connection) or from its first byte (a kept-alive one): then the worker
answers 408 (or, when nothing came, just closes). A body over the app's limit is not waited for: the app
answers 413 at once and the connection closes, as nothing else can be read on it. A connection that
closes after its answer is drained in the loop for a while (a "lingering close", RFC 9112 §9.6), so the
client reads the answer instead of a reset while it is still sending; gthread did that on the loop's
thread with a blocking read of up to 2 s per connection, during which the process accepted nothing.

Balance. A kept-alive connection stays with the process that accepted it, and which one does is a race:
measured with 32 callers on 3 processes, one process held 24 connections and the others 4 each. Each
process then serves the same number of requests a second (each gets its share of the CPU), so the
callers of the crowded one wait several times longer: that was the service's p99 (docs/decisions.md,
"The hot path"). Every process publishes its connection count in a table shared by all the processes
gunicorn forks (the table is mapped when gunicorn's master loads this class, before it forks). Every
process is woken when a connection waits on the shared listening socket; one that holds more
connections than another live process waits `HANDOFF_SECONDS` before it accepts, which lets the less
crowded one take it. If that one is busy, the crowded one accepts after the wait: nothing is ever
refused, it only comes later. Connections that were placed unevenly anyway (a burst of them at once, or
others closing since) are moved: a process holding more than one connection above the least crowded
answers one request every `SHED_INTERVAL_SECONDS` with `Connection: close`, and the client's
reconnection lands where there is room.
"""
from __future__ import annotations

import errno
import io
import json
import mmap
import selectors
import socket
import struct
import threading
import time
from functools import partial

from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from orders_service.server.arrival import Progress

SLOTS = 64  # more than any sane WEB_CONCURRENCY; a process's slot is its gunicorn age modulo this
HANDOFF_SECONDS = 0.001
SHED_INTERVAL_SECONDS = 0.1
STALE_SECONDS = 2.0  # a process that has not published for this long (exited, or stuck) does not count

# A closing connection is drained for at most this long, or this much (a client uploading a body the app
# refused): enough for the client to finish sending and read the answer.
LINGER_SECONDS = 5.0
LINGER_BYTES = 16 * 1024 * 1024
SWEEP_SECONDS = 0.1  # how often the loop looks for requests (and lingering closes) past their time
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_serving = threading.local()  # the request a thread is serving: whether its body was refused

_ENTRY = struct.Struct("dq")  # when published (CLOCK_MONOTONIC, the same in every process), connections
_table = mmap.mmap(-1, SLOTS * _ENTRY.size)  # anonymous and shared: inherited by every forked process


class _Connection(TConn):
    """gthread's connection, with what the event loop knows of the request arriving on it."""

    def __init__(self, cfg, sock, client, server, linger):
        super().__init__(cfg, sock, client, server)
        self.progress: Progress | None = None  # the next request's bytes so far, and what they hold
        self.deadline = 0.0  # when the request must have arrived (or a lingering close ends)
        self.continued = False  # "100 Continue" was sent for this request
        self.drained = 0  # bytes read and dropped by a lingering close
        self._linger = linger

    def close(self, graceful=False):
        # gthread closes "gracefully" on its event loop's thread, with a blocking read: the worker lingers
        # without blocking instead.
        if graceful:
            self._linger(self)
        else:
            super().close()


class _ArrivedUnreader(SocketUnreader):
    """gunicorn's reader of a connection, for requests that arrived whole: the parser reads them from
    memory, a socket read's worth at a time (fed all at once, gunicorn's chunked reader copies the rest of
    the body for every chunk). Should it ever want more than arrived, it waits for the client only until
    the request's deadline, and then sees the connection end."""

    def __init__(self, sock):
        super().__init__(sock)
        self.arrived = memoryview(b"")
        self.deadline = 0.0

    def give_back(self) -> None:
        """What the parser did not take goes to gunicorn's buffer, where gthread looks for a pipelined
        request (after what the parser read ahead)."""
        if self.arrived:
            rest = self.buf.getvalue() + bytes(self.arrived)
            self.buf = io.BytesIO()
            self.buf.write(rest)
            self.arrived = memoryview(b"")

    def chunk(self, size_hint=None):
        if self.arrived:
            size = self.mxchunk if not size_hint else max(self.mxchunk, min(size_hint, self.max_body_chunk))
            piece, self.arrived = self.arrived[:size], self.arrived[size:]
            return bytes(piece)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return b""
        self.sock.settimeout(remaining)
        try:
            return super().chunk(size_hint)
        except TimeoutError:
            return b""
        finally:
            self.sock.settimeout(None)


def _chunked_as_known_length(app, limit: int):
    """The app gets a chunked body as a body of known length (it is in memory already). werkzeug cuts a
    chunked body at the limit without a word, and the app then read the first MiB of a larger one as
    invalid JSON; with its length known it answers 413, as for a Content-Length over the limit. A body
    refused already (its chunks announce more) is not read at all: its length is said to be over."""

    def wsgi(environ, start_response):
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            refused = getattr(_serving, "body_refused", False)
            body = b"" if refused else environ["wsgi.input"].read(limit + 1)
            environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(limit + 1 if refused else len(body))})
            del environ["HTTP_TRANSFER_ENCODING"]
        return app(environ, start_response)

    return wsgi


class BalancedThreadWorker(ThreadWorker):
    """Procfile `web`: `--worker-class orders_service.server.worker.BalancedThreadWorker`."""

    def init_process(self) -> None:
        from orders_service.config import MAX_BODY_BYTES, Settings  # in the forked process, not the master

        self._offset = (self.age % SLOTS) * _ENTRY.size
        self._last_shed = 0.0
        # TLS or HTTP/2 in gunicorn itself (not this service's deployment) keep gthread's own reading.
        self._buffering = not self.cfg.is_ssl and "h2" not in self.cfg.http_protocols
        self._arrival_seconds = Settings.from_env().web_request_arrival_seconds
        self._body_limit = MAX_BODY_BYTES
        self._arriving: set[_Connection] = set()
        self._lingering: set[_Connection] = set()
        self._last_sweep = 0.0
        body = json.dumps({"code": 408, "status": "Request Timeout",
                           "message": f"The request did not arrive within {self._arrival_seconds} s"}).encode()
        self._timed_out = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self._publish()
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        if self._buffering:
            self.wsgi = _chunked_as_known_length(self.wsgi, self._body_limit)

    # --- balance ---

    def _publish(self) -> None:
        _ENTRY.pack_into(_table, self._offset, time.monotonic(), self.nr_conns)

    def _fewest_elsewhere(self) -> int | None:
        oldest = time.monotonic() - STALE_SECONDS
        counts = [connections for offset in range(0, len(_table), _ENTRY.size)
                  if offset != self._offset
                  for published, connections in [_ENTRY.unpack_from(_table, offset)]
                  if published > oldest]
        return min(counts, default=None)

    def notify(self) -> None:
        # Called on every turn of the worker's loop (at least once a second): keeps the count fresh.
        super().notify()
        self._publish()

    def accept(self, listener) -> None:
        fewest = self._fewest_elsewhere()
        if fewest is not None and self.nr_conns > fewest:
            time.sleep(HANDOFF_SECONDS)
        if not self._buffering:
            super().accept(listener)
        else:
            try:
                sock, client = listener.accept()
            except OSError as exc:  # another process took it meanwhile (EAGAIN), or the client left
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self.nr_conns += 1
            self._await(_Connection(self.cfg, sock, client, listener.getsockname(), self._linger))
        self._publish()

    def handle_request(self, req, conn):
        # Runs on the request's thread; two threads may both shed at once, which does no harm.
        now = time.monotonic()
        if now - self._last_shed >= SHED_INTERVAL_SECONDS:
            fewest = self._fewest_elsewhere()
            if fewest is not None and self.nr_conns > fewest + 1:
                self._last_shed = now
                req.force_close()
        if self._buffering:
            req._expected_100_continue = False  # arrived whole: the loop said "100 Continue" if it was awaited
            _serving.body_refused = conn.progress.arrival.body_refused
            if _serving.body_refused:
                req.force_close()
        return super().handle_request(req, conn)

    # --- arrival: all on the event loop's thread, but `handle` ---

    def _await(self, conn: _Connection, received: bytes = b"") -> None:
        """Hold `conn` in the event loop until a whole request has arrived on it."""
        number = conn.parser.req_count + 1 if conn.parser is not None else 1
        conn.progress = Progress(self.cfg, conn.client, number, self._body_limit)
        conn.deadline = time.monotonic() + self._arrival_seconds
        conn.continued = False
        conn.sock.setblocking(False)
        if received and self._whole(conn, received):  # pipelined: the next request may be here already
            self._serve(conn)
            return
        self._arriving.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_arriving, conn))

    @staticmethod
    def _receive(conn: _Connection) -> bytes | None:
        """What the client sent (b"": it closed, or the connection broke), or None if nothing after all."""
        try:
            return conn.sock.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def _on_arriving(self, conn: _Connection, _sock) -> None:
        data = self._receive(conn)
        if data is None:
            return
        if not data:  # the client left
            self._drop(conn)
            return
        try:
            whole = self._whole(conn, data)
        except Exception:  # a fault here must not end the event loop, and every connection with it
            self.log.exception("Error judging a request's arrival")
            self._drop(conn)
            return
        if whole:
            self._stop_awaiting(conn)
            self._serve(conn)

    def _drop(self, conn: _Connection, answer: bytes = b"") -> None:
        self._stop_awaiting(conn)
        self.nr_conns -= 1
        if answer:
            self._send_quietly(conn, answer)
        conn.close()

    def _whole(self, conn: _Connection, data: bytes) -> bool:
        whole = conn.progress.add(data)
        if conn.progress.arrival.expects_continue and not whole and not conn.continued:
            conn.continued = True
            self._send_quietly(conn, CONTINUE)
        return whole

    def _stop_awaiting(self, conn: _Connection) -> None:
        self._arriving.discard(conn)
        self.poller.unregister(conn.sock)

    def _serve(self, conn: _Connection) -> None:
        super().enqueue_req(conn)

    def enqueue_req(self, conn) -> None:
        # gthread calls this (besides from what is overridden here) for a kept-alive connection whose
        # parser already holds bytes of the next request (pipelining): they wait here like any others.
        if not self._buffering:
            super().enqueue_req(conn)
            return
        self._await(conn, conn.parser.unreader.take_buffered() if conn.parser is not None else b"")

    def on_client_socket_readable(self, conn, client) -> None:
        # A kept-alive connection's next request begins: its time to arrive starts now.
        if not self._buffering:
            super().on_client_socket_readable(conn, client)
            return
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await(conn)
        self._on_arriving(conn, client)

    def handle(self, conn):
        # On the request's thread: its parser reads what arrived, from memory.
        if self._buffering:
            conn.sock.setblocking(True)
            conn.init()
            if not isinstance(conn.parser.unreader, _ArrivedUnreader):
                conn.parser.unreader = _ArrivedUnreader(conn.sock)
            unreader = conn.parser.unreader
            unreader.deadline = conn.deadline
            unreader.arrived = memoryview(bytes(conn.progress.received))
            conn.progress.received.clear()  # a connection kept alive holds nothing while idle
            try:
                return super().handle(conn)
            finally:
                unreader.give_back()
        return super().handle(conn)

    # --- closing ---

    def _linger(self, conn: _Connection) -> None:
        """Close after the answer without losing it: stop sending, and read (and drop) what the client
        still sends until it closes, or for LINGER_SECONDS / LINGER_BYTES at most."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            conn.sock.close()
            return
        conn.sock.setblocking(False)
        conn.deadline = time.monotonic() + LINGER_SECONDS
        conn.drained = 0
        self._lingering.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_lingering, conn))

    def _on_lingering(self, conn: _Connection, _sock) -> None:
        data = self._receive(conn)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained > LINGER_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn: _Connection) -> None:
        self._lingering.discard(conn)
        self.poller.unregister(conn.sock)
        conn.sock.close()

    @staticmethod
    def _send_quietly(conn: _Connection, data: bytes) -> None:
        try:
            conn.sock.send(data)  # a few bytes on a socket that has sent nothing yet: they fit
        except OSError:
            pass

    def murder_pending(self) -> None:
        # Called on every turn of the event loop (and while it stops): requests and lingering closes
        # past their time end here.
        super().murder_pending()
        now = time.monotonic()
        if not self._buffering or now - self._last_sweep < SWEEP_SECONDS:
            return
        self._last_sweep = now
        if not self.alive:  # stopping: a request still arriving gets as long as a kept-alive connection
            for conn in self._arriving:
                conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
        for conn in [c for c in self._arriving if c.deadline <= now]:
            self._drop(conn, self._timed_out if conn.progress.received else b"")
        for conn in [c for c in self._lingering if c.deadline <= now]:
            self._end_linger(conn)
