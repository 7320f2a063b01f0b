"""Several hosts on one machine, as a shop that outgrew one server runs them: each host a network namespace
of its own (`ip netns`), joined to this one by a veth pair, running the Procfile's `web` and `worker`; in
this namespace, HAProxy in front of the hosts (`deploy/haproxy.cfg`), PgBouncer in front of the one
PostgreSQL (`deploy/pgbouncer.ini`, transaction mode), one Redis as the broker, the real-shaped Stripe and
a webhook receiver.

Addresses, a LAN 10.A.0.0/24 (A picked per stack, unused on the machine):
    10.A.0.1      this namespace's end, a bridge: PgBouncer, Redis, Stripe and the receiver listen here
    10.A.0.1N     host N, on its end of a veth pair whose other end is a port of the bridge
A host reaches the services, and nothing else of the machine, through the bridge.

A host's `web` and `worker` each run in a process group of their own, so that `kill(host)` and
`freeze(host)` reach every process of it at once. Needs root and `ip` (iproute2); the namespaces, links
and addresses are removed again by `close()` (and ones a killed run left behind, at the next start).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.database import create_database, drop_database, pg_url
from tests.support.pgbouncer import PgBouncer
from tests.support.processes import (
    ROOT,
    free_port,
    process_log,
    procfile_command,
    start_process,
    stop_process,
    wait_http,
    wait_tcp,
    wait_until,
)

PREFIX = "orders-hosts"


def missing_tools() -> str | None:
    """Why this machine cannot run the stack (a skip's reason), or None."""
    if os.geteuid() != 0:
        return "the hosts stack creates network namespaces: it needs root"
    for tool, hint in (("ip", "iproute2"), ("haproxy", "`make haproxy` installs Debian's package"),
                       ("pgbouncer", "`make pgbouncer` installs Debian's package"),
                       ("redis-server", "Redis"), ("runuser", "util-linux")):
        if binary(tool) is None:
            return f"{tool} is not installed ({hint})"
    return None


def binary(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin")


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    command = [binary("ip"), *(["netns", "exec", netns, binary("ip")] if netns else []), *args]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def remove_leftovers() -> None:
    """Namespaces and links of stacks whose test process is gone (a run killed before its clean-up)."""
    for name in _ip("netns", "list").stdout.split():
        if (found := re.fullmatch(rf"{PREFIX}-(\d+)-\d+", name)) and not _alive(int(found.group(1))):
            _ip("netns", "delete", name, check=False)
    for found in re.finditer(r"^\d+: (oh(\d+)[a-z]\d*)[@:]", _ip("-o", "link").stdout, re.MULTILINE):
        if not _alive(int(found.group(2))):
            _ip("link", "delete", found.group(1), check=False)


def _free_range() -> int:
    """A second octet A such that nothing on this machine uses 10.A.0.0/16 yet (several stacks may run)."""
    used = _ip("-4", "addr").stdout + _ip("-4", "route").stdout
    for a in [*range(100 + os.getpid() % 100, 200), *range(100, 200)]:
        if f"10.{a}." not in used:
            return a
    raise RuntimeError("no free 10.x.0.0/16 range for the hosts' networks")


class Network:
    """A LAN: a bridge in this namespace holding the services address, and one veth pair per host, its
    outer end a port of the bridge, its inner end in the host's own namespace."""

    def __init__(self, hosts: int):
        remove_leftovers()
        self.tag = os.getpid()
        self.a = _free_range()
        self.services = f"10.{self.a}.0.1"
        self.bridge = f"oh{self.tag}b"
        self.namespaces: list[str] = []
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.services}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for n in range(1, hosts + 1):
                self._add_host(n)
        except BaseException:
            self.close()
            raise

    def _add_host(self, n: int) -> None:
        netns, outside, inside = f"{PREFIX}-{self.tag}-{n}", f"oh{self.tag}h{n}", f"oh{self.tag}n{n}"
        _ip("netns", "add", netns)
        self.namespaces.append(netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", netns)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("addr", "add", f"{self.address(n)}/24", "dev", inside, netns=netns)
        _ip("link", "set", inside, "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("route", "add", "default", "via", self.services, netns=netns)

    def address(self, n: int) -> str:
        return f"10.{self.a}.0.{10 + n}"

    def netns(self, n: int) -> str:
        return self.namespaces[n - 1]

    def link(self, n: int, up: bool) -> None:
        """Host n's cable in or out: its veth's outer end up or down (packets dropped, nothing reset)."""
        _ip("link", "set", f"oh{self.tag}h{n}", "up" if up else "down")

    def close(self) -> None:
        for netns in self.namespaces:  # deleting a namespace deletes its end of the veth, and so the pair
            _ip("netns", "delete", netns, check=False)
        _ip("link", "delete", self.bridge, check=False)
        self.namespaces = []


class Host:
    """One host: its namespace, address and the Procfile processes it runs (each a process group)."""

    def __init__(self, n: int, network: Network, env: dict):
        self.n, self.network = n, network
        self.netns, self.address = network.netns(n), network.address(n)
        instance = Path(tempfile.mkdtemp(prefix=f"orders-host{n}-"))
        self.instance = instance
        self.env = dict(env, ORDERS_INSTANCE_DIR=str(instance), PROMETHEUS_MULTIPROC_DIR=str(instance / "metrics"))
        self.port = int(env["PORT"])
        self.url = f"http://{self.address}:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.overrides: dict[str, str] = {}  # what this host runs with besides the stack's environment

    def start(self, name: str, **env) -> subprocess.Popen:
        self.procs[name] = start_process(
            [binary("ip"), "netns", "exec", self.netns, "bash", "-c", f"exec {procfile_command(name)}"],
            env={**self.env, **env})
        return self.procs[name]

    def signal(self, sig: int, names=("web", "worker")) -> None:
        """`sig` to every process of the named process groups at once (gunicorn's and Celery's children too)."""
        for name in names:
            if name in self.procs:
                try:
                    os.killpg(self.procs[name].pid, sig)
                except ProcessLookupError:
                    pass

    def kill(self) -> None:
        """The host dies: SIGKILL to all of its processes at once."""
        self.signal(signal.SIGKILL, tuple(self.procs))
        for proc in self.procs.values():
            proc.wait(10)
        for name in list(self.procs):
            Path(self.procs.pop(name).log_path).unlink(missing_ok=True)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP, tuple(self.procs))

    def thaw(self) -> None:
        self.signal(signal.SIGCONT, tuple(self.procs))

    def log(self, name: str) -> str:
        return process_log(self.procs[name])

    def stop(self) -> None:
        self.thaw()  # a frozen process cannot act on SIGTERM
        for name in list(self.procs):
            stop_process(self.procs.pop(name))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.instance, ignore_errors=True)


class HostsStack:
    """The whole deployment. `url` is HAProxy's frontend (what clients and Stripe's webhooks call);
    `hosts[0]`, `hosts[1]`… the hosts; `start_beat(host)` runs the one `beat` on a host.

    `env` is the service's environment as the suite builds it (tests/conftest.py `base_env`); this stack
    replaces the addresses in it with its own: a database of its own behind PgBouncer, its own Redis,
    Stripe (`stripe`: a RealStripe the caller started on `network.services`)."""

    def __init__(self, env: dict, network: Network, stripe_url: str, hosts: int = 2, database: str | None = None,
                 **service_env: str):
        """`database`: an existing, migrated database of the tests' server to use (the benchmark's); by default
        the stack creates, migrates and finally drops one of its own."""
        self.network = network
        self.database = database or f"orders_hosts_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
        self.hosts: list[Host] = []
        self.closers = []
        try:
            self._start(env, stripe_url, hosts, service_env, own_database=database is None)
        except BaseException:
            self.close()
            raise

    def _start(self, env: dict, stripe_url: str, hosts: int, service_env: dict, own_database: bool) -> None:
        from orders_service.migrate import upgrade

        services = self.network.services
        self.database_url = pg_url(self.database)  # direct, for the test's own reads
        if own_database:
            create_database(self.database)
            self.closers.append(lambda: drop_database(self.database))
            upgrade(self.database_url)
        # deploy/pgbouncer.ini (tests/support/pgbouncer.py fills it in), for this machine and the hosts.
        self.pgbouncer = PgBouncer(default_pool_size=20, max_client_conn=400, listen_addr=f"127.0.0.1,{services}")
        self.closers.append(self.pgbouncer.close)
        redis_port = free_port()
        # Clients from the hosts' addresses: protected mode (no password) would refuse them.
        redis = start_process(["redis-server", "--port", str(redis_port), "--bind", f"127.0.0.1 {services}",
                               "--protected-mode", "no", "--save", "", "--appendonly", "no"])
        self.closers.append(lambda: stop_process(redis))
        wait_tcp(redis_port)
        self.broker_url = f"redis://{services}:{redis_port}/0"
        web_port = free_port()
        self.env = dict(
            env, PORT=str(web_port), DATABASE_URL=f"postgresql+psycopg://postgres@{services}:{self.pgbouncer.port}/"
            f"{self.database}", CELERY_BROKER_URL=self.broker_url, STRIPE_API_BASE=stripe_url,
            STRIPE_EMULATOR="true",  # not a loopback address any more: say that it is localstripe
            APP_HOSTS=str(hosts), PROXY_HOPS="1", DB_POOLER="pgbouncer",
            # What PgBouncer's clients may open (max_client_conn 400, less what the tests use themselves).
            DB_MAX_CONNECTIONS="400", DB_RESERVED_CONNECTIONS="20",
            WEB_CONCURRENCY="2", WEB_THREADS="16", WORKER_CONCURRENCY="2", DB_POOL_SIZE="8")
        self.env.update(service_env)
        self.env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
        for n in range(1, hosts + 1):
            host = Host(n, self.network, self.env)
            self.hosts.append(host)
            self.closers.append(host.close)
            host.start("web")
            host.start("worker")
        for host in self.hosts:
            self.wait_serving(host)
        self.wait_for_workers(hosts)
        self.haproxy_port = free_port()
        self.url = f"http://127.0.0.1:{self.haproxy_port}"
        folder = tempfile.mkdtemp(prefix="orders-haproxy-")
        self.closers.append(lambda: shutil.rmtree(folder, ignore_errors=True))
        self.haproxy_socket = f"{folder}/admin.sock"
        proxy_env = dict(os.environ, ORDERS_LISTEN=f"127.0.0.1:{self.haproxy_port}",
                         ORDERS_HAPROXY_SOCKET=self.haproxy_socket,
                         **{f"ORDERS_WEB_{h.n}": f"{h.address}:{h.port}" for h in self.hosts})
        self.haproxy = start_process([binary("haproxy"), "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
                                     env=proxy_env)
        self.closers.append(lambda: stop_process(self.haproxy))
        wait_http(f"{self.url}/healthz")

    def wait_serving(self, host: Host, timeout: float = 60) -> None:
        try:
            wait_http(f"{host.url}/healthz", timeout=timeout)
        except RuntimeError:
            raise RuntimeError(host.log("web")) from None

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        """Until `count` workers answer a ping through the broker: they consume from then on."""
        control = self.celery().control
        wait_until(lambda: len(control.ping(timeout=1.0)) >= count, timeout=timeout,
                   message=lambda: f"{len(control.ping(timeout=1.0))} workers answered")

    def celery(self):
        from orders_service.config import Settings
        from orders_service.queue import make_celery

        return make_celery(Settings.from_env(self.env))

    def start_beat(self, host: Host, **env) -> subprocess.Popen:
        return host.start("beat", **env)

    def restart(self, host: Host, **env: str) -> None:
        """A host comes back (after `kill`), or is deployed again with `env` changed: web and worker (and beat
        if it ran one) started again, serving."""
        beat = "beat" in host.procs
        host.stop()
        host.overrides = env
        for name in ("web", "worker", *(("beat",) if beat else ())):
            host.start(name, **env)
        self.wait_serving(host)

    def haproxy_command(self, command: str) -> str:
        """A command to HAProxy's runtime API (`disable server web/web1`…): its answer."""
        with socket.socket(socket.AF_UNIX) as api:
            api.connect(self.haproxy_socket)
            api.sendall(command.encode() + b"\n")
            answer = b""
            while chunk := api.recv(65536):
                answer += chunk
        return answer.decode()

    def backends(self) -> dict[str, dict[str, str]]:
        """HAProxy's `show stat` of each web host: {'web1': {'status': 'UP', 'scur': '0', …}, …}."""
        lines = self.haproxy_command("show stat").lstrip("# ").splitlines()
        rows = [dict(zip(lines[0].split(","), line.split(","), strict=False)) for line in lines[1:] if line]
        return {row["svname"]: row for row in rows if row.get("pxname") == "web" and row["svname"].startswith("web")}

    def close(self) -> None:
        while self.closers:
            try:
                self.closers.pop()()
            except Exception as exc:  # the others must still go
                print(f"hosts stack: clean-up step failed: {exc!r}", file=sys.stderr)
