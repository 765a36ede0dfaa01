"""Job runs, meta values, the status summary (``RunLog``) and named leases (``Leases``) in
PostgreSQL."""

from __future__ import annotations

import json
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
from escalations.store.postgres._db import PgBase, from_row, to_db


class RunLogMixin(PgBase):
    def start_job_run(self, tx: object, job: str, started_at: datetime) -> int:
        row = (
            self._tx(tx)
            .execute(
                "INSERT INTO job_run (job, started_at) VALUES (%s, %s) RETURNING id",
                (job, to_db(started_at)),
            )
            .fetchone()
        )
        assert row is not None
        return int(row["id"])

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
            "UPDATE job_run SET finished_at = %s, ok = %s, counts = %s, error = %s WHERE id = %s",
            (to_db(finished_at), ok, json.dumps(dict(counts), sort_keys=True), error, run_id),
        )
        if cur.rowcount != 1:
            raise StoreError(f"job run {run_id} does not exist")

    def job_runs(
        self, job: str | None = None, *, limit: int | None = 20, since: datetime | None = None
    ) -> list[JobRun]:
        rows = self._read(
            "SELECT * FROM job_run WHERE (%(job)s::text IS NULL OR job = %(job)s)"
            " AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)"
            " ORDER BY id DESC LIMIT %(limit)s",  # LIMIT NULL: no limit
            {"job": job or None, "since": to_db(since), "limit": limit},
        )
        return [_job_run(row) for row in rows]

    def get_meta(self, key: str) -> Any:
        row = self._read("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, tx: object, key: str, value: Any) -> None:
        if isinstance(value, datetime):
            value = _iso(value)
        self._tx(tx).execute(
            "INSERT INTO meta (key, value, updated_at) VALUES (%s, %s, %s) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(value, sort_keys=True), to_db(self.clock.now())),
        )

    def status(self, now: datetime) -> StatusSummary:
        escalations = {
            (State(row["state"]), row["level"]): row["n"]
            for row in self._read(
                "SELECT state, level, count(*) AS n FROM escalation"
                " WHERE state NOT IN ('closed', 'archived', 'purged') GROUP BY state, level"
            )
        }
        due = self._read(
            "SELECT count(*) AS n FROM duty JOIN escalation ON escalation.id = duty.escalation_id"
            " WHERE duty.done_at IS NULL AND duty.missed_at IS NULL"
            " AND COALESCE(duty.opens_at, duty.due_at) <= %s"
            # as on SQLite: the plan runs for open escalations; a parked one has its
            # confirmation call only, and a duty whose window met a parking is suspended
            " AND (escalation.state = 'open' OR (escalation.state = 'parked'"
            "      AND duty.slot LIKE 'confirmation:%%'))"
            " AND (duty.slot LIKE 'confirmation:%%' OR NOT EXISTS (SELECT 1 FROM parking"
            "      WHERE parking.escalation_id = duty.escalation_id"
            "      AND COALESCE(duty.opens_at, duty.due_at)"
            "          < COALESCE(parking.ended_at, 'infinity')"
            "      AND duty.due_at > parking.resolved_at))",
            (to_db(now),),
        ).fetchone()
        missed = self._read(
            "SELECT count(*) AS n FROM duty JOIN escalation ON escalation.id = duty.escalation_id"
            " WHERE duty.missed_at IS NOT NULL AND escalation.state IN"
            " ('flagged', 'open', 'resolved', 'parked', 'confirmed')"
        ).fetchone()
        effects = dict.fromkeys(EffectState, 0)
        for row in self._read("SELECT state, count(*) AS n FROM effect GROUP BY state"):
            effects[EffectState(row["state"])] = row["n"]
        last_poll = self.get_meta(LAST_SUCCESSFUL_POLL)
        errors = self._read("SELECT * FROM job_run WHERE ok = false ORDER BY id DESC LIMIT 5")
        return StatusSummary(
            escalations=escalations,
            duties_due=due["n"] if due else 0,
            duties_missed=missed["n"] if missed else 0,
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
        row = (
            self._tx(tx)
            .execute(
                "INSERT INTO lease AS l (name, holder, expires_at, acquired_at, epoch)"
                " VALUES (%(name)s, %(holder)s, %(until)s, %(now)s, 1)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at,"
                " acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at"
                " ELSE excluded.acquired_at END,"
                " epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END"
                " WHERE l.holder = excluded.holder OR l.holder = '' OR l.expires_at <= %(now)s"
                " RETURNING holder, epoch, acquired_at",
                {"name": name, "holder": holder, "until": to_db(until), "now": to_db(now)},
            )
            .fetchone()
        )
        if row is None or row["holder"] != holder:
            return None
        epoch = int(row["epoch"])
        if row["acquired_at"] == to_db(now):  # granted now: a new epoch (or renewed at once)
            self._tx(tx).execute(
                "INSERT INTO lease_grant (name, epoch, holder, granted_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (name, epoch) DO NOTHING",
                (name, epoch, holder, to_db(now)),
            )
        return epoch

    def release_lease(self, tx: object, name: str, *, holder: str) -> None:
        self._tx(tx).execute(
            "UPDATE lease SET holder = '' WHERE name = %s AND holder = %s", (name, holder)
        )

    def release_leases(self, tx: object, *, except_holder: str) -> int:
        cur = self._tx(tx).execute(
            "UPDATE lease SET holder = '' WHERE holder != %s AND holder != ''", (except_holder,)
        )
        return cur.rowcount

    # -- workers -----------------------------------------------------------------------
    def heartbeat(self, tx: object, beat: WorkerBeat) -> None:
        conn = self._tx(tx)
        conn.execute(  # the first beat (no worker row yet) records the run
            "INSERT INTO worker_run (id, host, pid, version, started_at)"
            " SELECT %(id)s, %(host)s, %(pid)s, %(version)s, %(started)s"
            " WHERE NOT EXISTS (SELECT 1 FROM worker WHERE id = %(id)s)"
            " ON CONFLICT (id) DO NOTHING",
            {
                "id": beat.id,
                "host": beat.host,
                "pid": beat.pid,
                "version": beat.version,
                "started": to_db(beat.started_at),
            },
        )
        conn.execute(
            "INSERT INTO worker (id, host, pid, role, version, started_at, heartbeat_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " role = excluded.role, version = excluded.version,"
            " heartbeat_at = excluded.heartbeat_at",
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
            "UPDATE worker_run SET stopped_at = %s, last_heartbeat_at ="
            " (SELECT heartbeat_at FROM worker WHERE worker.id = worker_run.id) WHERE id = %s",
            (to_db(self.clock.now()), worker_id),
        )
        conn.execute("DELETE FROM worker WHERE id = %s", (worker_id,))

    def forget_workers(self, tx: object, *, silent_before: datetime) -> int:
        conn = self._tx(tx)
        conn.execute(
            "UPDATE worker_run AS r SET last_heartbeat_at = w.heartbeat_at FROM worker AS w"
            " WHERE w.id = r.id AND w.heartbeat_at < %s",
            (to_db(silent_before),),
        )
        cur = conn.execute("DELETE FROM worker WHERE heartbeat_at < %s", (to_db(silent_before),))
        forgotten = cur.rowcount
        kept = to_db(silent_before - HISTORY_KEPT)
        conn.execute(
            "DELETE FROM worker_run AS r"
            " WHERE COALESCE(r.stopped_at, r.last_heartbeat_at, r.started_at) < %s"
            " AND NOT EXISTS (SELECT 1 FROM worker AS w WHERE w.id = r.id)",
            (kept,),
        )
        conn.execute(
            "DELETE FROM lease_grant AS g WHERE g.granted_at < %s AND g.epoch <"
            " (SELECT max(p.epoch) FROM lease_grant AS p WHERE p.name = g.name)",
            (kept,),
        )
        return forgotten

    def workers(self) -> list[WorkerBeat]:
        rows = self._read("SELECT * FROM worker ORDER BY host, pid, id").fetchall()
        return [WorkerBeat(**from_row(row)) for row in rows]

    def lease(self, name: str) -> Lease | None:
        row = self._read("SELECT * FROM lease WHERE name = %s AND holder != ''", (name,)).fetchone()
        return None if row is None else Lease(**from_row(row))

    def lease_grants(self, *, since: datetime) -> list[LeaseGrant]:
        rows = self._read(
            "SELECT g.name, g.epoch, g.holder, g.granted_at, p.holder AS previous_holder"
            " FROM lease_grant AS g LEFT JOIN lease_grant AS p"
            " ON p.name = g.name AND p.epoch = g.epoch - 1"
            " WHERE g.granted_at >= %s ORDER BY g.granted_at, g.name, g.epoch",
            (to_db(since),),
        ).fetchall()
        return [LeaseGrant(**from_row(row)) for row in rows]

    def worker_runs(self, *, since: datetime) -> list[WorkerRun]:
        rows = self._read(
            "SELECT r.id, r.host, r.pid, r.version, r.started_at, r.stopped_at,"
            " COALESCE(w.heartbeat_at, r.last_heartbeat_at) AS last_heartbeat_at,"
            " w.id IS NOT NULL AS listed"
            " FROM worker_run AS r LEFT JOIN worker AS w ON w.id = r.id"
            " WHERE w.id IS NOT NULL OR r.started_at >= %(since)s OR r.stopped_at >= %(since)s"
            " OR r.last_heartbeat_at >= %(since)s ORDER BY r.started_at, r.id",
            {"since": to_db(since)},
        ).fetchall()
        return [WorkerRun(**from_row(row)) for row in rows]


def _iso(value: datetime) -> str:
    """A time as the SQLite store writes it into meta (fixed-format UTC text), so a value
    reads back the same on both engines."""
    moment = to_db(value)
    assert moment is not None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _job_run(row: dict[str, Any]) -> JobRun:
    values = from_row(row)
    values["counts"] = json.loads(values["counts"])
    return JobRun(**values)
