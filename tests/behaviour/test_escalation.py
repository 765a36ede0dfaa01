"""Flag → one escalation ticket linked to its original, every customer email copied into it
exactly once with its attachments, the levels and their owners, the carrier log and the
hand-over: the same scenarios and invariants on Zammad and on the real osTicket (``hd``)."""

from __future__ import annotations

import pytest

from escalations.mappings import load_mappings
from escalations.settings import shipped_mappings_dir
from tests.behaviour.driver import Helpdesk, assert_invariants, escalate, record

pytestmark = pytest.mark.timeout(180)

SUBJECT = "Line down at the depot"
FIRST = "Down since 9."
DUTY_MANAGER = "duty.manager@fused.example"
SUPERVISOR = "cs.supervisor@fused.example"
"""The agents of ``[people]`` (``zammad.toml`` and ``osticket.toml`` name the same)."""


def test_both_helpdesks_run_the_one_shipped_process_toml(hd: Helpdesk) -> None:
    shipped = load_mappings(shipped_mappings_dir(), "zammad").profile
    assert hd.installation.ctx.profile == shipped


def test_a_flag_raises_exactly_one_escalation_ticket_linked_to_its_original(
    hd: Helpdesk,
) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    hd.run()
    hd.flag(escalated.original)  # flagged again while open: noted, not raised again
    hd.run()
    ticket = escalated.ticket_id
    assert hd.title(ticket).endswith(f"L1] {SUBJECT}")
    assert hd.level_field(ticket) == "1"
    esc = record(hd, escalated)
    assert esc.level == 1
    assert esc.original_ticket_id == escalated.original.id
    assert len(hd.worker_notes(escalated.original.id, "Escalated")) == 1
    assert len(hd.worker_notes(ticket, "Flagged again")) == 1  # told on the escalation ticket
    assert_invariants(hd, escalated, FIRST)


def test_the_escalation_details_are_in_an_internal_note_and_nothing_public_shows_them(
    hd: Helpdesk,
) -> None:
    """Review of issue 17, defect 5: on osTicket the escalation ticket's first message is a
    public message of the customer's (who can read it in the client portal), and it carried
    who flagged, the owner, the segment, the level and the customer's repeat faults."""
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id
    (details,) = hd.worker_notes(ticket, f"Escalation of #{escalated.original.number}")
    assert "<b>Flagged by:</b>" in details
    assert "<b>Owner:</b>" in details
    assert "<b>Customer segment:</b>" in details
    public = "\n".join(hd.public_texts(ticket))
    for internal in ("Flagged by", "Owner", "segment", "Level", "Repeat faults", "Reason"):
        assert internal not in public
    assert "as an internal note" not in public
    if hd.name == "osticket":  # the copies are the customer's messages there, not notes
        assert "copied here as a message from the customer" in details
        assert "as an internal note" not in details
    assert_invariants(hd, escalated, FIRST)


def test_every_customer_email_is_copied_exactly_once_with_its_attachments(
    hd: Helpdesk,
) -> None:
    photo = ("router.txt", b"router lights all red\n")
    log = ("line-test.log", bytes(range(256)) * 4)
    escalated = escalate(hd, SUBJECT, FIRST, attachments=(photo,))
    original = escalated.original
    hd.customer_writes(original, "Update 1: the engineer did not turn up.", attachments=(log,))
    hd.run()
    hd.customer_writes(original, "Update 2: still down, no attachment.")
    hd.run()
    hd.run()

    ticket = escalated.ticket_id
    (first,) = hd.copies(ticket, FIRST)
    assert first.attachments == {photo[0]: photo[1]}
    (update,) = hd.copies(ticket, "Update 1: the engineer")
    assert update.attachments == {log[0]: log[1]}
    (plain,) = hd.copies(ticket, "Update 2: still down")
    assert plain.attachments == {}
    assert_invariants(hd, escalated, FIRST, "Update 1", "Update 2")


def test_each_level_has_its_owner_subject_and_note(hd: Helpdesk) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id

    hd.set_level(ticket, 2)
    hd.run()
    assert hd.level_field(ticket) == "2"
    assert hd.title(ticket).endswith(f"L2] {SUBJECT}")
    assert hd.owner(ticket) == DUTY_MANAGER  # [people] duty_manager owns level 2
    (note,) = hd.worker_notes(ticket, "Level 2")
    assert "Escalation Owner" in note
    assert "<b>Owner:</b> Jane Doe (SMC Manager or Duty Manager)" in note

    hd.set_level(ticket, 3)
    hd.run()
    assert hd.level_field(ticket) == "3"
    assert hd.title(ticket).endswith(f"L3] {SUBJECT}")
    assert hd.owner(ticket) == DUTY_MANAGER  # level 3 keeps the level-2 owner
    (note,) = hd.worker_notes(ticket, "Level 3")
    assert "Lloyd Foley" in note  # the level's executive
    esc = record(hd, escalated)
    assert esc.level == 3
    changes = hd.store.level_changes(esc.id)
    assert [(c.from_level, c.to_level) for c in changes] == [(1, 2), (2, 3)]
    assert_invariants(hd, escalated, FIRST)


def test_the_carrier_log_is_read_and_a_failed_route_hands_over_to_the_supervisor(
    hd: Helpdesk,
) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id
    heading = "Carrier contact"
    complete = (
        heading,
        "Carrier: BT",
        "Stage: agent",
        "Forename: Dave",
        "Location: Glasgow",
        "User ID: BT-4411",
        "Time of call: 09:40",
    )
    hd.carrier_note(ticket, complete)
    hd.carrier_note(ticket, (heading, "Carrier: BT", "Stage: team leader"))
    hd.run()
    (incomplete,) = hd.worker_notes(ticket, "Carrier contact incomplete")
    assert "Forename" in incomplete
    assert "Location" in incomplete
    assert len(hd.store.carrier_contacts(record(hd, escalated).id)) == 2

    hd.tick_route_failed(ticket)
    hd.run()
    hd.run()
    (handover,) = hd.worker_notes(ticket, "Carrier route failed")
    for detail in ("Dave", "Glasgow", "BT-4411", " Supervisor"):  # the supervisor named
        assert detail in handover
    assert hd.owner(ticket) == SUPERVISOR
    assert len(hd.worker_notes(ticket, "Carrier contact incomplete")) == 1
    assert_invariants(hd, escalated, FIRST)
