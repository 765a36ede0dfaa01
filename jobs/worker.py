"""The worker loop, top to bottom.

- ``run_job`` wraps one run of one job: it records the run in the store, logs one line with
  the job's counts, and carries on after any ``Exception`` (``BaseException`` propagates, and
  a refused token stops the worker: retrying cannot help).
- ``Worker.run_once`` runs every job once, in order (``escalations run --once``).
- ``Worker.run_forever`` ticks a private ``schedule.Scheduler`` until ``stop`` is set: the sync
  job every ``POLL_INTERVAL_SECONDS``. It waits with ``stop.wait``, never ``time.sleep``, so a
  SIGTERM is answered at once: the current effect finishes, no new one starts, exit 0.

Jobs are level-triggered, so a missed or extra tick does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import schedule

from connector.errors import AuthError, HelpdeskError, TransientError
from connector.redaction import SECRETS
from jobs import sync
from jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)

JobFunction = Callable[[JobContext], JobResult]


@dataclass(frozen=True)
class Job:
    name: str
    run: JobFunction
    every_seconds: int


def default_jobs(ctx: JobContext) -> list[Job]:
    return [Job(sync.NAME, sync.run, ctx.settings.poll_interval_seconds)]


class Worker:
    def __init__(self, ctx: JobContext, jobs: Sequence[Job] | None = None) -> None:
        self.ctx = ctx
        self.jobs = list(jobs) if jobs is not None else default_jobs(ctx)
        self._helpdesk_down_since: str | None = None

    def run_once(self) -> list[JobResult | None]:
        return [self.run_job(job) for job in self.jobs if not self.ctx.stop.is_set()]

    def run_forever(self) -> None:
        scheduler = schedule.Scheduler()
        for job in self.jobs:
            scheduler.every(job.every_seconds).seconds.do(self.run_job, job)
        log.info(
            "worker.started jobs=%s", ",".join(f"{j.name}/{j.every_seconds}s" for j in self.jobs)
        )
        scheduler.run_all()  # a first pass right away, then on the ticks
        while not self.ctx.stop.is_set():
            idle = scheduler.idle_seconds
            self.ctx.stop.wait(min(max(idle if idle is not None else 1.0, 0.0), 1.0))
            if not self.ctx.stop.is_set():
                scheduler.run_pending()
        log.info("worker.stopped")

    def run_job(self, job: Job) -> JobResult | None:
        """Run one job, record it, and carry on after any failure but a refused token."""
        store, clock = self.ctx.store, self.ctx.clock
        with store.transaction() as tx:
            run_id = store.start_job_run(tx, job.name, clock.now())
        try:
            result = job.run(self.ctx)
        except AuthError as exc:
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            log.error("job.auth_refused job=%s error=%s", job.name, exc)  # noqa: TRY400
            raise
        except TransientError as exc:
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            self._helpdesk_unreachable(str(exc))
            return None
        except (HelpdeskError, Exception) as exc:
            self._record(run_id, ok=False, counts={}, error=f"{type(exc).__name__}: {exc}")
            log.exception("job.failed job=%s", job.name)
            return None
        self._record(run_id, ok=True, counts=result.counts)
        self._helpdesk_reachable()
        log.info("job.done job=%s %s", job.name, result.summary())
        return result

    def _record(
        self, run_id: int, *, ok: bool, counts: dict[str, int], error: str | None = None
    ) -> None:
        error = SECRETS.redact(error) if error else error
        with self.ctx.store.transaction() as tx:
            self.ctx.store.finish_job_run(
                tx, run_id, finished_at=self.ctx.clock.now(), ok=ok, counts=counts, error=error
            )

    def _helpdesk_unreachable(self, error: str) -> None:
        """Warn once when the helpdesk becomes unreachable, not on every pass."""
        if self._helpdesk_down_since is None:
            self._helpdesk_down_since = self.ctx.clock.now().isoformat()
            log.warning("helpdesk.unreachable since=%s error=%s", self._helpdesk_down_since, error)

    def _helpdesk_reachable(self) -> None:
        if self._helpdesk_down_since is not None:
            log.info("helpdesk.recovered down_since=%s", self._helpdesk_down_since)
            self._helpdesk_down_since = None
