"""The ``retention`` job (DESIGN.md rule 8, issue 12 #5): a hard copy is removed
``[archive] retention_months`` after its escalation closed, unless the escalation is on legal
hold: the tag ``[archive] legal_hold_tag`` on its ticket (checked on the helpdesk at purge
time) or a local hold (``escalations archive hold KEY``, for a copy whose ticket is gone).

Nothing is purged early: the retention clock starts at close, and a copy is due only when
both this machine's clock and the helpdesk's (from the ``Date`` of its answers) have passed
the date, so a clock that jumped forward and back removes nothing. While the helpdesk's
clock is unknown (no answer yet), nothing is purged.

A purge is three steps: the directory is renamed out of place (``.purging-<name>``), the
purge is recorded in the store (what, when, the manifest's checksum stays) and logged, then
the directory is deleted. A crash between any two is finished by the next pass, and the
purge is recorded once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from connector.errors import Forbidden, NotFound
from escalations import parking, workflow
from escalations.archive import directory
from escalations.models import ArchiveCopy, State
from jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)

NAME = "retention"
HOLDS = "archive.holds"
"""Meta key: escalation key → why it is held (set by ``escalations archive hold``)."""


def run(ctx: JobContext) -> JobResult:
    result = JobResult(NAME)
    months = ctx.profile.archive.retention_months
    offset = ctx.adapter.clock_offset()
    now = ctx.clock.now()
    for copy in ctx.store.archives():
        if ctx.stop.is_set():
            break
        path = Path(copy.path)
        if copy.purged_at is not None:
            directory.finish_purge(path)  # a crash after the record, before the delete
            continue
        due = parking.add_months(copy.closed_at, months)
        if now < due:
            continue
        if offset is None or now + offset < due:
            result.add("purges_waiting_for_the_helpdesk_clock")
            continue
        held = _held(ctx, copy)
        if held:
            result.add("held")
            continue
        _purge(ctx, copy, path)
        result.add("purged")
    return result


def _held(ctx: JobContext, copy: ArchiveCopy) -> bool:
    esc = ctx.store.get_escalation(copy.escalation_id)
    if esc is None:
        return False
    if esc.key in dict(ctx.store.get_meta(HOLDS) or {}):
        return True
    if esc.escalation_ticket_id is None:
        return False
    try:
        ticket = ctx.adapter.get_ticket(esc.escalation_ticket_id)
    except NotFound:
        return False  # the ticket is gone: only a local hold keeps the copy
    except Forbidden:
        log.warning(
            "retention.hold_unknown esc=%s ticket=%s: the ticket cannot be read, kept",
            esc.key,
            esc.escalation_ticket_id,
        )
        return True
    return ctx.binding.legal_hold(ticket, ctx.adapter)


def _purge(ctx: JobContext, copy: ArchiveCopy, path: Path) -> None:
    directory.begin_purge(path)
    ctx.faults.point("purge.moved")
    now = ctx.clock.now()
    with ctx.store.transaction() as tx:
        if not ctx.store.archive_purged(tx, copy.path, now, "retention"):
            return
        esc = ctx.store.get_escalation(copy.escalation_id)
        latest = ctx.store.archives(copy.escalation_id)[-1]
        if esc is not None and esc.state is State.ARCHIVED and latest.path == copy.path:
            ctx.store.update_escalation(tx, workflow.apply(esc, workflow.Event.PURGE, now))
    log.info(
        "archive.purged esc_id=%s path=%s closed_at=%s manifest_sha256=%s",
        copy.escalation_id,
        copy.path,
        copy.closed_at.isoformat(),
        copy.manifest_sha256,
    )
    ctx.faults.point("purge.recorded")
    directory.finish_purge(path)
