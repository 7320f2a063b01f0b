"""The password rules, and a bound on the memory hashing takes.

Each argon2 hash or verify holds 64 MiB for its duration; a web process has dozens of request threads,
so an unbounded login flood costs threads × 64 MiB. `Passwords` lets a few hash at a time per process:
the others wait (a bounded while), and memory stays bounded whatever the thread count.
"""
from __future__ import annotations

import threading
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property, lru_cache
from typing import Callable

from argon2 import PasswordHasher

from orders_service.errors import ProviderBusy

MIN_LENGTH = 8
# Long enough for any passphrase or manager-made password; short enough that nobody hashes megabytes.
MAX_LENGTH = 1024


class Passwords:
    """Hashes and verifies passwords, `concurrency` at a time in this process; a caller waits up to
    `wait_seconds` for a turn (then 503). `waiting` is entered around the wait and the hash: the web's
    run gate lets another request run meanwhile (argon2 needs no Python while it hashes)."""

    def __init__(self, concurrency: int = 2, wait_seconds: float = 10.0,
                 waiting: Callable[[], AbstractContextManager] = nullcontext):
        self._hasher = PasswordHasher()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._wait_seconds = wait_seconds
        self._waiting = waiting

    @contextmanager
    def _slot(self):
        with self._waiting():
            if not self._slots.acquire(timeout=self._wait_seconds):
                raise ProviderBusy("Too many sign-ins at once; try again shortly", retry_after=1)
            try:
                yield
            finally:
                self._slots.release()

    def hash(self, password: str) -> str:
        with self._slot():
            return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> None:
        """Raises argon2's VerifyMismatchError (or InvalidHashError) when the password is not the hash's."""
        with self._slot():
            self._hasher.verify(password_hash, password)

    @cached_property
    def dummy_hash(self) -> str:
        """Verified against when an email is unknown, so that a miss costs as much as a wrong password."""
        return self.hash("not-a-real-password")


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn's list: the 30,000 most common passwords of its leaked-password corpora, most common first.
    # Loaded on first use: only processes that register customers pay its memory.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"] if len(p) >= MIN_LENGTH)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Must be at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Must be at most {MAX_LENGTH} characters."
    if not password.strip():
        return "Must not be only whitespace."
    if password.lower() in _common_passwords():
        return "Is among the most common passwords; choose another."
    return None
