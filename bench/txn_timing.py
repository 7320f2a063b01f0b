"""Row-lock hold time of the order transaction, and how requests spread over the web's processes,
measured inside gunicorn's workers (not part of `make bench`).

As a gunicorn config file it times, in every worker, each statement as Python sees it (GIL waits
included), each transaction from BEGIN to the end of COMMIT, the time from the first
`UPDATE products` (when the order takes its first stock row lock) to the end of COMMIT (when the
locks are released): the lock hold time, and each request from gunicorn's pre_request to its
post_request (the run gate's wait included). Each worker writes its samples to
`$TXN_TIMING_DIR/timing-PID.json` when it stops. Nothing in the service changes: the hooks listen
to SQLAlchemy's Engine and Session classes and to gunicorn's request hooks.

    GUNICORN_CMD_ARGS="-c bench/txn_timing.py" TXN_TIMING_DIR=/tmp/timing make bench BENCH_ARGS="--only hotpath"
    .venv/bin/python bench/txn_timing.py /tmp/timing [FROM_EPOCH TO_EPOCH]   # percentiles, in ms
    .venv/bin/python bench/txn_timing.py /tmp/timing --per-process

`--per-process` prints, per level (a run of requests with no pause longer than 0.8 s), each process's
request count, p50 and p99: processes that serve as many requests a second with very different
latencies hold different numbers of kept-alive connections.

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
REQUEST = "request (pre_request -> post_request)"


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


def pre_request(worker, req):  # gunicorn hook, on the request's thread
    _local.request = time.perf_counter()


def post_request(worker, req, environ, resp):  # gunicorn hook, on the same thread
    _add(REQUEST, time.perf_counter() - _local.request)


def worker_exit(server, worker):  # gunicorn hook
    folder = os.environ.get("TXN_TIMING_DIR", "/tmp")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"timing-{worker.pid}.json"), "w") as f:
        json.dump(_samples, f)


def _pct_ms(values: list[float], fraction: float) -> float:
    return round(values[min(len(values) - 1, int(fraction * len(values)))] * 1000, 2)


def summarize(folder: str, start: float = 0, end: float = float("inf")) -> dict:
    pooled: dict[str, list[float]] = {}
    for path in glob.glob(os.path.join(folder, "timing-*.json")):
        for name, samples in json.load(open(path)).items():
            pooled.setdefault(name, []).extend(s for t, s in samples if start <= t <= end)
    summary = {}
    for name, values in sorted(pooled.items()):
        values.sort()
        if values:
            summary[name] = {"n": len(values), "mean": round(sum(values) / len(values) * 1000, 2),
                             "p50": _pct_ms(values, 0.5), "p90": _pct_ms(values, 0.9),
                             "p99": _pct_ms(values, 0.99)}
    return summary


def per_process(folder: str, smallest_level: int = 300) -> list[str]:
    requests = sorted((ended, os.path.basename(path)[len("timing-"):-len(".json")], seconds)
                      for path in glob.glob(os.path.join(folder, "timing-*.json"))
                      for ended, seconds in json.load(open(path)).get(REQUEST, []))
    levels, level = [], []
    for request in requests:
        if level and request[0] - level[-1][0] > 0.8:
            levels.append(level)
            level = []
        level.append(request)
    levels.append(level)
    lines = []
    for level in (lv for lv in levels if len(lv) >= smallest_level):
        every = sorted(seconds for _, _, seconds in level)
        line = (f"{level[-1][0] - level[0][0]:5.1f} s {len(level):6d} requests  p50 {_pct_ms(every, .5):6.1f}"
                f"  p99 {_pct_ms(every, .99):6.1f} |")
        for pid in sorted({pid for _, pid, _ in level}):
            mine = sorted(seconds for _, p, seconds in level if p == pid)
            line += f"  {pid}: {len(mine):5d} p50 {_pct_ms(mine, .5):6.1f} p99 {_pct_ms(mine, .99):6.1f}"
        lines.append(line)
    return lines


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--per-process" in args:
        print("\n".join(per_process(args[0])))
        sys.exit()
    window = [float(a) for a in args[1:3]] if len(args) >= 3 else []
    for name, row in summarize(args[0], *window).items():
        print(f"{name:<55} " + "  ".join(f"{k} {v}" for k, v in row.items()))
