"""The adapter-neutral driver of the behaviour suite: what a customer and an agent do on a
helpdesk, what the worker does (one pass), and what the suite reads back, in words both
helpdesks share. ``zammad.py`` implements it over the in-process sandbox, ``osticket.py`` over
the real osTicket; each scenario in this folder runs on both and checks the same invariants
(``assert_invariants``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from escalations.app.wiring import Installation
from escalations.models import EffectState, Escalation
from escalations.store.sqlite import SqliteStore

Attachments = tuple[tuple[str, bytes], ...]
"""File name and contents of each attachment of a customer's email."""
Status = Literal["open", "parked", "closed"]
Outcome = Literal["confirmed", "not satisfied"]


@dataclass(frozen=True)
class Original:
    """A customer's ticket: its id and number, the customer's address and the subject."""

    id: int
    number: str
    customer: str
    subject: str


@dataclass(frozen=True)
class Copy:
    """One copy of a customer's email in an escalation ticket."""

    body: str
    attachments: dict[str, bytes] = field(default_factory=dict)


class Helpdesk(Protocol):
    """One helpdesk with the worker installed on it, as the scenarios drive it."""

    name: str
    outcome_hint: str
    """What the Parked note tells an agent to do to record the customer's confirmation."""

    @property
    def store(self) -> SqliteStore: ...

    @property
    def installation(self) -> Installation: ...

    # -- the worker ----------------------------------------------------------------------
    def run(self) -> None:
        """One pass of the worker (sync, comms); it must not fail. A pass repeated at once
        finds nothing more to write."""

    def move_clock_to(self, instant: datetime) -> None:
        """The worker's clock moved forward to ``instant`` (never back)."""

    def next_second(self) -> None:
        """Let the helpdesk's clock pass its current second (osTicket stamps whole seconds)."""

    def now(self) -> datetime:
        """The worker's time."""

    # -- the customer --------------------------------------------------------------------
    def customer_opens(self, subject: str, body: str, *, attachments: Attachments = ()) -> Original:
        """A new customer emails the helpdesk: a new ticket."""

    def customer_writes(
        self, original: Original, body: str, *, attachments: Attachments = ()
    ) -> None:
        """The customer replies to their ticket by email."""

    # -- an agent ------------------------------------------------------------------------
    def flag(self, original: Original) -> None:
        """An agent flags the ticket for escalation, as the helpdesk's mappings say."""

    def set_level(self, ticket_id: int, level: int) -> None:
        """An agent sets the escalation ticket's level field."""

    def carrier_note(self, ticket_id: int, lines: Sequence[str]) -> None:
        """An agent logs a carrier contact (an internal note, one detail a line)."""

    def tick_route_failed(self, ticket_id: int) -> None:
        """An agent marks the carrier route failed (a tag on Zammad, a checkbox on osTicket)."""

    def log_phone_call(self, ticket_id: int, text: str) -> None:
        """An agent logs a call made to the customer."""

    def set_rfo(self, ticket_id: int, text: str) -> None:
        """An agent fills in the Reason for Outage."""

    def resolve(self, ticket_id: int) -> None:
        """An agent closes the escalation ticket."""

    def record_outcome(self, ticket_id: int, outcome: Outcome) -> None:
        """An agent records the outcome of the confirmation call on a parked ticket."""

    # -- what the suite reads back -------------------------------------------------------
    def escalation_tickets(self, original: Original) -> list[int]:
        """Every ticket carrying an escalation key whose origin is ``original``."""

    def title(self, ticket_id: int) -> str: ...

    def level_field(self, ticket_id: int) -> str: ...

    def owner(self, ticket_id: int) -> str | None:
        """The owner's email address, ``None`` when unassigned."""

    def status(self, ticket_id: int) -> Status: ...

    def parents(self, ticket_id: int) -> list[int]:
        """The tickets ``ticket_id`` is linked to as a child."""

    def copies(self, ticket_id: int, text: str) -> list[Copy]:
        """The copies of the customer's emails whose text contains ``text`` in the ticket."""

    def worker_notes(self, ticket_id: int, subject: str) -> list[str]:
        """The bodies of the worker's internal notes whose subject starts with ``subject``."""

    def public_texts(self, ticket_id: int) -> list[str]:
        """The bodies of every article of the ticket that is not internal (what a customer
        with a portal account could read)."""

    def mail_to_customers(self, original: Original) -> list[str]:
        """Mail the worker's actions made the helpdesk send to a customer (or, on osTicket,
        any mail naming an escalation ticket): must stay empty."""

    def helpdesk_invariants(self) -> None:
        """Invariants only this helpdesk can check (the sandbox's full §B4 set)."""


@dataclass(frozen=True)
class Escalated:
    original: Original
    ticket_id: int
    since: datetime


def escalate(hd: Helpdesk, subject: str, body: str, *, attachments: Attachments = ()) -> Escalated:
    """A customer's email, the ticket flagged by an agent, one pass: the escalation ticket."""
    since = hd.now()
    original = hd.customer_opens(subject, body, attachments=attachments)
    hd.flag(original)
    hd.run()
    (ticket_id,) = hd.escalation_tickets(original)
    return Escalated(original, ticket_id, since)


def record(hd: Helpdesk, escalated: Escalated) -> Escalation:
    esc = hd.store.escalation_by_ticket(escalated.ticket_id)
    assert esc is not None, "the store does not know the escalation ticket"
    return esc


def assert_invariants(hd: Helpdesk, escalated: Escalated, *emails: str) -> None:
    """The invariants every scenario ends with, on either helpdesk: exactly one escalation
    ticket for the original, the store's, linked to it; each of ``emails`` (texts of the
    customer's emails) copied into it exactly once; every write made (none failed, pending
    or in flight); no mail to a customer."""
    original = escalated.original
    assert hd.escalation_tickets(original) == [escalated.ticket_id]
    (esc,) = hd.store.escalations_for_ticket(original.id)
    assert esc.escalation_ticket_id == escalated.ticket_id
    assert hd.parents(escalated.ticket_id) == [original.id]
    for text in emails:
        copies = hd.copies(escalated.ticket_id, text)
        assert len(copies) == 1, f"{text!r} copied {len(copies)} times"
    failed = hd.store.effects(EffectState.FAILED, escalation_id=esc.id)
    assert [(e.kind, e.key, e.last_error) for e in failed] == []
    assert hd.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT) == []
    assert hd.mail_to_customers(original) == []
    hd.helpdesk_invariants()
