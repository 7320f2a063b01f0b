"""`server/worker.py` overrides parts of gunicorn's gthread worker and reads some of its state. A gunicorn release
that changes those parts must be read again before it runs the web: these tests fail until someone has.
(How the class spreads connections, against the real gunicorn, is `tests/integration/test_web_process.py`.)"""
import hashlib
import inspect

from gunicorn.http.message import Request
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker

from orders_service.server.worker import BalancedThreadWorker

# The source of each gunicorn method the class overrides, as it was when the override was written (gunicorn
# 27.0.1). A new fingerprint means gunicorn changed that method: re-read the override against it, then
# record the new one here.
OVERRIDDEN = {
    "init_process": "e4fc63a1a68e4f48",
    "notify": "7f509bc4046b0e97",
    "accept": "f8dcead3dce5c851",
    "handle_request": "6d0de5b919102efc",
}


def _fingerprint(function) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def test_it_overrides_exactly_the_methods_it_was_checked_against():
    overridden = {name for name, value in vars(BalancedThreadWorker).items()
                  if callable(value) and not name.startswith("_") and hasattr(ThreadWorker, name)}
    assert overridden == set(OVERRIDDEN)


def test_the_gunicorn_methods_it_overrides_have_not_changed():
    changed = {name: _fingerprint(getattr(ThreadWorker, name)) for name, recorded in OVERRIDDEN.items()
               if _fingerprint(getattr(ThreadWorker, name)) != recorded}
    assert changed == {}, f"gunicorn changed {sorted(changed)}: re-read server/worker.py's overrides"


def test_what_it_reads_of_gunicorn_is_still_there():
    # The connection count it publishes, the worker's age that picks its slot, and how it sheds a connection.
    assert "self.nr_conns" in inspect.getsource(ThreadWorker)
    assert "self.age = age" in inspect.getsource(Worker.__init__)
    assert list(inspect.signature(ThreadWorker.accept).parameters) == ["self", "listener"]
    assert list(inspect.signature(ThreadWorker.handle_request).parameters) == ["self", "req", "conn"]
    assert callable(Request.force_close) and "self.must_close = True" in inspect.getsource(Request.force_close)
    assert "must_close" in inspect.getsource(Request.should_close)
