"""`make run` on the installed environment, as a newcomer meets it: the stack starts, listens on this machine
only, and the printed curl examples work as printed; a taken port is named at once; a second run after the
emulator forgot its payments prints no tracebacks."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import psutil
import pytest
import requests

from tests.support.processes import ROOT, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("make_run")]
READY = "Stop with Ctrl-C."


def _fresh_clone_env(instance, **extra) -> dict:
    env = dict(os.environ, PORT=str(free_port()), ORDERS_INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1",
               STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}")  # the embedded emulator, off 8420
    for name in ("DATABASE_URL", "APP_ENV", "JWT_SECRET_KEY", "REDIS_URL", "CELERY_BROKER_URL",
                 "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "WEB_BIND", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(name, None)  # the embedded defaults, as on a fresh clone
    env.update(extra)
    return env


class MakeRun:
    """One `make run`, its output read as it comes (a thread keeps the pipe from filling up)."""

    def __init__(self, env: dict):
        self.env, self.lines = env, []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def wait_for(self, text: str, timeout: float = 120) -> None:
        wait_until(lambda: text in self.output or self.proc.poll() is not None, timeout,
                   message=lambda: self.output[-3000:])
        assert text in self.output, self.output[-3000:]

    def stop(self) -> None:
        """Ctrl-C, as a person stops it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._reader.join(10)


@pytest.fixture
def make_run(tmp_path):
    runs = []

    def start(**extra) -> MakeRun:
        env = _fresh_clone_env(tmp_path / "instance", **extra) if not runs else dict(runs[0].env, **extra)
        runs.append(MakeRun(env))
        return runs[-1]

    yield start
    for run in runs:
        run.stop()


def _printed_block(run: MakeRun, start_marker: str) -> str:
    """The lines between `start_marker` and '# --- end ---' in what `make run` printed."""
    run.wait_for(READY)
    text = run.output
    start = text.index(start_marker)
    return text[text.index("\n", start) + 1:text.index("# --- end ---", start)]


def _run(script):
    assert "curl" in script
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr)
    return result


def test_printed_examples_work_as_printed(make_run):
    run = make_run()
    cash_on_delivery = _printed_block(run, "# --- try it: a cash-on-delivery order")
    online = _printed_block(run, "# --- try it: an online payment")

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


def _listening(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN
            and c.laddr.port == port}


def test_a_taken_port_is_named_at_once_with_what_to_run_instead(make_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = make_run(PORT=str(port))
        assert run.proc.wait(60) != 0
        took = time.monotonic() - run.started
    run.stop()
    said = run.output
    assert f"port {port} is in use" in said and "PORT" in said, said
    suggested = re.search(r"run `PORT=(\d+) make run`", said)
    assert suggested and int(suggested.group(1)) != port, said
    assert "Traceback" not in said and "Booting worker" not in said, said  # nothing started, nothing crashed
    assert took < 20, f"{took:.1f} s"  # at once: no migration, no seeding, no gunicorn retrying the bind


def test_development_listens_on_this_machine_only_and_a_restart_after_the_emulator_forgot_is_quiet(make_run):
    """The emulator forgets every payment when it stops; the second run finds orders naming payments it no
    longer knows: one line says so, and the unpaid order is closed, instead of tracebacks every minute."""
    first = make_run(MAINTENANCE_INTERVAL_SECONDS="3", RECONCILE_AFTER_SECONDS="1")
    first.wait_for(READY)
    stripe_port = int(first.env["STRIPE_API_BASE"].rsplit(":", 1)[1])
    assert _listening(int(first.env["PORT"])) == {"127.0.0.1"}
    assert _listening(stripe_port) == {"127.0.0.1"}

    login = requests.post(f"{first.url}/api/auth/login", timeout=10,
                          json={"email": "demo@example.com", "password": "demo-password"}).json()
    auth = {"Authorization": f"Bearer {login['accessToken']}"}
    product = requests.get(f"{first.url}/api/products", timeout=10).json()["items"][0]
    method = requests.get(f"{first.url}/api/delivery-methods?country=US", timeout=10).json()[0]
    placed = requests.post(f"{first.url}/api/orders/with-payment", headers=auth, timeout=10, json={
        "customerId": login["customerId"], "deliveryMethodId": method["id"],
        "deliveryAddress": {"street": "1 Main St", "city": "New York", "zipCode": "10001", "country": "US"},
        "items": [{"productId": product["id"], "quantity": 1}]}).json()
    pi_id = placed["clientSecret"].split("_secret_")[0]
    first.stop()

    second = make_run()
    second.wait_for(READY)

    def closed():
        order = requests.get(f"{second.url}/api/orders/{placed['orderId']}", headers=auth, timeout=10).json()
        return order["status"] in ("canceled", "expired")

    # Closed with its payment (taken as canceled): no later run has anything to ask about it.
    wait_until(closed, timeout=60, message=lambda: second.output[-3000:])
    said = second.output
    assert "Traceback" not in said, said[-4000:]
    about = [line for line in said.splitlines() if pi_id in line and " stripe " not in line[:20]]  # not its log
    assert len(about) == 1 and "restarts" in about[0], about
    assert requests.get(f"{second.url}/api/products/{product['id']}", timeout=10).json()["stock"] == product["stock"]
