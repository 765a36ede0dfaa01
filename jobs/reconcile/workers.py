"""The reconciliation's checks of the workers' past (issue 16 "restarts", issue 19 "leader
changes and workers that went silent"), from the history the store keeps of them
(``Workers.worker_runs``, ``Leases.lease_grants``), for the report's period:

- a worker that **went silent**: no heartbeat for ``SILENT_AFTER_POLLS`` poll intervals (as
  ``escalations status`` counts it) and no clean stop — killed, crashed, frozen or cut off
  from the store; listed the night its silence began (drift);
- a worker **restarted**: a run that started after an earlier run on the same host had
  ended (stopped cleanly, or went silent), with how that one ended (for the record);
- a **leader change**: a worker granted a job's lease that another worker held before, with
  why the lease moved: the other stopped cleanly, went silent, or was still running (paused
  or cut off past its lease). The leases one worker takes over from another are one finding
  (for the record).

``seen`` is the report's table of the period's workers (host, pid, version, start, last
heartbeat, clean stop, state, the jobs each leads).

The first worker on a store and the first grant of each lease are no change: a clean world
lists nothing. The store keeps each run's start and last heartbeat only, so a worker that
died within a heartbeat of another's start on its host counts as restarted by it, and a
worker paused and resumed is not silent (its leader change is listed, "still running").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from escalations.reconcile.findings import FindingKind as K
from escalations.reconcile.findings import WorkerSeen, WorkerState
from escalations.store.base import HISTORY_KEPT, LeaseGrant, WorkerRun
from jobs.context import JobContext
from jobs.reconcile._found import Found

SILENT_AFTER_POLLS = 3
"""Poll intervals without a heartbeat after which a worker that did not stop is silent (the
count ``escalations status`` uses)."""

LEASE_PREFIX = "lease:"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check(ctx: JobContext, found: Found, at: datetime, period: timedelta) -> None:
    silence = timedelta(seconds=SILENT_AFTER_POLLS * ctx.settings.poll_interval_seconds)
    start = at - period
    runs = [r for r in ctx.store.worker_runs(since=at - HISTORY_KEPT) if r.started_at <= at]
    for run in runs:
        heard = _heard(run)
        ended_cleanly = run.stopped_at is not None and run.stopped_at <= at
        if not ended_cleanly and start < heard + silence <= at:
            after = next(
                (r for r in runs if r.host == run.host and heard < r.started_at <= at), None
            )
            found.add(
                K.WORKER_SILENT,
                f"worker:{run.id}",
                f"{_who(run)} was last heard at {_utc(heard)} and did not stop cleanly"
                + (f"; {_who(after)} started at {_utc(after.started_at)}" if after else ""),
                since=heard,
            )
        if start < run.started_at <= at:
            before = _predecessor(run, runs)
            if before is not None:
                found.add(
                    K.WORKER_RESTARTED,
                    f"worker:{run.id}",
                    f"{_who(run)} started at {_utc(run.started_at)}, after {_who(before)} "
                    + _ending(before),
                    since=run.started_at,
                )
    _leader_changes(ctx, found, start, at, {r.id: r for r in runs}, silence)


def seen(ctx: JobContext, at: datetime, period: timedelta) -> tuple[WorkerSeen, ...]:
    """The worker runs of the period (started by ``at``, and running, heard or stopped
    within it), each with its state as of ``at`` and the jobs it leads now."""
    silence = timedelta(seconds=SILENT_AFTER_POLLS * ctx.settings.poll_interval_seconds)
    leading: dict[str, list[str]] = {}
    for name in sorted({g.name for g in ctx.store.lease_grants(since=EPOCH)}):
        lease = ctx.store.lease(name)
        if lease is not None and lease.expires_at > at:
            leading.setdefault(lease.holder, []).append(name.removeprefix(LEASE_PREFIX))
    shown = []
    for run in ctx.store.worker_runs(since=at - period):
        if run.started_at > at:
            continue
        if run.stopped_at is not None and run.stopped_at <= at:
            state = WorkerState.STOPPED
        elif _heard(run) + silence <= at:
            state = WorkerState.SILENT
        else:
            state = WorkerState.RUNNING
        shown.append(
            WorkerSeen(
                host=run.host,
                pid=run.pid,
                version=run.version,
                started_at=run.started_at,
                last_heartbeat_at=run.last_heartbeat_at,
                stopped_at=run.stopped_at,
                state=state,
                leading=tuple(leading.get(run.id, ())),
            )
        )
    return tuple(shown)


def _heard(run: WorkerRun) -> datetime:
    return run.last_heartbeat_at or run.started_at


def _ending(run: WorkerRun) -> str:
    if run.stopped_at is not None:
        return f"stopped cleanly at {_utc(run.stopped_at)}"
    return f"went silent (last heard at {_utc(_heard(run))}, no clean stop)"


def _ended_at(run: WorkerRun) -> datetime:
    return run.stopped_at if run.stopped_at is not None else _heard(run)


def _predecessor(run: WorkerRun, runs: Sequence[WorkerRun]) -> WorkerRun | None:
    """The run on the same host that ended (its clean stop, or its last heartbeat) last
    before ``run`` started, if any."""
    ended = [
        r
        for r in runs
        if r.id != run.id
        and r.host == run.host
        and r.started_at <= run.started_at
        and _ended_at(r) <= run.started_at
    ]
    return max(ended, key=_ended_at, default=None)


def _leader_changes(
    ctx: JobContext,
    found: Found,
    start: datetime,
    at: datetime,
    runs: dict[str, WorkerRun],
    silence: timedelta,
) -> None:
    taken: dict[tuple[str, str], list[LeaseGrant]] = {}
    for grant in ctx.store.lease_grants(since=start):
        if grant.granted_at <= start or grant.granted_at > at:
            continue
        if grant.previous_holder is None or grant.previous_holder == grant.holder:
            continue  # the first grant, or the same worker again after its release
        taken.setdefault((grant.holder, grant.previous_holder), []).append(grant)
    for (holder, previous), grants in taken.items():
        first = min(g.granted_at for g in grants)
        jobs = ", ".join(sorted({g.name.removeprefix(LEASE_PREFIX) for g in grants}))
        new, old = runs.get(holder), runs.get(previous)
        found.add(
            K.LEADER_CHANGED,
            f"leader:{holder}:{previous}",
            f"{_who(new) if new else f'worker {holder}'} took over {jobs} from "
            f"{_who(old) if old else f'worker {previous}'} at {_utc(first)}, "
            + _why(old, first, silence),
            since=first,
        )


def _why(old: WorkerRun | None, at: datetime, silence: timedelta) -> str:
    if old is None:
        return "a worker no longer recorded"
    if old.stopped_at is not None and old.stopped_at <= at:
        return f"which had stopped cleanly at {_utc(old.stopped_at)}"
    if _heard(old) + silence <= at:
        return f"which had gone silent (last heard at {_utc(_heard(old))})"
    return "which was still running: its lease ran out while it was paused or cut off"


def _who(run: WorkerRun) -> str:
    version = f", version {run.version}" if run.version else ""
    return f"the worker on {run.host} (pid {run.pid}{version})"


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
