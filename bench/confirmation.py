"""Payment confirmation at Stripe's real scale (issue 10), against the stand-in (bench/stripe_standin.py):

- `budget`: the seed's flow, order by order — create with payment, the customer pays, `PATCH /paid` and
  the webhook (half the orders in each order) — counting the Stripe calls each paid order cost;
- `ratelimit`: with-payment orders against a stand-in that allows 25 calls a second per endpoint and
  answers 429 beyond, as Stripe does: every order ends paid or cleanly refused (503, nothing reserved);
- `expiry`: 1,000 abandoned orders past their TTL, and 1,000 pending orders due for reconciliation, worked
  off by the Procfile's worker against a 300 ms, rate-limited stand-in: how long until every one is done.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import stack
from driver import LevelResult, cpu_delta
from stack import log
from workload import WEBHOOK_PATH, WITH_PAYMENT, Api, HttpOrders, signed_event, succeeded_intent

from orders_service.config import Settings
from orders_service.queue import TaskQueue, Tasks

STRIPE_RATE_LIMIT = 25  # Stripe's default per endpoint and second (docs/operations.md, "Stripe")
CALLERS = 16


def _intent_id(order: dict) -> str:
    return order["clientSecret"].split("_secret_")[0]


def _stock(db: psycopg.Connection) -> int:
    return db.execute("SELECT coalesce(sum(stock), 0) FROM products").fetchone()[0]


def _held_since(db: psycopg.Connection, since) -> int:
    """Units that orders placed since `since` still hold (all but canceled and expired ones hold theirs)."""
    return db.execute("SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id "
                      "WHERE o.created_at >= %s AND o.status NOT IN ('canceled', 'expired')", (since,)).fetchone()[0]


def _statuses_since(db: psycopg.Connection, since) -> dict[str, int]:
    return {f"{status}/{payment}": n for status, payment, n in db.execute(
        "SELECT status, payment_status, count(*) FROM orders WHERE created_at >= %s GROUP BY 1, 2", (since,))}


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


class Customer(Api):
    """What a storefront does for one customer: place, pay at Stripe, tell the service, and Stripe's webhook."""

    def __init__(self, port: int, fixture, slot: int, standin: str, secret: str):
        super().__init__(port)
        self.orders = HttpOrders(port, WITH_PAYMENT, fixture, slot)
        self.token = fixture.customers[slot % len(fixture.customers)][1]
        self.standin, self.secret = standin, secret

    def place(self) -> tuple[int, dict, dict]:
        self.orders.connection.request("POST", WITH_PAYMENT.path, *next(self.orders.requests))
        response = self.orders.connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")

    def mark_paid(self, order: dict) -> int:
        self.connection.request("PATCH", f"/api/orders/{order['orderId']}/paid", None,
                                {"Authorization": f"Bearer {self.token}"})
        response = self.connection.getresponse()
        response.read()
        return response.status

    def webhook(self, order: dict) -> int:
        _, body, headers = signed_event(self.secret, succeeded_intent(
            _intent_id(order), order["orderId"], round(order["totalAmount"] * 100), order["currency"]))
        return self.post(WEBHOOK_PATH, body, headers)[0]

    def close(self) -> None:
        self.orders.close()
        super().close()


def _env(ctx, url: str, **extra) -> dict:
    return ctx.web_env(url, WORKER_CONCURRENCY="2", **extra)


def _meters(ctx, **processes):
    return ctx.meters(**processes)


def _reading(meters):
    return {name: read() for name, read in meters.items()}


def budget(ctx) -> list:
    """The seed's flow against the stand-in, counting Stripe calls per paid order."""
    from scenarios import Table

    count, delay = ctx.args.budget_orders, ctx.args.standin_delay
    url = f"http://127.0.0.1:{stack.free_port()}"
    env = _env(ctx, url)
    log(f"budget: {count} orders through the seed's flow, Stripe is the stand-in answering after {delay:g} s")
    ctx.flush_broker()
    with stack.stripe_standin(url, delay, ctx.env) as standin, stack.web(env) as web, stack.worker(env) as worker, \
            psycopg.connect(ctx.conninfo, autocommit=True) as db:
        since = db.execute("SELECT now()").fetchone()[0]
        meters = _meters(ctx, web=web, worker=worker, stripe=standin)
        before, started = _reading(meters), time.time()
        problems: Counter = Counter()

        def one(customer: Customer, index: int) -> None:
            status, _, order = customer.place()
            if status != WITH_PAYMENT.ok_status:
                problems[f"with-payment HTTP {status}"] += 1
                return
            stack.standin_pay(url, _intent_id(order))
            paid = f"SELECT payment_status = 'paid' FROM orders WHERE id = '{order['orderId']}'"
            if index % 2 == 0:  # the client is first, the webhook follows
                if (answer := customer.mark_paid(order)) != 204:
                    problems[f"PATCH /paid HTTP {answer}"] += 1
                if (answer := customer.webhook(order)) != 200:
                    problems[f"webhook HTTP {answer}"] += 1
            else:  # the webhook is first (and applied), the client follows
                if (answer := customer.webhook(order)) != 200:
                    problems[f"webhook HTTP {answer}"] += 1
                _wait(lambda: db_for_thread().execute(paid).fetchone()[0], 30)
                if (answer := customer.mark_paid(order)) != 400:  # "Order has already been marked as paid"
                    problems[f"PATCH /paid after the webhook: HTTP {answer}"] += 1

        local = threading.local()

        def db_for_thread() -> psycopg.Connection:
            if not hasattr(local, "db"):
                local.db = psycopg.connect(ctx.conninfo, autocommit=True)
            return local.db

        def caller(slot: int) -> None:
            customer = Customer(int(env["PORT"]), ctx.fixture, slot, url, ctx.webhook_secret)
            try:
                for index in range(slot, count, CALLERS):
                    one(customer, index)
            finally:
                customer.close()
                if hasattr(local, "db"):
                    local.db.close()

        with ThreadPoolExecutor(CALLERS) as pool:
            list(pool.map(caller, range(CALLERS)))
        _wait(lambda: db.execute("SELECT count(*) FROM stripe_events WHERE processed_at IS NULL").fetchone()[0] == 0,
              60)
        after = _reading(meters)
        statuses = _statuses_since(db, since)
        calls = stack.standin_calls(url)
    paid = statuses.pop("confirmed/paid", 0)
    problems.update(statuses)
    spent = sum(n for endpoint, n in calls.items() if endpoint != "429")
    result = LevelResult(concurrency=CALLERS, ok=paid, errors=dict(problems), seconds=time.time() - started,
                         p50_ms=None, p99_ms=None,
                         cpu_seconds={n: cpu_delta(before[n], after[n]) for n in meters} | {"client": 0.0})
    per_order = spent / paid if paid else None
    return [Table(
        "budget", "standin",
        f"budget: {count} orders through the seed's flow (create, pay, PATCH /paid and the webhook, half of them "
        f"in each order), Stripe is a stand-in answering after {delay * 1000:.0f} ms",
        "order", [result],
        notes=[f"Stripe calls per paid order: {per_order:.2f} (the aim: at most 2) — {calls}"
               if per_order is not None else f"no order ended paid; Stripe calls: {calls}"],
        extra={"stripe_calls": calls, "stripe_calls_per_paid_order": per_order},
    )]


def rate_limited(ctx) -> list:
    """With-payment orders against a stand-in that refuses calls beyond 25 a second per endpoint."""
    from scenarios import Table

    seconds, delay = ctx.args.duration, ctx.args.standin_delay
    url = f"http://127.0.0.1:{stack.free_port()}"
    env = _env(ctx, url)
    log(f"ratelimit: with-payment for {seconds:g} s at {CALLERS * 2} callers, the stand-in allows "
        f"{STRIPE_RATE_LIMIT} calls a second per endpoint")
    ctx.flush_broker()
    with stack.stripe_standin(url, delay, ctx.env, "--rate-limit", str(STRIPE_RATE_LIMIT)) as standin, \
            stack.web(env) as web, stack.worker(env) as worker, psycopg.connect(ctx.conninfo, autocommit=True) as db:
        since, stock_before = db.execute("SELECT now()").fetchone()[0], _stock(db)
        meters = _meters(ctx, web=web, worker=worker, stripe=standin)
        before, started = _reading(meters), time.time()
        answers: Counter = Counter()
        placed: list[dict] = []
        deadline = time.monotonic() + seconds

        def caller(slot: int) -> None:
            customer = Customer(int(env["PORT"]), ctx.fixture, slot, url, ctx.webhook_secret)
            try:
                while time.monotonic() < deadline:
                    status, headers, body = customer.place()
                    if status == WITH_PAYMENT.ok_status:
                        placed.append(dict(body, slot=slot))
                        answers["placed"] += 1
                    elif status == 503 and headers.get("Retry-After"):
                        answers["503 with Retry-After"] += 1
                        time.sleep(float(headers["Retry-After"]))  # as a well-behaved client does
                    else:
                        answers[f"HTTP {status}: {json.dumps(body)[:100]}"] += 1
            finally:
                customer.close()

        with ThreadPoolExecutor(CALLERS * 2) as pool:
            list(pool.map(caller, range(CALLERS * 2)))
        placing = time.time() - started
        log(f"  ratelimit: {dict(answers)}; paying the {len(placed)} placed and telling the service")

        def settle(slot: int) -> None:  # each caller settles its own orders, with its customer's token
            customer = Customer(int(env["PORT"]), ctx.fixture, slot, url, ctx.webhook_secret)
            try:
                for order in (order for order in placed if order["slot"] == slot):
                    stack.standin_pay(url, _intent_id(order))
                    answers[f"PATCH /paid {customer.mark_paid(order)}"] += 1  # 204, or 503: the webhook confirms
                    if customer.webhook(order) != 200:
                        answers["webhook refused"] += 1
            finally:
                customer.close()

        with ThreadPoolExecutor(CALLERS * 2) as pool:
            list(pool.map(settle, range(CALLERS * 2)))
        ids = [order["orderId"] for order in placed]
        _wait(lambda: db.execute("SELECT count(*) FROM orders WHERE id = ANY(%s) AND payment_status = 'paid'",
                                 (ids,)).fetchone()[0] == len(ids), 120)
        after = _reading(meters)
        statuses = _statuses_since(db, since)
        held, stock_after = _held_since(db, since), _stock(db)
        calls = stack.standin_calls(url)
    paid = statuses.pop("confirmed/paid", 0)
    errors = {k: v for k, v in answers.items() if not k.startswith(("placed", "503 with", "PATCH /paid 204",
                                                                        "PATCH /paid 503"))}
    # A refused order is canceled with its stock back (the stock check below); anything else is stuck.
    refused = statuses.pop("canceled/failed", 0)
    if refused > answers["503 with Retry-After"]:
        errors["canceled orders beyond the 503s"] = refused - answers["503 with Retry-After"]
    errors.update({f"order {k}": v for k, v in statuses.items()})
    if stock_before - stock_after != held:
        errors[f"stock taken {stock_before - stock_after} != held by live orders {held}"] = 1
    result = LevelResult(concurrency=CALLERS * 2, ok=paid, errors=errors, seconds=placing, p50_ms=None,
                         p99_ms=None,
                         cpu_seconds={n: cpu_delta(before[n], after[n]) for n in meters} | {"client": 0.0})
    return [Table(
        "ratelimit", "standin",
        f"ratelimit: with-payment for {seconds:g} s, Stripe is a stand-in answering after {delay * 1000:.0f} ms "
        f"and allowing {STRIPE_RATE_LIMIT} calls a second per endpoint (429 beyond)",
        "order", [result],
        notes=[f"answers: {dict(answers)}",
               f"Stripe calls: {calls}; every placed order ended paid: {paid == len(placed)}; stock taken = "
               f"held by live orders: {stock_before - stock_after == held} ({held} units)"],
        extra={"answers": dict(answers), "stripe_calls": calls},
    )]


def expiry(ctx) -> list:
    """1,000 abandoned orders expired, then 1,000 pending orders reconciled, by the Procfile's worker."""
    from scenarios import Table

    count, delay = ctx.args.abandoned, ctx.args.standin_delay
    tables = []
    expired = "SELECT count(*) FROM orders WHERE id = ANY(%s) AND status = 'expired'"
    for job, task, age, progress in (
        # Expiry: each order is done once expired. Reconciliation stamps a batch before it asks, so an
        # order is done once the stand-in has answered its retrieve.
        ("expiry", Tasks.EXPIRE_UNPAID_ORDERS, "2 hours",
         lambda db, ids, url: db.execute(expired, (ids,)).fetchone()[0]),
        ("reconciliation", Tasks.RECONCILE_PAYMENTS, "10 minutes",
         lambda db, ids, url: stack.standin_calls(url).get("GET /v1/payment_intents/:id", 0)),
    ):
        url = f"http://127.0.0.1:{stack.free_port()}"
        env = _env(ctx, url)
        log(f"expiry: {count} orders for {job}, Stripe is the stand-in answering after {delay:g} s "
            f"({STRIPE_RATE_LIMIT}/s per endpoint)")
        ctx.flush_broker()
        with stack.stripe_standin(url, delay, ctx.env) as standin, \
                psycopg.connect(ctx.conninfo, autocommit=True) as db:
            with stack.web(env):
                from scenarios import place_online_orders
                placed = place_online_orders(int(env["PORT"]), ctx.fixture, count)
            ids = [uuid.UUID(order["orderId"]) for order in placed]
            # Abandoned long ago (expiry) or a while ago (reconciliation): nobody paid any of them.
            db.execute(f"UPDATE orders SET created_at = created_at - interval '{age}' WHERE id = ANY(%s)", (ids,))
            stack.standin_rate_limit(url, STRIPE_RATE_LIMIT)
            held_before = db.execute("SELECT coalesce(sum(quantity), 0) FROM order_items WHERE order_id = ANY(%s)",
                                     (ids,)).fetchone()[0]
            stock_before = _stock(db)
            with stack.worker(env) as worker:
                meters = _meters(ctx, worker=worker, stripe=standin)
                before, started = _reading(meters), time.time()
                queue = TaskQueue(Settings.from_env(env))
                interval = int(env.get("MAINTENANCE_INTERVAL_SECONDS", 60))
                next_run = 0.0
                while progress(db, ids, url) < count and time.time() - started < 300:
                    if time.time() - started >= next_run:  # as beat would, once per maintenance interval
                        queue.enqueue(task)
                        next_run += interval
                    time.sleep(0.2)
                seconds = time.time() - started
                after = _reading(meters)
            done = progress(db, ids, url)
            released = _stock(db) - stock_before
            calls = stack.standin_calls(url)
        errors = {"not done within 300 s": count - done} if done < count else {}
        if job == "expiry" and released != held_before:
            errors[f"stock released {released} of {held_before}"] = 1
        result = LevelResult(concurrency=int(env.get("PROVIDER_CONCURRENCY", 6)), ok=done, errors=errors,
                             seconds=seconds, p50_ms=None, p99_ms=None,
                             cpu_seconds={n: cpu_delta(before[n], after[n]) for n in meters} | {"client": 0.0})
        tables.append(Table(
            "expiry", job,
            f"{job}: {count} orders worked off by `worker` (one run per maintenance interval, as beat starts "
            f"them), Stripe is a stand-in answering after {delay * 1000:.0f} ms, {STRIPE_RATE_LIMIT}/s per "
            f"endpoint; conc = Stripe calls at once",
            "order", [result],
            notes=[f"{done} of {count} in {seconds:.1f} s = {done / seconds * 60:.0f} a minute (the aim: 1,000); "
                   f"Stripe calls: {calls}" + (f"; stock released: {released} units" if job == "expiry" else "")],
            extra={"stripe_calls": calls, "per_minute": round(done / seconds * 60)},
        ))
    return tables
