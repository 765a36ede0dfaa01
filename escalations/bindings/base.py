"""What a helpdesk binding is: the one place that knows what a helpdesk's field values, tags,
title conventions, state names and create payloads mean.

A binding is pure (no I/O). It reads what the domain needs from a neutral ``Ticket`` (is it
flagged, which level is asked for, which escalation is it) and turns the domain's decisions
(open an escalation, mark the original, apply a level, consume a flag) into intents. It
consults the adapter's capabilities, so the jobs never branch on a helpdesk: where a helpdesk
cannot create atomically, the binding chains the writes with ``after``; where it has no tags,
it uses the fields the mappings name; where it cannot subscribe people, notes name them.

The jobs decide; the binding translates; the effects write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector.base import Capability, Criterion, HelpdeskAdapter, Ticket, TicketEvent, User
from escalations.effects.base import Intent
from escalations.models import EffectRef, Escalation, ParkingOutcome


@dataclass(frozen=True)
class FlagState:
    """How a ticket is flagged for escalation, as the binding reads it."""

    by_field: bool = False
    by_mark: bool = False
    """By a mark a search found (a tag, in Zammad)."""

    @property
    def raised(self) -> bool:
        return self.by_field or self.by_mark


@dataclass(frozen=True)
class FlagDetails:
    """What the agent entered with the flag; empty strings when not given."""

    reason: str
    segment: str
    callback_at: datetime | None
    agreed_cadence_minutes: int | None = None
    """The update cadence agreed with the customer (business minutes), where the flag
    carries one."""


@dataclass(frozen=True)
class Limits:
    """Sizes the worker keeps to when copying into the helpdesk."""

    attachment_max_bytes: int
    body_max_chars: int


@dataclass(frozen=True)
class NewEscalationTicket:
    """The domain's decision to raise an escalation ticket."""

    escalation: Escalation
    """Stored (its ``id`` is set), state ``flagged``."""
    original: Ticket
    customer_id: int
    """Whom the ticket is for: the placeholder customer, or the real one."""
    organization_id: int | None
    watcher_ids: tuple[int, ...]
    """People the level subscribes."""
    note_html: str
    note_subject: str
    opened_at: datetime
    next_duty_at: datetime | None = None
    """When the first duty of the plan is due, for bindings that show it (``next_duty``)."""
    flag: FlagState = FlagState(by_field=True, by_mark=True)
    """How the original was flagged, as the poll saw it (both, when not known): only a flag
    that was a mark needs its mark removed."""


@dataclass(frozen=True)
class LevelMove:
    """The domain's decision to apply a level an agent set on the escalation ticket."""

    escalation: Escalation
    """As it was before the move."""
    ticket: Ticket
    """The escalation ticket, as the poll saw it."""
    level: int
    sequence: int
    """1 for the first move of this escalation, 2 for the next …"""
    owner_id: int | None
    """The new owner, or ``None`` to leave the owner alone."""
    watcher_ids: tuple[int, ...]


class HelpdeskBinding(Protocol):
    name: str
    capabilities: frozenset[Capability]
    escalation_group: str
    carrier_heading: str
    """First line of the note agents write to log a carrier contact."""
    limits: Limits
    placeholder_customer_ref: str | None
    """Login or email of the customer escalation tickets are raised for; ``None``: the real
    customer."""
    flag_criterion: Criterion | None
    """A search finding flagged tickets that the ticket data alone does not show (a tag);
    ``None`` when the flag is read from the ticket."""
    route_failed_criterion: Criterion | None
    """The same for "the carrier route failed"."""

    # -- people ----------------------------------------------------------------------------
    def person_ref(self, role: str) -> str | None:
        """The helpdesk login or email mapped to a process role."""
        ...

    def can_own(self, user: User) -> bool:
        """May own escalation tickets (full access to the escalation group, in Zammad)."""
        ...

    def can_watch(self, user: User) -> bool:
        """May be subscribed to escalation tickets."""
        ...

    def person_html(self, user_id: int, name: str) -> str:
        """How a note names a person it subscribes (an anchor the helpdesk acts on, or the
        plain name where it has no such thing)."""
        ...

    # -- reading a ticket ------------------------------------------------------------------
    def escalation_key_of(self, ticket: Ticket) -> str | None:
        """The escalation key an escalation ticket carries; ``None`` for any other ticket."""
        ...

    def flag_state(self, ticket: Ticket, *, matched: bool) -> FlagState:
        """``matched``: ``flag_criterion``'s search found the ticket."""
        ...

    def flag_details(self, ticket: Ticket) -> FlagDetails: ...

    def requested_level(self, ticket: Ticket) -> int | None:
        """The level an agent set on an escalation ticket; ``None`` if absent or not a
        number (the range is the domain's to check)."""
        ...

    def route_failed(self, ticket: Ticket, *, matched: bool) -> bool:
        """Whether an agent marked the carrier route as failed."""
        ...

    def closing(self, ticket: Ticket) -> bool:
        """Whether the ticket is in the state that ends an escalation (an agent resolved or
        closed it)."""
        ...

    def rfo_of(self, ticket: Ticket) -> str | None:
        """The Reason for Outage the ticket carries; ``None`` when empty."""
        ...

    def reopened(self, ticket: Ticket) -> bool:
        """Whether the ticket is in the open state (an agent set it back, or never left it)."""
        ...

    @property
    def outcome_howto(self) -> str:
        """How an agent records the outcome, in words for a note."""
        ...

    def outcome(self, ticket: Ticket, adapter: HelpdeskAdapter) -> ParkingOutcome | None:
        """The confirmation call's outcome an agent recorded on a parked escalation's ticket
        (``CONFIRMED`` or ``NOT_SATISFIED``); ``None`` while none is. Reads through
        ``adapter`` what the ticket data does not show (at most one request)."""
        ...

    # -- reading a ticket's history (who did it) -------------------------------------------
    def flag_event(self, events: Sequence[TicketEvent]) -> TicketEvent | None:
        """The latest event that raised the flag (the ticket's creation, if nothing later
        did: a flag set when the ticket was created); ``None`` if none did."""
        ...

    def level_event(self, events: Sequence[TicketEvent], level: int) -> TicketEvent | None:
        """The latest event that set the level to ``level``."""
        ...

    def route_failed_event(self, events: Sequence[TicketEvent]) -> TicketEvent | None:
        """The latest event that marked the carrier route as failed."""
        ...

    # -- decisions into intents ------------------------------------------------------------
    def open_escalation(self, new: NewEscalationTicket) -> list[Intent]:
        """The create of the escalation ticket first, then anything chained after it."""
        ...

    def mark_original(self, esc: Escalation, note: Intent) -> list[Intent]:
        """Once the escalation ticket exists: the original marked as escalated, the flag
        consumed, and ``note`` (an internal note on the original telling its agents) —
        returned as it is, or carried by the binding's own update of the original where the
        helpdesk creates a note with a ticket update (one write instead of two)."""
        ...

    def consume_flag(self, esc: Escalation, occurrence: str, flag: FlagState) -> list[Intent]:
        """Clear the flag on the original (a flag raised again, or a refused creation)."""
        ...

    def flag_being_cleared(self, flag: FlagState, pending_purposes: frozenset[str]) -> bool:
        """Will writes already pending (their key purposes) clear every flag ``flag`` shows?
        Then it is the old flag being consumed, not a new one."""
        ...

    def reopen(self, esc: Escalation, ticket_id: int, occurrence: str) -> list[Intent]:
        """Put ``ticket_id`` back to the open state (the RFO gate); one write per
        ``occurrence`` (each time an agent closed it)."""
        ...

    def legal_hold(self, ticket: Ticket, adapter: HelpdeskAdapter) -> bool:
        """Whether the escalation ticket is marked as on legal hold (``[archive]``); reads
        through ``adapter`` what the ticket data does not show."""
        ...

    def park(self, esc: Escalation, seq: int, until: datetime) -> list[Intent]:
        """The escalation ticket parked (the parked state, pending until ``until``, marked);
        once per parking ``seq``."""
        ...

    def unpark(self, esc: Escalation, seq: int) -> list[Intent]:
        """The escalation ticket back to open, unmarked, its outcome cleared; once per
        parking ``seq``."""
        ...

    def keep_parked(self, esc: Escalation, occurrence: str, until: datetime) -> list[Intent]:
        """Back to the parked state after an agent closed it with no outcome recorded; once
        per ``occurrence``."""
        ...

    @property
    def shows_next_duty(self) -> bool:
        """Whether the escalation ticket shows when its next duty is due (``next_duty``)."""
        ...

    def next_duty(
        self,
        esc: Escalation,
        seq: int,
        due: datetime | None,
        exists: Callable[[EffectRef], bool],
    ) -> list[Intent]:
        """The escalation ticket shows ``due`` (``None``: no duty ahead) as its next duty's
        time; the ``seq``-th change, after the previous one if ``exists`` says it was
        requested."""
        ...

    def close(self, esc: Escalation, seq: int) -> list[Intent]:
        """The escalation ticket (and, per the mappings, the original) closed and unmarked as
        parked, after the customer confirmed; once per parking ``seq``."""
        ...

    def apply_level(self, move: LevelMove, exists: Callable[[EffectRef], bool]) -> list[Intent]:
        """The writes that make the escalation ticket show ``move.level`` (marks, title,
        owner, subscriptions), each after the same write of the previous move if ``exists``
        says it was requested."""
        ...
