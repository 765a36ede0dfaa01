"""The nightly report's back-off after its files could not be written (review of issue 16,
A6): the helpdesk was read in full, then ``outputs.write`` failed (a file in the day
directory's place, another user's directory, a read-only mount), and the job failed
(``ReportNotWritten``: the worker logs one ``job.failed`` line and records the run). Without
a back-off the next pass, one comms interval later, would read the whole helpdesk again to
fail the same way. The job waits ``RETRY_AFTER`` after such a failure instead: the failed
run in the store is the record, so nothing else is written."""

from __future__ import annotations

from datetime import datetime, timedelta

from escalations.reconcile.outputs import ReportNotWritten
from jobs.context import JobContext

NAME = "report"
RETRY_AFTER = timedelta(hours=1)
"""How long after a report that could not be written the job tries again."""


def held_back(ctx: JobContext, at: datetime) -> bool:
    """The report job failed to write its files less than ``RETRY_AFTER`` before ``at``."""
    failed = f"{ReportNotWritten.__name__}: "
    return any(
        run.ok is False and (run.error or "").startswith(failed) and run.started_at <= at
        for run in ctx.store.job_runs(NAME, limit=None, since=at - RETRY_AFTER)
    )
