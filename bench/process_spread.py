"""How requests spread over the web's processes: not part of `make bench`.

As a gunicorn config it notes, in every worker, when each request ended and how long it took (from
gunicorn's pre_request to its post_request, the run gate's wait included), and writes them out when the
worker exits. Run as a script, it prints per level (a run of requests with no pause longer than
0.8 s) each process's request count, p50 and p99: processes that serve as many requests a second but
with very different latencies hold different numbers of kept-alive connections.

    rm -rf /tmp/process-spread
    GUNICORN_CMD_ARGS="-c bench/process_spread.py" make bench BENCH_ARGS="--only hotpath"
    .venv/bin/python bench/process_spread.py
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

FOLDER = Path(os.environ.get("PROCESS_SPREAD_DIR", "/tmp/process-spread"))
_started: dict[int, float] = {}
_requests: list[tuple[float, float]] = []  # (wall clock at the end, seconds)


def pre_request(worker, req):
    _started[id(req)] = time.perf_counter()


def post_request(worker, req, environ, resp):
    started = _started.pop(id(req), None)
    if started is not None:
        _requests.append((time.time(), time.perf_counter() - started))


def worker_exit(server, worker):
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / f"{os.getpid()}.json").write_text(json.dumps(_requests))


def _ms(sorted_seconds: list[float], fraction: float) -> float:
    return sorted_seconds[min(len(sorted_seconds) - 1, int(len(sorted_seconds) * fraction))] * 1000


def report(folder: Path = FOLDER, smallest_level: int = 300) -> None:
    requests = sorted((ended, path.stem, seconds) for path in folder.glob("*.json")
                      for ended, seconds in json.loads(path.read_text()))
    levels, level = [], []
    for request in requests:
        if level and request[0] - level[-1][0] > 0.8:
            levels.append(level)
            level = []
        level.append(request)
    levels.append(level)
    for level in (lv for lv in levels if len(lv) >= smallest_level):
        every = sorted(seconds for _, _, seconds in level)
        line = (f"{level[-1][0] - level[0][0]:5.1f} s {len(level):6d} requests  p50 {_ms(every, .5):6.1f}  "
                f"p99 {_ms(every, .99):6.1f} |")
        for pid in sorted({pid for _, pid, _ in level}):
            mine = sorted(seconds for _, p, seconds in level if p == pid)
            line += f"  {pid}: {len(mine):5d} p50 {_ms(mine, .5):6.1f} p99 {_ms(mine, .99):6.1f}"
        print(line)


if __name__ == "__main__":
    report(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
