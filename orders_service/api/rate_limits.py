"""Rate limits, with flask-limiter: per client address on login and registration, per customer on placing
orders and on asking whether one is paid, and repeated wrong passwords per account whatever the address.

A route declares the limit it counts toward with `@limited(AUTH)`, `@limited(ORDERS)` or
`@limited(PAYMENT_CHECKS)`; `init_rate_limits` puts each app's limiter on the routes so declared (an app of
its own per test, each with its settings).

Counts live in Redis when REDIS_URL is set (every process and host sees the same counts), in each
process's memory otherwise (development). A Redis that fails must not take sign-in and ordering down
with it: a call to it gives up after `REDIS_TIMEOUT_SECONDS` (a frozen Redis, or a network that drops
packets, refuses nothing and would hold every request for as long as it lasts), and the process then
counts in its own memory until Redis answers a ping again (flask-limiter's in-memory fallback, which
asks after 1, 2, 4 … 32 s). Should even that fail, the request goes through (logged).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager

from flask import Flask, current_app, g
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from jwt import PyJWTError
from limits import parse

from orders_service.api.blueprint import document
from orders_service.api.context import settings
from orders_service.api.errors import error_response
from orders_service.config import Settings
from orders_service.errors import Throttled, Unauthorized

# A healthy Redis answers in a millisecond; one that has not answered in this long is taken for down.
REDIS_TIMEOUT_SECONDS = 0.1

# The limits, by scope: the routes declaring one count together.
AUTH = "auth"  # AUTH_RATE_LIMIT, per client address
ORDERS = "orders"  # ORDER_RATE_LIMIT, per customer
PAYMENT_CHECKS = "payment_checks"  # PAYMENT_CHECK_RATE_LIMIT, per customer: each may cost a Stripe read


def limited(scope: str):
    """Declare that the route counts toward the `scope` limit (AUTH, ORDERS, PAYMENT_CHECKS); a breach is a 429."""

    def decorator(view):
        view = document(view, rate_limit=scope)
        view.rate_limit_scope = scope
        return view

    return decorator


def _token_customer() -> str | None:
    """The customer of the request's valid token, or None. The limit is checked before the route's own
    token check: a request without a valid token counts nothing (the route answers it 401). Decoded once
    per request (the limit asks twice): a token's signature check is a share of every order's CPU."""
    if "rate_limit_customer" not in g:
        try:
            verify_jwt_in_request()
            g.rate_limit_customer = get_jwt_identity()
        except (JWTExtendedException, PyJWTError):
            g.rate_limit_customer = None
    return g.rate_limit_customer


def init_rate_limits(app: Flask, config: Settings) -> Limiter:
    """Put the limits on the app's routes that declare one (already registered)."""
    timeouts = {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
    limiter = Limiter(
        get_remote_address, app=app, storage_uri=config.redis_url or "memory://",
        storage_options=timeouts if config.redis_url else {}, in_memory_fallback_enabled=True,
        strategy="moving-window", swallow_errors=True, key_prefix="orders-service",
    )

    def per_customer(limit: str, scope: str):
        return limiter.shared_limit(limit, scope=scope, key_func=lambda: f"customer:{_token_customer()}",
                                    exempt_when=lambda: _token_customer() is None)

    limits = {
        AUTH: limiter.shared_limit(config.auth_rate_limit, scope=AUTH),
        ORDERS: per_customer(config.order_rate_limit, ORDERS),
        PAYMENT_CHECKS: per_customer(config.payment_check_rate_limit, PAYMENT_CHECKS),
    }
    for endpoint, view in list(app.view_functions.items()):
        scope = getattr(view, "rate_limit_scope", None)
        if scope is not None:
            app.view_functions[endpoint] = limits[scope](view)
    app.extensions["orders.limiter"] = limiter

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        current = limiter.current_limit
        retry_after = max(1, math.ceil(current.window[0] - time.time())) if current else 60
        response, status = error_response(429, f"Too many requests: at most {exc.description}; "
                                               f"try again in {retry_after} s")
        response.headers["Retry-After"] = str(retry_after)
        return response, status

    return limiter


@contextmanager
def counting_failed_logins(email: str):
    """Refuse a login for an account that had too many wrong passwords lately, from any address; count
    this attempt when it fails. The right password is refused too until the window passes: that is
    what makes guessing slow. Guesses already in flight when the limit is reached still finish (at
    most a few: hashing is bounded per process)."""
    limiter: Limiter = current_app.extensions["orders.limiter"]
    limit = parse(settings().login_failure_limit)
    account = email.strip().lower()
    try:  # `limiter.limiter` is Redis's, or this process's memory while Redis is taken for down
        allowed = limiter.limiter.test(limit, "login-failures", account)
    except Exception:  # the storage failed just now: let the attempt through, as the other limits do
        allowed = True
    if not allowed:
        reset_at, _remaining = limiter.limiter.get_window_stats(limit, "login-failures", account)
        raise Throttled("Too many failed sign-ins for this account; try again later",
                        retry_after=reset_at - time.time())
    try:
        yield
    except Unauthorized:
        try:
            limiter.limiter.hit(limit, "login-failures", account)
        except Exception:  # counting is best effort, as above
            pass
        raise
