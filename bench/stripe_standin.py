"""A stand-in for Stripe's PaymentIntent API that answers every call after a fixed delay.

It measures what the service does while it waits on a slow provider, which localstripe cannot show:
localstripe handles one request at a time and its cost grows with its store, so it is the limit
long before the service is. Here each call sleeps without blocking (asyncio), so hundreds can wait at
once and the stand-in itself costs well under a millisecond of CPU per call.

    .venv/bin/python bench/stripe_standin.py --port 8421 [--delay 0.3]

POST /v1/payment_intents   creates a PaymentIntent from the form body (amount, currency, metadata[…])
GET  /v1/payment_intents/ID answers that PaymentIntent: as `succeeded` with --paid-at-once (as though
                            the customer had paid at once), else as it stands
POST /v1/payment_intents/ID/cancel   cancels it (a 400 `payment_intent_unexpected_state` once paid)
POST /v1/payment_intents/ID/capture  captures an authorized one (`requires_capture` → `succeeded`); the same
                            `Idempotency-Key` again gets the first answer; a 400 `payment_intent_unexpected_state`
                            for one not authorized (already captured, canceled)

and, for the bench itself (not counted, never delayed, never rate-limited):

POST /_pay/ID     the customer pays: the PaymentIntent is `succeeded` from now on
POST /_authorized  JSON `[{orderId, amount, currency}, …]`: a PaymentIntent each, authorized (`requires_capture`,
                  held on a card): their ids, in that order
GET  /_calls      {"POST /v1/payment_intents": n, "429 POST /v1/payment_intents": m, …}: the calls the
                  service made, per endpoint, served and refused
POST /_reset      forgets every PaymentIntent and call
POST /_rate_limit/N   from now on N calls a second per endpoint (0: no limit)

With --rate-limit N it answers, as Stripe does, 429 `rate_limit` to any call beyond N in the same
second on the same endpoint (Stripe's default is 25 per second per endpoint).
"""
from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import Counter

from aiohttp import web


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class StandIn:
    def __init__(self, delay: float, paid_at_once: bool, rate_limit: int | None):
        self.delay, self.paid_at_once, self.rate_limit = delay, paid_at_once, rate_limit
        # Remembered so that a retrieve can answer with the amount and order the create was given.
        self.intents: dict[str, dict] = {}
        self.calls: Counter = Counter()
        self._second: dict[str, tuple[int, int]] = {}  # endpoint -> (the current second, calls in it)
        self.answers: dict[str, tuple[int, dict]] = {}  # Idempotency-Key -> the first answer (captures)

    def _limited(self, endpoint: str) -> web.Response | None:
        """Counts the call; a 429 (counted apart) when the endpoint is over its budget for this second."""
        if self.rate_limit is not None:
            now = int(time.monotonic())
            second, used = self._second.get(endpoint, (now, 0))
            used = used + 1 if second == now else 1
            self._second[endpoint] = (now, used)
            if used > self.rate_limit:
                self.calls[f"429 {endpoint}"] += 1
                return self._too_many()
        self.calls[endpoint] += 1
        return None

    @staticmethod
    def _too_many() -> web.Response:
        return web.json_response({"error": {"type": "invalid_request_error", "code": "rate_limit",
                                            "message": "Request rate limit exceeded."}}, status=429)

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
        if limited := self._limited("POST /v1/payment_intents"):
            return limited
        await asyncio.sleep(self.delay)
        intent_id = _id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            # The SDK form-encodes a dict as metadata[key]=value.
            "metadata": {key[len("metadata["):-1]: value for key, value in form.items()
                         if key.startswith("metadata[")},
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "status": "requires_payment_method",
            "payment_method_types": ["card"],
            "created": int(time.time()),
            "livemode": False,
            "last_payment_error": None,
            "latest_charge": None,
        }
        self.intents[intent_id] = intent
        return web.json_response(intent)

    def _missing(self) -> web.Response:
        return web.json_response({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                            "message": "No such payment_intent"}}, status=404)

    async def retrieve(self, request: web.Request) -> web.Response:
        if limited := self._limited("GET /v1/payment_intents/:id"):
            return limited
        await asyncio.sleep(self.delay)
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return self._missing()
        return web.json_response({**intent, "status": "succeeded"} if self.paid_at_once else intent)

    async def cancel(self, request: web.Request) -> web.Response:
        if limited := self._limited("POST /v1/payment_intents/:id/cancel"):
            return limited
        await asyncio.sleep(self.delay)
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return self._missing()
        if intent["status"] == "succeeded":
            return web.json_response({"error": {
                "type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                "message": "This PaymentIntent's status is succeeded and cannot be canceled."}}, status=400)
        intent.update(status="canceled", canceled_at=int(time.time()))
        return web.json_response(intent)

    async def capture(self, request: web.Request) -> web.Response:
        if limited := self._limited("POST /v1/payment_intents/:id/capture"):
            return limited
        key = request.headers.get("Idempotency-Key")
        await asyncio.sleep(self.delay)
        if key in self.answers:
            status, body = self.answers[key]
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return self._missing()
        if intent["status"] != "requires_capture":
            return web.json_response({"error": {
                "type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                "message": f"This PaymentIntent could not be captured because it has a status of {intent['status']}."
            }}, status=400)
        intent.update(status="succeeded", amount_capturable=0, amount_received=intent["amount"])
        if key:
            self.answers[key] = (200, dict(intent))
        return web.json_response(intent)

    async def authorized(self, request: web.Request) -> web.Response:
        ids = []
        for order in await request.json():
            intent_id = _id("pi")
            self.intents[intent_id] = {
                "id": intent_id, "object": "payment_intent", "amount": int(order["amount"]),
                "currency": order["currency"].lower(), "metadata": {"order_id": order["orderId"]},
                "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}", "status": "requires_capture",
                "amount_capturable": int(order["amount"]), "amount_received": 0, "payment_method_types": ["card"],
                "payment_method_options": {"card": {"capture_method": "manual"}}, "created": int(time.time()),
                "livemode": False, "last_payment_error": None, "latest_charge": None}
            ids.append(intent_id)
        return web.json_response(ids)

    async def pay(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return self._missing()
        intent["status"] = "succeeded"
        return web.json_response(intent)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.calls))

    async def limit(self, request: web.Request) -> web.Response:
        self.rate_limit = int(request.match_info["n"]) or None
        return web.json_response({})

    async def reset(self, request: web.Request) -> web.Response:
        self.intents.clear()
        self.calls.clear()
        self.answers.clear()
        return web.json_response({})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before each answer (default 0.3)")
    parser.add_argument("--paid-at-once", action="store_true", help="retrieve answers every PaymentIntent as paid")
    parser.add_argument("--rate-limit", type=int, help="calls per second per endpoint, then 429 (Stripe: 25)")
    args = parser.parse_args()
    stand_in = StandIn(args.delay, args.paid_at_once, args.rate_limit)
    app = web.Application()
    app.router.add_post("/v1/payment_intents", stand_in.create)
    app.router.add_get("/v1/payment_intents/{id}", stand_in.retrieve)
    app.router.add_post("/v1/payment_intents/{id}/cancel", stand_in.cancel)
    app.router.add_post("/v1/payment_intents/{id}/capture", stand_in.capture)
    app.router.add_post("/_pay/{id}", stand_in.pay)
    app.router.add_post("/_authorized", stand_in.authorized)
    app.router.add_get("/_calls", stand_in.stats)
    app.router.add_post("/_reset", stand_in.reset)
    app.router.add_post("/_rate_limit/{n}", stand_in.limit)
    # No access log (a line per call would cost more than the call); a deep backlog for bursts of connects.
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
