"""When the web's event loop hands a request to a thread (orders_service/server/arrival.py): once gunicorn's
parser can read it whole from the bytes received, or refuses it from them, or its body is over the limit."""
import time

import pytest
from gunicorn.config import Config

from orders_service.server.arrival import HEAD_ALLOWANCE, Progress, judge

LIMIT = 1024
PEER = ("127.0.0.1", 40000)
BODY = b'{"email": "ada@example.com"}'
LENGTH = b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
CHUNKED = (b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\n" + BODY[:5] + b"\r\n%x\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n0\r\n\r\n")


def _judge(data: bytes, limit: int = LIMIT):
    return judge(Config(), data, PEER, 1, limit)


@pytest.mark.parametrize("request_bytes", [LENGTH, CHUNKED, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"],
                         ids=["content-length", "chunked", "no body"])
def test_a_request_is_whole_at_its_last_byte_and_not_before(request_bytes):
    for cut in range(len(request_bytes)):
        assert not _judge(request_bytes[:cut]).whole, request_bytes[:cut]
    assert _judge(request_bytes).whole


def test_what_follows_a_whole_request_does_not_matter():
    assert _judge(LENGTH + b"GET /healthz HTTP/1.1\r\n").whole  # a pipelined request's beginning


def test_a_body_of_known_length_is_measured_once_its_head_is_there():
    arrival = _judge(LENGTH[:-3])
    assert not arrival.whole and arrival.size == len(LENGTH)


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\nHost: a\n\n",  # bare LF
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # not a chunk size
    b"GET /" + b"a" * 8000 + b" HTTP/1.1",  # a request line over gunicorn's limit, unfinished
], ids=["bare LF", "two lengths", "bad chunk size", "long request line"])
def test_a_request_gunicorn_refuses_is_handed_on_at_once(request_bytes):
    arrival = _judge(request_bytes)
    assert arrival.whole and not arrival.body_refused


@pytest.mark.parametrize("request_bytes", [
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1),
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s" % (LIMIT + 1, b"x" * (LIMIT + 1)),
], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_not_waited_for(request_bytes):
    arrival = _judge(request_bytes)
    assert arrival.whole and arrival.body_refused


def test_a_head_that_never_ends_is_not_held_beyond_the_allowance():
    head = b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * (HEAD_ALLOWANCE // 8)
    assert not _judge(head[:HEAD_ALLOWANCE // 2]).whole
    assert _judge(head).whole


def test_a_client_waiting_for_100_continue_is_seen():
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"
    assert _judge(head).expects_continue and not _judge(head).whole


def _fed(request_bytes: bytes, step: int, limit: int = LIMIT) -> tuple[Progress, list[bool]]:
    progress = Progress(Config(), PEER, 1, limit)
    return progress, [progress.add(request_bytes[at:at + step]) for at in range(0, len(request_bytes), step)]


@pytest.mark.parametrize("step", [1, 7, 4096])
@pytest.mark.parametrize("request_bytes", [LENGTH, CHUNKED, CHUNKED.replace(b"0\r\n\r\n", b"0\r\nX-T: 1\r\n\r\n")],
                         ids=["content-length", "chunked", "chunked with a trailer"])
def test_progress_says_whole_at_the_last_piece_and_not_before(request_bytes, step):
    progress, answers = _fed(request_bytes, step)
    assert answers[-1] and not any(answers[:-1])
    assert not progress.arrival.body_refused


def test_progress_refuses_a_chunked_body_once_its_chunks_announce_more_than_the_limit():
    progress, answers = _fed(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"%x\r\n" % (LIMIT + 1) + b"x" * 10, 5)
    assert answers[-1] and progress.arrival.body_refused


def test_a_body_of_tiny_chunks_costs_the_loop_little():
    # Each byte is looked at once as it arrives, and the parser reads what arrived a socket read's worth
    # at a time: fed whole, gunicorn's chunked reader copied the rest of the body for every chunk.
    body = b"1\r\nx\r\n" * 100_000 + b"0\r\n\r\n"
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    started = time.process_time()
    _progress, answers = _fed(head + body, 60, limit=1024 * 1024)
    assert answers[-1] and not any(answers[:-1])
    assert time.process_time() - started < 5


def test_trailers_that_never_end_are_not_held_beyond_the_allowance():
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"
    _progress, answers = _fed(head + b"X-A: b\r\n" * (HEAD_ALLOWANCE // 4), 64 * 1024)
    assert answers[-1]
