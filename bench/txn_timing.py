"""Row-lock hold time of the order transaction, measured inside gunicorn's workers (not part of `make bench`).

As a gunicorn config file it times, in every worker, each statement as Python sees it (GIL waits
included), each transaction from BEGIN to the end of COMMIT, and the time from the first
`UPDATE products` (when the order takes its first stock row lock) to the end of COMMIT (when the
locks are released): the lock hold time. Each worker writes its samples to
`$TXN_TIMING_DIR/timing-PID.json` when it stops. Nothing in the service changes: the hooks listen
to SQLAlchemy's Engine and Session classes.

    GUNICORN_CMD_ARGS="-c bench/txn_timing.py" TXN_TIMING_DIR=/tmp/timing make bench BENCH_ARGS="--only hotpath"
    .venv/bin/python bench/txn_timing.py /tmp/timing [FROM_EPOCH TO_EPOCH]   # percentiles, in ms

(`hotpath` hands GUNICORN_CMD_ARGS to the service only; the reference is timed by passing the same
`-c` to its gunicorn by hand.)
"""
from __future__ import annotations

import glob
import json
import os
import sys
import threading
import time

_local = threading.local()
_samples: dict[str, list] = {}  # name -> [(wall clock at the end, seconds)]


def _add(name: str, seconds: float) -> None:
    _samples.setdefault(name, []).append((time.time(), seconds))


def post_worker_init(worker):  # gunicorn hook
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    @event.listens_for(Engine, "begin")
    def _begin(conn):
        _local.begin, _local.update = time.perf_counter(), None

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        _local.statement = time.perf_counter()
        if statement.startswith("UPDATE products") and getattr(_local, "update", None) is None:
            _local.update = _local.statement

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        _add("statement " + " ".join(statement.split()[:3]), time.perf_counter() - _local.statement)

    @event.listens_for(Engine, "commit")
    def _commit(conn):
        _local.commit = time.perf_counter()

    @event.listens_for(Session, "after_commit")
    def _after_commit(session):
        now = time.perf_counter()
        if getattr(_local, "update", None) is not None:
            _add("lock hold (first stock UPDATE -> end of COMMIT)", now - _local.update)
            _add("COMMIT", now - _local.commit)
        if getattr(_local, "begin", None) is not None:
            _add("transaction (BEGIN -> end of COMMIT)", now - _local.begin)
        _local.update = _local.begin = None


def worker_exit(server, worker):  # gunicorn hook
    folder = os.environ.get("TXN_TIMING_DIR", "/tmp")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"timing-{worker.pid}.json"), "w") as f:
        json.dump(_samples, f)


def summarize(folder: str, start: float = 0, end: float = float("inf")) -> dict:
    pooled: dict[str, list[float]] = {}
    for path in glob.glob(os.path.join(folder, "timing-*.json")):
        for name, samples in json.load(open(path)).items():
            pooled.setdefault(name, []).extend(s for t, s in samples if start <= t <= end)
    summary = {}
    for name, values in sorted(pooled.items()):
        values.sort()
        if values:
            def pct(f, values=values):
                return round(values[min(len(values) - 1, int(f * len(values)))] * 1000, 2)
            summary[name] = {"n": len(values), "mean": round(sum(values) / len(values) * 1000, 2),
                             "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)}
    return summary


if __name__ == "__main__":
    args = sys.argv[1:]
    window = [float(a) for a in args[1:3]] if len(args) >= 3 else []
    for name, row in summarize(args[0], *window).items():
        print(f"{name:<55} " + "  ".join(f"{k} {v}" for k, v in row.items()))
