"""A login flood against the Procfile's `web` as deployed (2 workers × 48 threads): each argon2 verify
holds 64 MiB, so memory must stay bounded by the hashing semaphore, not by the thread count, and
/healthz must keep answering."""
import os
import sys
import threading
import time

import psutil
import pytest
import requests

from tests.support.factories import PASSWORD
from tests.support.processes import free_port, procfile_command, start_process, stop_process, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flood")]

CLIENTS = 48
FLOOD_SECONDS = 10
MAX_GROWTH = 768 * 2**20


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@pytest.fixture
def deployed_web(base_env):
    """The Procfile's web with its own defaults (WEB_CONCURRENCY, WEB_THREADS unset)."""
    port = free_port()
    env = {k: v for k, v in base_env.items() if k not in ("WEB_CONCURRENCY", "WEB_THREADS")}
    env.update(PORT=str(port), PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{base_env['PATH']}")
    env.update({k[len("FLOOD_"):]: v for k, v in os.environ.items() if k.startswith("FLOOD_")})  # to compare
    proc = start_process(["bash", "-c", f"exec {procfile_command('web')}"], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    yield url, psutil.Process(proc.pid)
    stop_process(proc)


def test_a_login_flood_keeps_memory_bounded_and_health_answering(deployed_web, make):
    url, web = deployed_web
    make.customer(email="flood@example.com")
    body = {"email": "flood@example.com", "password": PASSWORD}
    for _ in range(6):  # every worker has imported and served once: the baseline is a warm process
        assert requests.post(f"{url}/api/auth/login", json=body, timeout=30).status_code == 200
    time.sleep(1)
    baseline = _tree_rss(web)

    stop = threading.Event()
    statuses, health = [], []

    def flood():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    statuses.append(session.post(f"{url}/api/auth/login", json=body, timeout=60).status_code)
                except requests.RequestException as exc:
                    statuses.append(type(exc).__name__)

    def probe():
        while not stop.is_set():
            started = time.monotonic()
            try:
                code = requests.get(f"{url}/healthz", timeout=5).status_code
            except requests.RequestException as exc:
                code = type(exc).__name__
            health.append((code, time.monotonic() - started))
            time.sleep(0.5)

    threads = [threading.Thread(target=flood) for _ in range(CLIENTS)] + [threading.Thread(target=probe)]
    for thread in threads:
        thread.start()
    peak, deadline = baseline, time.monotonic() + FLOOD_SECONDS
    while time.monotonic() < deadline:
        peak = max(peak, _tree_rss(web))
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(90)

    growth = peak - baseline
    print(f"\nlogin flood: {CLIENTS} clients for {FLOOD_SECONDS} s, {len(statuses)} logins "
          f"({statuses.count(200)} × 200), web RSS {baseline / 2**20:.0f} MiB → peak {peak / 2**20:.0f} MiB "
          f"(+{growth / 2**20:.0f} MiB); /healthz slowest {max(t for _c, t in health):.2f} s")
    assert growth < MAX_GROWTH, f"web processes grew by {growth / 2**20:.0f} MiB under the flood"
    assert health and all(code == 200 for code, _t in health), health  # each within its 5 s timeout
    assert statuses.count(200) > 0 and set(statuses) <= {200, 503}, set(statuses)
