"""Where a cash-on-delivery order's time goes inside one process: the service's `POST /api/orders`
and the bare reference's (bench/reference/app.py), each through Flask's test client against
PostgreSQL, one request at a time (no gunicorn, no concurrency, no lock waits).

    .venv/bin/python bench/profile_hotpath.py [--requests 1000] [--profile cprofile|pyinstrument|none]
                                              [--ablate] [--components] [--top 40] [--dump FILE]

1. Times N requests to each app (wall clock and this process's CPU per order).
2. With `--ablate`, times the service again with one piece switched off at a time (the log line,
   the metrics, the pool's pre-ping, the outbox row, the outbound event, …): the difference is what
   that piece costs. Switched off in this process only, to measure: nothing here changes the service.
3. With `--components`, times each piece on its own (JWT, body parsing with and without a schema
   built per request, the log line, the metrics, place_order with and without the outbox row or the
   outbound event, pre-ping or an Idempotency-Key, the reference's transaction, a pool checkout) as the least CPU
   over several batches, and checks that SQLAlchemy's compiled cache is hit for every statement.
4. With `--profile`, profiles N service requests (cProfile: the top functions by own time and the
   cumulative time of the pieces above; pyinstrument: its call tree).

It uses the bench's database `orders_bench` (dropped and recreated, then dropped again unless --keep-db).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import importlib.util
import io
import itertools
import json
import logging
import os
import pstats
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

INSTANCE = tempfile.mkdtemp(prefix="orders-profile-")
os.environ.update(APP_ENV="test", JWT_SECRET_KEY="bench-jwt-secret-not-for-production",
                  STRIPE_SECRET_KEY="sk_test_bench", STRIPE_WEBHOOK_SECRET="whsec_bench",
                  CELERY_BROKER_URL="redis://127.0.0.1:6379/12", STRIPE_API_BASE="http://127.0.0.1:9",
                  ORDERS_INSTANCE_DIR=INSTANCE)

import run  # noqa: E402  (the bench's database helpers)

SQLALCHEMY_URL, CONNINFO = run.database_urls(run.BENCH_DB)
os.environ["DATABASE_URL"] = SQLALCHEMY_URL

from workload import ADDRESS, random_orders, seed, seed_products  # noqa: E402

from orders_service.app import create_app  # noqa: E402
from orders_service.config import Settings  # noqa: E402
from orders_service.migrate import upgrade  # noqa: E402
from orders_service.ops.logs import configure_logging  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def requests_for(fixture, slots: int = 8) -> list[tuple[bytes, dict]]:
    return [
        (json.dumps({"customerId": str(customer_id), "deliveryMethodId": str(fixture.delivery_method_id),
                     "deliveryAddress": ADDRESS,
                     "items": [{"productId": str(pid), "quantity": q} for pid, q in lines]}).encode(),
         {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        for slot in range(slots) for customer_id, token, lines in random_orders(fixture, slot)
    ]


def place(client, bodies, n: int) -> tuple[float, float]:
    """n orders: (wall ms, CPU ms) per order."""
    cycle = itertools.cycle(bodies)
    wall, started = time.perf_counter(), cpu()
    for _ in range(n):
        body, headers = next(cycle)
        response = client.post("/api/orders", data=body, headers=headers)
        if response.status_code != 204:
            raise RuntimeError(f"{response.status_code}: {response.get_data()[:300]!r}")
    return (time.perf_counter() - wall) * 1000 / n, (cpu() - started) * 1000 / n


def reference_app():
    spec = importlib.util.spec_from_file_location("reference_app", ROOT / "bench" / "reference" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the ORM resolves the annotations through it
    spec.loader.exec_module(module)
    return module.app


# --- ablations: one piece of the service switched off, in this process only -----------------------

@contextlib.contextmanager
def no_log_line():
    access = logging.getLogger("orders_service.access")
    access.disabled = True
    try:
        yield
    finally:
        access.disabled = False


@contextlib.contextmanager
def no_metrics():
    from orders_service.ops import metrics

    class Null:
        def labels(self, *a, **k):
            return self

        def inc(self, *a):
            pass

        def observe(self, *a):
            pass

    saved = {name: getattr(metrics, name) for name in ("REQUESTS", "LATENCY", "ORDERS_PLACED")}
    for name in saved:
        setattr(metrics, name, Null())
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(metrics, name, value)


@contextlib.contextmanager
def no_pre_ping(app):
    pool = app.extensions["orders.runtime"].engine.pool
    saved, pool._pre_ping = pool._pre_ping, False
    try:
        yield
    finally:
        pool._pre_ping = saved


@contextlib.contextmanager
def no_outbox():
    from orders_service.orders import actions
    saved, actions.notify = actions.notify, lambda *a, **k: None
    try:
        yield
    finally:
        actions.notify = saved


@contextlib.contextmanager
def no_outbound_event():
    from orders_service.orders import actions
    saved, actions._publish = actions._publish, lambda *a, **k: None
    try:
        yield
    finally:
        actions._publish = saved


@contextlib.contextmanager
def nothing_but_the_transaction(app):
    with no_log_line(), no_metrics(), no_pre_ping(app), no_outbox():
        yield


def profile(kind: str, client, bodies, n: int, top: int, dump: Path | None = None) -> None:
    if kind == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        place(client, bodies, n)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        return
    profiler = cProfile.Profile()
    profiler.enable()
    place(client, bodies, n)
    profiler.disable()
    if dump:
        profiler.dump_stats(dump)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())
    # Cumulative time of the pieces of a request, per order.
    pieces = {
        "flask full dispatch (wsgi_app)": ("flask/app.py", "wsgi_app"),
        "JWT verify_jwt_in_request": ("view_decorators.py", "verify_jwt_in_request"),
        "webargs/smorest parse (all locations)": ("webargs/core.py", "parse"),
        "marshmallow Schema.load": ("marshmallow/schema.py", "load"),
        "place_order": ("orders/service.py", "place_order"),
        "  reserve_stock": ("orders/stock.py", "reserve_stock"),
        "  notify (outbox)": ("notifications/outbox.py", "notify"),
        "  _publish (outbound event)": ("orders/actions.py", "_publish"),
        "  _price_lines": ("orders/service.py", "_price_lines"),
        "Session.execute": ("orm/session.py", "execute"),
        "  statement compile (_compile_w_cache)": ("sql/elements.py", "_compile_w_cache"),
        "  psycopg cursor.execute": ("psycopg/cursor.py", "execute"),
        "  psycopg executemany": ("psycopg/cursor.py", "executemany"),
        "pool checkout (incl. pre-ping)": ("sqlalchemy/pool/base.py", "_checkout"),
        "  pre-ping (do_ping)": ("engine/default.py", "do_ping"),
        "commit": ("orm/session.py", "commit"),
        "session close": ("orm/session.py", "close"),
        "after_request _finish (metrics + log)": ("ops/logs.py", "_finish"),
        "  Logger.info (JSON line)": ("logging/__init__.py", "info"),
        "  prometheus inc": ("prometheus_client/metrics.py", "inc"),
        "  prometheus observe": ("prometheus_client/metrics.py", "observe"),
        "  prometheus labels": ("prometheus_client/metrics.py", "labels"),
        "before_request _start": ("ops/logs.py", "_start"),
        "response jsonify/make_response": ("flask/app.py", "make_response"),
    }
    print(f"cumulative per order (profiled, so inflated), {n} orders:")
    for label, (path, func) in pieces.items():
        total = sum(ct for (file, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items()
                    if name == func and file.endswith(path))
        print(f"  {label:<42} {total * 1000 / n:7.3f} ms")


def best_of(fn, batch: int = 200, rounds: int = 9) -> float:
    """CPU ms per call: the least over `rounds` batches of `batch` calls (a busy machine only ever
    adds time, so the least batch is the closest to the cost)."""
    best = float("inf")
    for _ in range(rounds):
        started = cpu()
        for _ in range(batch):
            fn()
        best = min(best, (cpu() - started) * 1000 / batch)
    return best


def components(service, reference, bodies, fixture) -> None:
    """What each piece of the service's order request costs, on its own (CPU ms per call, best of 9)."""
    from flask import g
    from flask_jwt_extended import verify_jwt_in_request
    from sqlalchemy import event

    from orders_service.api.blueprint import Blueprint
    from orders_service.api.orders.schemas import IdempotencyHeaderSchema, OrderInSchema
    from orders_service.api.request_log import access_log
    from orders_service.api.security import _actor_from_claims
    from orders_service.auth.actor import Actor
    from orders_service.money import currency
    from orders_service.ops import metrics
    from orders_service.orders import service as orders
    from orders_service.orders.models import PaymentMethod

    USD = currency("USD")
    rows = []
    cycle = itertools.cycle(bodies)
    body, headers = bodies[0]
    data = json.loads(body)
    service_client, reference_client = service.test_client(), reference.test_client()

    def post(client):
        b, h = next(cycle)
        return lambda: client.post("/api/orders", data=b, headers=h)

    rows.append(("whole request, service (test client)", best_of(lambda: post(service_client)(), 100, 7)))
    rows.append(("whole request, reference (test client)", best_of(lambda: post(reference_client)(), 100, 7)))

    with service.test_request_context("/api/orders", method="POST", data=body, headers=headers):
        rows.append(("JWT: verify_jwt_in_request + claims", best_of(lambda: (verify_jwt_in_request(),
                                                                               _actor_from_claims()))))
        parser = Blueprint.ARGUMENTS_PARSER
        rows.append(("body: webargs parse(OrderInSchema class)",
                     best_of(lambda: parser.parse(OrderInSchema, location="json"))))
        instance = OrderInSchema()
        rows.append(("body: webargs parse(OrderInSchema instance)",
                     best_of(lambda: parser.parse(instance, location="json"))))
        rows.append(("body: OrderInSchema().load (new schema)", best_of(lambda: OrderInSchema().load(data))))
        rows.append(("body: instance.load (schema built once)", best_of(lambda: instance.load(data))))
        rows.append(("headers: webargs parse(IdempotencyHeaderSchema)",
                     best_of(lambda: parser.parse(IdempotencyHeaderSchema, location="headers"))))
        g.request_id, g.order_id = "0" * 32, None
        rows.append(("access log line (JSON, to /dev/null)", best_of(lambda: access_log.info(
            "request", extra={"method": "POST", "path": "/api/orders", "status": 204, "duration_ms": 12.34})),
            ))
        rows.append(("metrics: 2 counters + 1 histogram", best_of(lambda: (
            metrics.REQUESTS.labels("POST", "/api/orders", 204).inc(),
            metrics.LATENCY.labels("POST", "/api/orders").observe(0.0123),
            metrics.ORDERS_PLACED.labels("cash_on_delivery").inc()))))

    # The transaction alone, no HTTP: the service's place_order, with and without the outbox row, and
    # the reference's; and the pool checkout with and without pre-ping.
    session_factory = service.extensions["orders.runtime"].session_factory
    engine = service.extensions["orders.runtime"].engine
    parsed = itertools.cycle([OrderInSchema().load(json.loads(b)) for b, _ in bodies])
    actors = {c: Actor(c, "customer") for c, _ in fixture.customers}

    def place_service():
        d = next(parsed)
        with session_factory() as session:
            orders.place_order(session, actors[d["customerId"]], d, PaymentMethod.CASH_ON_DELIVERY, USD)

    ref_module = sys.modules["reference_app"]
    ref_sessions = ref_module.sessionmaker(ref_module.create_engine(SQLALCHEMY_URL), expire_on_commit=False)
    ref_parsed = itertools.cycle([ref_module.ORDER_IN.load(json.loads(b)) for b, _ in bodies])

    def place_reference():
        with ref_sessions() as session:
            ref_module.place_order(session, next(ref_parsed))

    def place_with_key():
        d = next(parsed)
        with session_factory() as session:
            orders.place_order(session, actors[d["customerId"]], d, PaymentMethod.CASH_ON_DELIVERY, USD,
                               idempotency_key=uuid.uuid4().hex, idempotency_scope="cash_on_delivery")

    rows.append(("place_order (service, 1 thread)", best_of(place_service, 100, 7)))
    with no_outbox():
        rows.append(("place_order without the outbox row", best_of(place_service, 100, 7)))
    with no_outbound_event():
        rows.append(("place_order without the outbound event", best_of(place_service, 100, 7)))
    with no_pre_ping(service):
        rows.append(("place_order without pre-ping", best_of(place_service, 100, 7)))
    rows.append(("place_order with an Idempotency-Key", best_of(place_with_key, 100, 7)))
    rows.append(("place_order (reference's, 1 thread)", best_of(place_reference, 100, 7)))

    def checkout():
        with engine.connect():
            pass
    rows.append(("pool checkout + return, pre-ping", best_of(checkout)))
    with no_pre_ping(service):
        rows.append(("pool checkout + return, no pre-ping", best_of(checkout)))

    # Is SQLAlchemy's compiled cache hit for every statement of an order, once warm?
    stats = collections.Counter()

    def count(conn, cursor, statement, parameters, context, executemany):
        stats[context.cache_hit.name if context is not None else "no context"] += 1
    event.listen(engine, "after_cursor_execute", count)
    for _ in range(50):
        place_service()
    event.remove(engine, "after_cursor_execute", count)

    print("components, CPU ms per call (best of several batches, so a busy machine inflates them less):")
    for label, ms in rows:
        print(f"  {label:<50} {ms:7.3f}")
    print(f"  SQLAlchemy compiled cache over 50 orders (statements): {dict(stats)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", choices=("cprofile", "pyinstrument", "none"), default="cprofile")
    parser.add_argument("--ablate", action="store_true")
    parser.add_argument("--components", action="store_true", help="time each piece of the request on its own")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", type=Path, help="write the cProfile stats to this file (for pstats)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    run.create_database(run.BENCH_DB)
    try:
        upgrade(SQLALCHEMY_URL)
        settings = Settings.from_env()
        fixture = seed(settings)
        import dataclasses
        fixture = dataclasses.replace(fixture, product_ids=seed_products(settings, 200, "spread"))
        bodies = requests_for(fixture)

        configure_logging()
        logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # the JSON line is still formatted
        service = create_app(settings)
        reference = reference_app()
        clients = {"service": service.test_client(), "reference": reference.test_client()}
        n = args.requests
        for client in clients.values():
            place(client, bodies, 200)  # warm: pools, compiled caches, prepared statements
        print(f"{n} orders, one at a time, in-process (Flask test client, no gunicorn):")
        for round_ in range(2):
            for name, client in clients.items():
                wall, cpu_ms = place(client, bodies, n)
                print(f"  {name:<10} round {round_ + 1}: {wall:6.3f} ms wall, {cpu_ms:6.3f} ms CPU per order")
        if args.ablate:
            print("the service with one piece switched off (CPU ms per order; the difference is its cost):")
            variants = {
                "as is": contextlib.nullcontext,
                "no access log line": no_log_line,
                "no metrics": no_metrics,
                "no pool pre-ping": lambda: no_pre_ping(service),
                "no outbox row": no_outbox,
                "no outbound event": no_outbound_event,
                "none of the four": lambda: nothing_but_the_transaction(service),
            }
            for round_ in range(2):
                for label, switch in variants.items():
                    with switch():
                        wall, cpu_ms = place(clients["service"], bodies, n)
                    print(f"  {label:<20} round {round_ + 1}: {wall:6.3f} ms wall, {cpu_ms:6.3f} ms CPU")
                wall, cpu_ms = place(clients["reference"], bodies, n)
                print(f"  {'(reference)':<20} round {round_ + 1}: {wall:6.3f} ms wall, {cpu_ms:6.3f} ms CPU")
        if args.components:
            components(service, reference, bodies, fixture)
        if args.profile != "none":
            profile(args.profile, clients["service"], bodies, n, args.top, args.dump)
        service.extensions["orders.runtime"].engine.dispose()
    finally:
        if not args.keep_db:
            run.drop_database(run.BENCH_DB)


if __name__ == "__main__":
    main()
