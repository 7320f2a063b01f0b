"""The `outbound` scenario: order events delivered to other systems while cash-on-delivery orders are placed.

1. **lag**: one healthy endpoint (bench/receiver.py, answering 200 at once); at each cod level, the lag from
   an event's commit (its `timestamp`) to its arrival at the receiver, for every event of the level, and
   what placing orders costs meanwhile. The aim: p99 under 2 s.
2. **dead endpoint**: the same load with no endpoint, next to the same load with one endpoint nobody
   answers at (a closed port: every connection refused, the quickest failure and so the most attempts)
   and 10,000 deliveries waiting for it at the start of the level (the 10,000 are put back before each
   level). The aim: orders/s with the dead endpoint at least 0.95 of orders/s without.

The web and the worker are the Procfile's, as in `cod`; beat does not run (the worker's senders poll on
their own).
"""
from __future__ import annotations

import functools
import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import stack
from driver import LevelResult, pooled, run_level
from stack import log
from workload import CASH_ON_DELIVERY, HttpOrders

from orders_service.webhooks.signing import new_secret

DEAD_BACKLOG = 10_000
DRAIN_TIMEOUT = 120.0


def receiver(port: int, env: dict):
    argv = [sys.executable, str(Path(__file__).with_name("receiver.py")), "--port", str(port)]
    return stack.running("receiver", argv, env, stack.listens(port))


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30).close()


def add_endpoint(db: psycopg.Connection, url: str) -> uuid.UUID:
    """An active endpoint for every type, as POST /api/admin/webhook-endpoints makes it."""
    endpoint_id = uuid.uuid4()
    db.execute("INSERT INTO webhook_endpoints (id, url, event_types, status, secret, created_at, updated_at) "
               "VALUES (%s, %s, '[]', 'active', %s, now(), now())", (endpoint_id, url, new_secret()))
    return endpoint_id


def remove_endpoints(db: psycopg.Connection) -> None:
    db.execute("DELETE FROM webhook_endpoints")  # their deliveries go with them


def waiting(db: psycopg.Connection) -> int:
    return db.execute("SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'failed')").fetchone()[0]


def backlog_for(db: psycopg.Connection, endpoint_id: uuid.UUID, count: int) -> None:
    """`count` deliveries due now for the endpoint, of events already recorded (as a replay would queue)."""
    events = [row[0] for row in db.execute(
        "SELECT id FROM outbound_events WHERE sequence IS NOT NULL ORDER BY sequence DESC LIMIT 1000")]
    if not events:
        raise RuntimeError("no recorded event to queue deliveries of")
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, next_attempt_at, created_at)"
            " VALUES (%s, %s, %s, 'pending', 0, now(), now())",
            [(uuid.uuid4(), events[i % len(events)], endpoint_id) for i in range(count)])


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def collect_lags(receiver_url: str, since: float, until: float, expected: int) -> tuple[list[float], int]:
    """The lags of the events committed in [since, until], once the receiver has them all (`expected`), or
    when none more has arrived for 10 s; and the duplicates seen."""
    count, progress, deadline = -1, time.monotonic(), time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() - progress < 10 and time.monotonic() < deadline:
        stats = _get(f"{receiver_url}/_stats?since={since}&until={until}")
        if stats["count"] >= expected:
            break
        if stats["count"] > count:
            count, progress = stats["count"], time.monotonic()
        time.sleep(0.25)
    return stats["lags"], stats["duplicates"]


def _lag_result(concurrency: int, lags: list[float], seconds: float, worker_cpu: float, machine: float) -> LevelResult:
    def ms(value):
        return None if value is None else round(value * 1000, 2)

    return LevelResult(concurrency=concurrency, ok=len(lags), errors={}, seconds=seconds,
                       p50_ms=ms(_percentile(lags, 0.50)), p99_ms=ms(_percentile(lags, 0.99)),
                       cpu_seconds={"worker": worker_cpu, "machine": machine})


def _settle(db: psycopg.Connection) -> None:
    """Until no delivery is waiting (the previous level's tail), so that levels do not overlap."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while waiting(db) and time.monotonic() < deadline:
        time.sleep(0.25)


def outbound(ctx) -> list:
    from scenarios import Table  # (scenarios imports this module)

    levels, seconds = ctx.args.levels, ctx.args.duration
    receiver_port = stack.free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    env = ctx.web_env(WEBHOOK_ALLOW_PRIVATE_URLS="true")
    caller = functools.partial(HttpOrders, int(env["PORT"]), CASH_ON_DELIVERY, ctx.fixture)
    tables = []
    log("outbound: cash-on-delivery orders with a healthy webhook endpoint; lag from commit to receiver")
    with receiver(receiver_port, ctx.env), stack.web(env) as web, stack.worker(env) as worker, \
            psycopg.connect(ctx.conninfo, autocommit=True) as db:
        meters = ctx.meters(web=web, worker=worker)
        remove_endpoints(db)
        add_endpoint(db, f"{receiver_url}/hooks")
        run_level(caller, max(levels), ctx.args.warmup, meters)  # unreported: pools, caches, the senders' start
        orders, lags_by_level, duplicates = [], [], 0
        for concurrency in levels:
            _settle(db)
            since = time.time()
            result = run_level(caller, concurrency, seconds, meters)
            until = time.time()
            lags, duplicates = collect_lags(receiver_url, since, until, result.ok)
            lag = _lag_result(concurrency, lags, seconds, result.cpu_seconds["worker"], result.cpu_seconds["machine"])
            log(f"  healthy endpoint, concurrency {concurrency:>3}: {result.per_second:8.1f} orders/s, "
                f"{len(lags)} of {result.ok} events delivered, lag p50 {lag.p50_ms} ms, p99 {lag.p99_ms} ms")
            orders.append(result)
            lags_by_level.append(lag)
        remove_endpoints(db)
        _post(f"{receiver_url}/_reset")

        log(f"outbound: cash-on-delivery orders with no endpoint, and with a dead one and {DEAD_BACKLOG:,} "
            "deliveries waiting for it")
        dead_url = f"http://127.0.0.1:{stack.free_port()}/nobody-listens"
        none, dead, left = [], [], []
        for i, concurrency in enumerate(levels):
            runs = {"none": [], "dead": []}
            for repeat in range(ctx.args.outbound_repeat):  # interleaved: a drift of the machine favours neither
                for variant in (("none", "dead") if (i + repeat) % 2 == 0 else ("dead", "none")):
                    remove_endpoints(db)
                    if variant == "dead":
                        backlog_for(db, add_endpoint(db, dead_url), DEAD_BACKLOG)
                    result = run_level(caller, concurrency, seconds, meters)
                    log(f"  {variant + ' endpoint':<14} concurrency {concurrency:>3}: "
                        f"{result.per_second:8.1f} orders/s")
                    runs[variant].append(result)
                    if variant == "dead":
                        left.append(waiting(db))
            none.append(pooled(runs["none"]))
            dead.append(pooled(runs["dead"]))
        remove_endpoints(db)

    ratios = {r.concurrency: round(d.per_second / r.per_second, 3) for r, d in zip(none, dead, strict=True)}
    per_level = (f"{seconds:g} s per level" if ctx.args.outbound_repeat == 1 else
                 f"{ctx.args.outbound_repeat} x {seconds:g} s per level, interleaved with the other's, pooled")
    within = [round(max(lags_by_level[i].p99_ms or 0, 0) / 1000, 2) for i in range(len(levels))]
    tables += [
        Table("outbound", "healthy-orders",
              f"outbound: POST {CASH_ON_DELIVERY.path} with one healthy webhook endpoint (every order.created "
              f"delivered), {seconds:g} s per level", "order", orders),
        Table("outbound", "healthy-lag",
              "outbound: lag from an event's commit to its arrival at the healthy endpoint (the events of the "
              "level above; p50/p99 are the lag; `worker` is the worker's CPU per event)", "event", lags_by_level,
              notes=["p99 lag per level (s): " + ", ".join(f"conc {c}: {x}" for c, x in zip(levels, within,
                                                                                            strict=True))
                     + f"; the aim: under 2 s. Repeated deliveries seen: {duplicates}"],
              extra={"lag_p99_s": dict(zip(map(str, levels), within, strict=True))}),
        Table("outbound", "no-endpoint", f"outbound: POST {CASH_ON_DELIVERY.path} with no webhook endpoint, "
              f"{per_level}", "order", none),
        Table("outbound", "dead-endpoint",
              f"outbound: POST {CASH_ON_DELIVERY.path} with one dead webhook endpoint (connection refused) and "
              f"{DEAD_BACKLOG:,} deliveries waiting for it at the start of each run, {per_level}", "order", dead,
              notes=["dead / none, orders/s: " + "   ".join(f"conc {c}: {x:.2f}" for c, x in ratios.items())
                     + " (the aim: at least 0.95)",
                     "deliveries still waiting for the dead endpoint at the end of each run: "
                     + ", ".join(map(str, left)) + " (each keeps its own retry schedule)"],
              extra={"dead_over_none": {str(c): x for c, x in ratios.items()}}),
    ]
    return tables
