"""``OsTicketBinding``'s intents with and without the escalation-api plugin's capabilities."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from connector.base import Ticket
from connector.osticket import CAPABILITIES, PLUGIN_CAPABILITIES
from escalations import notes
from escalations.bindings.base import FlagState, LevelMove, NewEscalationTicket
from escalations.bindings.osticket import OsTicketBinding
from escalations.effects.helpdesk import (
    CreateEscalationPayload,
    LinkPayload,
    NotePayload,
    UpdateTicketPayload,
)
from escalations.mappings import load_mappings
from escalations.models import Escalation, ParkingOutcome, State
from escalations.settings import shipped_mappings_dir

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _binding(*, plugin: bool) -> OsTicketBinding:
    mappings = load_mappings(shipped_mappings_dir(), "osticket")
    caps = CAPABILITIES | PLUGIN_CAPABILITIES if plugin else CAPABILITIES
    binding = OsTicketBinding(mappings.helpdesk, mappings.profile, caps)  # type: ignore[arg-type]
    return binding


def _escalation(**extra: object) -> Escalation:
    values: dict[str, object] = {
        "id": 7, "key": "osticket:ticket:41:1", "original_ticket_id": 41,
        "original_ticket_number": "100041", "customer_id": 5, "segment": "enterprise",
        "level": 1, "reason": "outage", "state": State.FLAGGED, "owner_id": -3,
        "updated_at": NOW,
    }  # fmt: skip
    values.update(extra)
    return Escalation(**values)  # type: ignore[arg-type]


def _ticket(ticket_id: int, title: str) -> Ticket:
    return Ticket(
        id=ticket_id, number=str(100000 + ticket_id), title=title, group="Support",
        state="Escalate", customer_id=5, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def _new(esc: Escalation) -> NewEscalationTicket:
    return NewEscalationTicket(
        escalation=esc, original=_ticket(41, "Line down"), customer_id=5,
        organization_id=None, watcher_ids=(), note_html="<p>x</p>", note_subject="x",
        opened_at=NOW,
    )  # fmt: skip


def test_with_the_plugin_the_create_is_followed_by_the_details_the_link_and_the_owner() -> None:
    intents = _binding(plugin=True).open_escalation(_new(_escalation()))
    create, details, link, owner = intents
    assert (create.kind, details.kind, link.kind, owner.kind) == (
        "create_escalation",
        "note",
        "link",
        "update_ticket",
    )
    assert details.after == link.after == create.ref
    assert owner.after == create.ref
    assert isinstance(link.payload, LinkPayload)
    assert (link.payload.escalation_ticket_of, link.payload.parent_id) == (7, 41)
    assert isinstance(owner.payload, UpdateTicketPayload)
    assert (owner.payload.escalation_ticket_of, owner.payload.owner_id) == (7, -3)


def test_the_first_message_is_customer_safe_and_the_details_go_in_an_internal_note() -> None:
    """Review of issue 17, defect 5: the create's first message, public and the customer's on
    osTicket, carried who flagged, the owner, segment, level and repeat faults, and said the
    copies were internal notes."""
    details = (
        f"<p><b>Escalation raised.</b> {notes.COPIES_AS_NOTES}</p>"
        "<p><b>Flagged by:</b> Alice<br><b>Owner:</b> Jane<br><b>Repeat faults:</b> 3</p>"
    )
    new = replace(_new(_escalation()), note_html=details, note_subject="Escalation of #100041")
    create, note, *_ = _binding(plugin=True).open_escalation(new)
    assert isinstance(create.payload, CreateEscalationPayload)
    public = create.payload.note_html
    assert "#100041" in public
    assert "Line down" in public
    for internal in ("Flagged by", "Owner", "Repeat faults", "internal note", "Alice", "Jane"):
        assert internal not in public
    assert isinstance(note.payload, NotePayload)
    assert note.payload.escalation_ticket_of == 7
    assert note.payload.subject == "Escalation of #100041"
    assert "<b>Flagged by:</b> Alice" in note.payload.html
    assert "copied here as a message from the customer" in note.payload.html
    assert notes.COPIES_AS_NOTES not in note.payload.html
    # without the plugin there is no internal note: the message stays customer-safe
    (alone,) = _binding(plugin=False).open_escalation(new)
    assert isinstance(alone.payload, CreateEscalationPayload)
    assert alone.payload.note_html == public


def test_without_the_plugin_only_the_create_is_requested() -> None:
    (create,) = _binding(plugin=False).open_escalation(_new(_escalation()))
    assert create.kind == "create_escalation"
    # the flag status cannot be consumed: a standing flag is the same flag
    assert _binding(plugin=False).flag_being_cleared(FlagState(by_field=True), frozenset())
    assert not _binding(plugin=True).flag_being_cleared(FlagState(by_field=True), frozenset())


def test_a_level_move_sets_the_level_field_subject_and_owner() -> None:
    esc = _escalation(state=State.OPEN, escalation_ticket_id=90)
    move = LevelMove(
        escalation=esc, ticket=_ticket(90, "[L1] Line down"), level=2, sequence=1,
        owner_id=-4, watcher_ids=(),
    )  # fmt: skip
    (intent,) = _binding(plugin=True).apply_level(move, lambda ref: False)
    assert isinstance(intent.payload, UpdateTicketPayload)
    assert intent.payload.ticket_id == 90
    assert intent.payload.fields == {"escalation_level": "2"}
    assert intent.payload.title == "[L2] Line down"
    assert intent.payload.owner_id == -4


def _with(ticket: Ticket, *, state: str | None = None, **fields: object) -> Ticket:
    return replace(ticket, state=state or ticket.state, fields={**ticket.fields, **fields})


def test_the_outcome_is_the_status_an_agent_sets_on_the_parked_ticket() -> None:
    binding = _binding(plugin=True)
    parked = _ticket(42, "[L1] Line down")
    assert binding.outcome(_with(parked, state="Parked"), None) is None  # type: ignore[arg-type]
    confirmed = _with(parked, state="Confirmed")
    assert binding.outcome(confirmed, None) is ParkingOutcome.CONFIRMED  # type: ignore[arg-type]
    unhappy = _with(parked, state="Not satisfied")
    assert binding.outcome(unhappy, None) is ParkingOutcome.NOT_SATISFIED  # type: ignore[arg-type]
    assert "set the status Confirmed" in binding.outcome_howto


def test_the_route_failed_checkbox_ticked_or_typed() -> None:
    binding = _binding(plugin=True)
    ticket = _ticket(42, "[L1] Line down")
    assert not binding.route_failed(ticket, matched=False)
    assert not binding.route_failed(_with(ticket, carrier_route_failed="0"), matched=False)
    assert binding.route_failed(_with(ticket, carrier_route_failed="1"), matched=False)
    assert binding.route_failed(_with(ticket, carrier_route_failed="Yes"), matched=False)
