"""A real PgBouncer of a test's own, run with the repository's deploy/pgbouncer.ini (its placeholders filled
in here), on a free port, in front of the tests' PostgreSQL; stopped and started again on the same port to
play a pooler restart. Debian's `pgbouncer` (`make pgbouncer`); tests skip, saying so, without it."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import string
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.database import admin_url
from tests.support.processes import free_port, wait_tcp

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "pgbouncer.ini"


def binary() -> str | None:
    return shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if os.access(p, os.X_OK)), None)


MISSING = "PgBouncer is not installed (`make pgbouncer` installs Debian's package)"


def render(template: str = TEMPLATE.read_text(), **values) -> str:
    """deploy/pgbouncer.ini with its placeholders (`${LISTEN_PORT}`…) filled in; a placeholder left out is an error."""
    return string.Template(template).substitute(values)


class PgBouncer:
    """PgBouncer in transaction mode on `listen_addr`:`port` (127.0.0.1, or 0.0.0.0 for other hosts; a free port
    unless told), `trust` for the tests' PostgreSQL user.

    PgBouncer refuses to run as root: as root it runs as the `postgres` user, as the tests' PostgreSQL does.
    """

    def __init__(self, default_pool_size: int = 2, max_client_conn: int = 200, listen_addr: str = "127.0.0.1",
                 port: int | None = None):
        self.path = binary()
        if self.path is None:
            raise RuntimeError(MISSING)
        server = make_url(admin_url())
        self.user = server.username or "postgres"
        self.listen_addr, self.port = listen_addr, port or free_port()
        self.folder = tempfile.mkdtemp(prefix="orders-test-pgbouncer-")
        auth_file = os.path.join(self.folder, "userlist.txt")
        Path(auth_file).write_text(f'"{self.user}" ""\n')
        self.config = os.path.join(self.folder, "pgbouncer.ini")
        Path(self.config).write_text(render(
            LISTEN_ADDR=listen_addr, LISTEN_PORT=self.port, DB_HOST=server.host or "127.0.0.1",
            DB_PORT=server.port or 5432, AUTH_TYPE="trust", AUTH_FILE=auth_file,
            DEFAULT_POOL_SIZE=default_pool_size, MAX_CLIENT_CONN=max_client_conn))
        self.as_user = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            for path in (self.folder, auth_file, self.config):
                os.chown(path, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.log = os.path.join(self.folder, "pgbouncer.log")
        self.proc: subprocess.Popen | None = None
        self.start()

    def url(self, database_url: str) -> str:
        """`database_url` (a database of the tests' server) reached through this PgBouncer."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*self.as_user, self.path, self.config], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_tcp(self.port, timeout=20)
        except Exception:
            raise RuntimeError(f"pgbouncer did not start: {self.output()}") from None

    def kill(self) -> None:
        """SIGKILL, as a crashed pooler: every client and server connection is cut at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Killed and started again on the same port."""
        self.kill()
        self.start()

    def output(self) -> str:
        return Path(self.log).read_text(errors="replace")[-3000:] if os.path.exists(self.log) else ""

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
