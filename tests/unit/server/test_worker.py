"""`server/worker.py` overrides parts of gunicorn's gthread worker (and of its connection and socket reader)
and reads some of their state. A gunicorn release that changes those parts must be read again before it
runs the web: these tests fail until someone has. (What the class does against the real gunicorn is
`tests/integration/test_web_process.py` and `tests/integration/test_slow_clients.py`.)"""
import hashlib
import inspect

import pytest
from gunicorn.http.message import Request
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import TConn, ThreadWorker

from orders_service.server.worker import BalancedThreadWorker, _ArrivedUnreader, _Connection

# The source of each gunicorn method a class of ours overrides, as it was when the override was written
# (gunicorn 27.0.1). A new fingerprint means gunicorn changed that method: re-read the override against it,
# then record the new one here.
OVERRIDDEN = {
    (BalancedThreadWorker, ThreadWorker): {
        "accept": "f8dcead3dce5c851",
        "enqueue_req": "c9f428953d24acef",
        "handle": "ca85c9be3df75da4",
        "handle_request": "6d0de5b919102efc",
        "init_process": "e4fc63a1a68e4f48",
        "load_wsgi": "18b02fc35e964f2b",
        "murder_pending": "7bf11f46454296e1",
        "notify": "7f509bc4046b0e97",
        "on_client_socket_readable": "aead1a3ea7b7daff",
    },
    (_Connection, TConn): {"__init__": "c8763d7c65974e1b", "close": "6d1c334ed1979fcb"},
    (_ArrivedUnreader, SocketUnreader): {"__init__": "e8f9de555670946f", "chunk": "9f62532259f8468e"},
}
CLASSES = [pytest.param(ours, base, recorded, id=ours.__name__) for (ours, base), recorded in OVERRIDDEN.items()]


def _fingerprint(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


@pytest.mark.parametrize("ours, base, recorded", CLASSES)
def test_it_overrides_exactly_the_methods_it_was_checked_against(ours, base, recorded):
    overridden = {name for name, value in vars(ours).items()
                  if callable(value) and (name == "__init__" or not name.startswith("__")) and hasattr(base, name)}
    assert overridden == set(recorded)


@pytest.mark.parametrize("ours, base, recorded", CLASSES)
def test_the_gunicorn_methods_it_overrides_have_not_changed(ours, base, recorded):
    changed = {name: _fingerprint(getattr(base, name)) for name, fingerprint in recorded.items()
               if _fingerprint(getattr(base, name)) != fingerprint}
    assert changed == {}, f"gunicorn changed {base.__name__}.{sorted(changed)}: re-read {ours.__name__}'s overrides"


def test_what_it_reads_of_gunicorn_is_still_there():
    # The connection count it publishes, the worker's age that picks its slot, and how it sheds a connection.
    assert "self.nr_conns" in inspect.getsource(ThreadWorker)
    assert "self.age = age" in inspect.getsource(Worker.__init__)
    assert list(inspect.signature(ThreadWorker.accept).parameters) == ["self", "listener"]
    assert list(inspect.signature(ThreadWorker.handle_request).parameters) == ["self", "req", "conn"]
    assert callable(Request.force_close) and "self.must_close = True" in inspect.getsource(Request.force_close)
    assert "must_close" in inspect.getsource(Request.should_close)
