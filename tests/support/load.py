"""A bounded load of shoppers through a load balancer, as real clients behave: each places orders of both
kinds (cash on delivery, and online: pays at Stripe as Stripe.js would, then `PATCH …/paid`), each request
with a deadline of its own; after a connection error, a timeout, a 502/503/504 or a 409 "still being
processed" it asks again with the same `Idempotency-Key` until it has an answer. What each got is kept, to
be checked against the database afterwards."""
from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from tests.support.stripe import payment_intent_of

RETRY_STATUSES = {409, 502, 503, 504}


@dataclass
class Placed:
    key: str
    kind: str  # "cod" or "online"
    order_id: str
    at: float  # time.monotonic() of the 2xx
    started: float  # of the first attempt
    intent: str | None = None
    paid: bool = False  # confirmed at Stripe by the shopper


@dataclass
class Shopper:
    auth: dict
    body: dict
    placed: list[Placed] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # answers no retry explains (must stay empty)
    retried: list[tuple[float, str]] = field(default_factory=list)  # (when, why) of each attempt made again

    @property
    def retries(self) -> int:
        return len(self.retried)


class Load:
    """`clients` threads placing orders through `url` until `stop()`; `min_interval` paces each."""

    def __init__(self, url: str, shoppers: list[Shopper], stripe_emulator, timeout: float = 3.0,
                 online_share: float = 0.5, min_interval: float = 0.0):
        self.url, self.shoppers, self.stripe = url, shoppers, stripe_emulator
        self.timeout, self.online_share, self.min_interval = timeout, online_share, min_interval
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(s, n), daemon=True, name=f"shopper-{n}")
                         for n, s in enumerate(shoppers)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, grace: float = 60.0, check: bool = True) -> int:
        """No new orders; the ones under way finish (their retries included) within `grace` seconds. How many
        shoppers are still waiting for an answer then (with `check`, there must be none)."""
        self._stop.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        waiting = sum(t.is_alive() for t in self._threads)
        assert not (check and waiting), f"{waiting} shoppers never got an answer"
        return waiting

    @property
    def placed(self) -> list[Placed]:
        return [p for s in self.shoppers for p in s.placed]

    def retried_between(self, start: float, end: float) -> list[str]:
        return [why for s in self.shoppers for at, why in s.retried if start <= at <= end]

    def successes_between(self, start: float, end: float) -> list[float]:
        return sorted(p.at for p in self.placed if start <= p.at <= end)

    def _run(self, shopper: Shopper, n: int) -> None:
        rng = random.Random(n)
        session = requests.Session()
        while not self._stop.is_set():
            began = time.monotonic()
            online = rng.random() < self.online_share
            try:
                if online:
                    self._online(session, shopper)
                else:
                    self._cod(session, shopper)
            except Exception as exc:  # noqa: BLE001 - kept, and asserted empty by the test
                shopper.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.min_interval - (time.monotonic() - began)))

    def _send(self, session, shopper: Shopper, method: str, path: str, key: str | None = None,
              json=None, ok=(200, 204), final=(), deadline: float = 120.0) -> requests.Response:
        """The request, asked again (same key) until an answer in `ok` or `final`."""
        headers = dict(shopper.auth, **({"Idempotency-Key": key} if key else {}))
        give_up = time.monotonic() + deadline
        while True:
            try:
                response = session.request(method, f"{self.url}{path}", json=json, headers=headers,
                                           timeout=self.timeout)
                if response.status_code in ok or response.status_code in final:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise AssertionError(f"{method} {path}: {response.status_code} {response.text[:300]}")
                wait, why = min(float(response.headers.get("Retry-After", 0.2)), 0.5), str(response.status_code)
            except requests.RequestException as exc:
                session.close()  # a fresh connection: the old one may lead to a dead or frozen host
                wait, why = 0.1, type(exc).__name__
            shopper.retried.append((time.monotonic(), why))
            if time.monotonic() > give_up:
                raise AssertionError(f"{method} {path} got no answer in {deadline} s")
            time.sleep(wait)

    def _cod(self, session, shopper: Shopper) -> None:
        key, started = str(uuid.uuid4()), time.monotonic()
        response = self._send(session, shopper, "POST", "/api/orders", key, shopper.body, ok=(204,))
        shopper.placed.append(Placed(key, "cod", response.headers["Location"].rsplit("/", 1)[1], time.monotonic(),
                                     started))

    def _online(self, session, shopper: Shopper) -> None:
        key, started = str(uuid.uuid4()), time.monotonic()
        response = self._send(session, shopper, "POST", "/api/orders/with-payment", key, shopper.body, ok=(200,),
                              final=(500,))
        if response.status_code == 500:  # Stripe failed: the order is closed, the key may be used again
            response = self._send(session, shopper, "POST", "/api/orders/with-payment", key, shopper.body,
                                  ok=(200,))
        created = response.json()
        placed = Placed(key, "online", created["orderId"], time.monotonic(), started,
                        payment_intent_of(created["clientSecret"]))
        shopper.placed.append(placed)
        self.stripe.pay(placed.intent)  # the browser pays at Stripe
        placed.paid = True
        # Then tells the service; the webhook may have confirmed it first (400 already paid).
        # A 500 (Stripe did not answer the service): the webhook or reconciliation confirms it.
        self._send(session, shopper, "PATCH", f"/api/orders/{placed.order_id}/paid", ok=(204,), final=(400, 500))
