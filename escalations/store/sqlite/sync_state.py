"""Poll cursors, seen ticket versions and scan requests (``SyncState``) in SQLite."""

from __future__ import annotations

from datetime import datetime

from escalations.store.base import Cursor, ScanRequest
from escalations.store.sqlite._db import SqliteBase, db_time, parse_times, to_db


class SyncStateMixin(SqliteBase):
    def get_cursor(self, stream: str) -> Cursor | None:
        row = (
            self._conn().execute("SELECT * FROM sync_cursor WHERE stream = ?", (stream,)).fetchone()
        )
        if row is None:
            return None
        cursor = Cursor(**parse_times(dict(row)))
        assert cursor.value <= cursor.signpost, f"cursor {stream} is past its signpost"
        return cursor

    def set_cursor(self, tx: object, stream: str, value: datetime, signpost: datetime) -> None:
        if value > signpost:
            raise ValueError(
                f"cursor {stream}: {value.isoformat()} is past the signpost {signpost.isoformat()}"
            )
        self._tx(tx).execute(
            "INSERT INTO sync_cursor (stream, value, signpost, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (stream) DO UPDATE SET value = excluded.value,"
            " signpost = excluded.signpost, updated_at = excluded.updated_at",
            (stream, to_db(value), to_db(signpost), to_db(self.clock.now())),
        )

    def ticket_seen(self, ticket_id: int, updated_at: datetime) -> bool:
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM seen_version WHERE ticket_id = ? AND updated_at = ?",
                (ticket_id, to_db(updated_at)),
            )
            .fetchone()
        )
        return row is not None

    def note_ticket_seen(self, tx: object, ticket_id: int, updated_at: datetime) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO seen_version (ticket_id, updated_at, seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (ticket_id, to_db(updated_at), to_db(self.clock.now())),
        )
        return cur.rowcount == 1

    def forget_seen_before(self, tx: object, before: datetime) -> int:
        """Forget versions stamped before ``before`` and seen before it too (a version stamped
        in the future is kept until the worker's own clock has passed its sighting)."""
        cur = self._tx(tx).execute(
            "DELETE FROM seen_version WHERE updated_at < ? AND seen_at < ?",
            (to_db(before), to_db(before)),
        )
        return cur.rowcount

    # -- scan requests ----------------------------------------------------------------
    def request_scan(
        self, tx: object, escalation_id: int, ticket_id: int, ticket_number: str, at: datetime
    ) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO scan_request (escalation_id, ticket_id, ticket_number, requested_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (escalation_id, ticket_id, ticket_number, to_db(at)),
        )
        return cur.rowcount == 1

    def pending_scans(self) -> list[ScanRequest]:
        rows = (
            self._conn()
            .execute(
                "SELECT escalation_id, ticket_id, ticket_number, requested_at FROM scan_request"
                " ORDER BY requested_at, escalation_id, ticket_id"
            )
            .fetchall()
        )
        return [
            ScanRequest(
                escalation_id=r[0], ticket_id=r[1], ticket_number=r[2], requested_at=db_time(r[3])
            )
            for r in rows
        ]

    def clear_scan(self, tx: object, escalation_id: int, ticket_id: int) -> None:
        self._tx(tx).execute(
            "DELETE FROM scan_request WHERE escalation_id = ? AND ticket_id = ?",
            (escalation_id, ticket_id),
        )
