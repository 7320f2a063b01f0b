"""The measured scenarios, selected with `run.py --only`: each starts what it needs, measures, stops it
again and returns its tables."""
from __future__ import annotations

import dataclasses
import functools
import http.client
import itertools
import json
import math
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import confirmation
import outbound
import psycopg
import stack
import stripe
from driver import LevelResult, Meter, cpu_delta, machine_cpu, pooled, run_level
from stack import log
from workload import (
    CASH_ON_DELIVERY,
    WEBHOOK_PATH,
    WITH_PAYMENT,
    Api,
    Fixture,
    HttpOrders,
    SignedEvents,
    seed_products,
    signed_event,
    succeeded_intent,
)

from orders_service.api.security import mint_access_token
from orders_service.app import create_app
from orders_service.auth.models import Role
from orders_service.config import Settings
from orders_service.queue import TaskQueue, Tasks

FLUSH_EVERY = 1.0  # seconds between localstripe flushes during a level
PREPARE_CONCURRENCY = 16  # requests in flight while the worker scenario prepares its orders and events
WARM_UP_PER_PROCESS = 3  # unmeasured events per worker process before the measured ones


@dataclass(frozen=True)
class Context:
    args: object  # the parsed command line
    env: dict  # what every process of the service gets
    fixture: Fixture
    conninfo: str  # of the bench database
    postgres: Meter
    webhook_secret: str

    def web_env(self, stripe_url: str | None = None, **extra) -> dict:
        # With no Stripe in a scenario, a closed port: nothing in the bench may reach the real Stripe.
        return dict(self.env, PORT=str(stack.free_port()), STRIPE_API_BASE=stripe_url or "http://127.0.0.1:9",
                    **extra)

    def meters(self, **processes: stack.Process) -> dict[str, Meter]:
        return {**{name: p.cpu for name, p in processes.items()}, "postgres": self.postgres, "machine": machine_cpu}

    def flush_broker(self) -> None:
        stack.flush_redis(self.env["CELERY_BROKER_URL"])


@dataclass
class Table:
    """One printed table, stored in latest.json as scenarios[scenario][series]."""

    scenario: str
    series: str
    title: str
    unit: str
    results: list[LevelResult]
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # more for latest.json's scenarios[scenario]


def measure(label: str, make_caller, levels: list[int], ctx: Context, meters: dict) -> list[LevelResult]:
    # An unreported warm-up fills connection pools and caches (SQLAlchemy's compiled statements,
    # psycopg's prepared statements) so that the first level is not penalised.
    run_level(make_caller, max(levels), ctx.args.warmup, meters)
    results = []
    for concurrency in levels:
        result = run_level(make_caller, concurrency, ctx.args.duration, meters)
        log(f"  {label:<12} concurrency {concurrency:>3}: {result.per_second:8.1f}/s, "
            f"{sum(result.errors.values())} errors")
        results.append(result)
    return results


def core_share(results: list[LevelResult], meter: str) -> str:
    """How much of one core a process used, per level: 100 % is all a single-threaded process has."""
    return ", ".join(f"conc {r.concurrency}: {r.cpu_seconds[meter] / r.seconds:.0%}" for r in results)


def saturated(results: list[LevelResult], meter: str) -> bool:
    """Whether a single-threaded process was busy enough, at some level, to be what limits it."""
    return any(r.cpu_seconds[meter] / r.seconds > 0.8 for r in results)


def threads_note(env: dict, concurrency: int, delay: float) -> str:
    workers, threads = stack.procfile_setting(env, "WEB_CONCURRENCY"), stack.procfile_setting(env, "WEB_THREADS")
    in_flight = min(concurrency, workers * threads)
    return (f"every Stripe call waits {delay * 1000:.0f} ms, and gunicorn serves at most {workers} workers x "
            f"{threads} threads = {workers * threads} requests at once: at most {in_flight} / {delay:g} s = "
            f"{in_flight / delay:.0f} orders/s with {concurrency} callers")


# --- cash on delivery -----------------------------------------------------------------------------

def cash_on_delivery_direct(ctx: Context, label: str, levels: list[int]) -> list[LevelResult]:
    """POST /api/orders to the Procfile's web on this machine, straight to PostgreSQL, at each level."""
    env = ctx.web_env()
    with stack.web(env) as web:
        return measure(label, functools.partial(HttpOrders, int(env["PORT"]), CASH_ON_DELIVERY, ctx.fixture),
                       levels, ctx, ctx.meters(web=web))


def cash_on_delivery(ctx: Context) -> list[Table]:
    """POST /api/orders, then the same database work in plain psycopg with the server stopped."""
    levels, seconds = ctx.args.levels, ctx.args.duration
    log(f"cash-on-delivery: POST {CASH_ON_DELIVERY.path}")
    service = cash_on_delivery_direct(ctx, "service", levels)
    log("cash-on-delivery: raw ceiling in plain psycopg")
    raw = measure("raw", functools.partial(CASH_ON_DELIVERY.raw, ctx.conninfo, ctx.fixture), levels, ctx,
                  ctx.meters())
    ratios = {s.concurrency: round(s.per_second / r.per_second, 3) for s, r in zip(service, raw, strict=True)}
    note = "service / raw ceiling, throughput: " + "   ".join(f"conc {c}: {x:.2f}" for c, x in ratios.items())
    return [
        Table("cash-on-delivery", "service",
              f"cash-on-delivery: POST {CASH_ON_DELIVERY.path} through `web` (gunicorn), {seconds:g} s per level",
              "order", service, extra={"path": CASH_ON_DELIVERY.path}),
        Table("cash-on-delivery", "raw", "cash-on-delivery: raw ceiling, the same statements in plain psycopg",
              "txn", raw, notes=[note], extra={"service_over_raw": {str(c): x for c, x in ratios.items()}}),
    ]


# --- the pooler: cash on delivery directly and through PgBouncer -----------------------------------

PGBOUNCER_POOL_SIZE = 20  # PgBouncer's own default: server connections the service's processes share


def pooler(ctx: Context) -> list[Table]:
    """POST /api/orders with the web connected to PostgreSQL directly, then through PgBouncer in transaction
    mode (deploy/pgbouncer.ini, DB_POOLER=pgbouncer: no prepared statements), in the same run."""
    import tempfile

    from sqlalchemy.engine import make_url

    levels, seconds = ctx.args.levels, ctx.args.duration
    direct_env = ctx.web_env()
    log(f"pooler: POST {CASH_ON_DELIVERY.path} directly")
    with stack.web(direct_env) as web:
        direct = measure("direct", functools.partial(HttpOrders, int(direct_env["PORT"]), CASH_ON_DELIVERY,
                                                     ctx.fixture), levels, ctx, ctx.meters(web=web))
    server, port = make_url(ctx.env["DATABASE_URL"]), stack.free_port()
    pooled_env = ctx.web_env(DATABASE_URL=server.set(host="127.0.0.1", port=port).render_as_string(False),
                             DB_POOLER="pgbouncer")
    log(f"pooler: POST {CASH_ON_DELIVERY.path} through PgBouncer (transaction mode, "
        f"default_pool_size {PGBOUNCER_POOL_SIZE})")
    host, db_port, user = server.host or "127.0.0.1", server.port or 5432, server.username or "postgres"
    with tempfile.TemporaryDirectory(prefix="orders-bench-pgbouncer-") as folder, \
            stack.pgbouncer(folder, port, host, db_port, user, PGBOUNCER_POOL_SIZE, 500) as bouncer, \
            stack.web(pooled_env) as web:
        pooled = measure("pgbouncer", functools.partial(HttpOrders, int(pooled_env["PORT"]), CASH_ON_DELIVERY,
                                                        ctx.fixture), levels, ctx,
                         ctx.meters(web=web, pgbouncer=bouncer))
    ratios = {p.concurrency: round(p.per_second / d.per_second, 3) for p, d in zip(pooled, direct, strict=True)}
    note = "through PgBouncer / direct, throughput: " + "   ".join(f"conc {c}: {x:.2f}" for c, x in ratios.items())
    return [
        Table("pooler", "direct", f"pooler: POST {CASH_ON_DELIVERY.path}, web connected to PostgreSQL directly, "
                                  f"{seconds:g} s per level", "order", direct),
        Table("pooler", "pgbouncer", f"pooler: the same through PgBouncer 1.18+ in transaction mode "
                                     f"(DB_POOLER=pgbouncer, default_pool_size {PGBOUNCER_POOL_SIZE})", "order",
              pooled, notes=[note], extra={"pgbouncer_over_direct": {str(c): x for c, x in ratios.items()}}),
    ]


# --- the hot path: the service next to a bare reference -------------------------------------------

def _ratio(service: float | None, reference: float | None) -> float | None:
    return None if service is None or not reference else round(service / reference, 3)


def compare(service: LevelResult, reference: LevelResult) -> dict:
    """service ÷ reference at one point: throughput, CPU per order (web, PostgreSQL) and latency."""
    return {
        "concurrency": service.concurrency,
        "orders_per_s": _ratio(service.per_second, reference.per_second),
        "web_cpu_per_order": _ratio(service.cpu_per_op("web"), reference.cpu_per_op("web")),
        "pg_cpu_per_order": _ratio(service.cpu_per_op("postgres"), reference.cpu_per_op("postgres")),
        "p50": _ratio(service.p50_ms, reference.p50_ms),
        "p99": _ratio(service.p99_ms, reference.p99_ms),
    }


def comparison_notes(ratios: list[dict]) -> list[str]:
    def cell(value: float | None) -> str:
        return f"{'-' if value is None else f'{value:.2f}':>8}"

    lines = ["service / reference in the same run (x < 1 for orders/s, > 1 for CPU and latency: the service "
             "is behind):",
             f"{'conc':>6} {'orders/s':>8} {'web CPU':>8} {'pg CPU':>8} {'p50':>8} {'p99':>8}"]
    for r in ratios:
        lines.append(f"{r['concurrency']:>6} {cell(r['orders_per_s'])} {cell(r['web_cpu_per_order'])} "
                     f"{cell(r['pg_cpu_per_order'])} {cell(r['p50'])} {cell(r['p99'])}")
    return lines


def hot_path(ctx: Context) -> list[Table]:
    """POST /api/orders through the service next to the bare reference app (bench/reference/app.py),
    on a spread catalog and on a few hot products, level by level in the same run."""
    args, seconds = ctx.args, ctx.args.hotpath_duration
    per_level = (f"{seconds:g} s per level" if args.hotpath_repeat == 1 else
                 f"{args.hotpath_repeat} x {seconds:g} s per level, interleaved with the other stack's, pooled")
    settings = Settings.from_env(ctx.env)
    catalogs = {  # name -> (description, the fixture with that catalog's products)
        "spread": (f"{args.spread_products} products",
                   dataclasses.replace(ctx.fixture, product_ids=seed_products(settings, args.spread_products,
                                                                              "spread"))),
        "hot": (f"{args.hot_products} hot products",
                dataclasses.replace(ctx.fixture, product_ids=seed_products(settings, args.hot_products, "hot"))),
    }
    env, reference_port = ctx.web_env(), stack.free_port()
    web_setting = stack.web_setting(ctx.env)
    log(f"hotpath: POST {CASH_ON_DELIVERY.path}, the service ({web_setting}) next to the reference "
        f"({args.reference})")
    tables = []
    with stack.web(env) as web, stack.reference(ctx.env, reference_port, args.reference) as reference:
        stacks = {"service": (int(env["PORT"]), ctx.meters(web=web)),
                  "reference": (reference_port, ctx.meters(web=reference))}
        for catalog, (description, fixture) in catalogs.items():
            callers = {name: functools.partial(HttpOrders, port, CASH_ON_DELIVERY, fixture)
                       for name, (port, _) in stacks.items()}
            for name, (_, meters) in stacks.items():  # pools, caches, and this catalog's rows in shared buffers
                run_level(callers[name], max(args.hotpath_levels), args.warmup, meters)
            results = {name: [] for name in stacks}
            for i, concurrency in enumerate(args.hotpath_levels):
                repeats = {name: [] for name in stacks}
                for repeat in range(args.hotpath_repeat):
                    # Alternate which goes first, so that a slow drift of the machine favours neither.
                    for name in (list(stacks) if (i + repeat) % 2 == 0 else list(reversed(stacks))):
                        result = run_level(callers[name], concurrency, seconds, stacks[name][1])
                        log(f"  {catalog:<6} {name:<9} concurrency {concurrency:>3}: {result.per_second:8.1f}/s, "
                            f"{sum(result.errors.values())} errors")
                        repeats[name].append(result)
                for name in stacks:
                    results[name].append(pooled(repeats[name]))
            ratios = [compare(s, r) for s, r in zip(results["service"], results["reference"], strict=True)]
            tables += [
                Table("hotpath", f"service-{catalog}",
                      f"hotpath, {description}: the service, POST {CASH_ON_DELIVERY.path} ({web_setting}), "
                      f"{per_level}", "order", results["service"],
                      extra={"path": CASH_ON_DELIVERY.path, "web_setting": web_setting, "reference": args.reference,
                             "reference_command": " ".join(stack.reference_argv(reference_port, args.reference))
                             .replace(f"{stack.ROOT}/", ""),  # the checkout's path is this machine's
                             "catalogs": {c: len(f.product_ids) for c, (_, f) in catalogs.items()}}),
                Table("hotpath", f"reference-{catalog}",
                      f"hotpath, {description}: the bare reference (bench/reference/app.py, {args.reference}), "
                      f"{per_level}", "order", results["reference"],
                      notes=comparison_notes(ratios), extra={f"ratios-{catalog}": ratios}),
            ]
    return tables


# --- with payment ---------------------------------------------------------------------------------

def with_payment(ctx: Context) -> list[Table]:
    """POST /api/orders/with-payment against localstripe, then against the slow stand-in."""
    levels, seconds, delay = ctx.args.levels, ctx.args.duration, ctx.args.standin_delay
    tables = []
    url = f"http://127.0.0.1:{stack.free_port()}"
    log(f"with-payment: POST {WITH_PAYMENT.path}, Stripe is localstripe")
    env = ctx.web_env(url)
    with stack.localstripe(url, ctx.env) as localstripe, stack.web(env) as web, \
            stack.flushed_as_it_goes(url, FLUSH_EVERY):
        results = measure("localstripe", functools.partial(HttpOrders, int(env["PORT"]), WITH_PAYMENT, ctx.fixture),
                          levels, ctx, ctx.meters(web=web, stripe=localstripe))
    tables.append(Table(
        "with-payment", "localstripe",
        f"with-payment: POST {WITH_PAYMENT.path}, Stripe is localstripe (flushed as it goes), {seconds:g} s per level",
        "order", results, extra={"path": WITH_PAYMENT.path},
        notes=[f"localstripe's share of one core: {core_share(results, 'stripe')}. It serves one request at a "
               f"time, so it {'is' if saturated(results, 'stripe') else 'is not'} the limit here."],
    ))

    concurrency = ctx.args.standin_concurrency
    url = f"http://127.0.0.1:{stack.free_port()}"
    log(f"with-payment: POST {WITH_PAYMENT.path}, Stripe is the stand-in answering after {delay:g} s")
    env = ctx.web_env(url)
    with stack.stripe_standin(url, delay, ctx.env) as standin, stack.web(env) as web:
        results = measure("stand-in", functools.partial(HttpOrders, int(env["PORT"]), WITH_PAYMENT, ctx.fixture),
                          [concurrency], ctx, ctx.meters(web=web, stripe=standin))
    tables.append(Table(
        "with-payment", "standin",
        f"with-payment: POST {WITH_PAYMENT.path}, Stripe is a stand-in answering after {delay * 1000:.0f} ms, "
        f"{seconds:g} s",
        "order", results, notes=[threads_note(ctx.env, concurrency, delay)],
        extra={"standin_delay_s": delay},
    ))
    return tables


# --- webhook intake -------------------------------------------------------------------------------

def webhook_intake(ctx: Context) -> list[Table]:
    """POST /api/webhooks/stripe with signed events: verify, store, enqueue; no worker runs."""
    levels, seconds = ctx.args.levels, ctx.args.duration
    log(f"webhook: POST {WEBHOOK_PATH}")
    ctx.flush_broker()
    env = ctx.web_env()
    try:
        with stack.web(env) as web:
            results = measure("webhook", functools.partial(SignedEvents, int(env["PORT"]), ctx.webhook_secret),
                              levels, ctx, ctx.meters(web=web))
    finally:
        ctx.flush_broker()  # the tasks nobody consumed
    return [Table(
        "webhook", "service",
        f"webhook intake: POST {WEBHOOK_PATH}, signed payment_intent.succeeded events, {seconds:g} s per level",
        "event", results, extra={"path": WEBHOOK_PATH},
        notes=[f"each event is verified, stored in stripe_events and enqueued on Redis "
               f"({ctx.env['CELERY_BROKER_URL']}); Redis's CPU is only in `machine`"],
    )]


# --- worker throughput ----------------------------------------------------------------------------

def place_online_orders(port: int, fixture: Fixture, count: int) -> list[dict]:
    """`count` with-payment orders through the API: their response bodies."""
    def place(slot: int) -> list[dict]:
        api = HttpOrders(port, WITH_PAYMENT, fixture, slot)
        try:
            placed = []
            for _ in range(slot, count, PREPARE_CONCURRENCY):
                error, body = api.place()
                if error:
                    raise RuntimeError(f"could not place an order to pay: {error}")
                placed.append(json.loads(body))
            return placed
        finally:
            api.close()

    with ThreadPoolExecutor(PREPARE_CONCURRENCY) as pool:
        return list(itertools.chain.from_iterable(pool.map(place, range(PREPARE_CONCURRENCY))))


def pay_at_localstripe(url: str, key: str, intent_ids: list[str]) -> None:
    """Attach a card and confirm, as Stripe.js does when the customer pays (tests/conftest.py)."""
    client = stripe.StripeClient(key, base_addresses={"api": url}, max_network_retries=0)

    def pay(intent_id: str) -> None:
        client.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
        if client.v1.payment_intents.confirm(intent_id).status != "succeeded":
            raise RuntimeError(f"{intent_id} was not paid")

    with ThreadPoolExecutor(4) as pool:  # localstripe serves one request at a time: a few keep it busy
        list(pool.map(pay, intent_ids))


def post_events(port: int, secret: str, placed: list[dict]) -> list[str]:
    """A signed payment_intent.succeeded event per order, through the webhook: their event ids."""
    def post(batch: list[dict]) -> list[str]:
        api = Api(port)
        try:
            ids = []
            for order in batch:
                intent_id = order["clientSecret"].split("_secret_")[0]
                event_id, body, headers = signed_event(secret, succeeded_intent(
                    intent_id, order["orderId"], round(order["totalAmount"] * 100), order["currency"]))
                status, payload = api.post(WEBHOOK_PATH, body, headers)
                if status != 200:
                    raise RuntimeError(f"the webhook answered {status}: {payload[:160]!r}")
                ids.append(event_id)
            return ids
        finally:
            api.close()

    batches = [placed[i::PREPARE_CONCURRENCY] for i in range(PREPARE_CONCURRENCY)]
    with ThreadPoolExecutor(PREPARE_CONCURRENCY) as pool:
        return list(itertools.chain.from_iterable(pool.map(post, batches)))


def wait_processed(db: psycopg.Connection, event_ids: list[str], stall_timeout: float = 60) -> None:
    """Until every event is marked processed, or none more has been for `stall_timeout` seconds."""
    done, last_progress = 0, time.monotonic()
    while done < len(event_ids) and time.monotonic() - last_progress < stall_timeout:
        time.sleep(0.1)
        now_done = db.execute("SELECT count(processed_at) FROM stripe_events WHERE id = ANY(%s)",
                              (event_ids,)).fetchone()[0]
        if now_done > done:
            done, last_progress = now_done, time.monotonic()


def apply_events(ctx: Context, env: dict, warm_up: list[str], event_ids: list[str],
                 stripe_process: stack.Process) -> LevelResult:
    """Time the Procfile's worker applying stored events, from the moment they are enqueued until the
    last one is marked processed.

    The web enqueued them when it stored them; that queue is emptied, and once the worker answers a
    ping, the `warm_up` events are applied first (each pool process sets itself up on its first task:
    imports, database pool, Stripe connection), and only then are the measured ones enqueued again. So
    neither the worker's start-up time nor its start-up CPU is counted."""
    ctx.flush_broker()
    with stack.worker(env) as worker, psycopg.connect(ctx.conninfo, autocommit=True) as db:
        queue = TaskQueue(Settings.from_env(env))
        for event_id in warm_up:
            queue.enqueue(Tasks.PROCESS_STRIPE_EVENT, event_id)
        wait_processed(db, warm_up)

        meters = ctx.meters(worker=worker, stripe=stripe_process)
        before, client_before, started = {n: read() for n, read in meters.items()}, time.process_time(), time.time()
        for event_id in event_ids:
            queue.enqueue(Tasks.PROCESS_STRIPE_EVENT, event_id)
        wait_processed(db, event_ids)
        after, client_after = {n: read() for n, read in meters.items()}, time.process_time()
        finished = db.execute("SELECT max(processed_at) FROM stripe_events WHERE id = ANY(%s)",
                              (event_ids,)).fetchone()[0]
        outcomes = dict(db.execute("SELECT coalesce(outcome, 'not processed'), count(*) FROM stripe_events "
                                   "WHERE id = ANY(%s) GROUP BY 1", (event_ids,)).fetchall())
    cpu = {n: cpu_delta(before[n], after[n]) for n in meters}
    cpu["client"] = client_after - client_before
    ok = outcomes.pop("payment_succeeded", 0)
    return LevelResult(concurrency=int(env["WORKER_CONCURRENCY"]), ok=ok, errors=outcomes,
                       seconds=(finished.timestamp() if finished else time.time()) - started,
                       p50_ms=None, p99_ms=None, cpu_seconds=cpu)


def worker_series(ctx: Context, label: str, stripe_process: stack.Process, stripe_url: str, events: int,
                  pay: Callable[[list[str]], None] | None) -> list[LevelResult]:
    """Per worker concurrency: place online orders, have them paid (`pay`, unless the Stripe answers
    every PaymentIntent as paid), store an event for each through the webhook, then apply them: a few
    to warm the worker up, then `events` measured."""
    results = []
    for concurrency in ctx.args.worker_levels:
        if pay is not None:
            stack.flush_localstripe(stripe_url)  # each level starts from the same store size
        env = ctx.web_env(stripe_url, WORKER_CONCURRENCY=str(concurrency))
        warm_up = WARM_UP_PER_PROCESS * concurrency
        with stack.web(env):
            log(f"  {label}: placing {warm_up} + {events} with-payment orders, paying them, storing an event for each")
            placed = place_online_orders(int(env["PORT"]), ctx.fixture, warm_up + events)
            if pay is not None:
                pay([order["clientSecret"].split("_secret_")[0] for order in placed])
            event_ids = post_events(int(env["PORT"]), ctx.webhook_secret, placed)
        result = apply_events(ctx, env, event_ids[:warm_up], event_ids[warm_up:], stripe_process)
        log(f"  {label:<12} worker concurrency {concurrency:>3}: {result.per_second:8.1f}/s, "
            f"{sum(result.errors.values())} errors")
        results.append(result)
    return results


def worker_throughput(ctx: Context) -> list[Table]:
    """Events applied per second by the Procfile's `worker`: a burst of first-time events."""
    tables = []
    url = f"http://127.0.0.1:{stack.free_port()}"
    log("worker: applying payment_intent.succeeded events, Stripe is localstripe")
    with stack.localstripe(url, ctx.env) as localstripe:
        pay = functools.partial(pay_at_localstripe, url, ctx.env["STRIPE_SECRET_KEY"])
        results = worker_series(ctx, "localstripe", localstripe, url, ctx.args.events, pay)
    tables.append(Table(
        "worker", "localstripe",
        f"worker: {ctx.args.events} stored payment_intent.succeeded events applied by `worker` (celery, "
        f"conc = WORKER_CONCURRENCY), Stripe is localstripe",
        "event", results,
        notes=["each event applies the signed event's own PaymentIntent, with no call to Stripe; "
               f"localstripe's share of one core: {core_share(results, 'stripe')}"],
    ))

    delay, events = ctx.args.standin_delay, ctx.args.standin_events
    url = f"http://127.0.0.1:{stack.free_port()}"
    log(f"worker: applying payment_intent.succeeded events, Stripe is the stand-in answering after {delay:g} s")
    with stack.stripe_standin(url, delay, ctx.env, "--paid-at-once") as standin:
        results = worker_series(ctx, "stand-in", standin, url, events, pay=None)
        calls = stack.standin_calls(url)
    tables.append(Table(
        "worker", "standin",
        f"worker: {events} stored events applied by `worker`, Stripe is a stand-in answering after "
        f"{delay * 1000:.0f} ms",
        "event", results, extra={"standin_delay_s": delay},
        notes=[f"each event applies the signed event's own PaymentIntent (Stripe's snapshot): the worker made "
               f"{calls.get('GET /v1/payment_intents/:id', 0)} PaymentIntent reads for "
               f"{len(results) and (events + WARM_UP_PER_PROCESS * sum(ctx.args.worker_levels))} events "
               f"(creates, by the web: {calls.get('POST /v1/payment_intents', 0)})"],
    ))
    return tables


# --- capture at shipment ---------------------------------------------------------------------------

SHIP_BODY = json.dumps({"status": "shipped", "trackingNumber": "1Z999AA10123456784", "carrier": "UPS"}).encode()


def admin_token(env: dict) -> str:
    app = create_app(Settings.from_env(env))
    try:
        with app.app_context():  # the token's claims are all the service reads: no customer row is needed
            return mint_access_token(uuid.uuid4(), Role.ADMIN, timedelta(hours=12))
    finally:
        app.extensions["orders.runtime"].dispose()  # the load generator forks: no connection may be shared


def authorized_orders(port: int, fixture: Fixture, conninfo: str, standin_url: str, count: int) -> list[str]:
    """`count` orders whose card is held, their PaymentIntents `requires_capture` at the stand-in: their ids.

    Only the ships are measured, so the orders are made the quick way: placed through the API as cash on
    delivery (no Stripe call), then each turned into an online order whose payment is authorized, in SQL,
    with a PaymentIntent the stand-in opens authorized (`POST /_authorized`, not a call of the service's)."""
    with psycopg.connect(conninfo, autocommit=True) as db:
        since = db.execute("SELECT clock_timestamp()").fetchone()[0]

        def place(slot: int) -> None:
            api = HttpOrders(port, CASH_ON_DELIVERY, fixture, slot)
            try:
                for _ in range(slot, count, PREPARE_CONCURRENCY):
                    for _attempt in range(20):  # a busy machine may answer 503 now and then: not what is measured
                        if not (error := api()) or not error.startswith(("HTTP 503", "HTTP 429")):
                            break
                        time.sleep(0.5)
                    if error:
                        raise RuntimeError(f"could not place an order to ship: {error}")
            finally:
                api.close()

        with ThreadPoolExecutor(PREPARE_CONCURRENCY) as pool:
            list(pool.map(place, range(PREPARE_CONCURRENCY)))
        orders = db.execute("SELECT id, total_cents, currency FROM orders WHERE created_at >= %s AND "
                            "payment_method = 'cash_on_delivery' ORDER BY created_at", (since,)).fetchall()
        request = urllib.request.Request(f"{standin_url}/_authorized", method="POST", data=json.dumps(
            [{"orderId": str(o), "amount": cents, "currency": cur} for o, cents, cur in orders]).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            intents = json.loads(answer.read())
        with db.cursor() as cursor:
            cursor.executemany(
                "UPDATE orders SET payment_method = 'online', payment_status = 'authorized', "
                "payment_intent_id = %s, capture_before = now() + interval '7 days' WHERE id = %s",
                [(intent, order_id) for intent, (order_id, _, _) in zip(intents, orders, strict=True)])
    return [str(order_id) for order_id, _, _ in orders]


class Ships(Api):
    """Ships authorized orders through the admin route, each once: each ship captures at Stripe first."""

    def __init__(self, port: int, token: str, order_ids: list[str]):
        super().__init__(port)
        self.order_ids = iter(order_ids)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def __call__(self) -> str | None:
        order_id = next(self.order_ids, None)
        if order_id is None:
            return "no authorized order left to ship (prepare more)"
        try:
            self.connection.request("PATCH", f"/api/admin/orders/{order_id}", SHIP_BODY, self.headers)
            response = self.connection.getresponse()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise
        if status != 200:
            return f"HTTP {status}: {payload[:160].decode(errors='replace')}"
        order = json.loads(payload)
        if (order["status"], order["paymentStatus"]) != ("shipped", "paid"):
            return f"shipped as {order['status']} / {order['paymentStatus']}"
        return None


def capture_at_shipment(ctx: Context) -> list[Table]:
    """PATCH /api/admin/orders/{id} {status: shipped} of orders whose card is held (PAYMENT_CAPTURE=on_shipment):
    each ship captures at the stand-in (300 ms) outside any transaction, then ships."""
    seconds, delay, levels = ctx.args.duration, ctx.args.standin_delay, ctx.args.capture_levels
    url = f"http://127.0.0.1:{stack.free_port()}"
    # Stripe's own gateway (not the emulator's): payment method options, SDK retries with the order's key.
    env = ctx.web_env(url, PAYMENT_CAPTURE="on_shipment", STRIPE_EMULATOR="false")
    token = admin_token(env)
    log(f"capture: PATCH /api/admin/orders/{{id}} shipped, Stripe is the stand-in answering after {delay:g} s")
    results, checks = [], []
    with stack.stripe_standin(url, delay, ctx.env) as standin, stack.web(env) as web:
        port, meters = int(env["PORT"]), ctx.meters(web=web, stripe=standin)
        runs = [(max(levels), ctx.args.warmup), *((level, seconds) for level in levels)]  # a warm-up first
        for run, (concurrency, duration) in enumerate(runs):
            # Each caller ships at most one order per Stripe answer: enough orders for the run, and a margin.
            per_caller = math.ceil((duration + 2) / delay * 1.2) + 2
            ids = authorized_orders(port, ctx.fixture, ctx.conninfo, url, per_caller * concurrency)
            calls_before = stack.standin_calls(url).get("POST /v1/payment_intents/:id/capture", 0)
            result = run_level(lambda slot, ids=ids, n=concurrency: Ships(port, token, ids[slot::n]), concurrency,
                               duration, meters)
            time.sleep(1)  # the ships still under way when the level ended (uncounted) finish
            with psycopg.connect(ctx.conninfo, autocommit=True) as db:
                shipped = db.execute("SELECT count(*) FROM orders WHERE id = ANY(%s) AND status = 'shipped' "
                                     "AND payment_status = 'paid'", ([uuid.UUID(i) for i in ids],)).fetchone()[0]
            captures = stack.standin_calls(url).get("POST /v1/payment_intents/:id/capture", 0) - calls_before
            if run == 0:
                continue  # the warm-up: pools, caches, connections to the stand-in
            log(f"  ships       concurrency {concurrency:>3}: {result.per_second:8.1f}/s, "
                f"{sum(result.errors.values())} errors; {captures} captures for {shipped} orders shipped")
            results.append(result)
            checks.append(f"conc {concurrency}: {captures} captures at Stripe for {shipped} orders shipped and paid")
    return [Table(
        "capture", "standin",
        f"capture: PATCH /api/admin/orders/{{id}} shipped with PAYMENT_CAPTURE=on_shipment, each capturing at a "
        f"stand-in answering after {delay * 1000:.0f} ms, {seconds:g} s per level",
        "ship", results, extra={"standin_delay_s": delay},
        notes=[threads_note(ctx.env, max(levels), delay).replace("orders/s", "ships/s"),
               "one capture per ship: " + "; ".join(checks)],
    )]


def several_hosts(ctx: Context) -> list[Table]:
    """bench/hosts.py (imported only when it runs: it builds on this module, and on tests/support/hosts.py)."""
    import hosts

    return hosts.hosts(ctx)


# The names `run.py --only` takes, in the order they run.
SCENARIOS: dict[str, Callable[[Context], list[Table]]] = {
    "cod": cash_on_delivery,
    "hotpath": hot_path,
    "payment": with_payment,
    "webhook": webhook_intake,
    "worker": worker_throughput,
    "budget": confirmation.budget,
    "ratelimit": confirmation.rate_limited,
    "expiry": confirmation.expiry,
    "outbound": outbound.outbound,
    "capture": capture_at_shipment,
    "pooler": pooler,
    "hosts": several_hosts,
}
