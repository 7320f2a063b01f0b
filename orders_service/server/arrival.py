"""Whether a request has arrived whole: the web worker (`worker.py`) holds a connection in its event loop,
with no thread and no turn of the run gate, until `Progress` says so.

The judge is gunicorn's own parser, run on the bytes received so far, so that the worker and the thread
that then parses the request again never disagree on where a request ends. A request is whole when the
parser reads its head and its body from those bytes without running out. It is also handed on when the
parser refuses it from what is there (a malformed head or chunk: gunicorn answers 400 at once), and
without its body when the body is over the app's limit (the app answers 413 at once; nothing else can be
read on that connection, so it closes).

Parsing everything again at each read would cost the square of a request's size for one arriving in
small pieces, so the parser is asked only when the request may have become whole: when a head may have
ended (an empty line arrived, or the bytes received doubled since it was last asked), when a chunked
body's last chunk arrived (`_Chunks` follows the chunks, looking at each byte once), and for a body of
known length when all of it is there.
"""
from __future__ import annotations

from dataclasses import dataclass

from gunicorn.http.body import LengthReader
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader

# A head larger than this is not waited for (gunicorn's own limits refuse heads of ~800 KiB and more).
HEAD_ALLOWANCE = 1024 * 1024
# The parser is fed what arrived in pieces of a socket read's size: fed all at once, gunicorn's chunked
# reader copies the whole rest of the body for every chunk (quadratic in the number of chunks).
PIECE = 8192
CHUNK_LINE_LIMIT = 8190  # gunicorn's limit on a chunk-size line (limit_request_field_size)


@dataclass(frozen=True)
class Arrival:
    whole: bool
    size: int | None = None  # the request's bytes (head and body), once its head gives a Content-Length
    expects_continue: bool = False  # the client waits for "100 Continue" before it sends its body
    body_refused: bool = False  # over the limit: handed on without it, and the connection closes after
    body_start: int | None = None  # where a chunked body begins, once the head has been read


class _Received(IterUnreader):
    """The bytes received so far, as the parser reads a connection (a piece at a time); notes whether it
    asked for more than there is."""

    def __init__(self, data: bytes):
        super().__init__(data[at:at + PIECE] for at in range(0, len(data), PIECE))
        self.ran_out = False
        self.given = 0

    def chunk(self, size_hint=None):
        piece = super().chunk(size_hint)
        if not piece:
            self.ran_out = True
        self.given += len(piece)
        return piece

    @property
    def taken(self) -> int:
        """How many bytes the parser has taken (read, and not given back)."""
        return self.given - len(self.buf.getvalue())


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
        size = received.taken + reader.length
        return Arrival(whole=len(data) >= size, size=size, expects_continue=continues)
    body_start = received.taken
    read = 0  # chunked: read as far as it goes (a piece at a time: a piece is returned only whole)
    try:
        while piece := request.body.read(min(64 * 1024, body_limit + 1 - read)):
            read += len(piece)
            if read > body_limit:
                return Arrival(whole=True, body_refused=True)
    except Exception:  # noqa: BLE001 — ran out mid-body, or a malformed chunk gunicorn refuses
        if received.ran_out:
            return Arrival(whole=False, expects_continue=continues, body_start=body_start)
        return Arrival(whole=True)
    return Arrival(whole=True)


class _Chunks:
    """Follows a chunked body's framing as its bytes arrive, each byte looked at once: says when the last
    chunk and the end of the trailers are there (then the parser says whether the body is whole), or a
    framing the parser would refuse; and how many bytes the chunks announced so far."""

    def __init__(self, start: int):
        self.at = start  # the next byte to look at
        self.left = 0  # bytes of the current chunk still to come, its CRLF included
        self.announced = 0  # the chunk sizes so far
        self.trailers_from: int | None = None  # where the trailer section starts, after the last chunk

    def settled(self, data: bytearray) -> bool:
        """Whether the parser should look now (the body may be whole, or will be refused)."""
        while True:
            if self.trailers_from is not None:  # the section ends with an empty line
                found = data.find(b"\r\n\r\n", max(self.trailers_from - 2, self.at - 3))
                self.at = len(data)
                return found >= 0
            if self.left:
                step = min(self.left, len(data) - self.at)
                self.at += step
                self.left -= step
                if self.left:
                    return False
                continue
            end = data.find(b"\r\n", self.at)
            if end < 0:
                return len(data) - self.at > CHUNK_LINE_LIMIT
            try:
                size = int(bytes(data[self.at:end]).split(b";", 1)[0], 16)
            except ValueError:
                return True
            self.at = end + 2
            if size == 0:
                self.trailers_from = self.at
                continue
            self.announced += size
            self.left = size + 2


class Progress:
    """The request arriving on a connection: `add(bytes)` after each read, true once a thread may take it;
    `arrival` is what is known of it (the parser's last word, or a chunked body announced over the
    limit)."""

    def __init__(self, cfg, peer, number: int, body_limit: int):
        self._cfg, self._peer, self._number, self._limit = cfg, peer, number, body_limit
        self.received = bytearray()
        self.arrival = Arrival(whole=False)
        self._asked_at = 0  # how many bytes had arrived when the parser was last asked
        self._chunks: _Chunks | None = None
        self._follow_chunks = True  # until the parser disagrees with `_Chunks` (then: by doubling)

    def add(self, data: bytes) -> bool:
        before = len(self.received)
        self.received += data
        if self.arrival.size is not None:
            return len(self.received) >= self.arrival.size
        if self._chunks is not None:
            ask = self._chunks.settled(self.received)
            if self._chunks.announced > self._limit:  # the rest is not waited for
                self.arrival = Arrival(whole=True, body_refused=True)
                return True
        else:
            window = self.received[max(0, before - 3):]
            ask = (before == 0 or b"\r\n\r\n" in window or b"\n\n" in window
                   or len(self.received) >= 2 * self._asked_at)
        if len(self.received) > self._limit + HEAD_ALLOWANCE:  # more than any request it would read
            return self._ask() or True
        return self._ask() if ask else False

    def _ask(self) -> bool:
        self._asked_at = len(self.received)
        self.arrival = judge(self._cfg, bytes(self.received), self._peer, self._number, self._limit)
        if self.arrival.whole or not self._follow_chunks:
            self._chunks = None
        elif self._chunks is not None:  # it said the body may be whole, and the parser says not yet
            self._chunks, self._follow_chunks = None, False
        elif self.arrival.body_start is not None:
            self._chunks = _Chunks(self.arrival.body_start)
            return self.add(b"")
        return self.arrival.whole
