"""A closed-loop load driver and the CPU meters it reads before and after each level.

Closed loop: each of the N concurrent callers sends its next request as soon as the previous one is
answered, so N is the number of requests in flight. The callers are spread over several processes
(each with a few threads) so that the GIL of one client process never caps the load.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Caller(Protocol):
    """One concurrent client: `caller()` does one unit of work (one order) and returns None when it
    succeeded or a short label saying what went wrong; `close()` releases its connection."""

    def __call__(self) -> str | None: ...

    def close(self) -> None: ...


Meter = Callable[[], dict]  # CPU seconds used so far, per process (or per any other key)


@dataclass(frozen=True)
class LevelResult:
    concurrency: int
    ok: int
    errors: dict[str, int]
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_seconds: dict[str, float]  # meter name -> CPU seconds spent during the level
    # The successful requests' latencies, sorted (seconds): to pool repeats of a level (see `pooled`).
    latencies: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds

    def cpu_per_op(self, meter: str) -> float | None:
        return self.cpu_seconds[meter] / self.ok if self.ok else None

    def as_dict(self) -> dict:
        return {
            "concurrency": self.concurrency,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "cpu_seconds": {m: round(s, 3) for m, s in self.cpu_seconds.items()},
            "cpu_seconds_per_op": {m: None if self.ok == 0 else round(self.cpu_per_op(m), 6)
                                   for m in self.cpu_seconds},
        }


def pooled(results: list[LevelResult]) -> LevelResult:
    """Repeats of one level as one: operations, errors, seconds and CPU added up, percentiles over all
    the latencies."""
    if len(results) == 1:
        return results[0]
    latencies = tuple(sorted(latency for r in results for latency in r.latencies))
    errors: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
        cpu.update(r.cpu_seconds)
    return LevelResult(concurrency=results[0].concurrency, ok=sum(r.ok for r in results), errors=dict(errors),
                       seconds=sum(r.seconds for r in results), p50_ms=_percentile_ms(latencies, 0.50),
                       p99_ms=_percentile_ms(latencies, 0.99), cpu_seconds=dict(cpu), latencies=latencies)


def _percentile_ms(sorted_seconds: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_seconds:
        return None
    index = min(len(sorted_seconds) - 1, max(0, round(fraction * len(sorted_seconds)) - 1))
    return round(sorted_seconds[index] * 1000, 2)


def cpu_delta(before: dict, after: dict) -> float:
    """A process that started during the level counts from zero; one that exited counts nothing,
    rather than taking all the CPU it ever used off the total."""
    return sum(seconds - before.get(key, 0.0) for key, seconds in after.items())


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def _client_process(make_caller, slots, duration, barrier, results, release) -> None:
    # Connections are opened before the barrier so that connecting is not part of the measurement.
    callers = [make_caller(slot) for slot in slots]
    latencies: list[float] = []  # list.append is atomic under the GIL: the threads can share them
    errors: Counter[str] = Counter()
    barrier.wait()
    cpu_at_start = _own_cpu()
    deadline = time.monotonic() + duration

    def loop(caller: Caller) -> None:
        # The load stays on past the deadline, uncounted, until the meters have been read (see run_level).
        while not release.is_set():
            started = time.perf_counter()
            try:
                error = caller()
            except Exception as exc:  # a dropped connection is an error to report, not a reason to stop
                error = f"{type(exc).__name__}: {exc}"[:200]
            if time.monotonic() > deadline:
                continue
            if error is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors[error] += 1

    threads = [threading.Thread(target=loop, args=(caller,)) for caller in callers]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, deadline - time.monotonic()))
    cpu = _own_cpu() - cpu_at_start
    for thread in threads:
        thread.join()
    for caller in callers:
        caller.close()
    results.put((latencies, dict(errors), cpu))


def run_level(make_caller: Callable[[int], Caller], concurrency: int, duration: float,
              meters: dict[str, Meter]) -> LevelResult:
    """Run `concurrency` callers for `duration` seconds; only what completes within that window counts.
    `meters` are read at its start and end while the load is still on: were it to stop first, the
    service's pool would close its surplus connections and the raw callers theirs, and those
    PostgreSQL backends would exit before they could be read. The callers' own CPU is added as "client"."""
    context = multiprocessing.get_context("fork")  # the callers' factory need not be picklable
    processes = min(concurrency, os.cpu_count() or 1)
    barrier = context.Barrier(processes + 1)
    results, release = context.Queue(), context.Event()
    workers = [
        context.Process(target=_client_process,
                        args=(make_caller, slots, duration, barrier, results, release))
        for slots in (list(range(concurrency))[p::processes] for p in range(processes))
    ]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=60)
        deadline = time.monotonic() + duration
        before = {name: read() for name, read in meters.items()}
        time.sleep(max(0.0, deadline - time.monotonic()))
        after = {name: read() for name, read in meters.items()}
        release.set()
        # Read the queue before joining: a process that has put a large list cannot exit until it is read.
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()

    latencies = sorted(latency for process_latencies, _, _ in outcomes for latency in process_latencies)
    errors: Counter[str] = Counter()
    for _, process_errors, _ in outcomes:
        errors.update(process_errors)
    cpu_seconds = {name: cpu_delta(before[name], after[name]) for name in meters}
    cpu_seconds["client"] = sum(cpu for _, _, cpu in outcomes)
    return LevelResult(
        concurrency=concurrency,
        ok=len(latencies),
        errors=dict(errors),
        seconds=duration,
        p50_ms=_percentile_ms(latencies, 0.50),
        p99_ms=_percentile_ms(latencies, 0.99),
        cpu_seconds=cpu_seconds,
        latencies=tuple(latencies),
    )


# --- CPU meters (Linux /proc) ---------------------------------------------------------------------

def processes_cpu(matches: Callable[[int, int], bool]) -> dict[int, float]:
    """CPU seconds (user + system) per live process whose (pid, session id) matches, including what
    its exited children used (cutime/cstime: gunicorn's master reaps any worker it restarts)."""
    usage = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # it exited while we looked
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after the command name; fields[0] is `state`
        if matches(int(entry.name), int(fields[3])):
            usage[int(entry.name)] = sum(int(f) for f in fields[11:15]) / CLK_TCK  # u/s time, cu/cs time
    return usage


def machine_cpu() -> dict[str, float]:
    """CPU seconds all cores spent busy (neither idle nor waiting for I/O), from /proc/stat."""
    ticks = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]  # guest time is inside user
    return {"all cores": (user + nice + system + irq + softirq + steal) / CLK_TCK}
