"""Poll cursors, seen ticket versions and scan requests (``SyncState``) in PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from escalations.store.base import Cursor, ScanRequest
from escalations.store.postgres._db import PgBase, from_row, to_db


class SyncStateMixin(PgBase):
    def get_cursor(self, stream: str) -> Cursor | None:
        row = self._read("SELECT * FROM sync_cursor WHERE stream = %s", (stream,)).fetchone()
        if row is None:
            return None
        cursor = Cursor(**from_row(row))
        assert cursor.value <= cursor.signpost, f"cursor {stream} is past its signpost"
        return cursor

    def set_cursor(self, tx: object, stream: str, value: datetime, signpost: datetime) -> None:
        if value > signpost:
            raise ValueError(
                f"cursor {stream}: {value.isoformat()} is past the signpost {signpost.isoformat()}"
            )
        self._tx(tx).execute(
            "INSERT INTO sync_cursor (stream, value, signpost, updated_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (stream) DO UPDATE SET value = excluded.value,"
            " signpost = excluded.signpost, updated_at = excluded.updated_at",
            (stream, to_db(value), to_db(signpost), to_db(self.clock.now())),
        )

    def ticket_seen(self, ticket_id: int, updated_at: datetime) -> bool:
        row = self._read(
            "SELECT 1 FROM seen_version WHERE ticket_id = %s AND updated_at = %s",
            (ticket_id, to_db(updated_at)),
        ).fetchone()
        return row is not None

    def note_ticket_seen(self, tx: object, ticket_id: int, updated_at: datetime) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO seen_version (ticket_id, updated_at, seen_at) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (ticket_id, to_db(updated_at), to_db(self.clock.now())),
        )
        return cur.rowcount == 1

    def forget_seen_before(self, tx: object, before: datetime) -> int:
        """As on SQLite: versions stamped and seen before ``before`` are forgotten."""
        cur = self._tx(tx).execute(
            "DELETE FROM seen_version WHERE updated_at < %s AND seen_at < %s",
            (to_db(before), to_db(before)),
        )
        return cur.rowcount

    # -- scan requests ----------------------------------------------------------------
    def request_scan(
        self, tx: object, escalation_id: int, ticket_id: int, ticket_number: str, at: datetime
    ) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO scan_request (escalation_id, ticket_id, ticket_number, requested_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (escalation_id, ticket_id, ticket_number, to_db(at)),
        )
        return cur.rowcount == 1

    def pending_scans(self) -> list[ScanRequest]:
        rows = self._read(
            "SELECT escalation_id, ticket_id, ticket_number, requested_at FROM scan_request"
            " ORDER BY requested_at, escalation_id, ticket_id"
        )
        return [ScanRequest(**from_row(row)) for row in rows]

    def clear_scan(self, tx: object, escalation_id: int, ticket_id: int) -> None:
        self._tx(tx).execute(
            "DELETE FROM scan_request WHERE escalation_id = %s AND ticket_id = %s",
            (escalation_id, ticket_id),
        )
