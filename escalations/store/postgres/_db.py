"""The PostgreSQL connection discipline every part of the store shares: one connection per
thread (autocommit, so a read outside a transaction is one statement on a fresh snapshot),
explicit ``BEGIN … COMMIT`` transactions that first take the store's write lock, the session
time zone UTC, times as ``timestamptz``; the password from the URL, the ``database-password``
systemd credential or libpq's password file (``PGPASSFILE``, ``~/.pgpass``), never logged;
numbered forward-only migrations tracked in ``schema_migration`` and applied under an advisory
lock, so two workers starting together migrate once.

**Faults.** Every psycopg error that leaves the store is one of the domain's:

- the server gone or unreachable (a connection refused or reset, ``admin_shutdown``
  57P01 when it restarts, class 08, "starting up" 57P03): ``StoreUnavailable``. The session
  is dropped; the next call connects again. A transaction it cut was rolled back by the
  server (a cut ``COMMIT`` may have committed: what the jobs write is look-before-write or
  under a unique constraint, so the pass that runs again finds it);
- a serialization failure (40001) or a deadlock (40P01): ``StoreConflict``, after the
  transaction was rolled back (see the package docstring for where it is retried);
- a refused login (wrong password, no ``pg_hba.conf`` entry, no such role or database, a
  certificate refused): ``StoreLoginRefused``, a configuration error that names where the
  password came from, never the password. libpq gives no SQLSTATE for a failed connection,
  so this is told by the server's (English) message; any other failure to connect is taken
  as temporary, since a restart that cannot help costs less than a worker left stopped.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import conninfo, pq
from psycopg.rows import dict_row

from connector.redaction import SECRETS
from escalations.clock import Clock
from escalations.errors import StoreConflict, StoreError, StoreLoginRefused, StoreUnavailable
from escalations.store.base import Fence

CREDENTIAL_NAME = "database-password"
"""The systemd credential (``LoadCredential=database-password:…``) read when the URL has no
password."""
SCHEMES = ("postgresql://", "postgres://")
MIGRATION_LOCK = 0x6865_5F6D_6967  # pg_advisory_xact_lock keys: fixed, per database
WRITE_LOCK = 0x6865_5F77_7269
CONNECT_TIMEOUT_S = 10
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""TCP keepalives, so a server that vanished (a failover, a cut network) ends the session
within about 25 s instead of leaving a statement waiting; the URL may set others."""
_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
"""Named, so a database or role default (``default_transaction_isolation``) cannot turn the
store's transactions into ones that take their snapshot before the write lock is granted."""
CONFLICT_STATES = frozenset({"40001", "40P01"})
"""serialization_failure, deadlock_detected: the server rolled the transaction back."""
SESSION_ENDED_STATES = frozenset({"57P01", "57P02", "57P03"})
"""admin_shutdown, crash_shutdown, cannot_connect_now (with class 08: the session is gone)."""
_REFUSED_LOGIN = re.compile(
    r"authentication failed|no pg_hba\.conf entry|pg_hba\.conf rejects|not permitted to log in"
    r"|role \"[^\"]*\" does not exist|database \"[^\"]*\" does not exist"
    r"|permission denied for database|no password supplied|certificate|invalid \w+ value"
    r"|invalid connection option",
    re.IGNORECASE,
)
"""What libpq or the server says when the login itself is refused (28P01, 28000, 3D000,
42501, a TLS certificate, a bad parameter): a setting to fix, not a server to wait for."""

Conn = psycopg.Connection[dict[str, Any]]


def is_postgres_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def redacted_url(url: str) -> str:
    """``url`` without its password (and without any query, which may hold one)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    where = netloc[-1]
    user = netloc[0].split(":", 1)[0] if len(netloc) == 2 else ""
    return f"{parts.scheme}://{user + '@' if user else ''}{where}{parts.path}"


def _credential_password() -> str | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL_NAME
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"credential {CREDENTIAL_NAME}: cannot read it: {exc}") from None


def password_source(url: str) -> str:
    """Where the password for ``url`` comes from, named for the admin (never the password)."""
    if conninfo.conninfo_to_dict(url).get("password"):
        return "the password in ESCALATIONS_DATABASE_URL"
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / CREDENTIAL_NAME).is_file():
        return f"the credential file {Path(directory) / CREDENTIAL_NAME}"
    return "the password file (PGPASSFILE, else ~/.pgpass)"


def connect_error(url: str, exc: psycopg.Error) -> StoreLoginRefused | StoreUnavailable:
    """A failed connection as the domain sees it: a refused login (a setting to fix) or an
    unreachable server (wait, or let systemd start the worker again)."""
    shown, text = redacted_url(url), SECRETS.redact(_one_line(exc))
    if _REFUSED_LOGIN.search(text):
        return StoreLoginRefused(
            f"{shown}: cannot connect: {text}: the login was refused (check the user and the "
            f"database in ESCALATIONS_DATABASE_URL, and {password_source(url)})"
        )
    return StoreUnavailable(f"{shown}: cannot connect: {text}")


def session_lost(exc: psycopg.Error, conn: Conn | None = None) -> bool:
    """The error says the session is gone (the server restarted, went away, or the network
    did), not that the statement was refused."""
    state = exc.sqlstate or ""
    if state.startswith("08") or state in SESSION_ENDED_STATES:
        return True
    return isinstance(exc, psycopg.OperationalError) and (conn is None or conn.closed)


def store_error(url: str, exc: psycopg.Error, conn: Conn | None) -> StoreError | None:
    """``StoreUnavailable`` or ``StoreConflict`` for an error that is one; else ``None``
    (the caller lets the psycopg error itself go on: a constraint, a bug)."""
    if exc.sqlstate in CONFLICT_STATES:
        return StoreConflict(f"{url}: the transaction was rolled back: {_one_line(exc)}")
    if session_lost(exc, conn):
        return StoreUnavailable(f"{url}: the connection was lost: {_one_line(exc)}")
    return None


def connection_params(url: str) -> dict[str, Any]:
    """libpq parameters for ``url``: its password, else the credential's; with neither,
    libpq looks in ``PGPASSFILE`` (or ``~/.pgpass``) itself."""
    if not is_postgres_url(url):
        raise StoreError(f"{redacted_url(url)}: not a postgresql:// URL")
    try:
        params: dict[str, Any] = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise StoreError(f"{redacted_url(url)}: not a valid PostgreSQL URL") from None
    if not params.get("password"):
        password = _credential_password()
        if password:
            params["password"] = password
    if params.get("password"):
        SECRETS.add(str(params["password"]))
    return params


def to_db(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}; the store keeps aware UTC times")
    return value.astimezone(UTC)


def from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as a dict, its times in ``datetime.UTC``."""
    return {k: (v.astimezone(UTC) if isinstance(v, datetime) else v) for k, v in row.items()}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The PostgreSQL migrations (``escalations/store/migrations/postgresql``), numbered and
    named as the SQLite ones: one list of steps, each expressed for both engines."""
    found = []
    for entry in resources.files("escalations.store.migrations.postgresql").iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations are not numbered 1..n: {[m.name for m in found]}")
    return found


def probe_schema(url: str) -> int | None:
    """Connect to the database ``url`` names, write nothing, and return its schema version
    (``None``: no store there yet). For ``escalations check`` and the worker's preflight.

    Raises:
        StoreUnavailable: the server cannot be reached (temporary).
        StoreLoginRefused: it refuses the login or the database (the message never holds
            the password).
        StoreError: the schema is newer than this code understands.
    """
    shown = redacted_url(url)
    params = connection_params(url)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    params.setdefault("application_name", "helpdesk-escalations")
    for key, value in KEEPALIVES.items():
        params.setdefault(key, value)
    try:
        conn = psycopg.connect(**params, autocommit=True, row_factory=dict_row)
    except psycopg.Error as exc:
        raise connect_error(url, exc) from None
    try:
        with conn:
            row = conn.execute("SELECT to_regclass('schema_migration') IS NOT NULL AS t").fetchone()
            if not row or not row["t"]:
                return None
            found = conn.execute("SELECT max(version) AS v FROM schema_migration").fetchone()
    except psycopg.Error as exc:
        if session_lost(exc, conn):
            raise StoreUnavailable(f"{shown}: the connection was lost: {_one_line(exc)}") from None
        raise StoreError(f"{shown}: cannot read the schema: {_one_line(exc)}") from None
    version = int(found["v"] or 0) if found else 0
    latest = len(load_migrations())
    if version > latest:
        raise StoreError(
            f"{shown}: database schema version {version} is newer than this code understands "
            f"({latest}); upgrade helpdesk-escalations or restore a backup"
        )
    return version


class PgTransaction:
    """The handle write methods take; valid only inside its ``with`` block and thread."""

    __slots__ = ("active", "conn")

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.active = True


class PgBase:
    """Connections, transactions and migrations; the concern mixins build on it."""

    clock: Clock

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = redacted_url(url)
        self._url = url  # for naming where the password came from, never shown itself
        self._params = connection_params(url)
        self.clock = clock
        self._local = threading.local()
        self._connections: list[Conn] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        try:
            self._version = self._migrate(self._conn())
        except BaseException:
            self.close()
            raise

    @property
    def schema_version(self) -> int:
        return self._version

    def _conn(self) -> Conn:
        if self._closed:
            raise StoreError(f"{self.url}: the store is closed")
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None and conn.closed and getattr(self._local, "tx", None) is None:
            with self._connections_lock:  # lost (server restarted): the next call reconnects
                self._connections.remove(conn)
            conn = self._local.conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.tx = None
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> Conn:
        params = dict(self._params)
        options = " ".join(
            part
            for part in (
                params.pop("options", ""),
                "-c TimeZone=UTC",
                f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}",
            )
            if part
        )
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "helpdesk-escalations")
        for key, value in KEEPALIVES.items():
            params.setdefault(key, value)
        try:
            conn = psycopg.connect(**params, autocommit=True, row_factory=dict_row, options=options)
        except psycopg.Error as exc:
            raise connect_error(self._url, exc) from None
        return conn

    def _migrate(self, conn: Conn) -> int:
        migrations = load_migrations()  # looked up at each call: tests may replace it
        latest = len(migrations)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migration (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                row = conn.execute("SELECT max(version) AS v FROM schema_migration").fetchone()
                version = int(row["v"] or 0) if row else 0
                if version > latest:
                    raise StoreError(
                        f"{self.url}: database schema version {version} is newer than this "
                        f"code understands ({latest}); upgrade helpdesk-escalations or restore "
                        "a backup"
                    )
                for migration in migrations[version:]:
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migration (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
        except psycopg.Error as exc:
            if session_lost(exc, conn):
                lost = f"{self.url}: the connection was lost: {_one_line(exc)}"
                raise StoreUnavailable(lost) from exc
            raise StoreError(f"{self.url}: migration failed: {_one_line(exc)}") from exc
        return latest

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        """A write transaction. It starts by taking the store's write lock (see the package
        docstring): write transactions of all workers run one at a time, as on SQLite."""
        conn = self._conn()
        if self._local.tx is not None:
            raise StoreError("transactions do not nest; pass the open 'tx' down instead")
        try:
            conn = self._begin(conn)
        except psycopg.Error as exc:
            _rollback(conn)
            known = store_error(self.url, exc, conn)
            if known is not None:
                raise known from exc
            raise StoreError(f"{self.url}: cannot start a transaction: {_one_line(exc)}") from exc
        tx = PgTransaction(conn)
        self._local.tx = tx
        try:
            fence: Fence | None = getattr(self._local, "fence", None)
            if fence is not None:  # under the write lock until COMMIT (see the package doc)
                row = conn.execute(
                    "SELECT holder, epoch FROM lease WHERE name = %s", (fence.name,)
                ).fetchone()
                fence.check(None if row is None else (str(row["holder"]), int(row["epoch"])))
            yield tx
            if conn.info.transaction_status == pq.TransactionStatus.INERROR:
                # a statement failed and its error was caught inside the block: PostgreSQL
                # would turn the COMMIT into a silent ROLLBACK
                raise StoreError(
                    "a statement in this transaction failed; the transaction was rolled back"
                )
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            _rollback(conn)
            known = store_error(self.url, exc, conn)
            if known is not None:  # rolled back (a cut COMMIT may have committed: see above)
                raise known from exc
            raise
        except BaseException:
            _rollback(conn)
            raise
        finally:
            tx.active = False
            self._local.tx = None

    @contextlib.contextmanager
    def fence(self, name: str, *, holder: str, epoch: int) -> Iterator[None]:
        """``Leases.fence``: this thread's write transactions check the lease first."""
        previous = getattr(self._local, "fence", None)
        self._local.fence = Fence(name, holder, epoch)
        try:
            yield
        finally:
            self._local.fence = previous

    def _read(self, sql: str, params: Any = None) -> psycopg.Cursor[dict[str, Any]]:
        """Run a read on this thread's connection (inside its transaction, if one is open).
        Outside a transaction, a read that finds the connection lost (the server restarted)
        is made once more on a new connection: a read changes nothing, so that is safe."""
        conn = self._conn()
        try:
            return conn.execute(sql, params)
        except psycopg.OperationalError:
            if not conn.closed or self._local.tx is not None:
                raise  # in a transaction: ``transaction`` says what it was
        conn = self._conn()
        try:
            return conn.execute(sql, params)
        except psycopg.Error as exc:
            known = store_error(self.url, exc, conn)
            if known is not None:
                raise known from exc
            raise

    def _begin(self, conn: Conn) -> Conn:
        """``BEGIN`` and the write lock; on a connection found lost, once more on a new one
        (nothing was done in the transaction yet)."""
        try:
            conn.execute(BEGIN)
        except psycopg.OperationalError:
            if not conn.closed:
                raise
            conn = self._conn()
            conn.execute(BEGIN)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        return conn

    def _tx(self, tx: object) -> Conn:
        current: PgTransaction | None = getattr(self._local, "tx", None)
        if current is None or tx is not current or not current.active:
            raise StoreError("a write needs the open transaction of this store and thread")
        return current.conn

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            self._connections.clear()
        self._closed = True

    def integrity_check(self) -> list[str]:
        """``["ok"]`` when the database answers and its schema is the one migrated to."""
        row = self._read("SELECT max(version) AS v FROM schema_migration").fetchone()
        found = int(row["v"] or 0) if row else 0
        if found != self._version:
            return [f"schema version {found}, expected {self._version}"]
        return ["ok"]


def _rollback(conn: Conn) -> None:
    if conn.closed or conn.info.transaction_status == pq.TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
