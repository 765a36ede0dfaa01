"""The RFO gate (issue 11 #5): from level 2 an escalation ticket closed without a Reason for
Outage goes back to open, with one note to the owner however many times and passes."""

from __future__ import annotations

from tests.jobs.conftest import ALICE, DUTY_MANAGER, World

TITLE = "Broadband down since Monday"


def _at_level_2(world: World) -> dict:
    world.flag(world.ticket_by_title(TITLE))
    world.sync()
    esc = world.the_escalation_ticket()
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    return esc


def _writes(world: World) -> list[str]:
    return [
        c for c in world.http_calls() if not c.startswith(("GET", "POST /api/v1/tickets/search"))
    ]


def _rfo_notes(world: World, ticket_id: int) -> list[dict]:
    return [a for a in world.sandbox.articles_of(ticket_id) if a["subject"] == "RFO needed"]


def test_a_level_2_close_without_rfo_is_reopened_with_one_note(world: World) -> None:
    esc = _at_level_2(world)
    world.sandbox.agent_update(esc["id"], DUTY_MANAGER, state="closed")
    world.sync()
    assert world.sandbox.ticket(esc["id"])["state"] == "open"
    (note,) = _rfo_notes(world, esc["id"])
    assert "level 2" in note["body"]
    assert "Reason for Outage" in note["body"]
    assert note["internal"] is True
    # closed again without an RFO: reopened again, still one note; idle passes write nothing
    world.sandbox.agent_update(esc["id"], DUTY_MANAGER, state="closed")
    world.sync()
    world.sync()
    assert world.sandbox.ticket(esc["id"])["state"] == "open"
    assert len(_rfo_notes(world, esc["id"])) == 1
    writes = len(_writes(world))
    world.sync()
    assert len(_writes(world)) == writes


def test_a_close_with_the_rfo_filled_in_is_let_through(world: World) -> None:
    esc = _at_level_2(world)
    world.sandbox.agent_update(
        esc["id"], DUTY_MANAGER, escalation_rfo="Fibre cut at the exchange.", state="closed"
    )
    world.sync()
    world.sync()
    assert world.sandbox.ticket(esc["id"])["state"] == "parked"  # let through: resolved
    assert _rfo_notes(world, esc["id"]) == []


def test_at_level_1_no_rfo_is_needed(world: World) -> None:
    world.flag(world.ticket_by_title(TITLE))
    world.sync()
    esc = world.the_escalation_ticket()
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    world.sync()
    assert world.sandbox.ticket(esc["id"])["state"] == "parked"  # resolved, not held
    assert _rfo_notes(world, esc["id"]) == []
