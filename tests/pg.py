"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary
directory, listening on 127.0.0.1 only (no Unix socket) on a port that was free, as the
``postgres`` user when the tests run as root (``initdb`` refuses root). One server per test
session (``pg_server``); each test gets its own database, copied from a migrated template
(``PgServer.new_database``), owned by an unprivileged role that has exactly the privileges
``docs/postgresql.md`` grants (it owns its database, nothing else; not a superuser).

When the server cannot start, the tests that need it are skipped on a developer's machine and
**fail** under ``CI=true`` (``.ci/run`` installs Debian's ``postgresql`` package).

The server is tuned for throwaway data (``fsync=off``); the store under test is not.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

APP_ROLE = "escalations_app"
TEMPLATE = "escalations_template"
_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


def find_binary(name: str) -> str | None:
    """``pg_ctl``/``initdb`` from PATH, or from Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file():
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A running server. ``url(db)`` is a ``postgresql://`` URL for the app role."""

    base: Path
    port: int
    superuser_password: str
    app_password: str
    run_as: str | None
    pg_ctl: str
    host: str = "127.0.0.1"
    _counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    def url(self, database: str, *, user: str = APP_ROLE, password: str | None = None) -> str:
        secret = self.app_password if password is None else password
        auth = f"{quote(user)}:{quote(secret)}@" if secret else f"{quote(user)}@"
        return f"postgresql://{auth}{self.host}:{self.port}/{quote(database)}"

    def admin(self, database: str = "postgres") -> Any:
        """An autocommit connection as the superuser (for setting up and inspecting)."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user="postgres",
            password=self.superuser_password,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        )

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database owned by the app role: a copy of the migrated template, or empty
        (``migrated=False``, for the migration tests)."""
        name = f"t{os.getpid()}_{next(self._counter)}"
        template = TEMPLATE if migrated else "template0"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {APP_ROLE} TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.pg_ctl, "-D", str(self.datadir), *args],
            user=self.run_as,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def start(self) -> None:
        self._ctl("-w", "-t", "30", "-l", str(self.base / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        path = self.base / "server.log"
        if not path.exists():
            return "(no server log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_server() -> PgServer:
    """Create, start and prepare a server (app role, migrated template), or raise
    ``RuntimeError`` saying why not."""
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("initdb/pg_ctl not found (Debian package 'postgresql')")
    run_as = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no 'postgres' user") from None
        run_as = "postgres"
    base = Path(tempfile.mkdtemp(prefix="escalations-pg-"))
    if run_as:
        os.chown(base, account.pw_uid, account.pw_gid)
    superuser_password = secrets.token_urlsafe(16)
    pwfile = base / "pwfile"
    pwfile.write_text(superuser_password + "\n")
    if run_as:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    pwfile.chmod(0o600)
    try:
        subprocess.run(
            [initdb, "-D", str(base / "data"), "-U", "postgres", "-A", "scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale", "-N"],
            user=run_as, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {exc.stderr.strip()[-500:]}") from None
    pwfile.unlink()
    last_error = ""
    for _ in range(3):  # the free port may be taken between the probe and the start
        port = _free_port()
        with (base / "data" / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 60\n"
            )
        server = PgServer(
            base=base,
            port=port,
            superuser_password=superuser_password,
            app_password=secrets.token_urlsafe(16),
            run_as=run_as,
            pg_ctl=pg_ctl,
        )
        try:
            server.start()
        except subprocess.CalledProcessError:
            last_error = server.log_tail(5)
            continue
        _prepare(server)
        return server
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"the server did not start: {last_error}")


def _prepare(server: PgServer) -> None:
    """The app role (what docs/postgresql.md creates) and the migrated template."""
    from escalations.clock import FakeClock
    from escalations.store.postgres import PostgresStore

    with server.admin() as conn:
        conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{server.app_password}'")
        conn.execute(f"CREATE DATABASE {TEMPLATE} OWNER {APP_ROLE}")
        conn.execute(f"REVOKE ALL ON DATABASE {TEMPLATE} FROM PUBLIC")
    PostgresStore(server.url(TEMPLATE), FakeClock()).close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server; skipped when it cannot start, failed under CI=true."""
    try:
        server = start_server()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        message = f"no PostgreSQL for the tests: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: these tests must run)", pytrace=False)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop("immediate")
        with contextlib.suppress(OSError):
            shutil.rmtree(server.base)


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A fresh migrated database for one test; its URL is ``pg_server.url(name)``."""
    name = pg_server.new_database()
    yield name
    pg_server.drop_database(name)
