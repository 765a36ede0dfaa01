"""The read-only database connection to osTicket's MariaDB/MySQL (PyMySQL).

Every read of the adapter is one ``SELECT`` through :class:`ReadOnlyDatabase`. It refuses any
other statement before it reaches the server, opens its session ``READ ONLY`` and is meant for
an account that holds ``SELECT`` only (``docs/osticket.md`` gives the ``GRANT``): three locks
on one door, since the adapter must never write SQL (``shared/reference/osticket.md`` §5.4).

osTicket stores ``datetime`` columns in the database server's time zone. The session's offset
from UTC is read once per connection (with the server's clock, for ``clock_offset``) and every
value is converted to an aware UTC ``datetime`` here, so nothing above sees a naive time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysql
import pymysql.cursors

from connector.clock import Clock
from connector.errors import HelpdeskError, Misconfigured, TransientError
from connector.redaction import SECRETS

log = logging.getLogger(__name__)

_SELECT_RE = re.compile(r"^\s*SELECT\b", re.IGNORECASE)
_ACCESS_DENIED = frozenset({1044, 1045})
_TABLE_DENIED = frozenset({1142, 1143})
"""MariaDB error codes for a refused login or a missing privilege."""


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the read-only account connects; ``password`` is registered as a secret."""

    host: str
    port: int
    database: str
    user: str
    password: str
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    table_prefix: str = "ost_"

    def __repr__(self) -> str:
        return f"DatabaseConfig({self.user}@{self.host}:{self.port}/{self.database})"


class DatabaseError(HelpdeskError):
    """The database refused a statement for a reason other than a lost connection."""


class ReadOnlyDatabase:
    """One PyMySQL connection, opened on first use and again after it is lost.

    ``queries`` counts every statement sent, the once-per-connection clock reading included
    (tests and ``bench/`` read it: an idle poll is one query)."""

    def __init__(self, config: DatabaseConfig, clock: Clock) -> None:
        if config.password:
            SECRETS.add(config.password)
        if not re.fullmatch(r"[A-Za-z0-9_]*", config.table_prefix):
            raise ValueError("the table prefix holds letters, digits and _ only")
        self.config = config
        self._clock = clock
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._db_offset = timedelta(0)
        self._server_clock: tuple[datetime, float] | None = None
        """The server's UTC time at the latest connection, and this machine's monotonic
        clock then."""
        self.queries = 0

    def __repr__(self) -> str:
        return f"ReadOnlyDatabase({self.config!r})"

    # -- time --------------------------------------------------------------------------------
    @property
    def clock_offset(self) -> timedelta | None:
        """How far the database server's clock is ahead of this machine's, now: the server's
        time read at the latest connection, carried forward by the monotonic clock, against
        this machine's wall clock now. So a wall clock stepped since (NTP, a resumed VM) is
        seen at once, without a query; ``None`` before the first connection."""
        if self._server_clock is None:
            return None
        server_then, mono_then = self._server_clock
        elapsed = timedelta(seconds=self._clock.monotonic() - mono_then)
        return server_then + elapsed - self._clock.now()

    def to_utc(self, value: datetime | None) -> datetime | None:
        """A ``datetime`` column (server time zone, naive) as aware UTC."""
        if value is None:
            return None
        return (value - self._db_offset).replace(tzinfo=UTC)

    def from_utc(self, value: datetime) -> datetime:
        """An aware instant as the naive server-time value a column comparison needs."""
        return (value.astimezone(UTC) + self._db_offset).replace(tzinfo=None)

    # -- statements --------------------------------------------------------------------------
    def table(self, name: str) -> str:
        return f"`{self.config.table_prefix}{name}`"

    def select(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one ``SELECT`` and return its rows as dicts. ``{t:name}`` in ``sql`` names the
        table with the configured prefix.

        Raises:
            TransientError: the server could not be reached or the connection was lost.
            Misconfigured: the account was refused, or lacks ``SELECT`` on a table.
            DatabaseError: any other refusal (a schema this version does not know).
        """
        return list(self._run(sql, args, stream=False))

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """Like ``select``, rows read from the server as they are consumed (file chunks)."""
        return self._run(sql, args, stream=True)

    def _run(self, sql: str, args: Sequence[Any], *, stream: bool) -> Iterator[dict[str, Any]]:
        if not _SELECT_RE.match(sql):
            raise ValueError("the osTicket adapter runs SELECT statements only")
        text = re.sub(r"\{t:([a-z_]+)\}", lambda m: self.table(m.group(1)), sql)
        conn = self._connection()
        cursor_class = pymysql.cursors.SSDictCursor if stream else pymysql.cursors.DictCursor
        self.queries += 1
        try:
            cursor = conn.cursor(cursor_class)
            cursor.execute(text, tuple(args))
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None
        return self._rows(cursor, stream)

    def _rows(self, cursor: Any, stream: bool) -> Iterator[dict[str, Any]]:
        try:
            if not stream:
                yield from cursor.fetchall()
                return
            while (row := cursor.fetchone()) is not None:
                yield row
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None
        finally:
            cursor.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except pymysql.MySQLError:
                pass
            self._conn = None

    # -- internals ---------------------------------------------------------------------------
    def _connection(self) -> pymysql.connections.Connection[Any]:
        if self._conn is not None and self._conn.open:
            return self._conn
        cfg = self.config
        try:
            conn = pymysql.connect(
                host=cfg.host,
                port=cfg.port,
                user=cfg.user,
                password=cfg.password,
                database=cfg.database,
                charset="utf8mb4",
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.read_timeout,
                autocommit=True,
            )
            with conn.cursor() as cursor:
                # every statement sees committed data as of its own start, and none can write
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                cursor.execute(
                    "SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()), UTC_TIMESTAMP(6)"
                )
                row = cursor.fetchone()
                assert row is not None  # a SELECT of two expressions returns one row
                offset_seconds, server_now = row
                self.queries += 2
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None
        self._db_offset = timedelta(seconds=int(offset_seconds))
        self._server_clock = (server_now.replace(tzinfo=UTC), self._clock.monotonic())
        self._conn = conn
        log.debug("osticket.db.connected host=%s port=%s", cfg.host, cfg.port)
        return conn

    def _error(self, exc: pymysql.MySQLError) -> HelpdeskError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = SECRETS.redact(str(exc.args[1]) if len(exc.args) > 1 else str(exc))[:300]
        where = f"{self.config.host}:{self.config.port}"
        if isinstance(exc, pymysql.OperationalError) and code not in _ACCESS_DENIED | _TABLE_DENIED:
            self.close()
            return TransientError(f"osTicket database at {where} unreachable: {text}")
        if isinstance(exc, pymysql.InterfaceError):
            self.close()
            return TransientError(f"osTicket database at {where}: connection lost: {text}")
        if code in _TABLE_DENIED:
            return Misconfigured(
                f"the osTicket database account {self.config.user!r} may not read ({text}): "
                "it needs SELECT on the tables docs/osticket.md §1 lists"
            )
        if code in _ACCESS_DENIED:
            # not the API key: the worker's CLI must name the database account, not the token
            return Misconfigured(
                f"the osTicket database at {where} refused the account {self.config.user!r} "
                f"({text}): check ESCALATIONS_HELPDESK_DB_USER and "
                "ESCALATIONS_HELPDESK_DB_PASSWORD (or the helpdesk-db-password credential)"
            )
        return DatabaseError(f"osTicket database error {code}: {text}")
