"""The password rules of CONTRACT §3, and a bound on the memory hashing takes.

Each argon2 hash or verify holds 64 MiB for its duration; a web process has dozens of request threads,
so an unbounded login flood costs threads × 64 MiB. A semaphore keeps a few at a time per process: the
others wait (a bounded while), and memory stays bounded whatever the thread count.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache

from argon2 import PasswordHasher

from orders_service.errors import ProviderBusy
from orders_service.gate import outside_gate

MIN_LENGTH = 8
# Long enough for any passphrase or manager-made password; short enough that nobody hashes megabytes.
MAX_LENGTH = 1024

_hasher = PasswordHasher()
_slots = threading.BoundedSemaphore(2)
_wait_seconds = 10.0


def configure_hashing(concurrency: int, wait_seconds: float) -> None:
    """How many hashes this process computes at once, and how long a request waits for a turn."""
    global _slots, _wait_seconds
    _slots = threading.BoundedSemaphore(concurrency)
    _wait_seconds = wait_seconds


@contextmanager
def _hashing_slot():
    with outside_gate():  # waiting for a turn and hashing need no Python: other requests run meanwhile
        slots = _slots
        if not slots.acquire(timeout=_wait_seconds):
            raise ProviderBusy("Too many sign-ins at once; try again shortly", retry_after=1)
        try:
            yield
        finally:
            slots.release()


def hash_password(password: str) -> str:
    with _hashing_slot():
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> None:
    """Raises argon2's VerifyMismatchError (or InvalidHashError) when the password is not the hash's."""
    with _hashing_slot():
        _hasher.verify(password_hash, password)


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn's list: the 30,000 most common passwords of its leaked-password corpora, most common first.
    # Loaded on first use: only processes that register customers pay its memory.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"] if len(p) >= MIN_LENGTH)


def password_problem(password: str) -> str | None:
    """Why a new password is refused (CONTRACT §3), or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Must be at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Must be at most {MAX_LENGTH} characters."
    if not password.strip():
        return "Must not be only whitespace."
    if password.lower() in _common_passwords():
        return "Is among the most common passwords; choose another."
    return None
