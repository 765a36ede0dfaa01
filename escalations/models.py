"""The domain records: escalations and what the worker remembers about them. Frozen dataclasses;
every time is an aware UTC ``datetime``. Changes go through ``workflow.apply`` and
``dataclasses.replace``, never through mutation."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.base import Marker


class State(enum.StrEnum):
    FLAGGED = "flagged"
    OPEN = "open"
    RESOLVED = "resolved"
    PARKED = "parked"
    CONFIRMED = "confirmed"
    CLOSED = "closed"
    ARCHIVED = "archived"
    PURGED = "purged"


TERMINAL_STATES = frozenset({State.CLOSED, State.ARCHIVED, State.PURGED})
"""An escalation in one of these is finished; a new one may start on the same ticket."""
ACTIVE_STATES = frozenset(State) - TERMINAL_STATES


@dataclass(frozen=True, kw_only=True)
class Escalation:
    id: int = 0
    """0 until the store has inserted the row."""
    key: str
    """Natural key: helpdesk, original ticket and sequence, e.g. ``zammad:ticket:123:1``."""
    original_ticket_id: int
    original_ticket_number: str | None = None
    """As agents know it; ``None`` for escalations stored before it was recorded."""
    escalation_ticket_id: int | None = None
    escalation_ticket_number: str | None = None
    customer_id: int
    organization_id: int | None = None
    segment: str
    level: int
    reason: str
    state: State
    owner_id: int | None = None
    flagged_by_id: int | None = None
    callback_at: datetime | None = None
    agreed_cadence_minutes: int | None = None
    """Business minutes between updates agreed at the flag; ``None``: the segment's."""
    flagged_at: datetime | None = None
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    parked_at: datetime | None = None
    confirmed_at: datetime | None = None
    closed_at: datetime | None = None
    archived_at: datetime | None = None
    purged_at: datetime | None = None
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True, kw_only=True)
class LevelChange:
    escalation_id: int
    from_level: int
    to_level: int
    changed_at: datetime
    changed_by_id: int | None = None
    reason: str | None = None


class ParkingOutcome(enum.StrEnum):
    """How a parking period ended."""

    CONFIRMED = "confirmed"
    """The customer confirmed the fix on the confirmation call: the escalation closes."""
    NOT_SATISFIED = "not_satisfied"
    CUSTOMER_WROTE = "customer_wrote"
    """A new email from the customer, or a new ticket of theirs, while parked."""
    REOPENED = "reopened"
    """An agent set the escalation ticket back to open."""


@dataclass(frozen=True, kw_only=True)
class ParkingPeriod:
    """One stretch of an escalation parked after a resolve (``seq`` 1, 2, … per escalation)."""

    escalation_id: int
    seq: int
    resolved_at: datetime
    pending_until: datetime
    """The end of parking: the state's pending time in the helpdesk."""
    ended_at: datetime | None = None
    outcome: ParkingOutcome | None = None
    reason: str = ""
    """For people: what ended it ("new email on #31001")."""


@dataclass(frozen=True, kw_only=True)
class ArchiveCopy:
    """A hard copy written for one close of an escalation."""

    escalation_id: int
    closed_at: datetime
    path: str
    manifest_sha256: str
    archived_at: datetime
    purged_at: datetime | None = None
    purge_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ArchiveIntent:
    """A hard copy about to be written: recorded before the first file, removed when the copy
    is recorded (``ArchiveCopy``). One left behind is a run that was interrupted."""

    escalation_id: int
    closed_at: datetime
    path: str
    begun_at: datetime
    """Also the copy's ``archived_at``: the time its record was built with."""


@dataclass(frozen=True, kw_only=True)
class CopiedArticle:
    """A customer article copied (or being copied) into the escalation ticket."""

    escalation_id: int
    source_ticket_id: int
    source_article_id: int
    copy_article_id: int | None = None
    """Set when the copy effect commits."""
    copied_at: datetime
    """When the copy was recorded (requested)."""


@dataclass(frozen=True, kw_only=True)
class CarrierContact:
    """What an agent recorded about one call to a carrier (third party): parsed from the
    agent's note (``escalations.carrier``), stored, and listed in the hand-over note."""

    escalation_id: int
    source_article_id: int
    carrier: str | None = None
    stage: str | None = None
    forename: str | None = None
    location: str | None = None
    user_id: str | None = None
    """The carrier agent's user id, if they gave one (the carrier's id, not ours)."""
    called_at: datetime | None = None
    missing: tuple[str, ...] = ()
    """Names of the required details the agent left out."""
    problems: tuple[str, ...] = ()
    """Details given but not understood (an unknown stage, a time that is not a time)."""

    @property
    def complete(self) -> bool:
        return not self.missing and not self.problems


@dataclass(frozen=True, kw_only=True)
class Duty:
    """Something a person must do by ``due_at``: an update, a call, the confirmation call."""

    escalation_id: int
    kind: str
    slot: str
    """Which occurrence, e.g. ``call:2026-12-01:morning``; unique per escalation and kind."""
    due_at: datetime
    done_at: datetime | None = None
    opens_at: datetime | None = None
    """Start of the window in which doing it counts (``None`` for rows stored before it)."""
    reason: str = ""
    """What it is, for people: "morning contact call", "update after level 2"."""
    evidence: str | None = None
    """What showed it done: ``article:<id>`` or ``call:<id>``."""
    reminded_at: datetime | None = None
    missed_at: datetime | None = None

    @property
    def settled(self) -> bool:
        """Done or missed: nothing more happens to it."""
        return self.done_at is not None or self.missed_at is not None


class EffectState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class EffectRef:
    """A stored effect, by kind and key: what an effect's ``after`` waits for."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.key}"


@dataclass(frozen=True, kw_only=True)
class Effect:
    """One write, as recorded in the store (``RELIABILITY.md`` §B2). ``payload`` is the stored
    JSON; the effect kind loads it into its typed model (``payload_version`` says which)."""

    id: int
    kind: str
    key: str
    marker: Marker
    payload: Mapping[str, Any]
    payload_sha256: str
    payload_version: int = 1
    escalation_id: int | None = None
    state: EffectState
    attempts: int = 0
    """Attempts that may have reached the helpdesk (a throttled or refused-at-connect one
    is given back)."""
    deferrals: int = 0
    """Times it was put back without an attempt counted (throttled, unreachable)."""
    not_before: datetime
    remote_id: str | None = None
    last_error: str | None = None
    after: EffectRef | None = None
    """An effect that must be finished (done or failed) first."""
    claimed_by: str | None = None
    """The worker that holds it in flight, while its lease lasts."""
    lease_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
