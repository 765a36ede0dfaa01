"""Escalations and what happened to them (``EscalationRecords``), in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

import psycopg

from escalations.errors import StoreError
from escalations.models import (
    TERMINAL_STATES,
    ArchiveCopy,
    ArchiveIntent,
    CarrierContact,
    CopiedArticle,
    Duty,
    Escalation,
    LevelChange,
    ParkingOutcome,
    ParkingPeriod,
    State,
)
from escalations.store.base import Duplicate
from escalations.store.postgres._db import Conn, PgBase, from_row, to_db

ACTIVE = "state NOT IN ('closed', 'archived', 'purged')"
assert {State.CLOSED, State.ARCHIVED, State.PURGED} == TERMINAL_STATES
_DUTY_COLUMNS = (
    "escalation_id, kind, slot, due_at, done_at, opens_at, reason, evidence, reminded_at, missed_at"
)
ESC_COLUMNS = tuple(f.name for f in fields(Escalation) if f.name != "id")


class EscalationRecordsMixin(PgBase):
    def insert_escalation(self, tx: object, esc: Escalation) -> Escalation:
        conn = self._tx(tx)
        columns = ", ".join(ESC_COLUMNS)
        marks = ", ".join("%s" for _ in ESC_COLUMNS)
        try:
            # a savepoint: Duplicate leaves the transaction usable, as on SQLite
            with conn.transaction():
                row = conn.execute(
                    f"INSERT INTO escalation ({columns}) VALUES ({marks}) RETURNING id",  # noqa: S608
                    _escalation_values(esc),
                ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise _duplicate(esc, exc) from exc
        assert row is not None
        return replace(esc, id=int(row["id"]))

    def update_escalation(self, tx: object, esc: Escalation) -> None:
        conn = self._tx(tx)
        assignments = ", ".join(f"{c} = %s" for c in ESC_COLUMNS)
        try:
            with conn.transaction():
                cur = conn.execute(
                    f"UPDATE escalation SET {assignments} WHERE id = %s",  # noqa: S608
                    (*_escalation_values(esc), esc.id),
                )
        except psycopg.errors.UniqueViolation as exc:
            raise _duplicate(esc, exc) from exc
        if cur.rowcount != 1:
            raise StoreError(f"escalation {esc.id} does not exist")

    def _escalations(self, where: str, params: tuple[Any, ...] = ()) -> list[Escalation]:
        rows = self._read(
            f"SELECT * FROM escalation WHERE {where} ORDER BY id",  # noqa: S608 - fixed clauses
            params,
        )
        return [_escalation(row) for row in rows]

    def _one_escalation(self, where: str, params: tuple[Any, ...]) -> Escalation | None:
        found = self._escalations(where, params)
        return found[0] if found else None

    def get_escalation(self, escalation_id: int) -> Escalation | None:
        return self._one_escalation("id = %s", (escalation_id,))

    def escalation_by_key(self, key: str) -> Escalation | None:
        return self._one_escalation("key = %s", (key,))

    def escalation_by_ticket(self, escalation_ticket_id: int) -> Escalation | None:
        return self._one_escalation("escalation_ticket_id = %s", (escalation_ticket_id,))

    def active_escalation_for_ticket(self, original_ticket_id: int) -> Escalation | None:
        return self._one_escalation(f"original_ticket_id = %s AND {ACTIVE}", (original_ticket_id,))

    def escalations_for_ticket(self, original_ticket_id: int) -> list[Escalation]:
        return self._escalations("original_ticket_id = %s", (original_ticket_id,))

    def escalations_in(self, *states: State) -> list[Escalation]:
        if not states:
            return self._escalations("true")
        return self._escalations("state = ANY(%s)", ([State(s).value for s in states],))

    def active_escalations_for_customer(self, customer_id: int) -> list[Escalation]:
        return self._escalations(f"customer_id = %s AND {ACTIVE}", (customer_id,))

    def active_escalations_reading(self, ticket_id: int) -> list[Escalation]:
        return self._escalations(
            f"id IN (SELECT escalation_id FROM known_article WHERE ticket_id = %s) AND {ACTIVE}",  # noqa: S608 - fixed
            (ticket_id,),
        )

    # -- what happened to an escalation ------------------------------------------------
    def record_level_change(self, tx: object, change: LevelChange) -> None:
        self._tx(tx).execute(
            "INSERT INTO level_change (escalation_id, from_level, to_level, changed_at,"
            " changed_by_id, reason) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                change.escalation_id,
                change.from_level,
                change.to_level,
                to_db(change.changed_at),
                change.changed_by_id,
                change.reason,
            ),
        )

    def level_changes(self, escalation_id: int) -> list[LevelChange]:
        rows = self._read(
            "SELECT escalation_id, from_level, to_level, changed_at, changed_by_id, reason"
            " FROM level_change WHERE escalation_id = %s ORDER BY id",
            (escalation_id,),
        )
        return [LevelChange(**from_row(row)) for row in rows]

    def record_copied_article(self, tx: object, row: CopiedArticle) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO copied_article (escalation_id, source_ticket_id, source_article_id,"
            " copy_article_id, copied_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                row.escalation_id,
                row.source_ticket_id,
                row.source_article_id,
                row.copy_article_id,
                to_db(row.copied_at),
            ),
        )
        return cur.rowcount == 1

    def set_copy_article_id(
        self, tx: object, escalation_id: int, source_article_id: int, copy_article_id: int
    ) -> None:
        cur = self._tx(tx).execute(
            "UPDATE copied_article SET copy_article_id = %s"
            " WHERE escalation_id = %s AND source_article_id = %s",
            (copy_article_id, escalation_id, source_article_id),
        )
        if cur.rowcount != 1:
            raise StoreError(
                f"no copied article {source_article_id} recorded for escalation {escalation_id}"
            )

    def copied_articles(self, escalation_id: int) -> list[CopiedArticle]:
        rows = self._read(
            "SELECT escalation_id, source_ticket_id, source_article_id, copy_article_id,"
            " copied_at FROM copied_article WHERE escalation_id = %s ORDER BY id",
            (escalation_id,),
        )
        return [CopiedArticle(**from_row(row)) for row in rows]

    def record_carrier_contact(self, tx: object, row: CarrierContact) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO carrier_contact (escalation_id, source_article_id, carrier, stage,"
            " forename, location, user_id, called_at, missing, problems)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                row.escalation_id,
                row.source_article_id,
                row.carrier,
                row.stage,
                row.forename,
                row.location,
                row.user_id,
                to_db(row.called_at),
                json.dumps(list(row.missing)),
                json.dumps(list(row.problems)),
            ),
        )
        return cur.rowcount == 1

    def carrier_contacts(self, escalation_id: int) -> list[CarrierContact]:
        rows = self._read(
            "SELECT escalation_id, source_article_id, carrier, stage, forename, location,"
            " user_id, called_at, missing, problems FROM carrier_contact"
            " WHERE escalation_id = %s ORDER BY id",
            (escalation_id,),
        )
        result = []
        for row in rows:
            values = from_row(row)
            values["missing"] = tuple(json.loads(values["missing"]))
            values["problems"] = tuple(json.loads(values["problems"]))
            result.append(CarrierContact(**values))
        return result

    # -- hard copies -----------------------------------------------------------------------
    def begin_archive(self, tx: object, intent: ArchiveIntent) -> None:
        self._tx(tx).execute(
            "INSERT INTO archive_intent (escalation_id, closed_at, path, begun_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (intent.escalation_id, to_db(intent.closed_at), intent.path, to_db(intent.begun_at)),
        )

    def archive_intents(self) -> list[ArchiveIntent]:
        rows = self._read(
            "SELECT escalation_id, closed_at, path, begun_at FROM archive_intent"
            " ORDER BY begun_at, escalation_id"
        )
        return [ArchiveIntent(**from_row(row)) for row in rows]

    def drop_archive_intent(self, tx: object, escalation_id: int, closed_at: datetime) -> bool:
        cur = self._tx(tx).execute(
            "DELETE FROM archive_intent WHERE escalation_id = %s AND closed_at = %s",
            (escalation_id, to_db(closed_at)),
        )
        return cur.rowcount == 1

    def record_archive(self, tx: object, copy: ArchiveCopy) -> bool:
        self.drop_archive_intent(tx, copy.escalation_id, copy.closed_at)
        cur = self._tx(tx).execute(
            "INSERT INTO archive (escalation_id, closed_at, path, manifest_sha256, archived_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                copy.escalation_id,
                to_db(copy.closed_at),
                copy.path,
                copy.manifest_sha256,
                to_db(copy.archived_at),
            ),
        )
        return cur.rowcount == 1

    def archives(self, escalation_id: int | None = None) -> list[ArchiveCopy]:
        rows = self._read(
            "SELECT escalation_id, closed_at, path, manifest_sha256, archived_at, purged_at,"
            " purge_reason FROM archive WHERE %(esc)s::bigint IS NULL OR escalation_id = %(esc)s"
            " ORDER BY id",
            {"esc": escalation_id},
        )
        return [ArchiveCopy(**from_row(row)) for row in rows]

    def archive_purged(self, tx: object, path: str, at: datetime, reason: str) -> bool:
        cur = self._tx(tx).execute(
            "UPDATE archive SET purged_at = %s, purge_reason = %s"
            " WHERE path = %s AND purged_at IS NULL",
            (to_db(at), reason, path),
        )
        return cur.rowcount == 1

    # -- parking -----------------------------------------------------------------------------
    def start_parking(
        self, tx: object, escalation_id: int, resolved_at: datetime, pending_until: datetime
    ) -> ParkingPeriod:
        conn = self._tx(tx)
        periods = self._parking_periods(conn, escalation_id)
        if periods and periods[-1].ended_at is None:
            raise StoreError(f"escalation {escalation_id} is parked already")
        period = ParkingPeriod(
            escalation_id=escalation_id,
            seq=len(periods) + 1,
            resolved_at=resolved_at,
            pending_until=pending_until,
        )
        conn.execute(
            "INSERT INTO parking (escalation_id, seq, resolved_at, pending_until)"
            " VALUES (%s, %s, %s, %s)",
            (escalation_id, period.seq, to_db(resolved_at), to_db(pending_until)),
        )
        return period

    def end_parking(
        self,
        tx: object,
        escalation_id: int,
        at: datetime,
        outcome: ParkingOutcome,
        reason: str = "",
    ) -> ParkingPeriod | None:
        conn = self._tx(tx)
        periods = self._parking_periods(conn, escalation_id)
        if not periods or periods[-1].ended_at is not None:
            return None
        conn.execute(
            "UPDATE parking SET ended_at = %s, outcome = %s, reason = %s"
            " WHERE escalation_id = %s AND seq = %s",
            (to_db(at), outcome.value, reason, escalation_id, periods[-1].seq),
        )
        return replace(periods[-1], ended_at=at, outcome=outcome, reason=reason)

    def parking_periods(self, escalation_id: int) -> list[ParkingPeriod]:
        return _periods(self._read(PERIODS, (escalation_id,)))

    @staticmethod
    def _parking_periods(conn: Conn, escalation_id: int) -> list[ParkingPeriod]:
        return _periods(conn.execute(PERIODS, (escalation_id,)))

    def add_duty(self, tx: object, duty: Duty) -> bool:
        cur = self._tx(tx).execute(
            "INSERT INTO duty (escalation_id, kind, slot, due_at, done_at, opens_at, reason)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                duty.escalation_id,
                duty.kind,
                duty.slot,
                to_db(duty.due_at),
                to_db(duty.done_at),
                to_db(duty.opens_at),
                duty.reason,
            ),
        )
        return cur.rowcount == 1

    def complete_duty(
        self,
        tx: object,
        escalation_id: int,
        kind: str,
        slot: str,
        done_at: datetime,
        *,
        evidence: str | None = None,
    ) -> bool:
        cur = self._tx(tx).execute(
            "UPDATE duty SET done_at = %s, evidence = %s WHERE escalation_id = %s AND kind = %s"
            " AND slot = %s AND done_at IS NULL AND missed_at IS NULL",
            (to_db(done_at), evidence, escalation_id, kind, slot),
        )
        return cur.rowcount == 1

    def duty_reminded(
        self, tx: object, escalation_id: int, kind: str, slot: str, at: datetime
    ) -> bool:
        cur = self._tx(tx).execute(
            "UPDATE duty SET reminded_at = %s WHERE escalation_id = %s AND kind = %s"
            " AND slot = %s AND reminded_at IS NULL AND done_at IS NULL AND missed_at IS NULL",
            (to_db(at), escalation_id, kind, slot),
        )
        return cur.rowcount == 1

    def duty_missed(
        self, tx: object, escalation_id: int, kind: str, slot: str, at: datetime
    ) -> bool:
        cur = self._tx(tx).execute(
            "UPDATE duty SET missed_at = %s WHERE escalation_id = %s AND kind = %s"
            " AND slot = %s AND done_at IS NULL AND missed_at IS NULL",
            (to_db(at), escalation_id, kind, slot),
        )
        return cur.rowcount == 1

    def duties(
        self,
        escalation_id: int | None = None,
        *,
        due_by: datetime | None = None,
        pending_only: bool = False,
    ) -> list[Duty]:
        clauses: list[str] = []
        params: list[Any] = []
        if escalation_id is not None:
            clauses.append("escalation_id = %s")
            params.append(escalation_id)
        if due_by is not None:
            clauses.append("due_at <= %s")
            params.append(to_db(due_by))
        if pending_only:
            clauses.append("done_at IS NULL AND missed_at IS NULL")
        where = " AND ".join(clauses) or "true"
        sql = f"SELECT {_DUTY_COLUMNS} FROM duty WHERE {where} ORDER BY due_at, id"  # noqa: S608
        rows = self._read(sql, params)
        return [Duty(**from_row(row)) for row in rows]


def _escalation_values(esc: Escalation) -> tuple[Any, ...]:
    values = []
    for column in ESC_COLUMNS:
        value = getattr(esc, column)
        if isinstance(value, datetime):
            value = to_db(value)
        elif isinstance(value, State):
            value = value.value
        values.append(value)
    return tuple(values)


def _escalation(row: dict[str, Any]) -> Escalation:
    values = from_row(row)
    values["state"] = State(values["state"])
    return Escalation(**values)


def _duplicate(esc: Escalation, exc: psycopg.errors.UniqueViolation) -> Exception:
    if exc.diag.constraint_name == "escalation_one_active_per_ticket":
        return Duplicate(
            f"escalation {esc.key}: ticket {esc.original_ticket_id} already has an active "
            "escalation"
        )
    return Duplicate(f"escalation {esc.key}: {exc.diag.message_primary or 'duplicate'}")


PERIODS = (
    "SELECT escalation_id, seq, resolved_at, pending_until, ended_at, outcome, reason"
    " FROM parking WHERE escalation_id = %s ORDER BY seq"
)


def _periods(rows: Iterable[dict[str, Any]]) -> list[ParkingPeriod]:
    periods = []
    for row in rows:
        values = from_row(row)
        values["outcome"] = ParkingOutcome(values["outcome"]) if values["outcome"] else None
        periods.append(ParkingPeriod(**values))
    return periods
