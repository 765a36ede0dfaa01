"""The communication plan's reminders, missed and done calls, the RFO gate, and resolve →
park → confirm → close (or un-park): the same scenarios and invariants on Zammad and on the
real osTicket (``hd``). Where the plan needs time to pass, the worker's clock moves on."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from escalations.comms.calendar import BusinessCalendar
from escalations.comms.duties import EscalationFacts, PlanRules, plan
from escalations.models import Escalation, ParkingOutcome, State
from tests.behaviour.driver import Helpdesk, assert_invariants, escalate, record

pytestmark = pytest.mark.timeout(180)

SUBJECT = "Line down at the depot"
FIRST = "Down since 9."


def _first_contact_call(hd: Helpdesk, esc: Escalation) -> datetime:
    """When the first contact call of the escalation's plan is due (the window's end)."""
    profile = hd.installation.ctx.profile
    assert esc.flagged_at is not None
    rules = PlanRules(shortest_window_minutes=profile.comms.reminder_lead_minutes)
    duties = plan(
        EscalationFacts(flagged_at=esc.flagged_at),
        profile.segments[esc.segment],
        BusinessCalendar.from_profile(profile),
        rules,
        until=esc.flagged_at + timedelta(days=10),
    )
    return next(d.due_at for d in duties if d.key.startswith("call:"))


def test_the_plan_reminds_of_a_call_and_reports_it_missed_in_internal_notes(
    hd: Helpdesk,
) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id
    esc = record(hd, escalated)
    due = _first_contact_call(hd, esc)  # residential: a morning or afternoon call

    hd.move_clock_to(due - timedelta(minutes=20))  # inside the 30-minute reminder lead
    hd.run()
    (reminder,) = hd.worker_notes(ticket, "Reminder:")
    assert "contact call" in reminder

    hd.move_clock_to(due + timedelta(minutes=5))  # the window closed, no call logged
    hd.run()
    missed = [d for d in hd.store.duties(esc.id) if d.missed_at is not None]
    assert [d.due_at for d in missed] == [due]
    assert len(hd.worker_notes(ticket, "Missed")) == 1
    assert len(hd.worker_notes(ticket, "Reminder:")) == 1
    assert_invariants(hd, escalated, FIRST)


def test_a_logged_call_does_the_duty(hd: Helpdesk) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id
    hd.set_level(ticket, 2)  # a call is due within the hour
    hd.run()
    esc = record(hd, escalated)
    (duty,) = [d for d in hd.store.duties(esc.id) if d.slot.startswith("level:2:")]
    hd.next_second()  # the level change opened the window: the call is made after it
    hd.log_phone_call(ticket, "Called the customer: engineer booked.")

    hd.move_clock_to(duty.due_at - timedelta(minutes=20))  # where a reminder would go
    hd.run()
    hd.move_clock_to(duty.due_at + timedelta(minutes=5))  # where a miss would be noted
    hd.run()
    (done,) = [d for d in hd.store.duties(esc.id) if d.slot == duty.slot]
    assert done.done_at is not None
    assert done.missed_at is None
    assert (done.evidence or "").startswith("article:")
    assert not [n for n in hd.worker_notes(ticket, "Reminder:") if "level 2" in n]
    assert not [n for n in hd.worker_notes(ticket, "Missed") if "level 2" in n]
    assert_invariants(hd, escalated, FIRST)


def test_a_level_2_close_without_the_rfo_is_reopened_once_and_with_it_parks(
    hd: Helpdesk,
) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id
    hd.set_level(ticket, 2)  # process.toml: the RFO is needed from level 2
    hd.run()

    hd.resolve(ticket)  # no RFO given
    hd.run()
    assert hd.status(ticket) == "open"  # put back by the worker
    assert record(hd, escalated).state is State.OPEN
    (note,) = hd.worker_notes(ticket, "RFO needed")
    assert "Reason for Outage" in note

    hd.set_rfo(ticket, "Fibre cut at the exchange.")
    hd.resolve(ticket)
    hd.run()
    assert hd.status(ticket) == "parked"
    assert record(hd, escalated).state is State.PARKED
    assert len(hd.worker_notes(ticket, "RFO needed")) == 1
    assert_invariants(hd, escalated, FIRST)


def test_resolved_parked_reminded_confirmed_and_closed(hd: Helpdesk) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id

    hd.resolve(ticket)
    hd.run()
    assert hd.status(ticket) == "parked"
    parked = record(hd, escalated)
    assert parked.state is State.PARKED
    (period,) = hd.store.parking_periods(parked.id)
    assert period.pending_until == period.resolved_at + timedelta(days=3)  # calendar days
    (note,) = hd.worker_notes(ticket, "Parked")
    assert "final confirmation call" in note
    assert hd.outcome_hint in note  # how to record the outcome on this helpdesk

    # day 3 of parking: the final confirmation call is reminded once
    hd.move_clock_to(period.pending_until - timedelta(minutes=20))
    hd.run()
    hd.run()
    assert len(hd.worker_notes(ticket, "Reminder: final confirmation call")) == 1

    hd.record_outcome(ticket, "confirmed")
    hd.run()
    closed = record(hd, escalated)
    assert closed.state in (State.CLOSED, State.ARCHIVED)
    assert closed.confirmed_at is not None
    assert hd.store.parking_periods(closed.id)[0].outcome is ParkingOutcome.CONFIRMED
    assert hd.status(ticket) == "closed"
    assert len(hd.worker_notes(ticket, "Closed")) == 1
    assert hd.status(escalated.original.id) != "closed"  # process.toml: close_original off
    assert_invariants(hd, escalated, FIRST)


def test_not_satisfied_or_a_new_customer_email_unparks_it(hd: Helpdesk) -> None:
    escalated = escalate(hd, SUBJECT, FIRST)
    ticket = escalated.ticket_id
    hd.resolve(ticket)
    hd.run()
    assert record(hd, escalated).state is State.PARKED

    hd.record_outcome(ticket, "not satisfied")
    hd.run()
    back = record(hd, escalated)
    assert (back.state, back.level) == (State.OPEN, 1)
    assert hd.status(ticket) == "open"
    (note,) = hd.worker_notes(ticket, "Un-parked")
    assert "not satisfied" in note

    hd.resolve(ticket)  # resolved again: a second parking
    hd.run()
    assert record(hd, escalated).state is State.PARKED
    assert len(hd.worker_notes(ticket, "Parked")) == 2
    hd.next_second()  # a mail stamped in the second of the resolve counts as written before it
    hd.customer_writes(escalated.original, "It is down again!")
    hd.run()
    assert record(hd, escalated).state is State.OPEN
    assert hd.status(ticket) == "open"
    assert len(hd.worker_notes(ticket, "Un-parked")) == 2
    outcomes = [p.outcome for p in hd.store.parking_periods(back.id)]
    assert outcomes == [ParkingOutcome.NOT_SATISFIED, ParkingOutcome.CUSTOMER_WROTE]
    assert_invariants(hd, escalated, FIRST, "It is down again!")
