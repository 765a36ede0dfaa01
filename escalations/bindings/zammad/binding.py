"""The Zammad binding: what ``mappings/zammad.toml`` names, read from and written to Zammad.

- The flag is a custom attribute (any truthy value) and/or a tag, found by one tag search per
  pass (``flag_criterion``), so an idle poll stays one request.
- The escalation ticket is created in one atomic ``POST /tickets`` carrying the first note,
  the link to the original, the level tag and the executives' mentions; its title starts
  with ``[ESC L<level>]``. Without ``ATOMIC_CREATE`` the link, tags and subscriptions follow
  as separate writes ordered ``after`` the create.
- Once the escalation ticket exists, the note on the original and the flag attribute's
  clearing are one ``PUT /tickets/{id}`` carrying the note as its ``article`` (Zammad creates
  it inside the update's row lock), then the escalated tag is added: two writes.
- Without ``TAGS`` marks become the optional fields ``fields.escalated`` and
  ``fields.route_failed``; without ``SUBSCRIBE`` nobody is subscribed and notes name people
  in plain text.
- Zammad subscribes the user an internal note's ``<a data-mention-user-id>`` anchor names;
  that is how a level's executives are subscribed after the create.
- Who flagged, set a level or marked the carrier route failed is read from the ticket's
  history (a tag write leaves ``updated_by_id`` alone): the latest event that set the flag
  attribute to a truthy value or added the flag tag, set the level attribute to the level,
  or added the route-failed tag (set ``fields.route_failed``, without ``TAGS``).
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
    EventKind,
    FieldValue,
    HelpdeskAdapter,
    Ticket,
    TicketEvent,
    User,
)
from escalations.bindings.base import (
    FlagDetails,
    FlagState,
    LevelMove,
    Limits,
    NewEscalationTicket,
)
from escalations.bindings.zammad.fieldmap import ZammadFieldMap
from escalations.clock import parse_instant
from escalations.effects.base import Intent
from escalations.effects.helpdesk import (
    CreateEscalation,
    CreateEscalationPayload,
    LinkPayload,
    LinkTickets,
    NotePayload,
    SetTags,
    Subscribe,
    SubscribePayload,
    TagsPayload,
    UpdateTicket,
    UpdateTicketPayload,
    UpdateWithNote,
    UpdateWithNotePayload,
)
from escalations.models import EffectRef, Escalation, ParkingOutcome
from escalations.profile import ProcessProfile

TITLE_MAX = 250
TITLE_PREFIX_RE = re.compile(r"^\[ESC L\d+\]\s*")
OWNER_ACCESS = frozenset({"full"})
WATCH_ACCESS = frozenset({"read", "full"})

# Key purposes of the writes that clear a flag (``flag_being_cleared``).
CONSUME_FIELD = "consume-flag"
REOPEN = "rfo-reopen"
PARK = "park"
PARK_TAGS = "park-tags"
UNPARK = "unpark"
UNPARK_TAGS = "unpark-tags"
KEEP_PARKED = "keep-parked"
CLOSE = "close"
CLOSE_TAGS = "close-tags"
CLOSE_ORIGINAL = "close-original"
CONSUME_TAG = "consume-flag-tag"
ORIGINAL_TAGS = "original-tags"
NEXT_DUTY = "next-duty"


def title_at_level(title: str, level: int) -> str:
    """``[ESC L<level>] <title>``, an older prefix replaced."""
    return f"[ESC L{level}] {TITLE_PREFIX_RE.sub('', title)}"[:TITLE_MAX]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "on"}
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


MIN_AGREED_CADENCE_MINUTES = 15
"""A shorter cadence would make every pass a reminder and a miss: it is not taken."""
MAX_AGREED_CADENCE_MINUTES = 100_000


def _minutes(value: FieldValue) -> int | None:
    """A positive whole number of minutes from an integer attribute; ``None`` when unset or
    not one (a cadence of 0 or less would make every minute a duty)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and MIN_AGREED_CADENCE_MINUTES <= value <= MAX_AGREED_CADENCE_MINUTES:
        return value
    return None


def _latest(
    events: Sequence[TicketEvent], wanted: Callable[[TicketEvent], bool]
) -> TicketEvent | None:
    return next((e for e in reversed(events) if wanted(e)), None)


def _zammad_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class ZammadBinding:
    """``HelpdeskBinding`` for Zammad, from its field map, the process profile and the
    adapter's capabilities."""

    name = "zammad"

    def __init__(
        self,
        fieldmap: ZammadFieldMap,
        profile: ProcessProfile,
        capabilities: frozenset[Capability],
    ) -> None:
        self.fieldmap = fieldmap
        self.profile = profile
        self.capabilities = capabilities
        self.escalation_group = fieldmap.groups.escalation
        self.carrier_heading = fieldmap.carrier.note_heading
        self.limits = Limits(
            attachment_max_bytes=fieldmap.limits.attachment_max_bytes,
            body_max_chars=fieldmap.limits.article_body_max_chars,
        )
        self.placeholder_customer_ref = fieldmap.customer.placeholder or None
        self._tags = Capability.TAGS in capabilities
        self._atomic = Capability.ATOMIC_CREATE in capabilities
        self._subscribe = Capability.SUBSCRIBE in capabilities
        flag_tag = fieldmap.flag.tag if self._tags else None
        self.flag_criterion = Criterion(tag=flag_tag) if flag_tag else None
        route_tag = fieldmap.tags.carrier_route_failed if self._tags else None
        self.route_failed_criterion = Criterion(tag=route_tag) if route_tag else None

    # -- people ----------------------------------------------------------------------------
    def person_ref(self, role: str) -> str | None:
        return self.fieldmap.people.get(role)

    def _access(self, user: User) -> frozenset[str]:
        return user.group_access.get(self.escalation_group, frozenset())

    def can_own(self, user: User) -> bool:
        return user.active and user.is_agent and bool(self._access(user) & OWNER_ACCESS)

    def can_watch(self, user: User) -> bool:
        return user.active and user.is_agent and bool(self._access(user) & WATCH_ACCESS)

    def person_html(self, user_id: int, name: str) -> str:
        if not self._subscribe:
            return html.escape(name)
        return f'<a data-mention-user-id="{int(user_id)}">{html.escape(name)}</a>'

    # -- reading a ticket ------------------------------------------------------------------
    def escalation_key_of(self, ticket: Ticket) -> str | None:
        key = ticket.fields.get(self.fieldmap.fields.escalation_key)
        return str(key) if key else None

    def flag_state(self, ticket: Ticket, *, matched: bool) -> FlagState:
        field = self.fieldmap.flag.field
        return FlagState(
            by_field=bool(field and _truthy(ticket.fields.get(field))),
            by_mark=matched and self.flag_criterion is not None,
        )

    def flag_details(self, ticket: Ticket) -> FlagDetails:
        fields = self.fieldmap.fields
        return FlagDetails(
            reason=str(ticket.fields.get(fields.reason) or ""),
            segment=str(ticket.fields.get(fields.segment) or ""),
            callback_at=_instant(ticket.fields.get(fields.callback_at)),
            agreed_cadence_minutes=(
                _minutes(ticket.fields.get(fields.agreed_cadence))
                if fields.agreed_cadence
                else None
            ),
        )

    def requested_level(self, ticket: Ticket) -> int | None:
        return _as_level(ticket.fields.get(self.fieldmap.fields.level))

    def route_failed(self, ticket: Ticket, *, matched: bool) -> bool:
        if self.route_failed_criterion is not None:
            return matched
        field = self.fieldmap.fields.route_failed
        return bool(field and _truthy(ticket.fields.get(field)))

    def closing(self, ticket: Ticket) -> bool:
        return ticket.state == self.fieldmap.states.closed

    def rfo_of(self, ticket: Ticket) -> str | None:
        value = ticket.fields.get(self.fieldmap.fields.rfo)
        text = str(value).strip() if value is not None else ""
        return text or None

    def reopened(self, ticket: Ticket) -> bool:
        return ticket.state == self.fieldmap.states.open

    @property
    def outcome_howto(self) -> str:
        marks = self.fieldmap.tags
        return (
            f"add the tag {marks.confirmed} when the customer confirms, or "
            f"{marks.not_satisfied} when they are not satisfied"
        )

    def outcome(self, ticket: Ticket, adapter: HelpdeskAdapter) -> ParkingOutcome | None:
        if not self._tags:
            return None
        tags = adapter.get_tags(ticket.id)
        marks = self.fieldmap.tags
        if marks.not_satisfied in tags:  # the stronger word wins when both are there
            return ParkingOutcome.NOT_SATISFIED
        if marks.confirmed in tags:
            return ParkingOutcome.CONFIRMED
        return None

    # -- reading a ticket's history (who did it) -------------------------------------------
    def _set(self, event: TicketEvent, field: str | None) -> bool:
        """A truthy value written to ``field``."""
        return (
            field is not None
            and event.kind is EventKind.FIELD_CHANGED
            and event.field == field
            and _truthy(event.value_to)
        )

    def _tagged(self, event: TicketEvent, tag: str | None) -> bool:
        return tag is not None and event.kind is EventKind.TAG_ADDED and event.value_to == tag

    def flag_event(self, events: Sequence[TicketEvent]) -> TicketEvent | None:
        flag = self.fieldmap.flag
        tag = flag.tag if self._tags else None
        raised = _latest(events, lambda e: self._set(e, flag.field) or self._tagged(e, tag))
        # A field set on create has no row of its own (HasHistory writes only "created").
        return raised or _latest(events, lambda e: e.kind is EventKind.CREATED)

    def level_event(self, events: Sequence[TicketEvent], level: int) -> TicketEvent | None:
        name = self.fieldmap.fields.level
        return _latest(
            events,
            lambda e: (
                e.kind is EventKind.FIELD_CHANGED
                and e.field == name
                and _as_level(e.value_to) == level
            ),
        )

    def route_failed_event(self, events: Sequence[TicketEvent]) -> TicketEvent | None:
        if self.route_failed_criterion is not None:
            tag = self.route_failed_criterion.tag
            return _latest(events, lambda e: self._tagged(e, tag))
        field = self.fieldmap.fields.route_failed
        return _latest(events, lambda e: self._set(e, field))

    # -- decisions into intents ------------------------------------------------------------
    def _level_tag(self, level: int) -> str:
        return self.fieldmap.level_tag(level)

    def _level_tags(self, ticket_id: int, level: int) -> TagsPayload:
        every = {self._level_tag(n) for n in range(1, self.profile.max_level + 1)}
        here = self._level_tag(level)
        return TagsPayload(
            ticket_id=ticket_id, present=(here,), absent=tuple(sorted(every - {here}))
        )

    def open_escalation(self, new: NewEscalationTicket) -> list[Intent]:
        esc, original = new.escalation, new.original
        fields = self.fieldmap.fields
        values: dict[str, FieldValue] = {
            fields.escalation_key: esc.key,
            fields.level: str(esc.level),
            fields.original_ticket: original.number,
            fields.segment: esc.segment,
        }
        if esc.reason in self.profile.reason_keys:
            values[fields.reason] = esc.reason
        if esc.callback_at is not None:
            values[fields.callback_at] = _zammad_time(esc.callback_at)
        if fields.agreed_cadence and esc.agreed_cadence_minutes is not None:
            values[fields.agreed_cadence] = esc.agreed_cadence_minutes
        if fields.next_duty_at and new.next_duty_at is not None:
            values[fields.next_duty_at] = _zammad_time(new.next_duty_at)
        atomic = self._atomic
        payload = CreateEscalationPayload(
            title=title_at_level(original.title, esc.level),
            group=self.escalation_group,
            customer_id=new.customer_id,
            organization_id=new.organization_id,
            state=self.fieldmap.states.open,
            owner_id=esc.owner_id,
            tags=tuple(sorted(self.fieldmap.escalation_tags(esc.level)))
            if atomic and self._tags
            else (),
            fields=values,
            parent_id=original.id,
            link_at_create=atomic,
            found_by=None if atomic else (fields.escalation_key, esc.key),
            mention_user_ids=new.watcher_ids if atomic and self._subscribe else (),
            note_html=new.note_html,
            note_subject=new.note_subject,
            opened_at=new.opened_at,
            original_number=original.number,
        )
        create = CreateEscalation.intent(
            CreateEscalation.key("escalation", esc.key), payload, escalation_id=esc.id
        )
        unflag = self._flag_tag_removal(new, create.ref)
        if atomic:
            return [create, *unflag]
        chained = [
            LinkTickets.intent(
                LinkTickets.key("escalation-link", esc.key),
                LinkPayload(escalation_ticket_of=esc.id, parent_id=original.id),
                escalation_id=esc.id,
                after=create.ref,
            )
        ]
        if self._tags:
            chained.append(
                SetTags.intent(
                    SetTags.key("escalation-tags", esc.key),
                    TagsPayload(
                        escalation_ticket_of=esc.id,
                        present=tuple(sorted(self.fieldmap.escalation_tags(esc.level))),
                    ),
                    escalation_id=esc.id,
                    after=create.ref,
                )
            )
        chained += self._subscriptions(esc, new.watcher_ids, "escalation-watch", (), create.ref)
        return [create, *chained, *unflag]

    def _flag_tag_removal(self, new: NewEscalationTicket, after: EffectRef) -> list[Intent]:
        """The flag tag's removal from the original, once the escalation ticket exists, and
        only when the flag was that tag: ``mark_original`` then only adds tags, which needs
        no read of the original's tags first (a removal does)."""
        tag = self.fieldmap.flag.tag
        if not (self._tags and tag and new.flag.by_mark):
            return []
        esc = new.escalation
        return [
            SetTags.intent(
                SetTags.key(CONSUME_TAG, esc.key, "0"),
                TagsPayload(ticket_id=new.original.id, absent=(tag,)),
                escalation_id=esc.id,
                after=after,
            )
        ]

    def _subscriptions(
        self,
        esc: Escalation,
        user_ids: tuple[int, ...],
        purpose: str,
        parts: tuple[object, ...],
        after: EffectRef | None,
    ) -> list[Intent]:
        """Subscriptions as writes of their own: only where the create cannot carry them (a
        Zammad create does, and a later note's anchors subscribe the rest)."""
        if not self._subscribe or self._atomic:
            return []
        return [
            Subscribe.intent(
                Subscribe.key(purpose, esc.key, *parts, user_id),
                SubscribePayload(escalation_ticket_of=esc.id, user_id=user_id),
                escalation_id=esc.id,
                after=after,
            )
            for user_id in user_ids
        ]

    def mark_original(self, esc: Escalation, note: Intent) -> list[Intent]:
        """The note, the flag attribute cleared (and, without tags, the escalated attribute
        set) in ONE ticket update carrying the note as its article (``update_with_note``,
        under the key of the flag's update, ``consume-flag:<key>:0``); then the escalated
        tag. The note is a write of its own only when there is no attribute to update, or
        the adapter cannot carry a note on an update."""
        flag = self.fieldmap.flag
        intents: list[Intent] = []
        values: dict[str, FieldValue] = {}
        if flag.field:
            values[flag.field] = False
        if not self._tags and self.fieldmap.fields.escalated:
            values[self.fieldmap.fields.escalated] = True
        key = UpdateTicket.key(CONSUME_FIELD, esc.key, "0")
        carried = note.payload if isinstance(note.payload, NotePayload) else None
        if values and carried is not None and Capability.NOTE_ON_UPDATE in self.capabilities:
            intents.append(
                UpdateWithNote.intent(
                    key,
                    UpdateWithNotePayload(
                        ticket_id=esc.original_ticket_id,
                        fields=values,
                        note_html=carried.html,
                        note_subject=carried.subject,
                    ),
                    escalation_id=esc.id,
                )
            )
        else:
            intents.append(note)
            if values:
                intents.append(
                    UpdateTicket.intent(
                        key,
                        UpdateTicketPayload(ticket_id=esc.original_ticket_id, fields=values),
                        escalation_id=esc.id,
                    )
                )
        if self._tags:  # the flag tag, if the flag was one, goes with the create
            intents.append(
                SetTags.intent(
                    SetTags.key(ORIGINAL_TAGS, esc.key),
                    TagsPayload(
                        ticket_id=esc.original_ticket_id, present=(self.fieldmap.tags.escalated,)
                    ),
                    escalation_id=esc.id,
                )
            )
        return intents

    def consume_flag(self, esc: Escalation, occurrence: str, flag: FlagState) -> list[Intent]:
        mapped = self.fieldmap.flag
        intents: list[Intent] = []
        if mapped.field:
            intents.append(
                UpdateTicket.intent(
                    UpdateTicket.key(CONSUME_FIELD, esc.key, occurrence),
                    UpdateTicketPayload(
                        ticket_id=esc.original_ticket_id, fields={mapped.field: False}
                    ),
                    escalation_id=esc.id,
                )
            )
        if mapped.tag and self._tags:
            intents.append(
                SetTags.intent(
                    SetTags.key(CONSUME_TAG, esc.key, occurrence),
                    TagsPayload(ticket_id=esc.original_ticket_id, absent=(mapped.tag,)),
                    escalation_id=esc.id,
                )
            )
        return intents

    def reopen(self, esc: Escalation, ticket_id: int, occurrence: str) -> list[Intent]:
        return [
            UpdateTicket.intent(
                UpdateTicket.key(REOPEN, esc.key, occurrence),
                UpdateTicketPayload(ticket_id=ticket_id, state=self.fieldmap.states.open),
                escalation_id=esc.id,
            )
        ]

    def legal_hold(self, ticket: Ticket, adapter: HelpdeskAdapter) -> bool:
        return self._tags and self.profile.archive.legal_hold_tag in adapter.get_tags(ticket.id)

    def park(self, esc: Escalation, seq: int, until: datetime) -> list[Intent]:
        ticket_id = self._escalation_ticket(esc)
        intents = [
            UpdateTicket.intent(
                UpdateTicket.key(PARK, esc.key, seq),
                UpdateTicketPayload(
                    ticket_id=ticket_id, state=self.fieldmap.states.parked, pending_until=until
                ),
                escalation_id=esc.id,
            )
        ]
        if self._tags:
            intents.append(
                SetTags.intent(
                    SetTags.key(PARK_TAGS, esc.key, seq),
                    TagsPayload(ticket_id=ticket_id, present=(self.fieldmap.tags.parked,)),
                    escalation_id=esc.id,
                )
            )
        return intents

    def unpark(self, esc: Escalation, seq: int) -> list[Intent]:
        ticket_id = self._escalation_ticket(esc)
        marks = self.fieldmap.tags
        intents = [
            UpdateTicket.intent(
                UpdateTicket.key(UNPARK, esc.key, seq),
                UpdateTicketPayload(ticket_id=ticket_id, state=self.fieldmap.states.open),
                escalation_id=esc.id,
            )
        ]
        if self._tags:
            intents.append(
                SetTags.intent(
                    SetTags.key(UNPARK_TAGS, esc.key, seq),
                    TagsPayload(
                        ticket_id=ticket_id,
                        absent=(marks.parked, marks.not_satisfied, marks.confirmed),
                    ),
                    escalation_id=esc.id,
                )
            )
        return intents

    @property
    def shows_next_duty(self) -> bool:
        return self.fieldmap.fields.next_duty_at is not None

    def next_duty(
        self,
        esc: Escalation,
        seq: int,
        due: datetime | None,
        exists: Callable[[EffectRef], bool],
    ) -> list[Intent]:
        field = self.fieldmap.fields.next_duty_at
        if field is None:
            return []
        previous = EffectRef(UpdateTicket.name, UpdateTicket.key(NEXT_DUTY, esc.key, seq - 1))
        return [
            UpdateTicket.intent(
                UpdateTicket.key(NEXT_DUTY, esc.key, seq),
                UpdateTicketPayload(
                    ticket_id=self._escalation_ticket(esc),
                    fields={field: None if due is None else _zammad_time(due)},
                ),
                escalation_id=esc.id,
                after=previous if seq > 1 and exists(previous) else None,
            )
        ]

    def keep_parked(self, esc: Escalation, occurrence: str, until: datetime) -> list[Intent]:
        return [
            UpdateTicket.intent(
                UpdateTicket.key(KEEP_PARKED, esc.key, occurrence),
                UpdateTicketPayload(
                    ticket_id=self._escalation_ticket(esc),
                    state=self.fieldmap.states.parked,
                    pending_until=until,
                ),
                escalation_id=esc.id,
            )
        ]

    def close(self, esc: Escalation, seq: int) -> list[Intent]:
        ticket_id = self._escalation_ticket(esc)
        closed = self.fieldmap.states.closed
        next_duty = self.fieldmap.fields.next_duty_at  # no duty ahead of a closed escalation
        intents = [
            UpdateTicket.intent(
                UpdateTicket.key(CLOSE, esc.key, seq),
                UpdateTicketPayload(
                    ticket_id=ticket_id,
                    state=closed,
                    fields={next_duty: None} if next_duty else {},
                ),
                escalation_id=esc.id,
            )
        ]
        if self._tags:
            intents.append(
                SetTags.intent(
                    SetTags.key(CLOSE_TAGS, esc.key, seq),
                    TagsPayload(ticket_id=ticket_id, absent=(self.fieldmap.tags.parked,)),
                    escalation_id=esc.id,
                )
            )
        if self.profile.parking.close_original:
            intents.append(
                UpdateTicket.intent(
                    UpdateTicket.key(CLOSE_ORIGINAL, esc.key, seq),
                    UpdateTicketPayload(ticket_id=esc.original_ticket_id, state=closed),
                    escalation_id=esc.id,
                )
            )
        return intents

    @staticmethod
    def _escalation_ticket(esc: Escalation) -> int:
        if esc.escalation_ticket_id is None:
            raise ValueError(f"escalation {esc.key} has no escalation ticket")
        return esc.escalation_ticket_id

    def flag_being_cleared(self, flag: FlagState, pending_purposes: frozenset[str]) -> bool:
        # The field and the tag each count only the writes that clear them: a field set again
        # after its write is done is a new flag even while the tag write is still retried,
        # and a tag still showing while its removal is retried is not.
        if flag.by_field and CONSUME_FIELD not in pending_purposes:
            return False
        return not flag.by_mark or bool({ORIGINAL_TAGS, CONSUME_TAG} & pending_purposes)

    def apply_level(self, move: LevelMove, exists: Callable[[EffectRef], bool]) -> list[Intent]:
        esc, seq = move.escalation, move.sequence

        def previous(kind: type[SetTags] | type[UpdateTicket], purpose: str) -> EffectRef | None:
            ref = EffectRef(kind.name, kind.key(purpose, esc.key, seq - 1))
            return ref if seq > 1 and exists(ref) else None

        intents: list[Intent] = []
        if self._tags:
            intents.append(
                SetTags.intent(
                    SetTags.key("level-tags", esc.key, seq),
                    self._level_tags(move.ticket.id, move.level),
                    escalation_id=esc.id,
                    after=previous(SetTags, "level-tags"),
                )
            )
        intents.append(
            UpdateTicket.intent(
                UpdateTicket.key("level-ticket", esc.key, seq),
                UpdateTicketPayload(
                    ticket_id=move.ticket.id,
                    title=title_at_level(move.ticket.title, move.level),
                    owner_id=move.owner_id,
                ),
                escalation_id=esc.id,
                after=previous(UpdateTicket, "level-ticket"),
            )
        )
        intents += self._subscriptions(esc, move.watcher_ids, "level-watch", (seq,), None)
        return intents
