"""Whether a request has arrived whole: the web worker (`worker.py`) holds a connection in its event loop,
with no thread and no turn of the run gate, until this says so.

The judge is gunicorn's own parser, run on the bytes received so far, so that the worker and the thread
that then parses the request again never disagree on where a request ends. A request is whole when the
parser reads its head and its body from those bytes without running out. It is also handed on when the
parser refuses it from what is there (a malformed head or chunk: gunicorn answers 400 at once), and
without its body when the body is over the app's limit (the app answers 413 at once; nothing else can be
read on that connection, so it closes).
"""
from __future__ import annotations

from dataclasses import dataclass

from gunicorn.http.body import LengthReader
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader

# A head larger than this is not waited for (gunicorn's own limits refuse heads of ~800 KiB and more).
HEAD_ALLOWANCE = 1024 * 1024


@dataclass(frozen=True)
class Arrival:
    whole: bool
    size: int | None = None  # the request's bytes (head and body), once its head gives a Content-Length
    expects_continue: bool = False  # the client waits for "100 Continue" before it sends its body
    body_refused: bool = False  # over the limit: handed on without it, and the connection closes after


class _Received(IterUnreader):
    """The bytes received so far, as the parser reads a connection; notes whether it asked for more."""

    def __init__(self, data: bytes):
        super().__init__([data])
        self.ran_out = False

    def chunk(self, size_hint=None):
        piece = super().chunk(size_hint)
        if not piece:
            self.ran_out = True
        return piece


def judge(cfg, data: bytes, peer, number: int, body_limit: int) -> Arrival:
    """What `data` (the bytes received on a connection since its last request) holds: request `number`
    of the connection, whole or not yet."""
    received = _Received(data)
    try:
        request = Request(cfg, received, peer, number)
    except Exception:  # noqa: BLE001 — NoMoreData when it ran out; gunicorn's refusal of the head otherwise
        return Arrival(whole=not received.ran_out or len(data) > HEAD_ALLOWANCE)
    continues = request._expected_100_continue
    reader = request.body.reader
    if isinstance(reader, LengthReader):
        if reader.length > body_limit:
            return Arrival(whole=True, body_refused=True)
        size = len(data) - len(received.buf.getvalue()) + reader.length
        return Arrival(whole=len(data) >= size, size=size, expects_continue=continues)
    read = 0  # chunked: read as far as it goes (a piece at a time: a piece is returned only whole)
    try:
        while piece := request.body.read(min(64 * 1024, body_limit + 1 - read)):
            read += len(piece)
            if read > body_limit:
                return Arrival(whole=True, body_refused=True)
    except Exception:  # noqa: BLE001 — ran out mid-body, or a malformed chunk gunicorn refuses
        if received.ran_out:
            return Arrival(whole=False, expects_continue=continues)
        return Arrival(whole=True)
    return Arrival(whole=True)
