"""Load benchmark of the Procfile's processes: orders/s, events/s, latency and CPU per operation, with
cash-on-delivery orders next to the ceiling of the same database work in plain psycopg. See bench/README.md.

    .venv/bin/python bench/run.py [--only cod,payment,webhook,worker] [--duration 8] [--concurrency 1,8,32]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This checkout's code, even when the venv was installed (editable) from another checkout.
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import stack  # noqa: E402
from driver import processes_cpu  # noqa: E402
from scenarios import SCENARIOS, Context, Table  # noqa: E402
from stack import log  # noqa: E402
from workload import seed  # noqa: E402

from orders_service.config import Settings  # noqa: E402
from orders_service.migrate import upgrade  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# A database index of the machine's Redis of its own, emptied before and after (the tests use 1-15 minus this).
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")
# BENCH_DB names another, for a second run at the same time (with BENCH_BROKER_URL on another Redis database).
BENCH_DB = os.environ.get("BENCH_DB", "orders_bench")
JWT_SECRET = "bench-jwt-secret-not-for-production"
WEBHOOK_SECRET = "whsec_bench"
STRIPE_KEY = "sk_test_bench"  # localstripe takes any sk_ key; the stand-in checks none


# --- the database ---------------------------------------------------------------------------------

def database_urls(name: str) -> tuple[str, str]:
    """(SQLAlchemy URL, libpq conninfo) of database `name` on the admin URL's server."""
    conninfo = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    return conninfo.replace("postgresql://", "postgresql+psycopg://", 1), conninfo


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database(name: str) -> None:
    drop_database(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def postgres_cpu() -> dict[int, float]:
    """PostgreSQL's work for this run: the backends connected to the bench database, plus the
    background processes (WAL writer, checkpointer, …) that work for every database. Backends of
    other databases, such as a test run's, are left out."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        pids = {pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s OR backend_type <> 'client backend'",
            (BENCH_DB,),
        )}
    return processes_cpu(lambda pid, _session: pid in pids)


# --- reporting ------------------------------------------------------------------------------------

# Above this share of the machine going to nothing the bench meters, a level is flagged.
UNMETERED_WARNING = 0.15
# The CPU columns: web always (a raw table shows "-"), worker and stripe only in tables that meter them.
CPU_COLUMNS = {"web": "web CPU", "worker": "worker", "stripe": "stripe", "balancer": "haproxy",
               "pgbouncer": "pgbouncer", "postgres": "pg CPU", "client": "client", "machine": "machine"}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(table: Table) -> None:
    results, unit = table.results, table.unit
    meters = [m for m in CPU_COLUMNS if m == "web" or any(m in r.cpu_seconds for r in results)]
    print(f"\n{table.title}")
    print(f"{'conc':>5} {unit + 's/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          + " ".join(f"{CPU_COLUMNS[m]:>9}" for m in meters) + f" {'busy':>5}")
    print(f"{'':>42} " + " ".join(f"{'ms/' + unit:>9}" for _ in meters))
    for r in results:
        cpu = " ".join(f"{_ms(r.cpu_per_op(m)) if m in r.cpu_seconds else '-':>9}" for m in meters)
        busy = r.cpu_seconds["machine"] / r.seconds / os.cpu_count()
        print(f"{r.concurrency:>5} {r.per_second:>10.1f} {_num(r.p50_ms):>8} {_num(r.p99_ms):>8} "
              f"{sum(r.errors.values()):>7} {cpu} {busy:>5.0%}")
    for r in results:
        for error, count in sorted(r.errors.items(), key=lambda item: -item[1])[:5]:
            print(f"  concurrency {r.concurrency}: {count} x {error}")
        # What no meter accounts for: other work on the machine (a test run), or PostgreSQL backends that
        # exited during the level (connections a pool opened and closed again), whose CPU no meter sees.
        unmetered = (r.cpu_seconds["machine"] - sum(s for m, s in r.cpu_seconds.items() if m != "machine")) \
            / r.seconds / os.cpu_count()
        if unmetered > UNMETERED_WARNING:
            print(f"  concurrency {r.concurrency}: {unmetered:.0%} of the machine went to nothing metered here: "
                  "other processes (a test run?) or PostgreSQL connections opened and closed during the level")
    for note in table.notes:
        print(f"  {note}")


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_json(document: dict, path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(".json.tmp")  # renamed into place: never a half-written file
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)


def report(tables: list[Table], args, env: dict) -> dict:
    """Print the tables and return everything as one JSON-able document."""
    document = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "web_command": stack.procfile_command("web"),
        "worker_command": stack.procfile_command("worker"),
        # What the Procfile's ${…:-default}s came to (the environment's values, else the Procfile's defaults).
        "web_env": {name: stack.procfile_setting(env, name) for name in ("WEB_CONCURRENCY", "WEB_THREADS")},
        "scenarios": {},
    }
    for table in tables:
        print_table(table)
        scenario = document["scenarios"].setdefault(table.scenario, {})
        scenario.update(table.extra)
        scenario[table.series] = [r.as_dict() for r in table.results]
        if table.notes:
            scenario.setdefault("notes", {})[table.series] = table.notes
    return document


# --- main -----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per concurrency level (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unreported warm-up seconds (default 2)")
    parser.add_argument("--concurrency", default="1,8,32",
                        help="levels for cod, payment (localstripe) and webhook (default 1,8,32)")
    parser.add_argument("--hotpath-concurrency", default="16,32", help="levels of hotpath (default 16,32)")
    parser.add_argument("--hotpath-duration", type=float, default=6.0,
                        help="seconds per hotpath level and stack (default 6)")
    parser.add_argument("--hotpath-repeat", type=int, default=1,
                        help="runs of each hotpath level per stack, interleaved, pooled (default 1)")
    parser.add_argument("--spread-products", type=int, default=200,
                        help="products of hotpath's spread catalog (default 200)")
    parser.add_argument("--hot-products", type=int, default=5, help="products of hotpath's hot set (default 5)")
    parser.add_argument("--reference", default="sync:2",
                        help="gunicorn setting of hotpath's bare reference: CLASS:WORKERS or "
                             "gthread:WORKERS:THREADS (default sync:2)")
    parser.add_argument("--standin-concurrency", type=int, default=64,
                        help="the level for with-payment against the stand-in (default 64)")
    parser.add_argument("--standin-delay", type=float, default=0.3,
                        help="seconds the stand-in waits before answering (default 0.3)")
    parser.add_argument("--capture-concurrency", default="16,64",
                        help="levels of capture: admins shipping at once (default 16,64)")
    parser.add_argument("--worker-concurrency", default="2,8", help="WORKER_CONCURRENCY levels (default 2,8)")
    parser.add_argument("--events", type=int, default=500,
                        help="events per worker level against localstripe (default 500)")
    parser.add_argument("--standin-events", type=int, default=100,
                        help="events per worker level against the stand-in, whose delay sets the pace (default 100)")
    parser.add_argument("--budget-orders", type=int, default=60,
                        help="orders through the seed's flow in budget (default 60)")
    parser.add_argument("--abandoned", type=int, default=1000,
                        help="orders to expire, and to reconcile, in expiry (default 1000)")
    parser.add_argument("--outbound-repeat", type=int, default=1,
                        help="runs of each outbound level with no endpoint and with the dead one, interleaved, "
                             "pooled (default 1)")
    parser.add_argument("--hosts-concurrency", default="8,32",
                        help="levels of hosts: direct, through PgBouncer, through HAProxy to one host and to two "
                             "(default 8,32)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"the JSON report (default {RESULTS})")
    parser.add_argument("--keep-db", action="store_true", help=f"leave the {BENCH_DB} database for inspection")
    args = parser.parse_args()
    # A SIGTERM (timeout, kill) unwinds like Ctrl-C: the processes started are stopped, the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.levels = [int(level) for level in args.concurrency.split(",")]
    args.hotpath_levels = [int(level) for level in args.hotpath_concurrency.split(",")]
    args.worker_levels = [int(level) for level in args.worker_concurrency.split(",")]
    args.hosts_levels = [int(level) for level in args.hosts_concurrency.split(",")]
    args.capture_levels = [int(level) for level in args.capture_concurrency.split(",")]
    only = args.only.split(",")
    if unknown := set(only) - set(SCENARIOS):
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")

    sqlalchemy_url, conninfo = database_urls(BENCH_DB)
    with tempfile.TemporaryDirectory(prefix="orders-bench-") as instance:
        env = dict(
            os.environ, APP_ENV="test", DATABASE_URL=sqlalchemy_url, JWT_SECRET_KEY=JWT_SECRET,
            STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, CELERY_BROKER_URL=BROKER_URL,
            # Nothing the service writes to disk (an embedded broker, development files) lands in the checkout.
            ORDERS_INSTANCE_DIR=instance,
            # A handful of benchmark customers place thousands of orders a minute: the rate limits still
            # run (their cost is measured), with ceilings no scenario reaches.
            ORDER_RATE_LIMIT="10000000/minute", AUTH_RATE_LIMIT="10000000/minute",
            PATH=os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ["PATH"]]),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        log(f"creating database {BENCH_DB} and seeding it; emptying {BROKER_URL}")
        create_database(BENCH_DB)
        stack.flush_redis(BROKER_URL)
        try:
            upgrade(sqlalchemy_url)
            ctx = Context(args=args, env=env, fixture=seed(Settings.from_env(env)), conninfo=conninfo,
                          postgres=postgres_cpu, webhook_secret=WEBHOOK_SECRET)
            tables = [table for name in SCENARIOS if name in only for table in SCENARIOS[name](ctx)]
            write_json(report(tables, args, env), args.output)
            print(f"\nwritten to {args.output}")
        finally:
            if not args.keep_db:
                drop_database(BENCH_DB)
            stack.flush_redis(BROKER_URL)


if __name__ == "__main__":
    main()
