"""Domain errors: what services raise. `api/errors.py` maps them to the JSON error body of docs/api.md, "Errors"."""
from __future__ import annotations

import math


class DomainError(Exception):
    status = 400

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors


class InvalidRequest(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class IdempotencyKeyReused(DomainError):
    status = 422


class InsufficientStock(DomainError):
    def __init__(self, name: str, available: int, requested: int):
        super().__init__(
            f"Product '{name}' has insufficient stock. Available: {available}, Requested: {requested}"
        )


class ProviderBusy(DomainError):
    """A dependency asks us to come back later: 503 with Retry-After; nothing was reserved or changed."""

    status = 503

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class Throttled(ProviderBusy):
    """The client asks too often: 429 with Retry-After; nothing was changed."""

    status = 429


class PaymentProviderError(DomainError):
    """The payment provider failed; the message carries its reason (never our internals or keys)."""

    status = 500
