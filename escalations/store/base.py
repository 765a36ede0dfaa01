"""The durable store's interface, split by concern, narrow enough for a second (PostgreSQL)
implementation:

- ``EscalationRecords`` — escalations and what happened to them (level changes, copies,
  carrier contacts, duties);
- ``OutboxStore`` — the effects (writes) and their claims;
- ``SyncState`` — poll cursors, seen ticket versions, scan requests;
- ``KnownArticles`` — the articles the worker has accounted for on each ticket;
- ``RunLog`` — job runs, small meta values, the status summary;
- ``Leases`` — named leases (leadership of the poll and the timed jobs);
- ``Store`` — all of them, plus transactions, the single-host lock and housekeeping.

Rules every implementation keeps:

- All writes happen inside ``with store.transaction() as tx:`` and take that ``tx``; the
  transaction commits when the block ends and rolls back if it raises.
- Reads made while the calling thread has a transaction open see (and are part of) it: read
  what a decision depends on inside the transaction that records the decision.
- Uniqueness is enforced by the database (``STYLE.md`` rule 25). Methods that may meet a
  duplicate say so: ``record_*``/``add_*`` return ``False`` for "already there";
  ``insert_escalation`` raises ``Duplicate``.
- A claim is one statement that checks every condition (state, lease, prerequisite): two
  workers never both get the same effect.
- All times go in and come out as aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from escalations.errors import StoreError
from escalations.models import (
    ArchiveCopy,
    ArchiveIntent,
    CarrierContact,
    CopiedArticle,
    Duty,
    Effect,
    EffectState,
    Escalation,
    LevelChange,
    ParkingOutcome,
    ParkingPeriod,
    State,
)

LAST_SUCCESSFUL_POLL = "last_successful_poll"
"""Meta key the sync job sets (an ISO instant) after each poll that completed."""
OUT_OF_REACH = "sync.out_of_reach"
"""Meta key: original ticket id → {escalation, number, why, since} for each open
escalation's original the worker cannot read (``jobs.sync.reach``)."""


class Duplicate(StoreError):
    """A row would break a uniqueness rule (same key, or a second active escalation)."""


class Transaction(Protocol):
    """An open write transaction; opaque to callers."""


@dataclass(frozen=True, kw_only=True)
class Cursor:
    """Where polling of one stream has got to. ``value <= signpost`` always."""

    stream: str
    value: datetime
    signpost: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class ScanRequest:
    """A source ticket whose customer messages must be (re)considered for copying."""

    escalation_id: int
    ticket_id: int
    ticket_number: str
    requested_at: datetime


@dataclass(frozen=True, kw_only=True)
class JobRun:
    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool | None = None
    counts: Mapping[str, int]
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime
    epoch: int
    """Grows by one each time the lease passes to another holder (``Store.fence``)."""


@dataclass(frozen=True, kw_only=True)
class WorkerBeat:
    """A worker on the store, as its last heartbeat said (``Workers``)."""

    id: str
    host: str
    pid: int
    role: str
    """``leader`` while it holds a job's lease, else ``executor``."""
    version: str
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True, kw_only=True)
class WorkerRun:
    """One worker process on the store, from its first heartbeat (``Workers.worker_runs``):
    kept after its ``WorkerBeat`` row is gone, for the nightly report."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    stopped_at: datetime | None
    """When it stopped cleanly; ``None`` while it runs, or when it never did (killed,
    crashed, cut off)."""
    last_heartbeat_at: datetime | None
    """Its last heartbeat (``None``: not one since its start was recorded)."""
    listed: bool
    """It still has a ``WorkerBeat`` row (``escalations status`` lists it)."""


@dataclass(frozen=True, kw_only=True)
class LeaseGrant:
    """A lease granted to a holder at a new epoch (``Leases.lease_grants``): a change of
    leader, the first grant, or the same holder taking it again after a release."""

    name: str
    epoch: int
    holder: str
    granted_at: datetime
    previous_holder: str | None
    """The holder of the epoch before; ``None`` for the first grant, or when that grant is
    older than the history kept (``HISTORY_KEPT``)."""


HISTORY_KEPT = timedelta(days=35)
"""How long the workers' past (``WorkerRun``, ``LeaseGrant``) is kept before the worker's
own ``forget_workers`` cutoff: longer than any report looks back."""


class LeaseLost(StoreError):
    """A fenced write transaction found its lease held by another worker, or at another
    epoch (``Leases.fence``): it wrote nothing. The leader was paused past its lease and
    another worker leads now."""


@dataclass(frozen=True)
class Fence:
    """What a fenced transaction checks first (``Leases.fence``)."""

    name: str
    holder: str
    epoch: int

    def check(self, found: tuple[str, int] | None) -> None:
        """Raise ``LeaseLost`` unless ``found`` (the lease row's holder and epoch, read under
        the write lock) is this fence's."""
        if found == (self.holder, self.epoch):
            return
        now = "never taken" if found is None else f"{found[0] or 'released'} at epoch {found[1]}"
        raise LeaseLost(
            f"{self.name}: granted to {self.holder} at epoch {self.epoch}, now {now}; "
            "this transaction wrote nothing"
        )


@dataclass(frozen=True, kw_only=True)
class StatusSummary:
    """What ``escalations status`` prints."""

    escalations: Mapping[tuple[State, int], int]
    """Active (not closed, archived or purged) escalations by (state, level)."""
    duties_due: int
    """Duties neither done nor missed whose window has opened."""
    effects: Mapping[EffectState, int]
    """Effects by state; every state is present."""
    last_successful_poll: datetime | None
    last_errors: tuple[JobRun, ...]
    """The latest failed job runs, newest first."""
    schema_version: int
    out_of_reach: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """``OUT_OF_REACH``: originals of open escalations the worker cannot read."""
    duties_missed: int = 0
    """Duties of active escalations whose window closed undone."""


class EscalationRecords(Protocol):
    """Escalations and what happened to them."""

    def insert_escalation(self, tx: Transaction, esc: Escalation) -> Escalation:
        """Insert and return the row with its ``id``; ``Duplicate`` on a taken key, or when
        the original ticket already has an active escalation."""
        ...

    def update_escalation(self, tx: Transaction, esc: Escalation) -> None:
        """Write every field of ``esc`` (by ``id``); ``Duplicate`` as for insert."""
        ...

    def get_escalation(self, escalation_id: int) -> Escalation | None: ...

    def escalation_by_key(self, key: str) -> Escalation | None: ...

    def escalation_by_ticket(self, escalation_ticket_id: int) -> Escalation | None:
        """The escalation whose escalation ticket this is."""
        ...

    def active_escalation_for_ticket(self, original_ticket_id: int) -> Escalation | None: ...

    def escalations_for_ticket(self, original_ticket_id: int) -> list[Escalation]:
        """Every escalation ever raised on an original ticket, oldest first."""
        ...

    def escalations_in(self, *states: State) -> list[Escalation]:
        """Escalations in any of ``states`` (every escalation when none are given), by id."""
        ...

    def active_escalations_for_customer(self, customer_id: int) -> list[Escalation]: ...

    def active_escalations_reading(self, ticket_id: int) -> list[Escalation]:
        """The running escalations that have read articles on ``ticket_id`` (their original,
        their escalation ticket, a new ticket of their customer, a merge target: rows of
        ``KnownArticles``), by id."""
        ...

    def record_level_change(self, tx: Transaction, change: LevelChange) -> None: ...

    def level_changes(self, escalation_id: int) -> list[LevelChange]: ...

    def record_copied_article(self, tx: Transaction, row: CopiedArticle) -> bool: ...

    def set_copy_article_id(
        self, tx: Transaction, escalation_id: int, source_article_id: int, copy_article_id: int
    ) -> None: ...

    def copied_articles(self, escalation_id: int) -> list[CopiedArticle]: ...

    def record_carrier_contact(self, tx: Transaction, row: CarrierContact) -> bool: ...

    def carrier_contacts(self, escalation_id: int) -> list[CarrierContact]: ...

    def start_parking(
        self, tx: Transaction, escalation_id: int, resolved_at: datetime, pending_until: datetime
    ) -> ParkingPeriod:
        """Open the escalation's next parking period (the previous one must have ended)."""
        ...

    def end_parking(
        self,
        tx: Transaction,
        escalation_id: int,
        at: datetime,
        outcome: ParkingOutcome,
        reason: str = "",
    ) -> ParkingPeriod | None:
        """End the open parking period; ``None`` if none is open."""
        ...

    def parking_periods(self, escalation_id: int) -> list[ParkingPeriod]:
        """Every parking period of the escalation, oldest first."""
        ...

    def begin_archive(self, tx: Transaction, intent: ArchiveIntent) -> None:
        """Record that the hard copy of this close is about to be written at
        ``intent.path`` (kept as it is when one was recorded for this close before)."""
        ...

    def archive_intents(self) -> list[ArchiveIntent]:
        """The hard copies begun and not recorded (nor dropped): interrupted runs, oldest
        first."""
        ...

    def drop_archive_intent(self, tx: Transaction, escalation_id: int, closed_at: datetime) -> bool:
        """Forget a begun hard copy of which nothing was placed; ``False`` if none is."""
        ...

    def record_archive(self, tx: Transaction, copy: ArchiveCopy) -> bool:
        """Record a hard copy, and drop its intent; ``False`` if this close of the escalation
        has one already."""
        ...

    def archives(self, escalation_id: int | None = None) -> list[ArchiveCopy]:
        """Hard copies (of one escalation, or all), oldest first."""
        ...

    def archive_purged(self, tx: Transaction, path: str, at: datetime, reason: str) -> bool:
        """Record that retention removed the copy at ``path``; ``False`` if it was already."""
        ...

    def add_duty(self, tx: Transaction, duty: Duty) -> bool: ...

    def complete_duty(
        self,
        tx: Transaction,
        escalation_id: int,
        kind: str,
        slot: str,
        done_at: datetime,
        *,
        evidence: str | None = None,
    ) -> bool:
        """Mark a duty done, with what showed it; ``False`` if it does not exist or is
        already done or missed."""
        ...

    def duty_reminded(
        self, tx: Transaction, escalation_id: int, kind: str, slot: str, at: datetime
    ) -> bool:
        """Record the one reminder; ``False`` if already reminded, done or missed."""
        ...

    def duty_missed(
        self, tx: Transaction, escalation_id: int, kind: str, slot: str, at: datetime
    ) -> bool:
        """Record the miss (its window closed undone); ``False`` if done or missed already."""
        ...

    def duties(
        self,
        escalation_id: int | None = None,
        *,
        due_by: datetime | None = None,
        pending_only: bool = False,
    ) -> list[Duty]: ...


class OutboxStore(Protocol):
    """The effects (``escalations.effects``): recorded, claimed, finished."""

    def insert_effect(
        self,
        tx: Transaction,
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
        """The new row's id, or ``None`` when ``(kind, key)`` was already requested."""
        ...

    def get_effect(self, effect_id: int) -> Effect | None: ...

    def effect_by_key(self, kind: str, key: str) -> Effect | None: ...

    def effects(self, *states: EffectState, escalation_id: int | None = None) -> list[Effect]:
        """Effects in any of ``states`` (all when none are given), oldest first."""
        ...

    def claim_next(
        self,
        tx: Transaction,
        *,
        worker: str,
        now: datetime,
        after_id: int,
        lease_until: datetime,
        orphaned_before: datetime,
    ) -> Effect | None:
        """Claim, in one statement, the effect with the smallest id above ``after_id`` that is
        due (``not_before <= now``), whose prerequisite (if it still exists) has finished, and
        that is pending, or in flight under an expired lease, or in flight with no lease and
        not updated since ``orphaned_before``. The claimed row is in flight, one attempt more,
        held by ``worker`` until ``lease_until``. ``None`` when there is none."""
        ...

    def count_due(self, *, now: datetime) -> int:
        """Unfinished effects whose back-off has passed. Right after a sweep these are the
        ones that had to wait: for a prerequisite, under a live lease, settling after a write
        of unknown outcome, or left when the sweep stopped early."""
        ...

    def finish_effect(
        self,
        tx: Transaction,
        effect_id: int,
        state: EffectState,
        *,
        remote_id: str | None = None,
        last_error: str | None = None,
        not_before: datetime | None = None,
        give_back_attempt: bool = False,
    ) -> None:
        """Leave the claim: done or failed for good, back to pending, or in flight with no
        lease (outcome unknown). ``give_back_attempt``: the attempt did not reach the helpdesk
        (it is not counted; the effect's deferrals are)."""
        ...

    def retry_failed(self, tx: Transaction, effect_id: int, *, at: datetime) -> bool:
        """A failed effect back to pending (an admin's replay); ``False`` if it is not failed.
        Its attempts restart, but one that may have been sent still counts as one, so the
        executor looks for the write by its marker before it writes again."""
        ...

    def rearm_done(self, tx: Transaction, effect_id: int, *, at: datetime) -> bool:
        """A done effect back to pending because its write is gone from the helpdesk (the
        report's repair of a deleted copy); ``False`` if it is not done. It keeps at least
        one attempt, so the next claim counts a second and the executor looks for the write
        by its marker before it writes again."""
        ...

    def expedite(self, tx: Transaction, *, error_prefix: str, now: datetime) -> int:
        """Pending effects held back by an error whose text starts with ``error_prefix``
        become due ``now`` (what they waited for is over); returns how many."""
        ...

    def release_claims(self, tx: Transaction, *, except_worker: str) -> int:
        """Clear the leases of every other worker's in-flight effects (they become orphans,
        taken again after the settle window). Only for a store one worker has exclusively."""
        ...


class SyncState(Protocol):
    """Where polling got to, which ticket versions were handled, what is to be scanned."""

    def get_cursor(self, stream: str) -> Cursor | None: ...

    def set_cursor(self, tx: Transaction, stream: str, value: datetime, signpost: datetime) -> None:
        """Move a cursor; ``ValueError`` if ``value`` is past ``signpost``."""
        ...

    def ticket_seen(self, ticket_id: int, updated_at: datetime) -> bool:
        """``True`` if exactly this version of the ticket was already handled."""
        ...

    def note_ticket_seen(self, tx: Transaction, ticket_id: int, updated_at: datetime) -> bool:
        """``True`` if this version of the ticket is new (overlap de-duplication)."""
        ...

    def forget_seen_before(self, tx: Transaction, before: datetime) -> int: ...

    def request_scan(
        self, tx: Transaction, escalation_id: int, ticket_id: int, ticket_number: str, at: datetime
    ) -> bool:
        """Ask for a source ticket to be scanned; ``False`` if already asked."""
        ...

    def pending_scans(self) -> list[ScanRequest]: ...

    def clear_scan(self, tx: Transaction, escalation_id: int, ticket_id: int) -> None: ...


class KnownArticles(Protocol):
    """The articles the worker has accounted for on a ticket, per escalation: each one its
    poll or copy job listed there (and so decided on) and each it wrote there itself. A ticket
    whose article ids are all known holds nothing new to read (``jobs.sync``)."""

    def known_articles(self, escalation_id: int, ticket_id: int) -> frozenset[int]: ...

    def note_articles_known(
        self, tx: Transaction, escalation_id: int, ticket_id: int, article_ids: Iterable[int]
    ) -> int:
        """Record ``article_ids`` as known; returns how many were not known yet."""
        ...


class RunLog(Protocol):
    """What ran, how it went, and small values the jobs keep between runs."""

    def start_job_run(self, tx: Transaction, job: str, started_at: datetime) -> int: ...

    def finish_job_run(
        self,
        tx: Transaction,
        run_id: int,
        *,
        finished_at: datetime,
        ok: bool,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None: ...

    def job_runs(
        self, job: str | None = None, *, limit: int | None = 20, since: datetime | None = None
    ) -> list[JobRun]:
        """Newest first: the last ``limit`` (``None``: all) of ``job`` (``None``: every job),
        and with ``since`` only those started at or after it (the report's period)."""
        ...

    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, tx: Transaction, key: str, value: Any) -> None:
        """Store any JSON-able value."""
        ...

    def status(self, now: datetime) -> StatusSummary: ...


class Leases(Protocol):
    """Named leases: at most one holder at a time, until it expires or is released."""

    def acquire_lease(
        self, tx: Transaction, name: str, *, holder: str, now: datetime, until: datetime
    ) -> int | None:
        """Take or renew ``name`` for ``holder`` until ``until``: the epoch ``holder`` now
        holds it at (it was free, expired, released, or already its own: renewing keeps the
        epoch, taking it from another holder or after a release adds one), ``None`` if another
        live holder has it. One statement, and one more for a new epoch: the grant is
        recorded (``lease_grants``)."""
        ...

    def release_lease(self, tx: Transaction, name: str, *, holder: str) -> None:
        """Give up ``name`` if ``holder`` holds it; the row keeps its epoch, with no holder."""
        ...

    def release_leases(self, tx: Transaction, *, except_holder: str) -> int:
        """Release every lease not held by ``except_holder`` (a single-host store, at start)."""
        ...

    def lease(self, name: str) -> Lease | None:
        """The lease while someone holds it (perhaps expired); ``None`` if never taken or
        released."""
        ...

    def lease_grants(self, *, since: datetime) -> list[LeaseGrant]:
        """The grants at a new epoch from ``since`` on, of every lease, oldest first, each
        with the holder of the epoch before."""
        ...

    def fence(self, name: str, *, holder: str, epoch: int) -> AbstractContextManager[None]:
        """Inside the block, every write transaction this thread opens on this store first
        checks that ``holder`` still holds ``name`` at ``epoch`` and raises ``LeaseLost``
        (writing nothing) if not. The check runs under the store's write lock, so no other
        worker can take the lease between it and the commit. Expiry alone does not fail it:
        a lease can only pass to another holder once expired, and that adds to the epoch."""
        ...


class Workers(Protocol):
    """The workers on the store and their heartbeats (``escalations status``)."""

    def heartbeat(self, tx: Transaction, beat: WorkerBeat) -> None:
        """Record ``beat`` (insert, or replace the worker's previous one); a worker's first
        beat also records its run (``worker_runs``)."""
        ...

    def forget_worker(self, tx: Transaction, worker_id: str) -> None:
        """Remove the worker on its clean stop; its run is marked stopped now."""
        ...

    def forget_workers(self, tx: Transaction, *, silent_before: datetime) -> int:
        """Remove the workers whose last heartbeat is older than ``silent_before`` (their runs
        keep that heartbeat), and the runs and lease grants older than ``HISTORY_KEPT``
        before it (the newest grant of each lease stays)."""
        ...

    def workers(self) -> list[WorkerBeat]:
        """Every worker recorded, by host, then pid."""
        ...

    def worker_runs(self, *, since: datetime) -> list[WorkerRun]:
        """The worker runs that started, stopped or were last heard from ``since`` on, and
        those still listed; by start, oldest first."""
        ...


class Store(
    EscalationRecords, OutboxStore, SyncState, KnownArticles, RunLog, Leases, Workers, Protocol
):
    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def acquire_lock(self, *, worker: str = "") -> None:
        """Become the only worker on this host's store, or raise ``LockHeld`` (``worker``: the
        id whose claims and leases survive it; a shared store takes no lock)."""
        ...

    def release_lock(self) -> None: ...

    def close(self) -> None: ...

    @property
    def schema_version(self) -> int: ...

    def integrity_check(self) -> list[str]:
        """``["ok"]`` when the database is sound, else the problems found."""
        ...
