"""Load benchmark: orders/s, latency and CPU per order of the Procfile's `web` process, next to the
ceiling of the same database work done in plain psycopg. See bench/README.md.

    .venv/bin/python bench/run.py [--duration 8] [--concurrency 1,8,32] [--scenario NAME] [--keep-db]
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from driver import LevelResult, machine_cpu, processes_cpu, run_level
from orders_service.config import Settings
from orders_service.migrate import upgrade
from workload import SCENARIOS, Fixture, HttpOrders, Scenario, seed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "orders_bench"
JWT_SECRET = "bench-jwt-secret-not-for-production"


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout is only the report."""
    print(message, file=sys.stderr, flush=True)


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


def postgres_cpu() -> float:
    """PostgreSQL's work for this run: the backends connected to the bench database, plus the
    background processes (WAL writer, checkpointer, …) that work for every database. Backends of
    other databases, such as a test run's, are left out."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        pids = {pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s OR backend_type <> 'client backend'",
            (BENCH_DB,),
        )}
    return processes_cpu(lambda pid, _session: pid in pids)


# --- the server -----------------------------------------------------------------------------------

def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(f"no {name!r} process in the Procfile")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, stderr) -> subprocess.Popen:
    """The Procfile's `web` command as a platform runs it, in a session of its own so that its whole
    process tree can be metered (by session id) and stopped (by process group)."""
    return subprocess.Popen(
        ["bash", "-c", f"exec {procfile_command('web')}"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL,  # the access log: one line per request
        stderr=stderr, start_new_session=True,
    )


def wait_healthy(server: subprocess.Popen, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the web process exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url}/healthz did not answer within {timeout} s")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM lets gunicorn's master stop its workers; SIGKILL the group if that takes too long."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


# --- measuring ------------------------------------------------------------------------------------

def measure(label: str, make_caller, levels: list[int], duration: float, warmup: float,
            meters: dict) -> list[LevelResult]:
    # An unreported warm-up fills connection pools and caches (SQLAlchemy's compiled statements,
    # psycopg's prepared statements) so that the first level is not penalised.
    run_level(make_caller, max(levels), warmup, meters)
    results = []
    for concurrency in levels:
        result = run_level(make_caller, concurrency, duration, meters)
        log(f"  {label:<8} concurrency {concurrency:>3}: {result.per_second:8.1f}/s, "
            f"{sum(result.errors.values())} errors")
        results.append(result)
    return results


def measure_service(scenarios: dict[str, Scenario], fixture: Fixture, env: dict, levels: list[int],
                    duration: float, warmup: float) -> dict[str, list[LevelResult]]:
    port = int(env["PORT"])
    with tempfile.TemporaryFile() as server_log:
        server = start_server(env, server_log)
        try:
            wait_healthy(server, f"http://127.0.0.1:{port}")
            meters = {
                # The gunicorn session: master and workers, never the load generator.
                "web": lambda: processes_cpu(lambda _pid, session: session == server.pid),
                "postgres": postgres_cpu,
                "machine": machine_cpu,
            }
            results = {}
            for name, scenario in scenarios.items():
                log(f"service: {name}, POST {scenario.path} on port {port}")
                make_caller = functools.partial(HttpOrders, port, scenario, fixture)
                results[name] = measure("service", make_caller, levels, duration, warmup, meters)
            return results
        except BaseException:
            server_log.seek(0)
            log(server_log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            stop_server(server)


def measure_raw(scenarios: dict[str, Scenario], fixture: Fixture, conninfo: str, levels: list[int],
                duration: float, warmup: float) -> dict[str, list[LevelResult]]:
    """Runs with the server stopped: only PostgreSQL and the client use the machine."""
    meters = {"postgres": postgres_cpu, "machine": machine_cpu}
    results = {}
    for name, scenario in scenarios.items():
        if scenario.raw is not None:
            log(f"raw ceiling: {name} in plain psycopg")
            make_caller = functools.partial(scenario.raw, conninfo, fixture)
            results[name] = measure("raw", make_caller, levels, duration, warmup, meters)
    return results


# --- reporting ------------------------------------------------------------------------------------

def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(title: str, unit: str, results: list[LevelResult]) -> None:
    cpu = f"ms/{unit}"
    print(f"\n{title}")
    print(f"{'conc':>5} {unit + 's/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'web CPU':>9} {'pg CPU':>9} {'client':>9} {'machine':>9} {'busy':>5}")
    print(f"{'':>43} {cpu:>9} {cpu:>9} {cpu:>9} {cpu:>9}")
    for r in results:
        web = _ms(r.cpu_per_op("web")) if "web" in r.cpu_seconds else "-"
        busy = r.cpu_seconds["machine"] / r.seconds / os.cpu_count()
        print(f"{r.concurrency:>5} {r.per_second:>10.1f} {_num(r.p50_ms):>8} {_num(r.p99_ms):>8} "
              f"{sum(r.errors.values()):>7} {web:>9} {_ms(r.cpu_per_op('postgres')):>9} "
              f"{_ms(r.cpu_per_op('client')):>9} {_ms(r.cpu_per_op('machine')):>9} {busy:>5.0%}")
    for r in results:
        for error, count in sorted(r.errors.items(), key=lambda item: -item[1])[:5]:
            print(f"  concurrency {r.concurrency}: {count} x {error}")


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_json(report: dict) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    partial = RESULTS.with_suffix(".json.tmp")  # renamed into place: never a half-written latest.json
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(RESULTS)


def report(scenarios: dict[str, Scenario], service: dict, raw: dict, args, env: dict) -> dict:
    """Print the tables and return everything as one JSON-able document."""
    document = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "web_command": procfile_command("web"),
        # None: the Procfile's default.
        "web_env": {name: env.get(name) for name in ("WEB_CONCURRENCY", "WEB_THREADS")},
        "scenarios": {},
    }
    for name, scenario in scenarios.items():
        print_table(f"{name}: POST {scenario.path} through `web` (gunicorn), {args.duration:g} s per level",
                    "order", service[name])
        ratios = {}
        if name in raw:
            print_table(f"{name}: raw ceiling, the same statements in plain psycopg", "txn", raw[name])
            ratios = {s.concurrency: round(s.per_second / r.per_second, 3)
                      for s, r in zip(service[name], raw[name])}
            print("\nservice / raw ceiling, throughput: "
                  + "   ".join(f"conc {conc}: {ratio:.2f}" for conc, ratio in ratios.items()))
        document["scenarios"][name] = {
            "path": scenario.path,
            "service": [r.as_dict() for r in service[name]],
            "raw": [r.as_dict() for r in raw.get(name, [])],
            "service_over_raw": {str(conc): ratio for conc, ratio in ratios.items()},
        }
    return document


# --- main -----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0,
                        help="seconds per concurrency level (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unreported warm-up seconds (default 2)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                        help="scenario to run, repeatable (default: all)")
    parser.add_argument("--keep-db", action="store_true",
                        help=f"leave the {BENCH_DB} database for inspection")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    scenarios = {name: SCENARIOS[name] for name in (args.scenario or sorted(SCENARIOS))}

    sqlalchemy_url, conninfo = database_urls(BENCH_DB)
    env = dict(os.environ, APP_ENV="test", DATABASE_URL=sqlalchemy_url, JWT_SECRET_KEY=JWT_SECRET,
               PORT=str(free_port()), PATH=os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ["PATH"]]))

    log(f"creating database {BENCH_DB} and seeding it")
    create_database(BENCH_DB)
    try:
        upgrade(sqlalchemy_url)
        fixture = seed(Settings.from_env(env))
        service = measure_service(scenarios, fixture, env, levels, args.duration, args.warmup)
        raw = measure_raw(scenarios, fixture, conninfo, levels, args.duration, args.warmup)
        write_json(report(scenarios, service, raw, args, env))
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    finally:
        if not args.keep_db:
            drop_database(BENCH_DB)


if __name__ == "__main__":
    main()
