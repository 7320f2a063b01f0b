"""A stand-in for Stripe's PaymentIntent API that answers every call after a fixed delay.

It measures what the service does while it waits on a slow provider, which localstripe cannot show:
localstripe handles one request at a time and its cost grows with its store, so it is the limit
long before the service is. Here each call sleeps without blocking (asyncio), so hundreds can wait at
once and the stand-in itself costs well under a millisecond of CPU per call.

    .venv/bin/python bench/stripe_standin.py --port 8421 [--delay 0.3]

POST /v1/payment_intents   creates a PaymentIntent from the form body (amount, currency, metadata[…])
GET  /v1/payment_intents/ID answers that PaymentIntent as `succeeded`, as though the customer had paid
                            at once, so that a worker has a payment to apply.
"""
from __future__ import annotations

import argparse
import asyncio
import secrets
import time

from aiohttp import web


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class StandIn:
    def __init__(self, delay: float):
        self.delay = delay
        # Remembered so that a retrieve can answer with the amount and order the create was given.
        self.intents: dict[str, dict] = {}

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
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

    async def retrieve(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return web.json_response({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                                "message": "No such payment_intent"}}, status=404)
        return web.json_response({**intent, "status": "succeeded"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before each answer (default 0.3)")
    args = parser.parse_args()
    stand_in = StandIn(args.delay)
    app = web.Application()
    app.router.add_post("/v1/payment_intents", stand_in.create)
    app.router.add_get("/v1/payment_intents/{id}", stand_in.retrieve)
    # No access log (a line per call would cost more than the call); a deep backlog for bursts of connects.
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
