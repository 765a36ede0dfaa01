"""What the nightly reconciliation finds (DESIGN.md rule 9): one ``Finding`` per disagreement
between the helpdesk and the store, or per duty or write the worker is behind on, and the
``Report`` that holds them with its summary figures. Pure data: frozen, aware UTC times.

Each kind says what was compared; ``Finding.subject`` says what it is about (an escalation, a
ticket, an article, an effect), so the same drift found twice in one run is one finding.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime


class FindingKind(enum.StrEnum):
    """Every kind of finding, in the order the report shows them."""

    FLAGGED_WITHOUT_ESCALATION = "flagged_without_escalation"
    """A ticket is flagged for escalation and has no escalation ticket."""
    ESCALATION_TICKET_UNKNOWN = "escalation_ticket_unknown"
    """A ticket carries an escalation key the store does not know."""
    ESCALATION_TICKET_UNLINKED = "escalation_ticket_unlinked"
    """An escalation ticket is not linked (as a child) to its original."""
    DUPLICATE_ESCALATION_TICKET = "duplicate_escalation_ticket"
    """Two or more tickets carry the key of one escalation."""
    ESCALATION_TICKET_DELETED = "escalation_ticket_deleted"
    ESCALATION_TICKET_MERGED = "escalation_ticket_merged"
    ORIGINAL_DELETED = "original_deleted"
    ORIGINAL_MERGED = "original_merged"
    EMAIL_NOT_COPIED = "email_not_copied"
    """A customer message on the original has no copy in the escalation ticket."""
    COPY_WITHOUT_SOURCE = "copy_without_source"
    """A copy in the escalation ticket whose source message is gone."""
    COPY_TWICE = "copy_twice"
    """One customer message copied more than once."""
    LEVEL_DIFFERS = "level_differs"
    """The level on the escalation ticket is not the level the worker applied."""
    LEVEL_MARK_DIFFERS = "level_mark_differs"
    """The level tag (mark) is missing, or another level's is present."""
    OWNER_DIFFERS = "owner_differs"
    SUBSCRIBER_MISSING = "subscriber_missing"
    """Someone the level subscribes is not subscribed to the escalation ticket."""
    GROUP_DIFFERS = "group_differs"
    STATE_DIFFERS = "state_differs"
    DUTY_OVERDUE = "duty_overdue"
    """A call, an update or a confirmation call is past due and not done."""
    DUTY_MISSED = "duty_missed"
    """A duty whose window closed undone in the report's period."""
    PARKED_PAST_CONFIRMATION = "parked_past_confirmation"
    RESOLVED_WITHOUT_RFO = "resolved_without_rfo"
    CLOSED_WITHOUT_ARCHIVE = "closed_without_archive"
    ARCHIVE_DAMAGED = "archive_damaged"
    """A hard copy's file no longer matches its manifest (or is missing)."""
    ARCHIVE_PURGE_DUE = "archive_purge_due"
    """A hard copy past its retention and not purged (a legal hold keeps it; otherwise the
    retention job is behind)."""
    ARCHIVE_PURGED = "archive_purged"
    """Retention removed a hard copy in the report's period (for the record)."""
    EFFECT_FAILED = "effect_failed"
    EFFECT_STUCK = "effect_stuck"
    """A write in flight, or due and not done, for longer than the worker should take."""
    WORKER_UNHEALTHY = "worker_unhealthy"
    """No successful poll for too long, or jobs failing."""
    WORKER_SILENT = "worker_silent"
    """A worker stopped sending heartbeats without a clean stop (killed, crashed, frozen,
    cut off from the store)."""
    WORKER_RESTARTED = "worker_restarted"
    """A worker started after an earlier one on its host ended (for the record)."""
    LEADER_CHANGED = "leader_changed"
    """Jobs' leases passed from one worker to another (for the record)."""


TITLES: Mapping[FindingKind, str] = {
    FindingKind.FLAGGED_WITHOUT_ESCALATION: "Flagged tickets without an escalation ticket",
    FindingKind.ESCALATION_TICKET_UNKNOWN: "Escalation tickets the worker does not know",
    FindingKind.ESCALATION_TICKET_UNLINKED: "Escalation tickets not linked to their original",
    FindingKind.DUPLICATE_ESCALATION_TICKET: "Two escalation tickets for one escalation",
    FindingKind.ESCALATION_TICKET_DELETED: "Escalation tickets deleted in the helpdesk",
    FindingKind.ESCALATION_TICKET_MERGED: "Escalation tickets merged by an agent",
    FindingKind.ORIGINAL_DELETED: "Original tickets deleted",
    FindingKind.ORIGINAL_MERGED: "Original tickets merged into another ticket",
    FindingKind.EMAIL_NOT_COPIED: "Customer emails not copied",
    FindingKind.COPY_WITHOUT_SOURCE: "Copies whose source email is gone",
    FindingKind.COPY_TWICE: "Customer emails copied more than once",
    FindingKind.LEVEL_DIFFERS: "Level on the ticket differs from the level applied",
    FindingKind.LEVEL_MARK_DIFFERS: "Level tag differs from the level",
    FindingKind.OWNER_DIFFERS: "Owner differs from the owner the level requires",
    FindingKind.SUBSCRIBER_MISSING: "Executives the level subscribes, not subscribed",
    FindingKind.GROUP_DIFFERS: "Escalation ticket outside the escalation group",
    FindingKind.STATE_DIFFERS: "Ticket state differs from the escalation's state",
    FindingKind.DUTY_OVERDUE: "Duties overdue",
    FindingKind.DUTY_MISSED: "Duties missed",
    FindingKind.PARKED_PAST_CONFIRMATION: "Parked past the confirmation day",
    FindingKind.RESOLVED_WITHOUT_RFO: "Resolved without a Reason for Outage",
    FindingKind.CLOSED_WITHOUT_ARCHIVE: "Closed without a verified hard copy",
    FindingKind.ARCHIVE_DAMAGED: "Hard copies that no longer match their manifest",
    FindingKind.ARCHIVE_PURGE_DUE: "Hard copies past their retention",
    FindingKind.ARCHIVE_PURGED: "Hard copies purged by retention",
    FindingKind.EFFECT_FAILED: "Writes that failed",
    FindingKind.EFFECT_STUCK: "Writes stuck",
    FindingKind.WORKER_UNHEALTHY: "Worker health",
    FindingKind.WORKER_SILENT: "Workers that went silent",
    FindingKind.WORKER_RESTARTED: "Worker restarts",
    FindingKind.LEADER_CHANGED: "Leader changes",
}

INFORMATIONAL = frozenset(
    {
        FindingKind.ARCHIVE_PURGE_DUE,
        FindingKind.ARCHIVE_PURGED,
        FindingKind.WORKER_RESTARTED,
        FindingKind.LEADER_CHANGED,
    }
)
"""Kinds listed for the record: not a problem, not counted as drift."""


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: FindingKind
    subject: str
    """What it is about, unique per kind in one report: ``escalation:<key>``,
    ``ticket:<id>``, ``article:<id>``, ``effect:<id>``, ``duty:<key>:<slot>``, …"""
    detail: str
    """One sentence for people."""
    escalation: str | None = None
    ticket_id: int | None = None
    """The ticket to open in the helpdesk to see it."""
    ticket_number: str | None = None
    other_ticket_id: int | None = None
    """A second ticket it concerns (the original, a duplicate, a merge target)."""
    since: datetime | None = None
    """When it started (a due time, a message's time), where known."""


REPAIRABLE = frozenset(
    {
        FindingKind.ESCALATION_TICKET_UNLINKED,
        FindingKind.EMAIL_NOT_COPIED,
        FindingKind.LEVEL_MARK_DIFFERS,
        FindingKind.OWNER_DIFFERS,
        FindingKind.SUBSCRIBER_MISSING,
        FindingKind.CLOSED_WITHOUT_ARCHIVE,
    }
)
"""Kinds ``escalations report --repair`` fixes (``jobs.reconcile.repair``): safe and
idempotent writes the worker itself makes. Every other kind is only reported."""


class RepairOutcome(enum.StrEnum):
    PLANNED = "planned"
    """``--dry-run``: what ``--repair`` would do; nothing was written."""
    DONE = "done"
    """Written (or found written) and recorded."""
    PENDING = "pending"
    """Requested; the worker's executor finishes it (the helpdesk was busy, or the write
    waits for another)."""
    FAILED = "failed"
    """The helpdesk refused it (listed as a failed write from now on)."""
    SKIPPED = "skipped"
    """Not repaired: being repaired already, changed since the report read it, or not safe
    here (the detail says which)."""


@dataclass(frozen=True, kw_only=True)
class Repair:
    """What ``--repair`` did (or, with ``--dry-run``, would do) about one finding."""

    kind: FindingKind
    """The finding's kind."""
    subject: str
    """The finding's subject."""
    action: str
    """What is written, for people."""
    outcome: RepairOutcome
    detail: str = ""
    """Why skipped, the helpdesk's refusal, …"""
    escalation: str | None = None
    ticket_id: int | None = None
    ticket_number: str | None = None
    effects: tuple[str, ...] = ()
    """The writes, as ``kind key`` (empty for a hard copy, which is filed, not written)."""


class WorkerState(enum.StrEnum):
    RUNNING = "running"
    """Heard within the silence the report allows (as of the report's instant)."""
    STOPPED = "stopped"
    """Stopped cleanly."""
    SILENT = "silent"
    """No heartbeat for longer, and no clean stop."""


@dataclass(frozen=True, kw_only=True)
class WorkerSeen:
    """A worker run on the store during the report's period (the workers table)."""

    host: str
    pid: int
    version: str
    started_at: datetime
    last_heartbeat_at: datetime | None
    stopped_at: datetime | None
    state: WorkerState
    leading: tuple[str, ...] = ()
    """The jobs whose leadership lease it holds (as of now)."""


@dataclass(frozen=True, kw_only=True)
class DayDuties:
    """Duties that fell due on one local day."""

    day: date
    done: int
    missed: int


@dataclass(frozen=True, kw_only=True)
class Report:
    """One night's reconciliation."""

    schema_version: int
    generated_at: datetime
    day: date
    """The local day the report is for (its directory name)."""
    time_zone: str
    helpdesk: str
    helpdesk_url: str
    ticket_link: str
    """Where a ticket opens in the helpdesk, relative to ``helpdesk_url``, with ``{id}``;
    empty when unknown."""
    findings: tuple[Finding, ...]
    open_by_level: Mapping[int, int]
    """Active escalations by level."""
    duties_by_day: tuple[DayDuties, ...]
    """The last days, oldest first."""
    requests: int | None
    """Helpdesk requests the report made; ``None`` when not counted."""
    escalations_checked: int
    tickets_read: int
    previous_counts: Mapping[FindingKind, int] | None = None
    """Counts of the previous report, ``None`` when there is none."""
    not_checked: tuple[str, ...] = field(default_factory=tuple)
    """What this report could not check, for people (a capability missing, a read refused)."""
    repairs: tuple[Repair, ...] | None = None
    """What ``--repair`` did about the findings (or would do, ``--dry-run``); ``None`` when no
    repair was asked for (the nightly report, a plain ``escalations report``)."""
    workers: tuple[WorkerSeen, ...] = ()
    """The worker runs of the period, oldest start first."""

    def repair_of(self, finding: Finding) -> Repair | None:
        """The repair made for ``finding``, if any."""
        for repair in self.repairs or ():
            if repair.kind is finding.kind and repair.subject == finding.subject:
                return repair
        return None

    def counts(self) -> dict[FindingKind, int]:
        """Findings by kind; every kind present."""
        counts = dict.fromkeys(FindingKind, 0)
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts

    @property
    def drift(self) -> int:
        """Findings that need someone (the informational ones left out)."""
        return sum(1 for f in self.findings if f.kind not in INFORMATIONAL)

    def ticket_url(self, ticket_id: int | None) -> str | None:
        """The ticket's address in the helpdesk, or ``None``."""
        if ticket_id is None or not self.ticket_link or not self.helpdesk_url:
            return None
        return self.helpdesk_url.rstrip("/") + self.ticket_link.format(id=int(ticket_id))
