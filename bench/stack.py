"""The processes the scenarios run against: the Procfile's `web` and `worker`, localstripe and the Stripe
stand-in. Each runs in a session of its own so that its whole process tree can be metered (by session
id) and stopped (by process group), and none outlives the `running(…)` block that started it."""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from driver import processes_cpu
from honcho.environ import parse_procfile

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout is only the report."""
    print(message, file=sys.stderr, flush=True)


def procfile_command(name: str) -> str:
    return parse_procfile((ROOT / "Procfile").read_text()).processes[name]


def procfile_setting(env: dict, variable: str) -> int | None:
    """What a `${VARIABLE:-default}` in the Procfile comes to under `env` (None if it has none)."""
    default = re.search(rf"\$\{{{variable}:-(\d+)\}}", (ROOT / "Procfile").read_text())
    value = env.get(variable) or (default and default.group(1))
    return int(value) if value else None


def web_setting(env: dict) -> str:
    """The Procfile's `web` gunicorn setting under `env`, e.g. `gthread, 3 workers x 48 threads`."""
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), procfile_command("web"))
    flags = dict(re.findall(r"--(worker-class|workers|threads)[ =](\S+)", command))
    worker_class = flags.get('worker-class', 'sync').rsplit('.', 1)[-1]  # the class's name, not its module path
    setting = f"{worker_class}, {flags.get('workers', '1')} workers"
    if "threads" in flags:
        setting += f" x {flags['threads']} threads"
    if env.get("GUNICORN_CMD_ARGS"):
        setting += f", GUNICORN_CMD_ARGS={env['GUNICORN_CMD_ARGS']!r}"
    return setting


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    def __init__(self, name: str, argv: list[str], env: dict):
        self.name = name
        self.log = tempfile.TemporaryFile()
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,  # gunicorn's access log
                                      stderr=self.log, start_new_session=True)

    def cpu(self) -> dict[int, float]:
        """A meter: CPU seconds so far of every process in its session."""
        return processes_cpu(lambda _pid, session: session == self.popen.pid)

    def tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM lets gunicorn's master and Celery's main process stop their children; SIGKILL the
        group if that takes too long."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


@contextmanager
def running(name: str, argv: list[str], env: dict, ready: Callable[[], bool],
            timeout: float = 60) -> Iterator[Process]:
    """Start a process, wait until `ready()`, stop it when the block ends; its log is shown on failure."""
    process = Process(name, argv, env)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.popen.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.popen.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {timeout} s")
            time.sleep(0.2)
        yield process
    except BaseException:
        log(f"--- the end of {name}'s log ---\n{process.tail()}")
        raise
    finally:
        process.stop()


def answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False
    return check


def listens(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    return check


def procfile_process(name: str, env: dict, ready: Callable[[], bool]):
    """A Procfile line as a platform runs it."""
    return running(name, ["bash", "-c", f"exec {procfile_command(name)}"], env, ready)


def web(env: dict):
    return procfile_process("web", env, answers(f"http://127.0.0.1:{env['PORT']}/healthz"))


REFERENCE_DIR = Path(__file__).resolve().with_name("reference")


def reference_argv(port: int, setting: str) -> list[str]:
    """gunicorn serving the bare reference app (bench/reference/app.py) with `setting`, written
    `CLASS:WORKERS` or `gthread:WORKERS:THREADS` (the issue's is `sync:2`)."""
    worker_class, workers, *threads = setting.split(":")
    argv = ["gunicorn", "--bind", f"127.0.0.1:{port}", "--worker-class", worker_class, "--workers", workers]
    if threads:
        argv += ["--threads", threads[0]]
    return argv + ["--pythonpath", str(REFERENCE_DIR), "app:app"]


def reference(env: dict, port: int, setting: str):
    # GUNICORN_CMD_ARGS is for trying a setting of the service's web: the reference keeps its own.
    env = {name: value for name, value in env.items() if name != "GUNICORN_CMD_ARGS"}
    return running("reference", reference_argv(port, setting), env, answers(f"http://127.0.0.1:{port}/healthz"))


def worker(env: dict):
    """The Procfile's `worker`, ready once it answers a ping through the broker."""
    from orders_service.config import Settings
    from orders_service.queue import make_celery

    control = make_celery(Settings.from_env(env)).control
    return procfile_process("worker", env, lambda: bool(control.ping(timeout=0.5)))


PGBOUNCER_TEMPLATE = ROOT / "deploy" / "pgbouncer.ini"


@contextmanager
def pgbouncer(folder: str, port: int, db_host: str, db_port: int, user: str, pool_size: int,
              max_client_conn: int) -> Iterator[Process]:
    """PgBouncer with deploy/pgbouncer.ini (transaction mode) on 127.0.0.1:`port`, `trust` for `user`; as root
    it runs as `postgres` (PgBouncer refuses root)."""
    import pwd
    import shutil
    import string

    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    auth_file, config = os.path.join(folder, "userlist.txt"), os.path.join(folder, "pgbouncer.ini")
    Path(auth_file).write_text(f'"{user}" ""\n')
    Path(config).write_text(string.Template(PGBOUNCER_TEMPLATE.read_text()).substitute(
        LISTEN_ADDR="127.0.0.1", LISTEN_PORT=port, DB_HOST=db_host, DB_PORT=db_port, AUTH_TYPE="trust",
        AUTH_FILE=auth_file, DEFAULT_POOL_SIZE=pool_size, MAX_CLIENT_CONN=max_client_conn))
    as_user = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        for path in (folder, auth_file, config):
            os.chown(path, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with running("pgbouncer", [*as_user, binary, config], dict(os.environ), listens(port)) as process:
        yield process


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def localstripe(url: str, env: dict):
    """Our launcher of localstripe on `url`'s port: persistence off, so the instance is private and starts empty."""
    argv = [sys.executable, "-m", "orders_service.emulator.server", "--port", str(_port(url))]
    return running("localstripe", argv, env, listens(_port(url)))


def stripe_standin(url: str, delay: float, env: dict, *options: str):
    """bench/stripe_standin.py on `url`'s port; `options` as its command line takes them
    (`--paid-at-once`, `--rate-limit 25`)."""
    argv = [sys.executable, str(Path(__file__).with_name("stripe_standin.py")), "--port", str(_port(url)),
            "--delay", str(delay), *options]
    return running("stripe stand-in", argv, env, listens(_port(url)))


def flush_redis(url: str) -> None:
    """Empty one database of the machine's Redis (the one in `url`), nothing else."""
    import redis

    redis.Redis.from_url(url).flushdb()


def standin_calls(url: str) -> dict[str, int]:
    """The calls the service made to the stand-in so far, per endpoint ("429 <endpoint>": those refused)."""
    with urllib.request.urlopen(f"{url}/_calls", timeout=30) as answer:
        return json.loads(answer.read())


def standin_pay(url: str, intent_id: str) -> None:
    """The customer pays at the stand-in (not a call of the service's: not counted)."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/_pay/{intent_id}", method="POST"), timeout=30).close()


def standin_rate_limit(url: str, per_second: int) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/_rate_limit/{per_second}", method="POST"),
                           timeout=30).close()


def flush_localstripe(url: str) -> None:
    request = urllib.request.Request(f"{url}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=30).close()


@contextmanager
def flushed_as_it_goes(url: str, every: float) -> Iterator[None]:
    """Empty localstripe every `every` seconds while the block runs. Its cost per request grows with
    its store (each request scans it), so a level that filled it would measure localstripe's growing
    store rather than the service. The service never reads back what it created, so nothing breaks.
    A forked process rather than a thread: the load driver forks, and threads and fork do not mix."""
    context = multiprocessing.get_context("fork")
    stop = context.Event()

    def loop() -> None:
        while not stop.wait(every):
            flush_localstripe(url)

    flush_localstripe(url)
    flusher = context.Process(target=loop, daemon=True)
    flusher.start()
    try:
        yield
    finally:
        stop.set()
        flusher.join()
