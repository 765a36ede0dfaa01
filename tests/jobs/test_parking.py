"""Resolve, park, confirm, close (issue 12 #1–3), end to end against the sandbox through the
real adapter: an agent closes the escalation ticket, the worker parks it; a customer email, a
new ticket or an agent un-parks it; the outcome an agent records (a tag) closes or reopens it.
Every pass runs twice (the ``world`` fixture) and the second must write nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from escalations.models import ParkingOutcome, State
from tests.jobs.conftest import ALICE, RESIDENTIAL, World

TITLE = "Broadband down since Monday"


def _open_escalation(world: World) -> dict[str, Any]:
    world.flag(world.ticket_by_title(TITLE))
    world.sync()
    return world.the_escalation_ticket()


def _resolved(world: World) -> dict[str, Any]:
    esc = _open_escalation(world)
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    world.sync()
    return esc


def _escalation(world: World) -> Any:
    (esc,) = world.store.escalations_in()
    return esc


def _notes(world: World, ticket_id: int, subject: str) -> list[dict[str, Any]]:
    return [a for a in world.sandbox.articles_of(ticket_id) if a["subject"] == subject]


def test_a_resolved_escalation_is_parked_for_three_days(world: World) -> None:
    esc = _open_escalation(world)
    closed_at = world.clock.now()
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    world.sync()
    ticket = world.sandbox.ticket(esc["id"])
    assert ticket["state"] == "parked"
    parked = _escalation(world)
    assert parked.state is State.PARKED
    (period,) = world.store.parking_periods(parked.id)
    assert period.resolved_at == closed_at
    assert period.pending_until == closed_at + timedelta(days=3)  # calendar days, shipped
    assert ticket["pending_time"].startswith((closed_at + timedelta(days=3)).strftime("%Y-%m-%dT"))
    assert "escalation-parked" in world.sandbox.tags_of(esc["id"])
    (note,) = _notes(world, esc["id"], "Parked")
    assert "escalation-confirmed" in note["body"]  # how to record the outcome
    assert "final confirmation call" in note["body"]


def test_the_confirmation_call_is_reminded_once_and_confirmed_closes_it(world: World) -> None:
    esc = _resolved(world)
    period = world.store.parking_periods(_escalation(world).id)[0]
    # day 3 of parking: the call is due by the end of parking, reminded 30 minutes before
    world.clock.set(period.pending_until - timedelta(minutes=20))
    world.sync(advance=timedelta(0))
    world.sync(advance=timedelta(minutes=5))
    reminders = _notes(world, esc["id"], "Reminder: final confirmation call")
    assert len(reminders) == 1
    world.sandbox.agent_article(
        esc["id"], ALICE, "Called Sean: the line is fine.", type="phone", internal=False
    )
    world.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)
    world.sync()
    closed = _escalation(world)
    assert closed.state is State.ARCHIVED  # closed, and its hard copy filed in the same tick
    assert closed.closed_at is not None
    assert closed.confirmed_at is not None
    assert world.sandbox.ticket(esc["id"])["state"] == "closed"
    assert world.sandbox.ticket(esc["id"])["escalation_next_duty_at"] is None  # none ahead
    assert "escalation-parked" not in world.sandbox.tags_of(esc["id"])
    assert world.store.parking_periods(closed.id)[0].outcome is ParkingOutcome.CONFIRMED
    assert len(_notes(world, esc["id"], "Closed")) == 1
    assert world.sandbox.ticket(world.ticket_by_title(TITLE))["state"] != "closed"  # original


def test_a_new_email_while_parked_unparks_and_is_copied_once(world: World) -> None:
    esc = _resolved(world)
    original = world.ticket_by_title(TITLE)
    world.clock.advance(timedelta(hours=5))
    world.sandbox.seed_customer_email(original, "It is down again!", subject="Down again")
    world.sync()
    world.sync()
    reopened = _escalation(world)
    assert reopened.state is State.OPEN
    assert reopened.level == 1
    assert world.sandbox.ticket(esc["id"])["state"] == "open"
    assert "escalation-parked" not in world.sandbox.tags_of(esc["id"])
    assert len([c for c in world.copies_in(esc["id"]) if "down again" in c["body"]]) == 1
    (note,) = _notes(world, esc["id"], "Un-parked")
    assert "the customer wrote again" in note["body"]
    assert "Down again" in note["body"]
    period = world.store.parking_periods(reopened.id)[0]
    assert period.outcome is ParkingOutcome.CUSTOMER_WROTE
    # resolved again: a second parking, with its own note
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    world.sync()
    assert _escalation(world).state is State.PARKED
    assert [p.seq for p in world.store.parking_periods(reopened.id)] == [1, 2]
    assert len(_notes(world, esc["id"], "Parked")) == 2


def test_a_new_ticket_from_the_customer_while_parked_unparks(world: World) -> None:
    esc = _resolved(world)
    world.clock.advance(timedelta(hours=1))
    world.sandbox.create_ticket_as_customer(RESIDENTIAL, "Still no service", "Nothing works.")
    world.sync()
    world.sync()
    assert _escalation(world).state is State.OPEN
    (note,) = _notes(world, esc["id"], "Un-parked")
    assert "a new ticket #" in note["body"]


def test_not_satisfied_reopens_at_the_same_level(world: World) -> None:
    esc = _open_escalation(world)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    world.sandbox.agent_update(esc["id"], ALICE, state="closed", escalation_rfo="Fibre cut.")
    world.sync()
    assert _escalation(world).state is State.PARKED
    world.sandbox.add_tag(esc["id"], "escalation-not-satisfied", login=ALICE)
    world.sync()
    back = _escalation(world)
    assert (back.state, back.level) == (State.OPEN, 2)
    assert world.sandbox.ticket(esc["id"])["state"] == "open"
    assert "escalation-not-satisfied" not in world.sandbox.tags_of(esc["id"])
    (note,) = _notes(world, esc["id"], "Un-parked")
    assert "not satisfied" in note["body"]
    assert "data-mention-user-id" in note["body"]  # the owner is alerted


def test_closing_a_parked_ticket_without_an_outcome_puts_it_back_once_noted(
    world: World,
) -> None:
    esc = _resolved(world)
    for _ in range(2):
        world.sandbox.agent_update(esc["id"], ALICE, state="closed")
        world.sync()
        assert world.sandbox.ticket(esc["id"])["state"] == "parked"
    assert _escalation(world).state is State.PARKED
    assert len(_notes(world, esc["id"], "Confirmation needed")) == 1


def test_an_agent_setting_a_parked_ticket_open_unparks_it(world: World) -> None:
    esc = _resolved(world)
    world.sandbox.agent_update(esc["id"], ALICE, state="open")
    world.sync()
    assert _escalation(world).state is State.OPEN
    assert world.store.parking_periods(_escalation(world).id)[0].outcome is ParkingOutcome.REOPENED


def test_a_closed_escalation_reopened_by_an_agent_is_the_same_escalation(world: World) -> None:
    esc = _resolved(world)
    world.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)
    world.sync()
    assert _escalation(world).state is State.ARCHIVED
    world.clock.advance(timedelta(days=40))
    # while it is closed, the customer writes again and raises a new ticket: not copied yet
    original = world.ticket_by_title(TITLE)
    world.sandbox.seed_customer_email(original, "While you were closed.", subject="z")
    world.sandbox.create_ticket_as_customer(RESIDENTIAL, "Another fault", "A new one.")
    world.sync()
    assert not any("While you were closed." in c["body"] for c in world.copies_in(esc["id"]))
    world.sandbox.agent_update(esc["id"], ALICE, state="open")
    world.sync()
    world.sync()
    copied = " ".join(c["body"] for c in world.copies_in(esc["id"]))
    assert "While you were closed." in copied  # caught up on reopening
    assert "A new one." in copied
    again = _escalation(world)  # one escalation record, not two
    assert again.state is State.OPEN
    assert again.closed_at is None
    assert len(world.escalation_tickets()) == 1
    assert len(_notes(world, esc["id"], "Reopened")) == 1
    assert "escalation-confirmed" not in world.sandbox.tags_of(esc["id"])  # outcome cleared
    # and its customer's emails are copied again
    world.sandbox.seed_customer_email(world.ticket_by_title(TITLE), "Broken again.", subject="x")
    world.sync()
    world.sync()
    assert any("Broken again." in c["body"] for c in world.copies_in(esc["id"]))
    # resolved again: parked, waiting for a new confirmation (not closed at once)
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    world.sync()
    assert _escalation(world).state is State.PARKED


def test_a_closed_escalation_past_retention_is_not_reopened(world: World) -> None:
    esc = _resolved(world)
    world.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)
    world.sync()
    world.clock.advance(timedelta(days=400))  # past the shipped 12 months
    world.sandbox.agent_update(esc["id"], ALICE, state="open")
    world.sync()
    assert _escalation(world).state is State.PURGED  # its copy removed, not reopened


def test_no_contact_call_is_due_while_parked(world: World) -> None:
    """Residential: two calls a business day until resolved; none while parked, and after
    the customer wrote again they start again with the next window."""
    esc = _resolved(world)  # Tuesday 09:00-ish
    world.clock.advance(timedelta(days=1))
    world.sync()  # Wednesday: parked, nothing due
    slots = {d.slot for d in world.store.duties() if d.slot.startswith("call:")}
    assert not [s for s in slots if s.startswith("call:2026-12-02")]
    assert _notes(world, esc["id"], "Missed: morning contact call") == []
    world.sandbox.seed_customer_email(world.ticket_by_title(TITLE), "Down again.", subject="y")
    world.sync()
    world.clock.advance(timedelta(days=1))
    world.sync()  # Thursday: open again since Wednesday morning, the plan goes on
    slots = {d.slot for d in world.store.duties() if d.slot.startswith("call:")}
    assert "call:2026-12-03:morning" in slots
    assert "call:2026-12-02:afternoon" in slots  # after the customer wrote
    assert "call:2026-12-02:morning" not in slots  # its window met the parking


def test_a_level_change_on_a_parked_escalation_unparks_it_and_applies(world: World) -> None:
    esc = _resolved(world)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    world.sync()
    back = _escalation(world)
    assert (back.state, back.level) == (State.OPEN, 2)
    assert "escalation-l2" in world.sandbox.tags_of(esc["id"])
    assert world.store.parking_periods(back.id)[0].reason == "an agent changed the level"


def test_an_email_waiting_to_be_copied_when_it_closes_is_copied_if_it_reopens(
    world: World,
) -> None:
    from sandbox import ServerError

    esc = _resolved(world)
    original = world.ticket_by_title(TITLE)
    world.twice = False  # the refused read below is for the first pass only
    world.sandbox.seed_customer_email(original, "One more thing.", subject="late")
    world.sandbox.faults.add(
        ServerError(
            method="GET", path=f"/ticket_articles/by_ticket/{original}$", times=1, status=403
        )
    )
    world.clock.advance(timedelta(minutes=1))
    world.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)
    world.sync()  # confirmed and closed; the email's scan was refused, so it waits
    assert _escalation(world).state in (State.CLOSED, State.ARCHIVED)
    world.clock.advance(timedelta(days=2))
    world.sandbox.agent_update(esc["id"], ALICE, state="open")
    world.sync()
    world.sync()
    assert any("One more thing." in c["body"] for c in world.copies_in(esc["id"]))


def test_a_level_and_a_close_in_one_change_are_both_done_in_one_pass(world: World) -> None:
    """Found by the kill soak: the close waited for the level's writes, so a second clean
    pass still parked. Now one pass applies the level and parks; the repeat writes nothing."""
    esc = _open_escalation(world)
    world.sandbox.agent_update(
        esc["id"], ALICE, escalation_level="2", escalation_rfo="Fibre cut.", state="closed"
    )
    world.sync()
    parked = _escalation(world)
    assert (parked.state, parked.level) == (State.PARKED, 2)
    assert "escalation-l2" in world.sandbox.tags_of(esc["id"])
    assert world.sandbox.ticket(esc["id"])["state"] == "parked"
