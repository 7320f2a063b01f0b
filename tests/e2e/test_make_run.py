"""`make run` on the installed environment: the stack starts and the printed curl example works as printed."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.support.processes import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("make_run")]


@pytest.fixture
def make_run(tmp_path):
    env = dict(os.environ, PORT=str(free_port()), ORDERS_INSTANCE_DIR=str(tmp_path), PYTHONUNBUFFERED="1",
               STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}")  # the embedded emulator, off 8420
    for name in ("DATABASE_URL", "APP_ENV", "JWT_SECRET_KEY", "REDIS_URL", "CELERY_BROKER_URL",
                 "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        env.pop(name, None)  # the embedded defaults, as on a fresh clone
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _printed_block(proc, start_marker, timeout=120):
    """The lines between `start_marker` and '# --- end ---' in what `make run` prints."""
    deadline, block, seen, inside = time.monotonic() + timeout, [], [], False
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if start_marker in line:
            inside = True
        elif inside and line.startswith("# --- end ---"):
            return "".join(block)
        elif inside:
            block.append(line)
    raise AssertionError("make run printed no example:\n" + "".join(seen[-40:]))


def _run(script):
    assert "curl" in script
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr)
    return result


def test_printed_examples_work_as_printed(make_run):
    cash_on_delivery = _printed_block(make_run, "# --- try it: a cash-on-delivery order")
    online = _printed_block(make_run, "# --- try it: an online payment")

    result = _run(cash_on_delivery)
    created = re.search(r"created (/api/orders/[0-9a-f-]{36})", result.stdout)
    assert created, (result.stdout, result.stderr)
    assert result.stdout.strip(), result.stderr
    order = json.loads(result.stdout.strip().splitlines()[-1])
    assert f"/api/orders/{order['id']}" == created.group(1)
    assert order["status"] == "confirmed"
    assert order["createdAt"].endswith("+00:00")
    assert order["paymentMethod"] == "cash_on_delivery"
    assert order["items"][0]["name"] == "Premium Headphones"
    assert order["items"][0]["unitPrice"] == 199.99

    # Paid through the emulator's webhook and the worker: the printed flow never calls /paid.
    assert not [line for line in online.splitlines() if "PATCH" in line and not line.startswith("#")]
    result = _run(online)
    order = json.loads(result.stdout.strip().splitlines()[-1])
    assert (order["status"], order["paymentStatus"], order["totalAmount"]) == ("confirmed", "paid", 459.98)
