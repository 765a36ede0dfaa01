"""The osTicket binding: what ``mappings/osticket.toml`` names, read from and written to
osTicket, within what the adapter declares it can do.

- The flag is an open-state ticket **status** an agent sets (``[flag] status``), read from the
  ticket itself: no search of its own, so an idle poll stays one query.
- The escalation ticket is created under the escalation **help topic** (department, team and
  SLA come from it) with the escalation key, level and original ticket number in the topic
  form's fields, for the real customer (osTicket threads a copied mail by its sender, the
  ticket's owner); its subject starts with ``[L<level>]``.
- With the escalation-api plugin (``LINKS``, ``UPDATE_TICKET``, ``ADD_NOTE``) the escalation
  ticket is linked to the original and assigned to the level's owner right after the create,
  each level change sets the level field, the subject and the owner, and status writes
  (consume the flag, park, close, reopen) are made.
- Without the plugin the link is not requested; status, field and owner writes are requested
  and fail, each naming the missing capability, in ``escalations effects list --failed``: an
  agent sees what was not done instead of a worker that half-works. The flag status cannot be
  consumed then: while an escalation of the ticket is open, the status still showing is that
  same flag, never a new one.
- The carrier route is marked failed by a checkbox on the escalation topic's form
  (``[fields] route_failed``); the outcome of a parked escalation is a status an agent sets
  (``[statuses] confirmed``, ``not_satisfied``), replaced by the worker's next status write.
- osTicket has no tags and no subscription of agents (collaborators are end users): a note
  names people in plain text; the team and assignment are how agents hear of a ticket.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from connector.base import (
    Capability,
    Criterion,
    FieldValue,
    HelpdeskAdapter,
    Ticket,
    TicketEvent,
    User,
)
from escalations import notes
from escalations.bindings.base import (
    FlagDetails,
    FlagState,
    LevelMove,
    Limits,
    NewEscalationTicket,
)
from escalations.bindings.osticket.field_map import OsTicketFieldMap
from escalations.clock import parse_instant
from escalations.effects.base import Intent
from escalations.effects.helpdesk import (
    AddNote,
    CreateEscalation,
    CreateEscalationPayload,
    LinkPayload,
    LinkTickets,
    NotePayload,
    UpdateTicket,
    UpdateTicketPayload,
)
from escalations.models import EffectRef, Escalation, ParkingOutcome
from escalations.profile import ProcessProfile

SUBJECT_MAX = 250
SUBJECT_PREFIX_RE = re.compile(r"^\[L\d+\]\s*")

CONSUME_FLAG = "consume-flag"
REOPEN = "rfo-reopen"
PARK = "park"
UNPARK = "unpark"
KEEP_PARKED = "keep-parked"
CLOSE = "close"
CLOSE_ORIGINAL = "close-original"
ESCALATION_DETAILS = "escalation-details"
"""The internal note with the escalation's details, right after the create."""

COPIES_HERE = (
    "Every customer email on the original ticket is copied here as a message from the "
    "customer (osTicket adds to a ticket by mail only)."
)
"""What the details note says of the copies on osTicket (they are not internal notes)."""


def customer_safe_message(original_number: str, original_title: str) -> str:
    """The escalation ticket's first message. On osTicket it is a **public message from the
    customer** (``tickets.json`` posts nothing else), on a ticket that belongs to the real
    customer, who can read it in the client portal: so it names only what the customer knows
    already — no agent, owner, segment, level, reason or count of their other tickets."""
    return (
        f"<p><b>Escalation of ticket #{html.escape(original_number)}</b> "
        f"{html.escape(original_title)}</p><p>This ticket follows up the escalation of ticket "
        f"#{html.escape(original_number)}. Your emails on that ticket are copied here.</p>"
    )


def internal_details(note_html: str) -> str:
    """The process's "escalation raised" note, with the copies described as osTicket makes
    them."""
    return note_html.replace(notes.COPIES_AS_NOTES, COPIES_HERE)


def subject_at_level(subject: str, level: int) -> str:
    """``[L<level>] <subject>``, an older prefix replaced."""
    return f"[L{level}] {SUBJECT_PREFIX_RE.sub('', subject)}"[:SUBJECT_MAX]


def _truthy(value: Any) -> bool:
    """A ticked osTicket checkbox ("1"), or a text field an agent typed yes into."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _as_level(value: Any) -> int | None:
    try:
        return int(str(value).strip().lower().removeprefix("l").removeprefix("level"))
    except (TypeError, ValueError):
        return None


def _instant(value: FieldValue) -> datetime | None:
    if not value:
        return None
    try:
        return parse_instant(str(value))
    except ValueError:
        return None


class OsTicketBinding:
    """``HelpdeskBinding`` for osTicket, from its field map, the process profile and the
    adapter's capabilities."""

    name = "osticket"
    placeholder_customer_ref: str | None = None
    flag_criterion: Criterion | None = None
    route_failed_criterion: Criterion | None = None

    def __init__(
        self,
        fieldmap: OsTicketFieldMap,
        profile: ProcessProfile,
        capabilities: frozenset[Capability],
    ) -> None:
        self.fieldmap = fieldmap
        self.profile = profile
        self.capabilities = capabilities
        self.escalation_group = fieldmap.topics.escalation
        self.carrier_heading = fieldmap.carrier.note_heading
        self.limits = Limits(
            attachment_max_bytes=fieldmap.limits.attachment_max_bytes,
            body_max_chars=fieldmap.limits.article_body_max_chars,
        )
        self._updates = Capability.UPDATE_TICKET in capabilities
        self._links = Capability.LINKS in capabilities
        self._notes = Capability.ADD_NOTE in capabilities

    # -- people ----------------------------------------------------------------------------
    def person_ref(self, role: str) -> str | None:
        return self.fieldmap.people.get(role)

    def can_own(self, user: User) -> bool:
        return user.active and user.is_agent

    def can_watch(self, user: User) -> bool:
        return user.active and user.is_agent

    def person_html(self, user_id: int, name: str) -> str:
        return html.escape(name)

    # -- reading a ticket ------------------------------------------------------------------
    def escalation_key_of(self, ticket: Ticket) -> str | None:
        key = ticket.fields.get(self.fieldmap.fields.escalation_key)
        return str(key) if key else None

    def flag_state(self, ticket: Ticket, *, matched: bool) -> FlagState:
        return FlagState(by_field=ticket.state == self.fieldmap.flag.status)

    def flag_details(self, ticket: Ticket) -> FlagDetails:
        fields = self.fieldmap.fields
        return FlagDetails(
            reason=str(ticket.fields.get(fields.reason) or ""),
            segment=str(ticket.fields.get(fields.segment) or ""),
            callback_at=_instant(ticket.fields.get(fields.callback_at)),
        )

    def requested_level(self, ticket: Ticket) -> int | None:
        return _as_level(ticket.fields.get(self.fieldmap.fields.level))

    def route_failed(self, ticket: Ticket, *, matched: bool) -> bool:
        field = self.fieldmap.fields.route_failed
        return bool(field and _truthy(ticket.fields.get(field)))

    def closing(self, ticket: Ticket) -> bool:
        return ticket.state == self.fieldmap.statuses.closed

    def rfo_of(self, ticket: Ticket) -> str | None:
        value = ticket.fields.get(self.fieldmap.fields.rfo)
        text = str(value).strip() if value is not None else ""
        return text or None

    def reopened(self, ticket: Ticket) -> bool:
        return ticket.state == self.fieldmap.statuses.open

    @property
    def outcome_howto(self) -> str:
        statuses = self.fieldmap.statuses
        if statuses.confirmed is None or statuses.not_satisfied is None:
            return (
                "recording the outcome is not set up on this osTicket (osticket.toml "
                "[statuses] confirmed, not_satisfied)"
            )
        return (
            f"set the status {statuses.confirmed} when the customer confirms, or "
            f"{statuses.not_satisfied} when they are not satisfied"
        )

    def outcome(self, ticket: Ticket, adapter: HelpdeskAdapter) -> ParkingOutcome | None:
        """The outcome an agent recorded on a parked escalation ticket: its status. The
        worker's next status write (closed, or open again) replaces it."""
        statuses = self.fieldmap.statuses
        if statuses.not_satisfied is not None and ticket.state == statuses.not_satisfied:
            return ParkingOutcome.NOT_SATISFIED
        if statuses.confirmed is not None and ticket.state == statuses.confirmed:
            return ParkingOutcome.CONFIRMED
        return None

    # -- history: not readable as events through core osTicket ----------------------------
    def flag_event(self, events: Sequence[TicketEvent]) -> TicketEvent | None:
        return None

    def level_event(self, events: Sequence[TicketEvent], level: int) -> TicketEvent | None:
        return None

    def route_failed_event(self, events: Sequence[TicketEvent]) -> TicketEvent | None:
        return None

    # -- decisions into intents ------------------------------------------------------------
    def open_escalation(self, new: NewEscalationTicket) -> list[Intent]:
        esc, original = new.escalation, new.original
        fields = self.fieldmap.fields
        values: dict[str, FieldValue] = {
            fields.escalation_key: esc.key,
            fields.level: str(esc.level),
            fields.original_ticket: original.number,
        }
        payload = CreateEscalationPayload(
            title=subject_at_level(original.title, esc.level),
            group=self.escalation_group,
            customer_id=original.customer_id,
            fields=values,
            parent_id=original.id,
            link_at_create=False,
            found_by=(fields.escalation_key, esc.key),
            # a public message from the customer: the details go in an internal note below
            note_html=customer_safe_message(original.number, original.title),
            note_subject=new.note_subject,
            opened_at=new.opened_at,
            original_number=original.number,
        )
        create = CreateEscalation.intent(
            CreateEscalation.key("escalation", esc.key), payload, escalation_id=esc.id
        )
        intents = [create]
        if self._notes:
            # the details agents need, where the customer cannot see them; without the plugin
            # there is no internal note and they are not written (docs/osticket.md)
            intents.append(
                AddNote.intent(
                    AddNote.key(ESCALATION_DETAILS, esc.key),
                    NotePayload(
                        escalation_ticket_of=esc.id,
                        html=internal_details(new.note_html),
                        subject=new.note_subject,
                    ),
                    escalation_id=esc.id,
                    after=create.ref,
                )
            )
        if self._links:
            intents.append(
                LinkTickets.intent(
                    LinkTickets.key("escalation-link", esc.key),
                    LinkPayload(escalation_ticket_of=esc.id, parent_id=original.id),
                    escalation_id=esc.id,
                    after=create.ref,
                )
            )
        if self._updates and esc.owner_id is not None:
            # the create cannot assign (the help topic routes): the level's owner right after
            intents.append(
                UpdateTicket.intent(
                    UpdateTicket.key("escalation-owner", esc.key),
                    UpdateTicketPayload(escalation_ticket_of=esc.id, owner_id=esc.owner_id),
                    escalation_id=esc.id,
                    after=create.ref,
                )
            )
        return intents

    def _update(
        self, purpose: str, esc: Escalation, part: object, payload: UpdateTicketPayload
    ) -> Intent:
        return UpdateTicket.intent(
            UpdateTicket.key(purpose, esc.key, part), payload, escalation_id=esc.id
        )

    def mark_original(self, esc: Escalation, note: Intent) -> list[Intent]:
        return [note, *self.consume_flag(esc, "0", FlagState(by_field=True))]

    def consume_flag(self, esc: Escalation, occurrence: str, flag: FlagState) -> list[Intent]:
        payload = UpdateTicketPayload(
            ticket_id=esc.original_ticket_id, state=self.fieldmap.statuses.open
        )
        return [self._update(CONSUME_FLAG, esc, occurrence, payload)]

    def flag_being_cleared(self, flag: FlagState, pending_purposes: frozenset[str]) -> bool:
        if not self._updates:
            return True  # nothing can clear the status but an agent: it is the same flag
        return not flag.raised or CONSUME_FLAG in pending_purposes

    def reopen(self, esc: Escalation, ticket_id: int, occurrence: str) -> list[Intent]:
        payload = UpdateTicketPayload(ticket_id=ticket_id, state=self.fieldmap.statuses.open)
        return [self._update(REOPEN, esc, occurrence, payload)]

    def legal_hold(self, ticket: Ticket, adapter: HelpdeskAdapter) -> bool:
        return False  # osticket.toml maps no legal-hold mark yet

    @property
    def shows_next_duty(self) -> bool:
        return False  # osticket.toml maps no next-duty field: osTicket gets no such queue yet

    def next_duty(
        self,
        esc: Escalation,
        seq: int,
        due: datetime | None,
        exists: Callable[[EffectRef], bool],
    ) -> list[Intent]:
        return []

    def park(self, esc: Escalation, seq: int, until: datetime) -> list[Intent]:
        payload = UpdateTicketPayload(
            ticket_id=self._ticket(esc), state=self.fieldmap.statuses.parked
        )
        return [self._update(PARK, esc, seq, payload)]

    def unpark(self, esc: Escalation, seq: int) -> list[Intent]:
        payload = UpdateTicketPayload(
            ticket_id=self._ticket(esc), state=self.fieldmap.statuses.open
        )
        return [self._update(UNPARK, esc, seq, payload)]

    def keep_parked(self, esc: Escalation, occurrence: str, until: datetime) -> list[Intent]:
        payload = UpdateTicketPayload(
            ticket_id=self._ticket(esc), state=self.fieldmap.statuses.parked
        )
        return [self._update(KEEP_PARKED, esc, occurrence, payload)]

    def close(self, esc: Escalation, seq: int) -> list[Intent]:
        closed = self.fieldmap.statuses.closed
        intents = [
            self._update(
                CLOSE, esc, seq, UpdateTicketPayload(ticket_id=self._ticket(esc), state=closed)
            )
        ]
        if self.profile.parking.close_original:
            payload = UpdateTicketPayload(ticket_id=esc.original_ticket_id, state=closed)
            intents.append(self._update(CLOSE_ORIGINAL, esc, seq, payload))
        return intents

    def apply_level(self, move: LevelMove, exists: Callable[[EffectRef], bool]) -> list[Intent]:
        esc, seq = move.escalation, move.sequence
        previous = EffectRef(UpdateTicket.name, UpdateTicket.key("level-ticket", esc.key, seq - 1))
        return [
            UpdateTicket.intent(
                UpdateTicket.key("level-ticket", esc.key, seq),
                UpdateTicketPayload(
                    ticket_id=move.ticket.id,
                    title=subject_at_level(move.ticket.title, move.level),
                    owner_id=move.owner_id,
                    fields={self.fieldmap.fields.level: str(move.level)},
                ),
                escalation_id=esc.id,
                after=previous if seq > 1 and exists(previous) else None,
            )
        ]

    @staticmethod
    def _ticket(esc: Escalation) -> int:
        if esc.escalation_ticket_id is None:
            raise ValueError(f"escalation {esc.key} has no escalation ticket")
        return esc.escalation_ticket_id
