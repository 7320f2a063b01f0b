"""Servers the tests start for real: the Procfile's processes, a private redis-server, RabbitMQ vhosts."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from honcho.environ import parse_procfile

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.2, message=None):
    """Poll until `predicate()` is truthy; its last value, or AssertionError after `timeout`
    (with `message()` appended, to say what was seen instead)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout} s" + (f": {message()}" if message else "")
            return value
        time.sleep(interval)


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


def wait_tcp(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def procfile_command(name: str) -> str:
    return parse_procfile((ROOT / "Procfile").read_text()).processes[name]


def start_process(args, env=None) -> subprocess.Popen:
    """Start a server process; its output goes to a log file (a pipe nobody reads would block it)."""
    log = tempfile.NamedTemporaryFile(prefix="orders-test-", suffix=".log", delete=False)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name
    log.close()
    return proc


def process_log(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")[-4000:]


def stop_process(proc: subprocess.Popen) -> None:
    """Stop the process and everything it started (gunicorn and Celery fork children)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass
    if not os.environ.get("KEEP_TEST_LOGS"):
        Path(proc.log_path).unlink(missing_ok=True)


@contextmanager
def serving(args, env: dict, health_url: str):
    """A server process started with `args`, once it answers `health_url` (its log is the error if it never
    does); stopped afterwards."""
    proc = start_process(args, env=env)
    try:
        wait_http(health_url)
    except RuntimeError:
        log = process_log(proc)
        stop_process(proc)
        raise RuntimeError(log) from None
    try:
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def procfile_web(base_env: dict, **env):
    """The Procfile's `web` on a free port, with `env` over `base_env` (None unsets a variable, so that the
    Procfile's default applies); yields the port and the process."""
    port = free_port()
    merged = {k: v for k, v in {**base_env, **env, "PORT": str(port)}.items() if v is not None}
    merged["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{base_env['PATH']}"
    with serving(["bash", "-c", f"exec {procfile_command('web')}"], merged,
                 f"http://127.0.0.1:{port}/healthz") as proc:
        yield port, proc


class PrivateRedis:
    """A redis-server of a test's own, so that it can be stopped and started again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        self.proc = start_process(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"])
        wait_tcp(self.port)

    def stop(self):
        stop_process(self.proc)

    close = stop


class PrivateRabbitMQ:
    """A RabbitMQ node of a test's own (Debian's RabbitMQ, as root), that it can stop and start again.

    Its own ports, node name, Erlang cookie (a private HOME), config and data folder, so the machine's
    node on 5672 is left alone. The scripts in /usr/lib/rabbitmq/bin run the node as the caller (the
    /usr/sbin wrappers switch to the rabbitmq user, who cannot write a test's folders). Starting takes
    7 to 25 s here; durable queues and persistent messages survive a stop and a start.
    """

    BIN = Path("/usr/lib/rabbitmq/bin")

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="orders-rabbitmq-"))
        self.port, dist_port = free_port(), free_port()
        self.node = f"orders-test-{os.getpid()}-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        for sub in ("home", "mnesia", "log"):
            (self.base / sub).mkdir()
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
                                                 "loopback_users = none\nlog.console = false\n")
        (self.base / "enabled_plugins").write_text("[].\n")  # an empty plugin variable fails the boot
        (self.base / "rabbitmq-env.conf").write_text("")  # else /etc/rabbitmq's (node rabbit@localhost) is read
        self.env = dict(
            os.environ, HOME=str(self.base / "home"), RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(dist_port), RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"), RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_PID_FILE=str(self.base / "node.pid"), ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
        self.proc = None
        self.start()

    def _ctl(self, *args, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.BIN / "rabbitmqctl"), "-n", self.node, "-q", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, timeout: float = 90) -> None:
        out = open(self.base / "server.out", "ab")
        self.proc = subprocess.Popen([str(self.BIN / "rabbitmq-server")], env=self.env, cwd=self.base, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.base / "server.out").read_text()[-3000:])
            # await_startup fails at once until the node has registered with epmd: ask again.
            if self._ctl("await_startup", "--timeout", "10", timeout=20).returncode == 0:
                return
            time.sleep(0.25)
        raise RuntimeError(f"RabbitMQ node {self.node} did not start within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self._ctl("stop").returncode != 0:
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def rabbitmq_vhost(name: str):
    """A virtual host of the machine's RabbitMQ, deleted afterwards; its broker URL."""
    ctl = ["rabbitmqctl", "--quiet"]
    subprocess.run([*ctl, "add_vhost", name], check=True, capture_output=True)
    subprocess.run([*ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True, capture_output=True)
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        subprocess.run([*ctl, "delete_vhost", name], capture_output=True)


# The periodic jobs run only when a test enqueues them; these make them act on young orders.
STACK_TIMINGS = {"ORDER_PAYMENT_TTL_SECONDS": "2", "RECONCILE_AFTER_SECONDS": "0", "REDRIVE_AFTER_SECONDS": "1"}


class Stack:
    """The Procfile's processes (web, worker, optionally beat) on one broker, as a deploy runs them."""

    def __init__(self, env: dict, processes=("web", "worker")):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, PORT=str(self.port), WEB_CONCURRENCY="2", WEB_THREADS="16", WORKER_CONCURRENCY="2")
        self.env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
        self.procs: dict[str, subprocess.Popen] = {}
        for name in processes:
            self.start(name)
        if "web" in processes:
            wait_http(f"{self.url}/healthz")
        if "worker" in processes:
            self.wait_for_worker()

    def wait_for_worker(self, timeout: float = 60.0) -> None:
        """Until the worker answers a ping through its broker: it consumes from then on. A test's own
        timeouts then measure the effect it waits for, not a worker still importing on a busy machine."""
        from orders_service.config import Settings
        from orders_service.queue import make_celery

        control = make_celery(Settings.from_env(self.env)).control
        wait_until(lambda: bool(control.ping(timeout=1.0)), timeout=timeout, message=lambda: "no worker answered")

    def start(self, name: str, **env) -> subprocess.Popen:
        self.procs[name] = start_process(["bash", "-c", f"exec {procfile_command(name)}"], env={**self.env, **env})
        return self.procs[name]

    def stop(self, name: str) -> None:
        stop_process(self.procs.pop(name))

    def enqueue(self, task: str, *args) -> None:
        """Send `task` (a `Tasks` name) to this stack's workers."""
        from orders_service.config import Settings
        from orders_service.queue import TaskQueue

        assert TaskQueue(Settings.from_env(self.env)).enqueue(task, *args)

    def ttl_passed(self, order) -> bool:
        from datetime import datetime, timedelta, timezone

        ttl = timedelta(seconds=int(self.env["ORDER_PAYMENT_TTL_SECONDS"]))
        return datetime.now(timezone.utc) - order.created_at > ttl

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
