"""RealStripe: an HTTP proxy that makes localstripe look like real Stripe (API 2022-11-15 and later).

localstripe speaks an old API version (docs/operations.md, "The Stripe emulator", lists how it differs):
`latest_charge` always expanded, a `charges` list, no `amount_received`, idempotency keys ignored, no
`charge.refunded` / `payment_intent.canceled` events, no rate limits, no minimum amount. Code that only
ever met localstripe can be wrong on real Stripe while every test passes. This proxy sits in front of a
localstripe, forwards every request to it and rewrites the answers into the shapes real Stripe sends;
it also honours idempotency keys, enforces minimum amounts and optional rate limits, emits the missing
webhooks (re-signed for the receiver) and injects faults.

Usage (the service gets `STRIPE_API_BASE=proxy.url`; localstripe's own delivery to the service should be
silenced with `stripe_emulator.deliver_webhooks_to(None)`, or the service sees both shapes)::

    from tests.support.stripe_proxy import RealStripe

    with RealStripe(stripe_emulator.url) as proxy:
        proxy.forward_webhooks_to(f"{stack.url}/api/webhooks/stripe", WEBHOOK_SECRET)
        env = dict(base_env, STRIPE_API_BASE=proxy.url)
        proxy.rate_limit = 25                                   # per endpoint template and second
        proxy.lose_answer_next("POST /v1/payment_intents")      # executed at localstripe, answer lost
        ...
        assert proxy.count("GET /v1/payment_intents/{id}") <= 2
        proxy.refund_in_dashboard(pi_id, amount=500)            # -> charge.refunded
        proxy.wait_for_webhooks("charge.refunded")
        proxy.start_processing(pi_id, "sepa_debit")             # -> payment_intent.processing
        proxy.fail_processing(pi_id)                            # -> payment_intent.payment_failed
        proxy.require_action(pi_id, "ideal", return_url)        # -> payment_intent.requires_action
        proxy.succeed(pi_id)                                    # -> payment_intent.succeeded
        # and what Stripe.js sends from a browser (tests/support/stripe_js.py routes api.stripe.com here):
        # POST /v1/payment_intents/{id}/confirm  key=pk_…&client_secret=…&payment_method_data[type]=card …

Choices worth knowing:
- Idempotency: scoped by API key + key; the stored answer is replayed for 24 h (`Idempotent-Replayed:
  true`). A concurrent request with a key still in progress gets 409 `idempotency_error`, as Stripe
  answers. Only answers of requests that started executing are stored (2xx, 402, 5xx from localstripe,
  a capture refused for the PaymentIntent's state, `refuse_next` refusals); validation errors (other
  4xx), 429s, injected `fail_next` failures and the proxy's own `amount_too_small` are not, so a retry
  with the same key can still go through - Stripe documents the same for requests that failed validation
  or never began executing.
- 429: `Stripe-Rate-Limited-Reason: endpoint-rate`, no `Stripe-Should-Retry` and no `Retry-After`:
  stripe-python 16 reads only `stripe-should-retry` (then retries 409 and >= 500), so it does not retry
  a rate limit, exactly as with real Stripe.
- Payment methods localstripe does not have (bank debits, redirects) are driven by the test, as a
  customer and their bank would: `start_processing` (a SEPA debit accepted: `processing`, a pending
  charge), then `succeed` or `fail_processing` (back to `requires_payment_method` with
  `last_payment_error`); `require_action` (`redirect_to_url`, with a page at `redirect_url(pi_id)` that
  authorizes or fails the payment and returns to the `return_url`, as Stripe's test pages do). Each
  step sends the signed event real Stripe sends. The PaymentIntent at localstripe stays payable under
  these states (a `succeed` pays it there with a card, so that refunds work), and the proxy shows the
  driven state on top of it while localstripe's own status is unchanged; a cancel or confirm of a
  `processing` PaymentIntent is refused as Stripe refuses it. A PaymentIntent created with
  `automatic_payment_methods` offers `DASHBOARD_METHODS`; one created with `payment_method_types`
  offers those, and only those can be driven.
- Stripe.js's calls (a PaymentIntent read or confirmed with the publishable key and the client secret, as the
  Payment Element does; localstripe accepts neither) are answered here: a wrong client secret, a method the
  PaymentIntent does not offer, a missing `return_url` (the Dashboard's methods may redirect) or a SEPA debit
  without its mandate are refused as Stripe refuses them; a card is paid at localstripe (its PaymentMethod made
  there from the typed number), or declined here with Stripe's card error for its test cards (`DECLINED_CARDS`:
  localstripe's own decline would leave the PaymentIntent unable to be paid again); a SEPA debit goes
  `start_processing`; iDEAL and other redirect methods `require_action` with the confirm's `return_url`.
- localstripe's charges carry no `payment_method_details`: the proxy adds Stripe's `{type: card}`.
- Parameters localstripe rejects but Stripe accepts (`description`, `receipt_email`,
  `automatic_payment_methods`, cancel's `cancellation_reason`, refund's `reason`, ...) are taken off
  the forwarded request and put back on the answers; confirm's `payment_method` becomes an update
  followed by a plain confirm (localstripe answers 500 "Not implemented" to it).
"""
from __future__ import annotations

import json
import random
import re
import secrets
import sys
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
import stripe

API_VERSION = "2026-10-28.endive"  # what stripe 16.1.0 pins
IDEMPOTENCY_TTL = 24 * 3600
INTAKE = "/_real_stripe/webhook"
_INTERNAL_KEY = "sk_test_real_stripe_proxy"

# Minimum charge in minor units (stripe.com/docs/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "jpy": 50, "aud": 50, "cad": 50, "chf": 50, "nzd": 50,
                  "sgd": 50, "brl": 50, "inr": 50, "hkd": 400, "dkk": 250, "nok": 300, "sek": 300, "pln": 200,
                  "czk": 1500, "huf": 17500, "mxn": 1000, "aed": 200, "bgn": 100, "ron": 200, "thb": 1000,
                  "myr": 200}
DEFAULT_MINIMUM = 50
MAXIMUM_AMOUNT = 99_999_999
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                "xaf", "xof", "xpf"}
_SYMBOL = {"usd": "$", "aud": "$", "cad": "$", "nzd": "$", "sgd": "$", "hkd": "$", "mxn": "$", "eur": "€",
           "gbp": "£", "jpy": "¥"}

# Parameters real Stripe takes that localstripe answers with 400 "Unexpected X", per endpoint template.
_STRIPPED = {
    "POST /v1/payment_intents": {"description", "receipt_email", "statement_descriptor",
                                 "statement_descriptor_suffix", "setup_future_usage", "return_url",
                                 "automatic_payment_methods"},
    "POST /v1/payment_intents/{id}": {"description", "receipt_email", "statement_descriptor",
                                      "statement_descriptor_suffix", "setup_future_usage"},
    "POST /v1/payment_intents/{id}/confirm": {"return_url", "setup_future_usage", "payment_method"},
    "POST /v1/payment_intents/{id}/cancel": {"cancellation_reason"},
    "POST /v1/refunds": {"reason"},
}
# What `automatic_payment_methods[enabled]=true` offers here: the methods "enabled in the Dashboard".
DASHBOARD_METHODS = ["card", "ideal", "klarna", "sepa_debit"]
REDIRECT_PAGE = "/_real_stripe/redirect/"
# What Stripe.js confirms with the publishable key (the Payment Element), by the kind of method: a bank's page
# first (a redirect), accepted now and settled days later (a bank debit), or a card, paid or declined now.
REDIRECT_METHODS = {"ideal", "klarna", "bancontact", "eps", "p24"}
DEBIT_METHODS = {"sepa_debit"}
# Stripe's test cards that are declined (docs.stripe.com/testing, "Declined payments"): number -> code,
# decline_code, message. Every other valid number is paid at localstripe (3-D Secure cards ask there first).
DECLINED_CARDS = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000000069": ("expired_card", None, "Your card has expired."),
    "4000000000000127": ("incorrect_cvc", None, "Your card's security code is incorrect."),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
}
_RETURN_URL_NEEDED = ("A `return_url` must be specified because this Payment Intent is configured to automatically "
                      "accept the payment methods enabled in the Dashboard, some of which may require a full page "
                      "redirect to succeed. If you do not want to accept redirect-based payment methods, set "
                      "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` "
                      "to `never` when creating Setup Intents and Payment Intents.")
# Stripe's answer to a cancel (or a confirm, an update) of a PaymentIntent it is processing.
_PROCESSING_REFUSAL = ("You cannot {verb} this PaymentIntent because it has a status of processing. Only a "
                       "PaymentIntent with one of the following statuses may be {done}: requires_payment_method, "
                       "requires_capture, requires_confirmation, requires_action.")
_AUTHENTICATION_FAILURE = ("The provided PaymentMethod has failed authentication. You can provide "
                           "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.")
_INSUFFICIENT_FUNDS = "The customer's account has insufficient funds to cover this payment."
# Fields real PaymentIntents carry that localstripe leaves out; null/empty is what Stripe sends by default.
_PI_DEFAULTS = {"cancellation_reason": None, "automatic_payment_methods": None,
                "confirmation_method": "automatic", "description": None, "receipt_email": None,
                "setup_future_usage": None, "statement_descriptor": None,
                "statement_descriptor_suffix": None, "on_behalf_of": None, "transfer_group": None,
                "application": None, "application_fee_amount": None, "review": None, "shipping": None,
                "processing": None, "payment_method_options": {}}


def endpoint_template(method: str, path: str) -> str:
    """`POST /v1/payment_intents/pi_123/confirm` -> `POST /v1/payment_intents/{id}/confirm` (Stripe's
    unit for per-endpoint rate limits). Stripe paths alternate resource / id after /v1."""
    segments = urlsplit(path).path.strip("/").split("/")
    if segments[:1] != ["v1"]:
        return f"{method} /{'/'.join(segments)}"
    out, rest = ["v1"], segments[1:]
    if rest[:1] == ["test_helpers"]:
        out.append(rest.pop(0))
    for i, seg in enumerate(rest):
        out.append("{id}" if i % 2 == 1 and seg not in ("search", "upcoming") else seg)
    return f"{method} /" + "/".join(out)


def _error(type_: str, message: str, **fields) -> dict:
    return {"error": {"type": type_, "message": message, **fields}}


def _root(name: str) -> str:
    return name.split("[", 1)[0]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _expanded(expand: set[str], path: str) -> bool:
    return any(e == path or e.startswith(path + ".") for e in expand)


_SEARCH_CLAUSE = re.compile(r"(?:metadata\['(?P<key>[^'\]]+)'\]|(?P<field>status|currency))"
                            r"\s*:\s*'(?P<value>[^']*)'")


def _search_clauses(query: str) -> list[tuple[str, str]] | None:
    """The (field, value) pairs of a search query made of `metadata['k']:'v'` and `status:'v'` clauses joined
    by AND (the part of Stripe's search language the service uses); None when it is anything else."""
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        match = _SEARCH_CLAUSE.fullmatch(part.strip())
        if match is None:
            return None
        clauses.append((f"metadata.{match['key']}" if match["key"] else match["field"], match["value"]))
    return clauses or None


def _field(obj: dict, name: str):
    if name.startswith("metadata."):
        return (obj.get("metadata") or {}).get(name[len("metadata."):])
    return obj.get(name)


def _format_amount(amount: int, currency: str) -> str:
    major = str(amount) if currency in ZERO_DECIMAL else f"{amount / 100:.2f}"
    return f"{_SYMBOL.get(currency, '')}{major} {currency}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK's requests session reuses connections
    proxy: "RealStripe"

    def _any(self):
        self.proxy._handle(self)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = _any

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 refuses connections under a burst

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionResetError):  # a client that closed its kept-alive connection
            super().handle_error(request, client_address)


class _Request:
    """What the handler needs to know about one incoming request."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        self.method = handler.command
        self.full_path = handler.path
        split = urlsplit(handler.path)
        self.path, self.query = split.path, split.query
        self.headers = handler.headers
        self.body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self.template = endpoint_template(self.method, self.path)
        self.is_json = "json" in (handler.headers.get("Content-Type") or "")
        self.params: list[tuple[str, str]] = parse_qsl(self.query, keep_blank_values=True)
        self.json_body = None
        if self.body and self.is_json:
            try:
                self.json_body = json.loads(self.body)
            except ValueError:
                pass
        elif self.body:
            self.params += parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        self.key = handler.headers.get("Idempotency-Key") if self.method == "POST" else None

    def param(self, name: str):
        if isinstance(self.json_body, dict) and name in self.json_body:
            return self.json_body[name]
        return next((v for k, v in self.params if k == name), None)

    @property
    def expand(self) -> set[str]:
        """`expand[]=a`, `expand[0]=a` (what the SDK sends) or a JSON list."""
        found = {v for k, v in self.params if _root(k) == "expand"}
        if isinstance(self.json_body, dict) and isinstance(self.json_body.get("expand"), list):
            found |= set(self.json_body["expand"])
        return found

    @property
    def fingerprint(self):
        # Stripe compares the parameters, not their order on the wire.
        body = json.dumps(self.json_body, sort_keys=True) if self.json_body is not None else ""
        return self.method, self.path, tuple(sorted(self.params)), body


class RealStripe:
    """A real-shaped Stripe on a free port of `host` (127.0.0.1) in front of the localstripe at `upstream`.

    Knobs (settable at any time): `delay`, `rate_limit`, `rate_limits`, `rate_window`,
    `webhooks_paused`, `drop_webhooks`, `deliver_times`, `search_lag`. Read: `url`, `calls`, `count()`,
    `log`, `events`, `sent`, `deliveries`."""

    def __init__(self, upstream: str, *, api_version: str = API_VERSION, webhook_delay=(0.1, 0.5),
                 rate_limit: int | None = None, delay: float = 0.0, port: int = 0, host: str = "127.0.0.1"):
        self.upstream = upstream.rstrip("/")
        self.api_version = api_version
        self.webhook_delay = webhook_delay
        self.delay = delay
        self.rate_limit = rate_limit                # requests per endpoint template per `rate_window`
        self.rate_limits: dict[str, int] = {}       # per-template overrides
        self.rate_window = 1.0
        self.drop_webhooks = False
        self.deliver_times = 1
        # Search is eventually consistent at Stripe ("searchable in under 1 minute", up to an hour behind
        # during outages): a PaymentIntent younger than this many seconds is not found by search yet.
        self.search_lag = 0.0
        self.capture_window = 7 * 24 * 3600  # how long an authorization holds: Stripe's for online card payments
        self._paused = False
        self._port = port
        self._host = host  # another address for services in other network namespaces (tests/support/hosts.py)
        self._lock = threading.RLock()
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._server: _Server | None = None
        self.url: str | None = None
        self._target: tuple[str, str] | None = None
        self._intake_name = f"real-stripe-{secrets.token_hex(4)}"
        self._intake_secret = "whsec_" + secrets.token_hex(16)
        self._registered = False
        self._queue: list[tuple[float, int, dict]] = []
        self._queue_cond = threading.Condition(self._lock)
        self._seq = 0
        self._running = False
        self.reset()

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> "RealStripe":
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = _Server((self._host, self._port), handler)
        self.url = f"http://{self._host}:{self._server.server_address[1]}"
        self._running = True
        threading.Thread(target=self._server.serve_forever, name="real-stripe-http", daemon=True).start()
        threading.Thread(target=self._deliver_loop, name="real-stripe-webhooks", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._registered:  # registrations cannot be deleted: point ours at an event that never happens
            try:
                self._session.post(f"{self.upstream}/_config/webhooks/{self._intake_name}", timeout=5, json={
                    "url": "http://127.0.0.1:9/", "secret": self._intake_secret,
                    "events": ["real_stripe_proxy.stopped"]})
            except requests.RequestException:
                pass
            self._registered = False
        with self._queue_cond:
            self._running = False
            self._queue_cond.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._session.close()

    def __enter__(self) -> "RealStripe":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget counters, faults, idempotency keys and webhook records (not the webhook target)."""
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.log: list[dict] = []
            self.events: list[dict] = []      # every event emitted, in order
            self.sent: list[dict] = []        # every event body POSTed to the target (duplicates included)
            self.deliveries: list[dict] = []  # {"id", "type", "status": HTTP status, "dropped" or an error}
            self._faults: dict[str, list[dict]] = {}
            self._windows: dict[str, deque] = {}
            self._idempotency: dict[tuple, dict] = {}
            self._pi_extra: dict[str, dict] = {}       # accepted-but-stripped params, by PaymentIntent id
            self._refund_extra: dict[str, dict] = {}
            self._canceled_at: dict[str, int] = {}
            self._charge_meta: dict[str, dict] = {}    # Stripe copies the PI's metadata onto its Charge
            self._charge_pi: dict[str, str] = {}
            # Driven payments (see the module's docstring): the state shown over localstripe's, by
            # PaymentIntent (`{"base": localstripe's status it stands on, "fields": {...}}`), the charges
            # and PaymentMethods localstripe does not have, what a localstripe charge paid "by" another
            # method shows, and localstripe's own events the proxy sends in its own shape instead.
            self._driven: dict[str, dict] = {}
            self._fake_charges: dict[str, dict] = {}
            self._fake_methods: dict[str, dict] = {}
            self._charge_override: dict[str, dict] = {}
            # Authorizations (manual capture): when each PaymentIntent's hold lapses, when a test set it.
            self._capture_before: dict[str, int] = {}
            self._suppressed: Counter[tuple[str, str]] = Counter()
            self._queue.clear()

    # -- accounting and faults -----------------------------------------------------------------------
    def count(self, template: str | None = None) -> int:
        with self._lock:
            return self.calls[template] if template else sum(self.calls.values())

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.log.clear()

    def fail_next(self, template: str, status: int = 500, times: int = 1, body: dict | None = None,
                  headers: dict | None = None) -> None:
        """Answer the next `times` requests to `template` with `status` WITHOUT forwarding them (Stripe
        failed before doing anything; the key is not stored, so a retry goes through)."""
        if body is None:
            body = (_error("api_error", "An unknown error occurred") if status >= 500 else
                    self._rate_limit_body() if status == 429 else _error("invalid_request_error", "Injected"))
        self._add_fault(template, {"kind": "fail", "status": status, "body": body, "headers": headers or {},
                                   "times": times})

    def refuse_next(self, template: str, status: int = 402, body: dict | None = None, times: int = 1) -> None:
        """Refuse the next `times` requests to `template` once Stripe has begun executing them (a capture the
        card's issuer declines): WITHOUT forwarding them, but, unlike `fail_next`, the refusal is stored under
        the request's idempotency key and replayed to every repeat for 24 h, as Stripe does."""
        self._add_fault(template, {"kind": "refuse", "status": status, "times": times,
                                   "body": body or _error("card_error", "Your card was declined.",
                                                          code="card_declined", decline_code="generic_decline")})

    def lose_answer_next(self, template: str, times: int = 1, hang: float = 0.0) -> None:
        """Forward the next `times` requests to `template` (the effect happens, the answer is stored under
        the idempotency key), then close the connection without answering, after `hang` seconds."""
        self._add_fault(template, {"kind": "lose", "hang": hang, "times": times})

    def expire_idempotency_keys(self) -> None:
        """Forget every stored idempotency key, as 24 hours passing would: a repeat then executes anew."""
        with self._lock:
            self._idempotency.clear()

    def _add_fault(self, template: str, fault: dict) -> None:
        with self._lock:
            self._faults.setdefault(template, []).append(fault)

    def _take_fault(self, template: str, kind: str) -> dict | None:
        with self._lock:
            for fault in self._faults.get(template, []):
                if fault["kind"] == kind:
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        self._faults[template].remove(fault)
                    return fault
        return None

    def _rate_limited(self, template: str) -> bool:
        limit = self.rate_limits.get(template, self.rate_limit)
        if not limit:
            return False
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(template, deque())
            while window and window[0] <= now - self.rate_window:
                window.popleft()
            if len(window) >= limit:
                return True  # rejected requests do not use up the window
            window.append(now)
        return False

    @staticmethod
    def _rate_limit_body() -> dict:
        # The body real Stripe sends (code `rate_limit`, type invalid_request_error).
        return _error("invalid_request_error", "Request rate limit exceeded. Learn more about rate limits "
                      "here https://stripe.com/docs/rate-limits.", code="rate_limit",
                      doc_url="https://stripe.com/docs/error-codes/rate-limit")

    # -- the request path ----------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        req = _Request(handler)
        if req.path.startswith(INTAKE):
            return self._intake(handler, req)
        cors = self._cors_headers(req)
        if req.method == "OPTIONS" and cors:  # a browser's preflight: Stripe answers them for Stripe.js
            return self._send(handler, 200, b"", "text/plain", cors)
        if req.path.startswith(REDIRECT_PAGE):
            return self._redirect_page(handler, req)
        if not req.path.startswith("/v1/"):  # /_config, the fake Stripe.js: straight through
            up = self._upstream(req.method, req.full_path, req.body, self._forward_headers(req))
            return self._send(handler, up.status_code, up.content, up.headers.get("Content-Type"), cors)
        request_id = "req_" + secrets.token_hex(7)
        with self._lock:
            self.calls[req.template] += 1
            entry = {"endpoint": req.template, "path": req.path, "idempotency_key": req.key, "status": None,
                     "replayed": False, "request_id": request_id}
            self.log.append(entry)
        headers = {"Request-Id": request_id,
                   "Stripe-Version": req.headers.get("Stripe-Version") or self.api_version, **cors}
        if req.key:
            headers["Idempotency-Key"] = req.key

        def answer(status, body, extra=None, executed=False):
            entry["status"] = status
            lost = executed and self._take_fault(req.template, "lose")
            if lost:  # the client never hears back; what was done stays done
                time.sleep(lost["hang"])
                entry["status"] = "lost"
                handler.close_connection = True
                return
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self._send(handler, status, payload, "application/json", {**headers, **(extra or {})})

        if self._rate_limited(req.template):
            time.sleep(self.delay)
            return answer(429, self._rate_limit_body(), {"Stripe-Rate-Limited-Reason": "endpoint-rate"})
        fault = self._take_fault(req.template, "fail")
        if fault:
            time.sleep(self.delay)
            return answer(fault["status"], fault["body"], fault["headers"])
        scope = (req.headers.get("Authorization"), req.key)
        if req.key:
            with self._lock:
                stored = self._idempotency.get(scope)
                if stored and time.time() - stored["at"] > IDEMPOTENCY_TTL:
                    stored = None
                if stored is None:
                    self._idempotency[scope] = {"at": time.time(), "fingerprint": req.fingerprint,
                                                "done": False}
                else:  # its state on arrival: "in progress" is judged now, not after the delay
                    stored = dict(stored)
            if stored is not None:
                time.sleep(self.delay)
                if stored["fingerprint"] != req.fingerprint:
                    return answer(400, _error(
                        "idempotency_error", "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{req.key}' if you meant to execute a different request."))
                if not stored["done"]:
                    return answer(409, _error(
                        "idempotency_error", "There is currently another in-progress request using this "
                        "Idempotent Key (that probably means you submitted twice, and the other request is "
                        f"still going through): {req.key}. Please try again later."))
                entry["replayed"] = True
                return answer(stored["status"], stored["body"],
                              {"Idempotent-Replayed": "true", "Original-Request": stored["request_id"]}, True)

        # Stripe replays a key's stored answer before it looks at the request again (a retried capture gets the
        # capture's answer, not "already captured"); a request that fails validation stores nothing.
        invalid = self._validate(req)
        if invalid:
            with self._lock:
                if req.key:
                    self._idempotency.pop(scope, None)
            time.sleep(self.delay)
            return answer(400, invalid)

        time.sleep(self.delay)
        # Refusals of a request Stripe executed (a capture of a PaymentIntent in another state, a capture the
        # issuer declines): stored under the key and replayed like any executed request's answer.
        refused = self._take_fault(req.template, "refuse")
        state = self._validate_capture(req)
        try:
            status, body = ((refused["status"], refused["body"]) if refused else (400, state) if state
                            else self._execute(req))
        except Exception as exc:  # never leave a key "in progress" for ever
            with self._lock:
                self._idempotency.pop(scope, None)
            return answer(500, _error("api_error", f"real-stripe proxy: {exc.__class__.__name__}: {exc}"))
        # It began executing at "Stripe": its answer is the key's, a refusal too.
        keep = bool(refused or state) or 200 <= status < 300 or status == 402 or status >= 500
        with self._lock:
            if req.key and keep:
                self._idempotency[scope].update(done=True, status=status, body=body, request_id=request_id)
            elif req.key:
                self._idempotency.pop(scope, None)
        if 200 <= status < 300 and isinstance(body, dict):
            self._after(req, body, request_id)
        answer(status, body, executed=True)

    def _validate(self, req: _Request) -> dict | None:
        """Stripe's amount limits, which localstripe does not have; what a processing PaymentIntent refuses."""
        if req.template == "POST /v1/refunds":
            return self._validate_refund(req)
        refused = self._validate_processing(req)
        if refused:
            return refused
        if req.template not in ("POST /v1/payment_intents", "POST /v1/payment_intents/{id}"):
            return None
        try:
            amount = int(req.param("amount"))
        except (TypeError, ValueError):
            return None  # absent, or malformed: localstripe says what is wrong
        currency = req.param("currency")
        if currency is None and req.template.endswith("{id}"):
            currency = self._upstream_json("GET", req.path).get("currency")
        currency = str(currency or "usd").lower()
        minimum = MINIMUM_AMOUNT.get(currency, DEFAULT_MINIMUM)
        if amount < minimum:
            return _error("invalid_request_error",
                          f"Amount must be at least {_format_amount(minimum, currency)}",
                          code="amount_too_small", param="amount",
                          doc_url="https://stripe.com/docs/error-codes/amount-too-small")
        if amount > MAXIMUM_AMOUNT:
            return _error("invalid_request_error",
                          f"Amount must be no more than {_format_amount(MAXIMUM_AMOUNT, currency)}",
                          code="amount_too_large", param="amount",
                          doc_url="https://stripe.com/docs/error-codes/amount-too-large")
        return None

    def _validate_processing(self, req: _Request) -> dict | None:
        verbs = {"POST /v1/payment_intents/{id}/cancel": ("cancel", "canceled"),
                 "POST /v1/payment_intents/{id}/confirm": ("confirm", "confirmed"),
                 "POST /v1/payment_intents/{id}": ("update", "updated")}
        if req.template not in verbs:
            return None
        pi_id = req.path.split("/")[3]
        with self._lock:
            driven = self._driven.get(pi_id)
        if not driven or driven["fields"].get("status") != "processing":
            return None
        if self._upstream_json("GET", f"/v1/payment_intents/{pi_id}").get("status") != driven["base"]:
            return None  # paid or canceled at localstripe meanwhile: the driven state is over
        verb, done = verbs[req.template]
        return _error("invalid_request_error", _PROCESSING_REFUSAL.format(verb=verb, done=done),
                      code="payment_intent_unexpected_state", param=None,
                      doc_url="https://stripe.com/docs/error-codes/payment-intent-unexpected-state")

    def _validate_capture(self, req: _Request) -> dict | None:
        """Stripe captures only a `requires_capture` PaymentIntent, and says so with its unexpected-state error
        (the PaymentIntent inside it); localstripe answers a bare "Bad request" to a second capture, captures a
        canceled one, and crashes on one never confirmed."""
        if req.template != "POST /v1/payment_intents/{id}/capture":
            return None
        pi_id = req.path.split("/")[3]
        pi = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")
        if not pi or pi.get("status") == "requires_capture":
            return None  # localstripe answers the 404, or captures it
        self._shape(pi, set(), "")
        return _error("invalid_request_error", f"This PaymentIntent could not be captured because it has a status of "
                      f"{pi['status']}. Only a PaymentIntent with one of the following statuses may be captured: "
                      "requires_capture.", code="payment_intent_unexpected_state",
                      doc_url="https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
                      payment_intent=self._snapshot(pi))

    def _validate_refund(self, req: _Request) -> dict | None:
        """localstripe refunds the whole charge again when `amount` is absent and never checks what is left;
        Stripe refunds what remains and refuses more."""
        charge_id, pi_id = req.param("charge"), req.param("payment_intent")
        if pi_id and not charge_id:
            pi = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")
            if not pi:
                return None  # localstripe answers the 404
            if not pi.get("latest_charge"):  # localstripe crashes with a bare 500 here
                return _error("invalid_request_error",
                              f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                              param="payment_intent")
            charge = pi["latest_charge"]
        elif charge_id:
            charge = self._upstream_json("GET", f"/v1/charges/{charge_id}")
        else:
            return None
        if not charge or charge.get("status") != "succeeded":
            return None  # localstripe has its own answers for these
        remaining = charge["amount"] - charge.get("amount_refunded", 0)
        if remaining <= 0:
            return _error("invalid_request_error", f"Charge {charge['id']} has already been refunded.",
                          code="charge_already_refunded", charge=charge["id"],
                          doc_url="https://stripe.com/docs/error-codes/charge-already-refunded")
        try:
            amount = int(req.param("amount")) if req.param("amount") is not None else None
        except ValueError:
            return None
        if amount is not None and amount > remaining:
            currency = charge.get("currency", "usd")
            return _error("invalid_request_error",
                          f"Refund amount ({_format_amount(amount, currency)}) is greater than unrefunded "
                          f"amount on charge ({_format_amount(remaining, currency)})", param="amount")
        req.refund_remaining = remaining if amount is None else None
        return None

    def _execute(self, req: _Request) -> tuple[int, dict | bytes]:
        """Forward to localstripe (minus what it cannot take) and shape the answer."""
        if self._from_stripe_js(req):
            return self._stripe_js_call(req)
        if req.template in ("GET /v1/payment_intents", "GET /v1/payment_intents/search"):
            return self._list_payment_intents(req)
        fake = self._fake_object(req)
        if fake is not None:
            self._shape(fake, req.expand, "")
            return 200, fake
        stripped = _STRIPPED.get(req.template, set())
        kept = {}
        body = req.body
        if stripped and not req.is_json:
            kept = {k: v for k, v in req.params if _root(k) in stripped}
            body = urlencode([(k, v) for k, v in parse_qsl(req.body.decode(), keep_blank_values=True)
                              if _root(k) not in stripped]).encode()
        if req.template == "POST /v1/payment_intents" and not req.is_json and req.param(
                "payment_method_options[card][capture_method]") == "manual" and req.param("capture_method") is None:
            # Cards held, other methods charged at once: localstripe knows cards only, and no method options.
            body = (body + b"&" if body else b"") + b"capture_method=manual"
            kept["_hold_cards"] = True
        if getattr(req, "refund_remaining", None):  # "the rest", which localstripe reads as "all of it"
            body = (body + b"&" if body else b"") + urlencode({"amount": req.refund_remaining}).encode()
        headers = self._forward_headers(req)
        if "payment_method" in kept:  # confirm(payment_method=...): localstripe only knows update + confirm
            pm = self._upstream("POST", req.path.rsplit("/", 1)[0], urlencode({"payment_method": kept.pop(
                "payment_method")}).encode(), headers)
            if pm.status_code != 200:
                return pm.status_code, self._json_or_bytes(pm)
        up = self._upstream(req.method, req.full_path, body, headers)
        payload = self._json_or_bytes(up)
        if not isinstance(payload, dict) or not 200 <= up.status_code < 300:
            return up.status_code, payload
        self._remember(req, payload, kept)
        self._shape(payload, req.expand, "")
        return up.status_code, payload

    def _upstream_payment_intents(self) -> list[dict]:
        """Every PaymentIntent localstripe holds, newest first (it lists them oldest first, unfiltered)."""
        found, after = [], None
        while True:
            page = self._upstream_json("GET", "/v1/payment_intents?limit=100"
                                              + (f"&starting_after={after}" if after else ""))
            data = page.get("data") or []
            found += data
            if not page.get("has_more") or not data:
                return found[::-1]
            after = data[-1]["id"]

    def _list_payment_intents(self, req: _Request) -> tuple[int, dict]:
        """List PaymentIntents (`created[gt|gte|lt|lte]`, newest first, `limit`, `starting_after`) and search
        them (`metadata['key']:'value'` and `status:'value'` joined by AND; `limit`, `page`), as real Stripe
        answers; localstripe has no filter and no search. What search finds lags by `search_lag` seconds."""
        searching = req.template.endswith("/search")
        try:
            limit = int(req.param("limit") or 10)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return 400, _error("invalid_request_error", "This value must be between 1 and 100.", param="limit")
        if req.param("ending_before") is not None:
            return 400, _error("invalid_request_error", "real-stripe proxy: ending_before is not implemented")
        intents = self._upstream_payment_intents()
        if searching:
            clauses = _search_clauses(req.param("query") or "")
            if clauses is None:
                return 400, _error("invalid_request_error", "We were unable to parse your search query. Try "
                                   "using the format `metadata[\"key\"]:\"value\"` to query for metadata or "
                                   "`key:\"value\"` to query for other fields.", param="query")
            searchable_until = time.time() - self.search_lag
            intents = [pi for pi in intents if pi.get("created", 0) <= searchable_until
                       and all(_field(pi, name) == value for name, value in clauses)]
            try:
                start = int((req.param("page") or "page_0").removeprefix("page_"))
            except ValueError:
                return 400, _error("invalid_request_error", "Invalid page cursor.", param="page")
        else:
            for op, check in (("gt", int.__gt__), ("gte", int.__ge__), ("lt", int.__lt__), ("lte", int.__le__)):
                bound = req.param(f"created[{op}]")
                if bound is not None:
                    intents = [pi for pi in intents if check(int(pi.get("created", 0)), int(bound))]
            after = req.param("starting_after")
            ids = [pi["id"] for pi in intents]
            start = ids.index(after) + 1 if after in ids else 0
        page = intents[start:start + limit]
        more = start + limit < len(intents)
        body = {"object": "list", "url": "/v1/payment_intents", "has_more": more, "data": page}
        if searching:
            body = {"object": "search_result", "url": "/v1/payment_intents/search", "has_more": more,
                    "next_page": f"page_{start + limit}" if more else None, "data": page}
        self._shape(body, req.expand, "")
        return 200, body

    def _remember(self, req: _Request, obj: dict, kept: dict) -> None:
        """Keep what Stripe would have stored from the parameters localstripe never saw."""
        oid = obj.get("id")
        with self._lock:
            if req.template == "POST /v1/payment_intents/{id}/cancel":
                self._canceled_at[oid] = int(time.time())
                self._pi_extra.setdefault(oid, {})["cancellation_reason"] = kept.get("cancellation_reason")
            elif req.template == "POST /v1/refunds" and "reason" in kept:
                self._refund_extra[oid] = {"reason": kept["reason"]}
            elif kept and obj.get("object") == "payment_intent":
                extra = self._pi_extra.setdefault(oid, {})
                for name, value in kept.items():
                    if name.startswith("automatic_payment_methods["):
                        apm = extra.get("automatic_payment_methods") or {}
                        field = name[len("automatic_payment_methods["):-1]
                        apm[field] = value == "true" if field == "enabled" else value
                        extra["automatic_payment_methods"] = apm
                    elif name in ("description", "receipt_email", "statement_descriptor",
                                  "statement_descriptor_suffix", "setup_future_usage"):
                        extra[name] = value
            if kept.get("_hold_cards") and obj.get("object") == "payment_intent":
                self._pi_extra.setdefault(oid, {}).update(
                    capture_method="automatic_async", payment_method_options={"card": {"capture_method": "manual"}})
            if req.template == "POST /v1/payment_intents" and obj.get("object") == "payment_intent":
                # What it offers: the Dashboard's methods, or the list it was given (localstripe keeps neither).
                offered = [v for k, v in req.params if _root(k) == "payment_method_types"]
                automatic = kept.get("automatic_payment_methods[enabled]") == "true"
                if automatic or offered:
                    self._pi_extra.setdefault(oid, {})["payment_method_types"] = (
                        list(DASHBOARD_METHODS) if automatic else offered)

    def _after(self, req: _Request, body: dict, request_id: str) -> None:
        """The events localstripe never sends."""
        request = {"id": request_id, "idempotency_key": req.key}
        if req.template == "POST /v1/refunds":
            self._emit_charge_refunded(body, request)
        elif req.template == "POST /v1/payment_intents/{id}/cancel":
            self.emit_event("payment_intent.canceled", self._snapshot(body), request)
            self._release_hold(body, request)
        elif req.template == "POST /v1/payment_intents/{id}/confirm" and body.get("status") == "requires_capture":
            self.emit_event("payment_intent.amount_capturable_updated", self._snapshot(body), request)

    # -- response shaping ----------------------------------------------------------------------------
    def _shape(self, node, expand: set[str], path: str, parent_pi: dict | None = None) -> None:
        """Rewrite every object in `node` in place; `path` is the attribute path from the response root
        (list items share their list's path, as in Stripe's `expand[]=data.latest_charge`)."""
        if isinstance(node, list):
            for item in node:
                self._shape(item, expand, path, parent_pi)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("object")
        if kind == "payment_intent":
            self._shape_pi(node, expand, path)
            parent_pi = node
        elif kind == "charge":
            self._shape_charge(node, expand, path, parent_pi)
        elif kind == "refund":
            self._shape_refund(node)
        elif kind == "event":
            node["api_version"] = self.api_version
            node.setdefault("pending_webhooks", 1)
            node.setdefault("request", {"id": None, "idempotency_key": None})
            expand = set()  # webhook and event payloads are never expanded
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                self._shape(value, expand, _join(path, key), parent_pi)

    def _shape_pi(self, pi: dict, expand: set[str], path: str) -> None:
        pi.pop("charges", None)  # removed in 2022-11-15
        self._show_driven_state(pi)
        charge = pi.get("latest_charge")
        if isinstance(charge, dict):
            with self._lock:
                self._charge_meta.setdefault(charge["id"], dict(pi.get("metadata") or {}))
                self._charge_pi[charge["id"]] = pi["id"]
            if not _expanded(expand, _join(path, "latest_charge")):
                pi["latest_charge"] = charge["id"]
        status, amount = pi.get("status"), pi.get("amount") or 0
        pi.setdefault("amount_received", amount if status == "succeeded" else 0)
        pi.setdefault("amount_capturable", amount if status == "requires_capture" else 0)
        with self._lock:
            canceled_at = self._canceled_at.get(pi["id"])
            extra = dict(self._pi_extra.get(pi["id"], {}))
        pi.setdefault("canceled_at", (canceled_at or pi.get("created")) if status == "canceled" else None)
        pi.setdefault("payment_method_types", ["card"])
        pi.update({k: v for k, v in extra.items()})
        for key, value in _PI_DEFAULTS.items():
            pi.setdefault(key, value)
        method = pi.get("payment_method")
        if isinstance(method, str) and _expanded(expand, _join(path, "payment_method")):
            with self._lock:
                fake = json.loads(json.dumps(self._fake_methods[method])) if method in self._fake_methods else None
            pi["payment_method"] = fake or self._upstream_json("GET", f"/v1/payment_methods/{method}") or method

    def _shape_charge(self, charge: dict, expand: set[str], path: str, pi: dict | None) -> None:
        if not _expanded(expand, _join(path, "refunds")):
            charge.pop("refunds", None)  # not included by default since 2022-11-15
        with self._lock:
            charge.update(json.loads(json.dumps(self._charge_override.get(charge.get("id"), {}))))
        if not charge.get("payment_method_details"):  # localstripe has cards only, and says nothing of them
            charge["payment_method_details"] = {"type": "card", "card": {"brand": "visa", "country": "US"}}
        card = charge["payment_method_details"].get("card")
        if isinstance(card, dict) and charge.get("status") == "succeeded" and charge.get("captured") is False:
            # An authorization: Stripe tells when its hold lapses (7 days for an online card payment).
            with self._lock:
                deadline = self._capture_before.get(charge.get("payment_intent"))
            card["capture_before"] = deadline or int(charge.get("created") or time.time()) + self.capture_window
        charge.setdefault("failure_code", None)
        charge.setdefault("failure_message", None)
        paid = charge.get("status") == "succeeded" and charge.get("captured")
        charge.setdefault("amount_captured", charge.get("amount", 0) if paid else 0)
        charge.setdefault("disputed", False)
        if not charge.get("metadata"):
            with self._lock:
                metadata = self._charge_meta.get(charge["id"])
            if metadata is None and pi is not None:
                metadata = pi.get("metadata")
            if metadata is None:
                metadata = self._charge_metadata(charge)
            charge["metadata"] = dict(metadata or {})

    def _shape_refund(self, refund: dict) -> None:
        refund.pop("date", None)  # a pre-2014 field
        with self._lock:
            refund.setdefault("reason", None)
            refund.update(self._refund_extra.get(refund.get("id"), {}))
            if not refund.get("payment_intent"):
                refund["payment_intent"] = self._charge_pi.get(refund.get("charge"))

    def _charge_metadata(self, charge: dict) -> dict:
        if not charge.get("payment_intent"):
            return {}
        pi = self._upstream_json("GET", f"/v1/payment_intents/{charge['payment_intent']}")
        metadata = pi.get("metadata")
        with self._lock:
            self._charge_meta[charge["id"]] = dict(metadata or {})
            self._charge_pi[charge["id"]] = charge["payment_intent"]
            return self._charge_meta[charge["id"]]

    @staticmethod
    def _snapshot(obj: dict) -> dict:
        """An object as a webhook carries it: never expanded, whatever the request asked for."""
        copy = json.loads(json.dumps(obj))
        if isinstance(copy.get("latest_charge"), dict):
            copy["latest_charge"] = copy["latest_charge"]["id"]
        return copy

    # -- payments localstripe cannot make: bank debits, redirects ----------------------------------
    def payment_intent(self, pi_id: str, expand: tuple[str, ...] = ()) -> dict:
        """The PaymentIntent as the service would read it now (not counted in `calls`)."""
        pi = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")
        assert pi, f"no PaymentIntent {pi_id}"
        self._shape(pi, set(expand), "")
        return pi

    def start_processing(self, pi_id: str, method: str = "sepa_debit", given: dict | None = None) -> dict:
        """The customer paid with a method the provider settles later (a SEPA debit): `processing`, with a
        pending charge whose `payment_method_details` say which method; sends `payment_intent.processing`."""
        pi = self._payable(pi_id, method)
        pm = self._fake_method(method, pi, given)
        charge = self._fake_charge(pi, pm, status="pending")
        self._drive(pi_id, {"status": "processing", "payment_method": pm["id"], "latest_charge": charge["id"],
                            "last_payment_error": None, "next_action": None})
        return self._announce("payment_intent.processing", pi_id)

    def fail_processing(self, pi_id: str, code: str = "insufficient_funds", message: str = _INSUFFICIENT_FUNDS) -> dict:
        """The bank returned the debit: back to `requires_payment_method` with `last_payment_error` (the
        failed PaymentMethod inside it, as Stripe sends it) and a failed charge; the customer may pay
        again. Sends `payment_intent.payment_failed`."""
        with self._lock:
            driven = self._driven.get(pi_id)
            assert driven and driven["fields"]["status"] == "processing", f"{pi_id} is not processing"
            charge = self._fake_charges[driven["fields"]["latest_charge"]]
            charge.update(status="failed", failure_code=code, failure_message=message)
            pm = self._fake_methods[driven["fields"]["payment_method"]]
        self._drive(pi_id, {"status": "requires_payment_method", "payment_method": None, "next_action": None,
                            "latest_charge": charge["id"],
                            "last_payment_error": {"type": "invalid_request_error", "code": code, "message": message,
                                                   "payment_method": json.loads(json.dumps(pm))}})
        return self._announce("payment_intent.payment_failed", pi_id)

    def require_action(self, pi_id: str, method: str = "ideal", return_url: str = "https://shop.example.com/",
                       then: str = "succeeded", given: dict | None = None) -> dict:
        """The customer chose a method that sends them to their bank's page: `requires_action` with a
        `redirect_to_url` next action (its `url` is `redirect_url(pi_id)`, a page that authorizes or fails
        the payment, then returns to `return_url` as Stripe does); sends `payment_intent.requires_action`.
        Authorized, the payment `then` succeeds, or goes `processing` (a delayed bank transfer)."""
        pi = self._payable(pi_id, method)
        pm = self._fake_method(method, pi, given)
        self._drive(pi_id, {"status": "requires_action", "payment_method": pm["id"], "latest_charge": None,
                            "last_payment_error": None,
                            "next_action": {"type": "redirect_to_url", "redirect_to_url": {
                                "url": self.redirect_url(pi_id), "return_url": return_url}}},
                    then=then)
        return self._announce("payment_intent.requires_action", pi_id)

    def redirect_url(self, pi_id: str) -> str:
        return f"{self.url}{REDIRECT_PAGE}{pi_id}"

    def replacing(self) -> int:
        """How many of localstripe's own events are still to come and be dropped (their driven twin is sent)."""
        with self._lock:
            return sum(self._suppressed.values())

    def fail_action(self, pi_id: str) -> dict:
        """The customer failed (or abandoned on) the bank's page: back to `requires_payment_method`, with
        Stripe's authentication failure; sends `payment_intent.payment_failed`."""
        with self._lock:
            driven = self._driven.get(pi_id)
            assert driven and driven["fields"]["status"] == "requires_action", f"{pi_id} waits on no action"
            pm = self._fake_methods[driven["fields"]["payment_method"]]
        self._drive(pi_id, {"status": "requires_payment_method", "payment_method": None, "next_action": None,
                            "latest_charge": None,
                            "last_payment_error": {"type": "invalid_request_error",
                                                   "code": "payment_intent_authentication_failure",
                                                   "message": _AUTHENTICATION_FAILURE,
                                                   "payment_method": json.loads(json.dumps(pm))}})
        return self._announce("payment_intent.payment_failed", pi_id)

    def succeed(self, pi_id: str) -> dict:
        """The driven payment (processing, or a step the customer finished) succeeds: paid at localstripe with
        a card, so that refunds work, and shown as paid by the driven method; sends `payment_intent.succeeded`."""
        with self._lock:
            driven = self._driven.get(pi_id)
            assert driven and driven["fields"]["status"] in ("processing", "requires_action"), \
                f"{pi_id} is neither processing nor waiting on an action"
            pm = self._fake_methods[driven["fields"]["payment_method"]]
            self._suppressed[(pi_id, "payment_intent.succeeded")] += 1  # localstripe's own, replaced by ours
        headers = self._internal_headers()
        for path, data in ((f"/v1/payment_intents/{pi_id}", {"payment_method": "pm_card_visa"}),
                           (f"/v1/payment_intents/{pi_id}/confirm", {})):
            self._upstream("POST", path, urlencode(data).encode(), headers).raise_for_status()
        paid = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")
        if paid["status"] == "requires_capture" and pm["type"] != "card":
            # A PaymentIntent that holds cards only charges any other method at once (its localstripe twin,
            # which knows no method options, holds everything: it is captured here).
            self._upstream("POST", f"/v1/payment_intents/{pi_id}/capture", b"", headers).raise_for_status()
            paid = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")
        charge = paid["latest_charge"]["id"] if isinstance(paid.get("latest_charge"), dict) else paid["latest_charge"]
        with self._lock:
            self._charge_override[charge] = {"payment_method": pm["id"],
                                             "payment_method_details": self._details(pm)}
            self._driven[pi_id] = {"base": paid["status"], "fields": {"payment_method": pm["id"]}}
        return self._announce("payment_intent.succeeded", pi_id)

    # -- Stripe.js: what a browser asks with the publishable key ---------------------------------------
    @staticmethod
    def _from_stripe_js(req: _Request) -> bool:
        """A PaymentIntent read or confirmed by Stripe.js in the customer's browser: authenticated by the
        publishable key and the client secret (`key=pk_…&client_secret=…`), as Stripe.js does, not by a secret key.
        localstripe's own Stripe.js calls (its 3-D Secure `_authenticate`, SetupIntents) pass through as before."""
        return (req.template in ("GET /v1/payment_intents/{id}", "POST /v1/payment_intents/{id}/confirm")
                and not req.headers.get("Authorization") and str(req.param("key") or "").startswith("pk_"))

    def _stripe_js_call(self, req: _Request) -> tuple[int, dict]:
        pi_id = req.path.split("/")[3]
        pi = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")
        if not pi:
            return 404, _error("invalid_request_error", f"No such payment_intent: '{pi_id}'", code="resource_missing",
                               param="intent")
        if req.param("client_secret") != pi.get("client_secret"):
            return 400, _error("invalid_request_error", "The client_secret provided does not match the client_secret "
                               "associated with the PaymentIntent.", param="client_secret")
        if req.method == "GET":
            return 200, self.payment_intent(pi_id)
        return self._confirm_from_browser(pi_id, dict(req.params))

    def _confirm_from_browser(self, pi_id: str, data: dict) -> tuple[int, dict]:
        """`confirmPayment` with what the customer typed into the Payment Element (`payment_method_data`): a card
        is paid (at localstripe) or declined now; a bank debit goes `processing`; a redirect method waits on the
        bank's page (`require_action`). Each with the answer and the event real Stripe sends."""
        pi = self.payment_intent(pi_id)
        method = data.get("payment_method_data[type]")
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            return 400, _error("invalid_request_error", f"You cannot confirm this PaymentIntent because it has a "
                               f"status of {pi['status']}.", code="payment_intent_unexpected_state", payment_intent=pi)
        if method not in pi["payment_method_types"]:
            return 400, _error("invalid_request_error", f"The payment method type provided: {method} is invalid. This "
                               f"payment_intent is configured to accept the following payment_method_types: "
                               f"{pi['payment_method_types']}.", param="payment_method_data[type]")
        automatic = pi.get("automatic_payment_methods") or {}
        return_url = data.get("return_url")
        if not return_url and (method in REDIRECT_METHODS or (automatic.get("enabled")
                                                              and automatic.get("allow_redirects") != "never")):
            return 400, _error("invalid_request_error", _RETURN_URL_NEEDED, param="return_url")
        given = self._typed(data, method)
        if method in REDIRECT_METHODS:
            return 200, self.require_action(pi_id, method, return_url, given=given)
        if method in DEBIT_METHODS:
            if not data.get("mandate_data[customer_acceptance][type]"):
                return 400, _error("invalid_request_error", "A mandate is required to confirm this PaymentIntent "
                                   f"with a {method} PaymentMethod.", param="mandate_data")
            return 200, self.start_processing(pi_id, method, given)
        if method == "card":
            number = data.get("payment_method_data[card][number]", "")
            if number in DECLINED_CARDS:
                return self._decline_card(pi_id, given, *DECLINED_CARDS[number])
            return self._pay_card(pi_id, data)
        return 400, _error("invalid_request_error", f"This test double cannot confirm a {method} payment.",
                           param="payment_method_data[type]")

    @staticmethod
    def _typed(data: dict, method: str) -> dict:
        """`payment_method_data[...]` as the PaymentMethod shows it (a card's last four digits, never its number)."""
        prefix = "payment_method_data[billing_details]["
        billing = {k[len(prefix):-1]: v for k, v in data.items() if k.startswith(prefix) and k.count("[") == 2}
        given = {"billing_details": billing}
        if method == "card":
            number = data.get("payment_method_data[card][number]", "")
            given["card"] = {"brand": "visa" if number.startswith("4") else "unknown", "last4": number[-4:],
                             "exp_month": int(data.get("payment_method_data[card][exp_month]") or 0),
                             "exp_year": int(data.get("payment_method_data[card][exp_year]") or 0),
                             "country": "US", "funding": "credit", "fingerprint": secrets.token_hex(8)}
        elif method == "sepa_debit":
            iban = data.get("payment_method_data[sepa_debit][iban]", "").replace(" ", "")
            given["sepa_debit"] = {"country": iban[:2], "last4": iban[-4:]}
        elif method == "ideal" and data.get("payment_method_data[ideal][bank]"):
            given["ideal"] = {"bank": data["payment_method_data[ideal][bank]"]}
        return given

    def _decline_card(self, pi_id: str, given: dict, code: str, decline_code: str | None,
                      message: str) -> tuple[int, dict]:
        """Declined by the card's bank: 402 with the card error (the PaymentIntent inside it), the PaymentIntent back
        to `requires_payment_method` with `last_payment_error` and a failed charge, `payment_intent.payment_failed`.
        Driven here, as localstripe's own decline would leave its PaymentIntent unable to be paid again."""
        pi = self.payment_intent(pi_id)
        pm = self._fake_method("card", pi, given)
        charge = self._fake_charge(pi, pm, status="failed")
        with self._lock:
            charge.update(failure_code=code, failure_message=message)
        error = {"type": "card_error", "code": code, "message": message, "charge": charge["id"],
                 "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
                 "payment_method": json.loads(json.dumps(pm))}
        if decline_code:
            error["decline_code"] = decline_code
        self._drive(pi_id, {"status": "requires_payment_method", "payment_method": None, "next_action": None,
                            "latest_charge": charge["id"], "last_payment_error": error})
        pi = self._announce("payment_intent.payment_failed", pi_id)
        return 402, {"error": {**error, "payment_intent": pi}}

    def _pay_card(self, pi_id: str, data: dict) -> tuple[int, dict]:
        """A card localstripe pays (or asks 3-D Secure for): its PaymentMethod created there, then set on the
        PaymentIntent and confirmed (localstripe cannot confirm with `payment_method_data`)."""
        card = {f"card[{field}]": data.get(f"payment_method_data[card][{field}]", "")
                for field in ("number", "exp_month", "exp_year", "cvc")}
        headers = self._internal_headers()
        made = self._upstream("POST", "/v1/payment_methods", urlencode({"type": "card", **card}).encode(), headers)
        if made.status_code != 200:
            return made.status_code, self._json_or_bytes(made)
        for path, form in ((f"/v1/payment_intents/{pi_id}", {"payment_method": made.json()["id"]}),
                           (f"/v1/payment_intents/{pi_id}/confirm", {})):
            up = self._upstream("POST", path, urlencode(form).encode(), headers)
            if up.status_code != 200:
                body = self._json_or_bytes(up)
                if isinstance(body, dict) and isinstance(body.get("error"), dict):
                    body["error"]["payment_intent"] = self.payment_intent(pi_id)
                return up.status_code, body
        return 200, self.payment_intent(pi_id)

    def _payable(self, pi_id: str, method: str) -> dict:
        pi = self.payment_intent(pi_id)
        assert pi["status"] in ("requires_payment_method", "requires_confirmation", "requires_action"), \
            f"{pi_id} is {pi['status']}: it takes no payment"
        assert method in pi["payment_method_types"], \
            f"{pi_id} offers {pi['payment_method_types']}: Stripe would not let it be paid by {method}"
        return pi

    def _fake_method(self, method: str, pi: dict, given: dict | None = None) -> dict:
        """A PaymentMethod of `method`; `given` (`{billing_details?, <method>?}`, what the customer typed into
        the Payment Element) replaces the test defaults."""
        given = given or {}
        pm = {"id": "pm_" + secrets.token_hex(12), "object": "payment_method", "type": method,
              "billing_details": {"address": None, "email": "jenny@example.com", "name": "Jenny Rosen",
                                  "phone": None, **given.get("billing_details", {})},
              "created": int(time.time()), "customer": None, "livemode": False, "metadata": {},
              method: ({"bank_code": "37040044", "branch_code": None, "country": "DE",
                        "fingerprint": secrets.token_hex(8), "last4": "3000", "generated_from": None}
                       if method == "sepa_debit" else {"bank": "ing", "bic": "INGBNL2A"} if method == "ideal" else {})}
        pm[method].update(given.get(method, {}))
        with self._lock:
            self._fake_methods[pm["id"]] = pm
        return pm

    @staticmethod
    def _details(pm: dict) -> dict:
        details = {k: v for k, v in pm[pm["type"]].items() if k != "generated_from"}
        if pm["type"] == "sepa_debit":
            details["mandate"] = "mandate_" + secrets.token_hex(12)
        return {"type": pm["type"], pm["type"]: details}

    def _fake_charge(self, pi: dict, pm: dict, status: str) -> dict:
        charge = {"id": "py_" + secrets.token_hex(12), "object": "charge", "amount": pi["amount"],
                  "amount_captured": 0, "amount_refunded": 0, "captured": False, "created": int(time.time()),
                  "currency": pi["currency"], "disputed": False, "failure_code": None, "failure_message": None,
                  "livemode": False, "metadata": dict(pi.get("metadata") or {}), "paid": False,
                  "payment_intent": pi["id"], "payment_method": pm["id"], "payment_method_details": self._details(pm),
                  "refunded": False, "status": status}
        with self._lock:
            self._fake_charges[charge["id"]] = charge
            self._charge_pi[charge["id"]] = pi["id"]
        return charge

    def _drive(self, pi_id: str, fields: dict, then: str | None = None) -> None:
        """Show `fields` over the PaymentIntent while localstripe's own status stays what it is now."""
        base = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")["status"]
        with self._lock:
            self._driven[pi_id] = {"base": base, "fields": fields, "then": then}

    def _show_driven_state(self, pi: dict) -> None:
        with self._lock:
            driven = self._driven.get(pi.get("id"))
            if driven is None:
                return
            if pi.get("status") != driven["base"]:  # paid or canceled at localstripe since: that is the truth
                del self._driven[pi["id"]]
                return
            fields = json.loads(json.dumps(driven["fields"]))
            if isinstance(fields.get("latest_charge"), str):
                fields["latest_charge"] = json.loads(json.dumps(self._fake_charges[fields["latest_charge"]]))
        pi.update(fields)

    def _fake_object(self, req: _Request) -> dict | None:
        """A charge or PaymentMethod that only the proxy has (a driven payment's), asked for by id."""
        if req.method != "GET" or req.template not in ("GET /v1/charges/{id}", "GET /v1/payment_methods/{id}"):
            return None
        oid = req.path.rstrip("/").rsplit("/", 1)[1]
        with self._lock:
            found = self._fake_charges.get(oid) or self._fake_methods.get(oid)
            return json.loads(json.dumps(found)) if found else None

    def _announce(self, type_: str, pi_id: str) -> dict:
        """Send the event Stripe sends for the PaymentIntent's new state (its snapshot: never expanded)."""
        pi = self.payment_intent(pi_id)
        self.emit_event(type_, self._snapshot(pi))
        return pi

    def _redirect_page(self, handler, req: _Request) -> None:
        """The bank's page a `redirect_to_url` sends the customer to (Stripe's test pages look alike): GET
        shows two buttons; POST `outcome=authorize|fail` settles the payment and returns to the shop."""
        pi_id = req.path[len(REDIRECT_PAGE):].strip("/")
        with self._lock:
            driven = self._driven.get(pi_id)
            waiting = driven is not None and driven["fields"].get("status") == "requires_action"
        if not waiting:
            return self._send(handler, 404, b"This payment is not waiting on the customer.", "text/plain")
        if req.method == "GET":
            page = (f"<!doctype html><html lang=en><title>Test payment page</title><h1>Test payment</h1>"
                    f"<p>{pi_id}</p><form method=post><button name=outcome value=authorize>Authorize Test Payment"
                    f"</button> <button name=outcome value=fail>Fail Test Payment</button></form></html>")
            return self._send(handler, 200, page.encode(), "text/html; charset=utf-8")
        outcome = req.param("outcome")
        return_url = driven["fields"]["next_action"]["redirect_to_url"]["return_url"]
        if outcome == "authorize" and driven.get("then") == "processing":
            with self._lock:
                del self._driven[pi_id]  # the step is done; the bank settles the payment later
                method = self._fake_methods[driven["fields"]["payment_method"]]["type"]
            self.start_processing(pi_id, method)
            status = "succeeded"  # Stripe's redirect_status: the customer authorized it
        elif outcome == "authorize":
            self.succeed(pi_id)
            status = "succeeded"
        else:
            self.fail_action(pi_id)
            status = "failed"
        pi = self.payment_intent(pi_id)
        query = urlencode({"payment_intent": pi_id, "payment_intent_client_secret": pi.get("client_secret") or "",
                           "redirect_status": status})
        self._send(handler, 303, b"", "text/plain",
                   {"Location": f"{return_url}{'&' if '?' in return_url else '?'}{query}"})

    # -- webhooks ------------------------------------------------------------------------------------
    @property
    def webhooks_paused(self) -> bool:
        return self._paused

    @webhooks_paused.setter
    def webhooks_paused(self, value: bool) -> None:
        with self._queue_cond:
            self._paused = bool(value)
            self._queue_cond.notify_all()

    def forward_webhooks_to(self, url: str | None, secret: str | None = None) -> None:
        """Deliver every event (localstripe's, reshaped, and the proxy's own) to `url`, signed with `secret`.
        None stops delivery (events are still recorded in `events`)."""
        self._target = (url, secret) if url else None
        if url and not self._registered:
            self._session.post(f"{self.upstream}/_config/webhooks/{self._intake_name}", timeout=10, json={
                "url": f"{self.url}{INTAKE}", "secret": self._intake_secret}).raise_for_status()
            self._registered = True

    @contextmanager
    def webhooks_to(self, service_url: str, secret: str):
        """A fixture's span: events go to the service's Stripe webhook route, and afterwards nowhere, with
        delivery neither paused nor dropping (what a test may have left)."""
        self.forward_webhooks_to(f"{service_url}/api/webhooks/stripe", secret)
        try:
            yield
        finally:
            self.forward_webhooks_to(None)
            self.webhooks_paused = self.drop_webhooks = False

    def emit_event(self, type_: str, obj: dict, request: dict | None = None,
                   previous_attributes: dict | None = None) -> dict:
        """Send a real-shaped event with `obj` as data.object (e.g. charge.dispute.created in a test)."""
        data = {"object": obj}
        if previous_attributes:
            data["previous_attributes"] = previous_attributes
        event = {"id": "evt_" + secrets.token_hex(12), "object": "event", "api_version": self.api_version,
                 "created": int(time.time()), "data": data, "livemode": False, "pending_webhooks": 1,
                 "request": request or {"id": None, "idempotency_key": None}, "type": type_}
        self._enqueue(event)
        return event

    def authorize(self, pi_id: str) -> dict:
        """The customer paid a PaymentIntent that holds cards (manual capture) with a card: `requires_capture`,
        `amount_capturable`, and the charge's `capture_before`; sends `payment_intent.amount_capturable_updated`
        as Stripe does (localstripe sends nothing)."""
        headers = self._internal_headers()
        for path, data in ((f"/v1/payment_intents/{pi_id}", {"payment_method": "pm_card_visa"}),
                           (f"/v1/payment_intents/{pi_id}/confirm", {})):
            self._upstream("POST", path, urlencode(data).encode(), headers).raise_for_status()
        pi = self.payment_intent(pi_id)
        assert pi["status"] == "requires_capture", f"{pi_id} is {pi['status']}: it does not hold cards"
        return self._announce("payment_intent.amount_capturable_updated", pi_id)

    def set_capture_before(self, pi_id: str, when: int) -> None:
        """The authorization's hold lapses at `when` (Unix seconds): what its charge's `capture_before` says."""
        with self._lock:
            self._capture_before[pi_id] = int(when)

    def lapse(self, pi_id: str, announce: bool = True) -> dict:
        """The authorization lapsed uncaptured: Stripe cancels the PaymentIntent (`cancellation_reason`
        `automatic`) and, when `announce`, sends `payment_intent.canceled` (else the event is lost)."""
        up = self._upstream("POST", f"/v1/payment_intents/{pi_id}/cancel", b"", self._internal_headers())
        up.raise_for_status()
        with self._lock:
            self._canceled_at[pi_id] = int(time.time())
            self._pi_extra.setdefault(pi_id, {})["cancellation_reason"] = "automatic"
        pi = self.payment_intent(pi_id)
        if announce:
            self.emit_event("payment_intent.canceled", self._snapshot(pi))
        self._release_hold(pi, announce=announce)
        return pi

    def capture_in_dashboard(self, pi_id: str, amount: int) -> dict:
        """A person captures part of a held PaymentIntent in Stripe's Dashboard: `amount_received` and the charge's
        `amount_captured` say what was taken, the rest is released (in the charge's `amount_refunded`, as Stripe
        counts it); `payment_intent.succeeded` is sent (and returned)."""
        up = self._upstream("POST", f"/v1/payment_intents/{pi_id}/capture",
                            urlencode({"amount_to_capture": amount}).encode(), self._internal_headers())
        up.raise_for_status()
        pi = self._upstream_json("GET", f"/v1/payment_intents/{pi_id}")
        charge = pi["latest_charge"]["id"] if isinstance(pi["latest_charge"], dict) else pi["latest_charge"]
        with self._lock:
            self._pi_extra.setdefault(pi_id, {})["amount_received"] = amount
            self._charge_override.setdefault(charge, {})["amount_captured"] = amount
        return self.emit_event("payment_intent.succeeded", self._snapshot(self.payment_intent(pi_id)))

    def _release_hold(self, pi: dict, request: dict | None = None, announce: bool = True) -> None:
        """A canceled PaymentIntent that held a card (its charge authorized, never captured): Stripe releases the
        hold and reports it as a refund of the whole charge, `captured: false`, with `charge.refunded`."""
        charge_id = pi.get("latest_charge")
        charge_id = charge_id.get("id") if isinstance(charge_id, dict) else charge_id
        if not charge_id:
            return
        charge = self._upstream_json("GET", f"/v1/charges/{charge_id}")
        if charge.get("captured") is not False or charge.get("status") != "succeeded":
            return
        with self._lock:
            self._charge_override.setdefault(charge_id, {}).update(amount_refunded=charge["amount"], refunded=True)
        self._shape(charge, set(), "")
        if announce:
            self.emit_event("charge.refunded", charge, request, {"amount_refunded": 0, "refunded": False})

    def refund_in_dashboard(self, pi_id: str, amount: int | None = None) -> dict:
        """A refund made outside the service (Stripe's dashboard): created at localstripe directly, not
        counted in `calls`, announced with charge.refunded like any refund."""
        data = {"payment_intent": pi_id, **({"amount": amount} if amount is not None else {})}
        up = self._upstream("POST", "/v1/refunds", urlencode(data).encode(), self._internal_headers())
        up.raise_for_status()
        refund = up.json()
        self._shape(refund, set(), "")
        self._emit_charge_refunded(refund, {"id": None, "idempotency_key": None})
        return refund

    def _emit_charge_refunded(self, refund: dict, request: dict) -> None:
        charge_id = refund["charge"]["id"] if isinstance(refund["charge"], dict) else refund["charge"]  # expanded?
        charge = self._upstream_json("GET", f"/v1/charges/{charge_id}")
        self._shape(charge, set(), "")
        previous = {"amount_refunded": charge.get("amount_refunded", 0) - (refund.get("amount") or 0)}
        if charge.get("refunded"):
            previous["refunded"] = False
        self.emit_event("charge.refunded", charge, request, previous)

    def wait_for_webhooks(self, type_: str | None = None, count: int = 1,
                          timeout: float = 10.0) -> list[dict]:
        """The events of `type_` delivered to the target (each event once), once there are `count`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.delivered(type_)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} {type_ or 'event'}(s) delivered within {timeout} s, "
                                     f"wanted {count}; deliveries: {self.deliveries}")
            time.sleep(0.05)

    def delivered(self, type_: str | None = None) -> list[dict]:
        with self._lock:
            seen, out = set(), []
            for event in self.sent:
                if (type_ is None or event["type"] == type_) and event["id"] not in seen:
                    seen.add(event["id"])
                    out.append(event)
            return out

    def _intake(self, handler, req: _Request) -> None:
        """localstripe's webhook: check its signature, reshape, pass on."""
        try:
            stripe.WebhookSignature.verify_header(req.body.decode(), req.headers.get("Stripe-Signature", ""),
                                                  self._intake_secret, 300)
            event = json.loads(req.body)
        except (stripe.SignatureVerificationError, ValueError):
            return self._send(handler, 400, b"{}", "application/json")
        obj = (event.get("data") or {}).get("object") or {}
        with self._lock:
            suppressed = self._suppressed[(obj.get("id"), event.get("type"))] > 0
            if suppressed:  # the proxy sent this one itself, in the driven payment's shape
                self._suppressed[(obj.get("id"), event.get("type"))] -= 1
        if not suppressed:
            self._shape(event, set(), "")
            self._enqueue(event)
        self._send(handler, 200, b"{}", "application/json")

    def _enqueue(self, event: dict) -> None:
        low, high = self.webhook_delay
        with self._queue_cond:
            self.events.append(event)
            self._seq += 1
            self._queue.append((time.monotonic() + random.uniform(low, high), self._seq, event))
            self._queue_cond.notify_all()

    def _deliver_loop(self) -> None:
        while True:
            with self._queue_cond:
                while True:
                    if not self._running:
                        return
                    due = min(self._queue, default=None)
                    wait = None if due is None or self._paused else due[0] - time.monotonic()
                    if wait is not None and wait <= 0:
                        self._queue.remove(due)
                        break
                    self._queue_cond.wait(wait)
            self._deliver(due[2])

    def _deliver(self, event: dict) -> None:
        target = self._target
        if target is None:
            return
        if self.drop_webhooks:
            with self._lock:
                self.deliveries.append({"id": event["id"], "type": event["type"], "status": "dropped"})
            return
        url, secret = target
        payload = json.dumps(event)
        for _ in range(max(1, self.deliver_times)):
            # Stripe signs every attempt afresh, with the time of the attempt.
            headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0",
                       "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(payload, secret)}
            try:
                status = requests.post(url, data=payload.encode(), headers=headers, timeout=10).status_code
            except requests.RequestException as exc:
                status = f"error: {exc.__class__.__name__}"
            with self._lock:
                self.sent.append(event)
                self.deliveries.append({"id": event["id"], "type": event["type"], "status": status})

    # -- plumbing ------------------------------------------------------------------------------------
    @staticmethod
    def _cors_headers(req: _Request) -> dict:
        """Stripe.js calls the API from the shop's page: as Stripe (and localstripe) do, any origin may."""
        origin = req.headers.get("Origin")
        if not origin:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Headers": "Content-Type, Accept",
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS, DELETE"}

    def _forward_headers(self, req: _Request) -> dict:
        skip = {"host", "content-length", "connection", "accept-encoding"}
        return {k: v for k, v in req.headers.items() if k.lower() not in skip}

    @staticmethod
    def _internal_headers() -> dict:
        return {"Authorization": f"Bearer {_INTERNAL_KEY}",
                "Content-Type": "application/x-www-form-urlencoded"}

    def _upstream(self, method: str, path: str, body: bytes | None, headers: dict) -> requests.Response:
        return self._session.request(method, self.upstream + path, data=body or None, headers=headers,
                                     timeout=30)

    def _upstream_json(self, method: str, path: str) -> dict:
        up = self._upstream(method, path, None, self._internal_headers())
        try:
            return up.json() if up.ok else {}
        except ValueError:
            return {}

    @staticmethod
    def _json_or_bytes(up: requests.Response):
        if "json" in (up.headers.get("Content-Type") or ""):
            try:
                return up.json()
            except ValueError:
                pass
        return up.content

    @staticmethod
    def _send(handler, status: int, payload: bytes, content_type: str | None, headers: dict | None = None):
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type or "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first
