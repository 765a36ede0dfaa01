"""Job runs, meta values, the status summary (``RunLog``) and named leases (``Leases``) in
SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from escalations.errors import StoreError
from escalations.models import EffectState, State
from escalations.store.base import (
    HISTORY_KEPT,
    LAST_SUCCESSFUL_POLL,
    OUT_OF_REACH,
    JobRun,
    Lease,
    LeaseGrant,
    StatusSummary,
    WorkerBeat,
    WorkerRun,
)
from escalations.store.sqlite._db import SqliteBase, parse_times, to_db


class RunLogMixin(SqliteBase):
    def start_job_run(self, tx: object, job: str, started_at: datetime) -> int:
        cur = self._tx(tx).execute(
            "INSERT INTO job_run (job, started_at) VALUES (?, ?)", (job, to_db(started_at))
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_job_run(
        self,
        tx: object,
        run_id: int,
        *,
        finished_at: datetime,
        ok: bool,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        cur = self._tx(tx).execute(
            "UPDATE job_run SET finished_at = ?, ok = ?, counts = ?, error = ? WHERE id = ?",
            (to_db(finished_at), int(ok), json.dumps(dict(counts), sort_keys=True), error, run_id),
        )
        if cur.rowcount != 1:
            raise StoreError(f"job run {run_id} does not exist")

    def job_runs(
        self, job: str | None = None, *, limit: int | None = 20, since: datetime | None = None
    ) -> list[JobRun]:
        rows = self._conn().execute(
            "SELECT * FROM job_run WHERE (:job IS NULL OR job = :job)"
            " AND (:since IS NULL OR started_at >= :since)"
            " ORDER BY id DESC LIMIT :limit",
            {
                "job": job or None,
                "since": to_db(since),
                "limit": -1 if limit is None else limit,  # SQLite: a negative LIMIT is none
            },
        )
        return [_job_run(row) for row in rows]

    def get_meta(self, key: str) -> Any:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, tx: object, key: str, value: Any) -> None:
        if isinstance(value, datetime):
            value = to_db(value)
        self._tx(tx).execute(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(value, sort_keys=True), to_db(self.clock.now())),
        )

    def status(self, now: datetime) -> StatusSummary:
        conn = self._conn()
        escalations = {
            (State(state), level): count
            for state, level, count in conn.execute(
                "SELECT state, level, count(*) FROM escalation"
                " WHERE state NOT IN ('closed', 'archived', 'purged') GROUP BY state, level"
            )
        }
        duties_due = conn.execute(
            "SELECT count(*) FROM duty JOIN escalation ON escalation.id = duty.escalation_id"
            " WHERE duty.done_at IS NULL AND duty.missed_at IS NULL"
            " AND COALESCE(duty.opens_at, duty.due_at) <= ?"
            # the communication plan runs for open escalations; a parked one has its
            # confirmation call only, and a duty whose window met a parking is suspended
            " AND (escalation.state = 'open' OR (escalation.state = 'parked'"
            "      AND duty.slot LIKE 'confirmation:%'))"
            " AND (duty.slot LIKE 'confirmation:%' OR NOT EXISTS (SELECT 1 FROM parking"
            "      WHERE parking.escalation_id = duty.escalation_id"
            "      AND COALESCE(duty.opens_at, duty.due_at) < COALESCE(parking.ended_at, '9')"
            "      AND duty.due_at > parking.resolved_at))",
            (to_db(now),),
        ).fetchone()[0]
        duties_missed = conn.execute(
            "SELECT count(*) FROM duty JOIN escalation ON escalation.id = duty.escalation_id"
            " WHERE duty.missed_at IS NOT NULL AND escalation.state IN"
            " ('flagged', 'open', 'resolved', 'parked', 'confirmed')"
        ).fetchone()[0]
        effects = dict.fromkeys(EffectState, 0)
        for state, count in conn.execute("SELECT state, count(*) FROM effect GROUP BY state"):
            effects[EffectState(state)] = count
        last_poll = self.get_meta(LAST_SUCCESSFUL_POLL)
        errors = conn.execute("SELECT * FROM job_run WHERE ok = 0 ORDER BY id DESC LIMIT 5")
        return StatusSummary(
            escalations=escalations,
            duties_due=duties_due,
            duties_missed=duties_missed,
            effects=effects,
            last_successful_poll=datetime.fromisoformat(last_poll) if last_poll else None,
            last_errors=tuple(_job_run(row) for row in errors),
            schema_version=self.schema_version,
            out_of_reach=self.get_meta(OUT_OF_REACH) or {},
        )

    # -- leases ------------------------------------------------------------------------
    def acquire_lease(
        self, tx: object, name: str, *, holder: str, now: datetime, until: datetime
    ) -> int | None:
        if not holder:
            raise ValueError("a lease needs a holder")
        rows = (
            self._tx(tx)
            .execute(
                "INSERT INTO lease (name, holder, expires_at, acquired_at, epoch)"
                " VALUES (?, ?, ?, ?, 1)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at,"
                " acquired_at = CASE WHEN lease.holder = excluded.holder THEN lease.acquired_at"
                " ELSE excluded.acquired_at END,"
                " epoch = CASE WHEN lease.holder = excluded.holder THEN lease.epoch"
                " ELSE lease.epoch + 1 END"
                " WHERE lease.holder = excluded.holder OR lease.holder = ''"
                " OR lease.expires_at <= ?"
                " RETURNING holder, epoch, acquired_at",
                (name, holder, to_db(until), to_db(now), to_db(now)),
            )
            .fetchall()
        )
        if not rows or rows[0][0] != holder:
            return None
        epoch = int(rows[0][1])
        if rows[0][2] == to_db(now):  # granted now: a new epoch (or renewed in the same instant)
            self._tx(tx).execute(
                "INSERT INTO lease_grant (name, epoch, holder, granted_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name, epoch) DO NOTHING",
                (name, epoch, holder, to_db(now)),
            )
        return epoch

    def release_lease(self, tx: object, name: str, *, holder: str) -> None:
        self._tx(tx).execute(
            "UPDATE lease SET holder = '' WHERE name = ? AND holder = ?", (name, holder)
        )

    def release_leases(self, tx: object, *, except_holder: str) -> int:
        cur = self._tx(tx).execute(
            "UPDATE lease SET holder = '' WHERE holder != ? AND holder != ''", (except_holder,)
        )
        return cur.rowcount

    # -- workers -----------------------------------------------------------------------
    def heartbeat(self, tx: object, beat: WorkerBeat) -> None:
        conn = self._tx(tx)
        conn.execute(  # the first beat (no worker row yet) records the run
            "INSERT INTO worker_run (id, host, pid, version, started_at)"
            " SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM worker WHERE id = ?)"
            " ON CONFLICT (id) DO NOTHING",
            (beat.id, beat.host, beat.pid, beat.version, to_db(beat.started_at), beat.id),
        )
        conn.execute(
            "INSERT INTO worker (id, host, pid, role, version, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET role = excluded.role,"
            " version = excluded.version, heartbeat_at = excluded.heartbeat_at",
            (
                beat.id,
                beat.host,
                beat.pid,
                beat.role,
                beat.version,
                to_db(beat.started_at),
                to_db(beat.heartbeat_at),
            ),
        )

    def forget_worker(self, tx: object, worker_id: str) -> None:
        conn = self._tx(tx)
        conn.execute(
            "UPDATE worker_run SET stopped_at = ?, last_heartbeat_at ="
            " (SELECT heartbeat_at FROM worker WHERE worker.id = worker_run.id) WHERE id = ?",
            (to_db(self.clock.now()), worker_id),
        )
        conn.execute("DELETE FROM worker WHERE id = ?", (worker_id,))

    def forget_workers(self, tx: object, *, silent_before: datetime) -> int:
        conn = self._tx(tx)
        before = to_db(silent_before)
        conn.execute(
            "UPDATE worker_run SET last_heartbeat_at ="
            " (SELECT heartbeat_at FROM worker WHERE worker.id = worker_run.id)"
            " WHERE id IN (SELECT id FROM worker WHERE heartbeat_at < ?)",
            (before,),
        )
        cur = conn.execute("DELETE FROM worker WHERE heartbeat_at < ?", (before,))
        forgotten = cur.rowcount
        kept = to_db(silent_before - HISTORY_KEPT)
        conn.execute(
            "DELETE FROM worker_run WHERE COALESCE(stopped_at, last_heartbeat_at, started_at) < ?"
            " AND NOT EXISTS (SELECT 1 FROM worker WHERE worker.id = worker_run.id)",
            (kept,),
        )
        conn.execute(
            "DELETE FROM lease_grant WHERE granted_at < ? AND epoch <"
            " (SELECT max(epoch) FROM lease_grant AS g WHERE g.name = lease_grant.name)",
            (kept,),
        )
        return forgotten

    def workers(self) -> list[WorkerBeat]:
        rows = self._conn().execute("SELECT * FROM worker ORDER BY host, pid, id").fetchall()
        return [WorkerBeat(**parse_times(dict(row))) for row in rows]

    def lease(self, name: str) -> Lease | None:
        row = (
            self._conn()
            .execute("SELECT * FROM lease WHERE name = ? AND holder != ''", (name,))
            .fetchone()
        )
        return None if row is None else Lease(**parse_times(dict(row)))

    def lease_grants(self, *, since: datetime) -> list[LeaseGrant]:
        rows = self._conn().execute(
            "SELECT g.name, g.epoch, g.holder, g.granted_at, p.holder AS previous_holder"
            " FROM lease_grant AS g LEFT JOIN lease_grant AS p"
            " ON p.name = g.name AND p.epoch = g.epoch - 1"
            " WHERE g.granted_at >= ? ORDER BY g.granted_at, g.name, g.epoch",
            (to_db(since),),
        )
        return [LeaseGrant(**parse_times(dict(row))) for row in rows]

    def worker_runs(self, *, since: datetime) -> list[WorkerRun]:
        rows = self._conn().execute(
            "SELECT r.id, r.host, r.pid, r.version, r.started_at, r.stopped_at,"
            " COALESCE(w.heartbeat_at, r.last_heartbeat_at) AS last_heartbeat_at,"
            " w.id IS NOT NULL AS listed"
            " FROM worker_run AS r LEFT JOIN worker AS w ON w.id = r.id"
            " WHERE w.id IS NOT NULL OR r.started_at >= :since OR r.stopped_at >= :since"
            " OR r.last_heartbeat_at >= :since ORDER BY r.started_at, r.id",
            {"since": to_db(since)},  # named: Python 3.12 warns of ?1 with a sequence
        )
        return [
            WorkerRun(**{**parse_times(dict(row)), "listed": bool(row["listed"])}) for row in rows
        ]


def _job_run(row: sqlite3.Row) -> JobRun:
    values = parse_times(dict(row))
    values["ok"] = None if values["ok"] is None else bool(values["ok"])
    values["counts"] = json.loads(values["counts"])
    return JobRun(**values)
