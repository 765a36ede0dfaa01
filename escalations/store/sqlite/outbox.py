"""The effects table (``OutboxStore``) in SQLite: rows recorded, claimed in one statement with
a worker's lease, finished; and an admin's replay of a failed one.

SQLite has one writer at a time (``BEGIN IMMEDIATE``), so the claim's ``UPDATE … WHERE id =
(SELECT …)`` cannot race another worker's: the row it picks is claimable when it is updated.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from connector.base import Marker
from escalations.errors import StoreError
from escalations.models import Effect, EffectRef, EffectState
from escalations.store.sqlite._db import SqliteBase, parse_times, to_db

CLAIMABLE = """
  e.state IN ('pending', 'in_flight') AND e.not_before <= :now
  AND (
    e.state = 'pending'
    OR (e.lease_until IS NOT NULL AND e.lease_until <= :now)
    OR (e.lease_until IS NULL AND e.updated_at <= :orphaned_before)
  )
  AND NOT EXISTS (
    SELECT 1 FROM effect p
    WHERE e.after_kind IS NOT NULL AND p.kind = e.after_kind AND p.key = e.after_key
      AND p.state IN ('pending', 'in_flight')
  )
"""
"""An effect another worker may take now: due, not under a live lease (an orphan only after
the settle window), and not waiting for an unfinished prerequisite. A prerequisite that no
longer exists (or never did, in rows from before 'after' was checked) does not hold it up."""


CLAIM_NEXT = (
    "UPDATE effect SET state = 'in_flight', attempts = attempts + 1,"  # noqa: S608 (constants only)
    " claimed_by = :worker, lease_until = :lease_until, updated_at = :now"
    " WHERE id = (SELECT e.id FROM effect e WHERE e.id > :after_id AND"
    f" {CLAIMABLE} ORDER BY e.id LIMIT 1) RETURNING *"
)
"""Claim the first claimable effect after ``after_id``: one statement, so no other worker
can take the same row between the pick and the update. (Built once from constants.)"""


class OutboxMixin(SqliteBase):
    def insert_effect(
        self,
        tx: object,
        *,
        kind: str,
        key: str,
        marker: str,
        payload_json: str,
        payload_sha256: str,
        payload_version: int,
        escalation_id: int | None,
        after: tuple[str, str] | None,
        at: datetime,
    ) -> int | None:
        after_kind, after_key = after if after else (None, None)
        cur = self._tx(tx).execute(
            "INSERT INTO effect (kind, key, marker, payload, payload_sha256, payload_version,"
            " escalation_id, state, not_before, after_kind, after_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, key) DO NOTHING",
            (
                kind,
                key,
                marker,
                payload_json,
                payload_sha256,
                payload_version,
                escalation_id,
                to_db(at),
                after_kind,
                after_key,
                to_db(at),
                to_db(at),
            ),
        )
        return cur.lastrowid if cur.rowcount == 1 else None

    def _effects(self, where: str, params: tuple[Any, ...] = ()) -> list[Effect]:
        rows = self._conn().execute(
            f"SELECT * FROM effect WHERE {where} ORDER BY id",  # noqa: S608 - fixed clauses
            params,
        )
        return [effect_from_row(row) for row in rows]

    def get_effect(self, effect_id: int) -> Effect | None:
        found = self._effects("id = ?", (effect_id,))
        return found[0] if found else None

    def effect_by_key(self, kind: str, key: str) -> Effect | None:
        found = self._effects("kind = ? AND key = ?", (kind, key))
        return found[0] if found else None

    def effects(self, *states: EffectState, escalation_id: int | None = None) -> list[Effect]:
        clauses: list[str] = []
        params: list[Any] = []
        if states:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(EffectState(s).value for s in states)
        if escalation_id is not None:
            clauses.append("escalation_id = ?")
            params.append(escalation_id)
        return self._effects(" AND ".join(clauses) or "1", tuple(params))

    def claim_next(
        self,
        tx: object,
        *,
        worker: str,
        now: datetime,
        after_id: int,
        lease_until: datetime,
        orphaned_before: datetime,
    ) -> Effect | None:
        rows = (
            self._tx(tx)
            .execute(
                CLAIM_NEXT,
                {
                    "worker": worker,
                    "lease_until": to_db(lease_until),
                    "now": to_db(now),
                    "after_id": after_id,
                    "orphaned_before": to_db(orphaned_before),
                },
            )
            .fetchall()
        )
        return effect_from_row(rows[0]) if rows else None

    def count_due(self, *, now: datetime) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM effect WHERE state IN ('pending', 'in_flight')"
                " AND not_before <= ?",
                (to_db(now),),
            )
            .fetchone()
        )
        return int(row[0])

    def finish_effect(
        self,
        tx: object,
        effect_id: int,
        state: EffectState,
        *,
        remote_id: str | None = None,
        last_error: str | None = None,
        not_before: datetime | None = None,
        give_back_attempt: bool = False,
    ) -> None:
        given_back = 1 if give_back_attempt else 0
        cur = self._tx(tx).execute(
            "UPDATE effect SET state = ?, remote_id = COALESCE(?, remote_id), last_error = ?,"
            " not_before = COALESCE(?, not_before), updated_at = ?, claimed_by = NULL,"
            " lease_until = NULL, attempts = MAX(attempts - ?, 0), deferrals = deferrals + ?"
            " WHERE id = ? AND state IN ('pending', 'in_flight')",
            (
                EffectState(state).value,
                remote_id,
                last_error,
                to_db(not_before),
                to_db(self.clock.now()),
                given_back,
                given_back,
                effect_id,
            ),
        )
        if cur.rowcount != 1:
            raise StoreError(f"effect {effect_id} cannot change state (missing, done or failed)")

    def retry_failed(self, tx: object, effect_id: int, *, at: datetime) -> bool:
        cur = self._tx(tx).execute(
            # attempts stays 1 when a write may have been sent: the next claim counts a second
            # attempt, so the executor looks for the write by its marker before writing again
            "UPDATE effect SET state = 'pending', attempts = MIN(attempts, 1), deferrals = 0,"
            " not_before = ?,"
            " updated_at = ?, claimed_by = NULL, lease_until = NULL"
            " WHERE id = ? AND state = 'failed'",
            (to_db(at), to_db(at), effect_id),
        )
        return cur.rowcount == 1

    def rearm_done(self, tx: object, effect_id: int, *, at: datetime) -> bool:
        cur = self._tx(tx).execute(
            "UPDATE effect SET state = 'pending', attempts = MAX(attempts, 1), deferrals = 0,"
            " not_before = ?, updated_at = ?, claimed_by = NULL, lease_until = NULL"
            " WHERE id = ? AND state = 'done'",
            (to_db(at), to_db(at), effect_id),
        )
        return cur.rowcount == 1

    def expedite(self, tx: object, *, error_prefix: str, now: datetime) -> int:
        cur = self._tx(tx).execute(
            "UPDATE effect SET not_before = ? WHERE state = 'pending'"
            " AND not_before > ? AND substr(last_error, 1, ?) = ?",
            (to_db(now), to_db(now), len(error_prefix), error_prefix),
        )
        return cur.rowcount

    def release_claims(self, tx: object, *, except_worker: str) -> int:
        cur = self._tx(tx).execute(
            "UPDATE effect SET claimed_by = NULL, lease_until = NULL"
            " WHERE state = 'in_flight' AND lease_until IS NOT NULL"
            " AND (claimed_by IS NULL OR claimed_by != ?)",
            (except_worker,),
        )
        return cur.rowcount


def effect_from_row(row: sqlite3.Row) -> Effect:
    values = parse_times(dict(row))
    after_kind, after_key = values.pop("after_kind"), values.pop("after_key")
    values["after"] = EffectRef(after_kind, after_key) if after_kind is not None else None
    values["marker"] = Marker(values["marker"])
    values["payload"] = json.loads(values.pop("payload"))
    values["state"] = EffectState(values["state"])
    return Effect(**values)
