"""A webhook receiver for the `outbound` scenario: answers every delivery 200 at once and keeps, per event,
when it arrived and when the change was committed (the event's `timestamp`), so that the bench can read
the lag from commit to receiver. An aiohttp server in a process of its own: it costs the machine well
under a millisecond per delivery and never competes with the load driver for a GIL.

    .venv/bin/python bench/receiver.py --port 8430

POST /hooks          a delivery (Standard Webhooks headers; the signature is not checked here: the tests do)
GET  /_stats?since=T&until=T   {"count", "duplicates", "lags"}: deliveries of events committed between the
                     two Unix times (seconds), their lags in seconds, and repeated webhook-ids
POST /_reset         forgets everything
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

from aiohttp import web


class Receiver:
    def __init__(self):
        self.seen: dict[str, tuple[float, float]] = {}  # webhook-id -> (committed at, arrived at)
        self.duplicates = 0

    async def hook(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        event_id = request.headers.get("webhook-id", "")
        if event_id in self.seen:
            self.duplicates += 1
        else:
            committed = datetime.fromisoformat(json.loads(body)["timestamp"]).timestamp()
            self.seen[event_id] = (committed, arrived)
        return web.Response(text="ok")

    async def stats(self, request: web.Request) -> web.Response:
        since, until = float(request.query.get("since", 0)), float(request.query.get("until", 1e12))
        lags = [arrived - committed for committed, arrived in self.seen.values() if since <= committed <= until]
        return web.json_response({"count": len(lags), "duplicates": self.duplicates, "lags": lags})

    async def reset(self, _request: web.Request) -> web.Response:
        self.seen.clear()
        self.duplicates = 0
        return web.json_response({})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.hook)
    app.router.add_get("/_stats", receiver.stats)
    app.router.add_post("/_reset", receiver.reset)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
