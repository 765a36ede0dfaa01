"""What agents and admins do in the helpdesk behind the worker's back (issue 10): tickets
deleted, moved out of reach, attachments gone. Each is done through the sandbox as an agent
would, and the worker reads it through the real adapter."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from escalations.models import EffectState, State
from sandbox import ServerError
from tests.jobs.conftest import ALICE, RESIDENTIAL, World

TITLE = "Broadband down since Monday"


def _flag_and_sync(world: World) -> tuple[int, dict]:
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    return original, world.the_escalation_ticket()


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(name)]


# -- issue 10 #1: a scan whose ticket was deleted -------------------------------------------


def test_a_scan_of_a_deleted_ticket_ends_and_every_other_copy_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    original, esc = _flag_and_sync(world)
    new = world.sandbox.create_ticket_as_customer(
        RESIDENTIAL, "Still no broadband", "Day three.", subject="Complaint"
    )
    # the pass that would scan the new ticket is cut short by an outage ...
    world.sandbox.faults.add(
        ServerError(method="GET", path=f"/ticket_articles/by_ticket/{new}$", times=50, status=503)
    )
    world.worker.run_once()
    world.sandbox.faults.clear()
    assert [s.ticket_id for s in world.store.pending_scans()] == [new]
    # ... and an agent deletes the ticket before the next one
    world.sandbox.delete_ticket(new)
    world.sandbox.seed_customer_email(original, "Any news?", subject="Re: broadband")
    caplog.set_level(logging.INFO)
    world.sync()
    world.sync()
    assert "Any news?" in world.copies_in(esc["id"])[-1]["body"]
    assert world.store.pending_scans() == []
    (line,) = _events(caplog, "sync.scan_ended")
    assert f"ticket={new}" in line


# -- issue 10 #6: the escalation ticket deleted ----------------------------------------------


def test_a_deleted_escalation_ticket_ends_the_escalation_and_a_new_flag_raises_a_new_one(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    original, esc = _flag_and_sync(world)
    history = len(world.copies_in(esc["id"]))
    assert history >= 1
    world.sandbox.delete_ticket(esc["id"])
    world.sandbox.seed_customer_email(original, "Hello?", subject="Re: broadband")
    world.sandbox.seed_customer_email(original, "Anyone?", subject="Re: broadband")
    caplog.set_level(logging.INFO)
    world.sync()
    world.sync()
    (ended,) = world.store.escalations_for_ticket(original)
    assert ended.state is State.CLOSED
    (line,) = _events(caplog, "escalation.ticket_deleted")
    assert f"number={esc['number']}" in line
    told = [a for a in world.sandbox.articles_of(original) if "was deleted" in a["body"]]
    assert len(told) == 1
    assert told[0]["internal"] is True
    failed = world.store.effects(EffectState.FAILED)
    assert failed
    assert all("no longer exists" in (e.last_error or "") for e in failed)
    # the agent flags again: a new escalation ticket, carrying the whole history again
    world.flag(original)
    world.sync()
    world.sync()
    (new_esc,) = world.escalation_tickets()
    assert new_esc["id"] != esc["id"]
    bodies = [c["body"] for c in world.copies_in(new_esc["id"])]
    assert len(bodies) == history + 2
    assert "Hello?" in bodies[-2]
    assert "Anyone?" in bodies[-1]
    states = sorted(e.state for e in world.store.escalations_for_ticket(original))
    assert states == sorted([State.CLOSED, State.OPEN])


def test_a_404_on_a_write_to_a_ticket_that_still_exists_does_not_end_the_escalation(
    world: World,
) -> None:
    original, esc = _flag_and_sync(world)
    world.sandbox.faults.add(
        ServerError(method="POST", path="/api/v1/ticket_articles", times=1, status=404)
    )
    world.sandbox.seed_customer_email(original, "One.", subject="Re: 1")
    world.sync()
    (kept,) = world.store.escalations_for_ticket(original)
    assert kept.state is State.OPEN
    assert [e.kind for e in world.store.effects(EffectState.FAILED)] == ["copy_article"]


# -- issue 10 #8: an attachment that cannot be downloaded ------------------------------------


def _email_with_two_files(world: World, original: int) -> dict:
    world.sandbox.seed_customer_email(
        original,
        "Two files attached.",
        subject="Re: logs",
        attachments=[
            ("good.txt", "text/plain", b"fine"),
            ("bad.log", "text/plain", b"x" * 1234),
        ],
    )
    source = world.sandbox.articles_of(original)[-1]
    return next(a for a in source["attachments"] if a["filename"] == "bad.log")


@pytest.mark.parametrize("status", [403, 404])
def test_an_attachment_the_helpdesk_refuses_is_named_and_the_email_copied_at_once(
    world: World, status: int
) -> None:
    original, esc = _flag_and_sync(world)
    bad = _email_with_two_files(world, original)
    world.sandbox.faults.add(
        ServerError(
            method="GET", path=f"/ticket_attachment/.*/{bad['id']}$", times=99, status=status
        )
    )
    world.sync()
    copy = world.copies_in(esc["id"])[-1]
    assert "Two files attached." in copy["body"]
    assert [a["filename"] for a in copy["attachments"]] == ["good.txt"]
    assert "bad.log – 1,234 bytes – not copied" in copy["body"]
    assert world.store.effects(EffectState.FAILED) == []


def test_an_attachment_that_keeps_failing_stops_holding_up_the_queue(world: World) -> None:
    original, esc = _flag_and_sync(world)
    bad = _email_with_two_files(world, original)
    world.sandbox.seed_customer_email(original, "A later email.", subject="Re: later")
    world.sandbox.faults.add(
        ServerError(
            method="GET", path=f"/ticket_attachment/.*/{bad['id']}$", times=10_000, status=502
        )
    )
    before = len(world.copies_in(esc["id"]))
    passes = 0
    while len(world.copies_in(esc["id"])) < before + 2:
        passes += 1
        assert passes <= 6, "the copies are still held up"
        world.sync(advance=timedelta(minutes=10))
    held, later = world.copies_in(esc["id"])[-2:]
    assert "Two files attached." in held["body"]
    assert "bad.log – 1,234 bytes – not copied" in held["body"]
    assert [a["filename"] for a in held["attachments"]] == ["good.txt"]
    assert "A later email." in later["body"]
    assert world.store.effects(EffectState.FAILED) == []


# -- issue 10 #7: the original moved to a group the worker cannot read -----------------------


def test_an_original_moved_out_of_reach_is_logged_once_shown_and_caught_up_on_return(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    original, esc = _flag_and_sync(world)
    number = world.sandbox.ticket(original)["number"]
    billing = world.sandbox.add_group("Billing")
    world.sandbox.user_record(ALICE).group_access[billing] = ["full"]  # not the bot
    world.sandbox.agent_update(original, ALICE, group="Billing")
    world.sandbox.seed_customer_email(original, "Sent while it was away.", subject="Re: away")
    caplog.set_level(logging.INFO)
    for _ in range(3):
        world.sync(advance=timedelta(minutes=11))
    (line,) = _events(caplog, "sync.reach_lost")
    assert f"number={number}" in line
    assert "not readable by the worker" in line
    status = world.store.status(world.clock.now())
    assert status.out_of_reach[str(original)]["number"] == number
    assert not any("Sent while it was away." in c["body"] for c in world.copies_in(esc["id"]))
    # an admin moves it back: the worker says so, and the mail is copied
    world.sandbox.agent_update(original, ALICE, group="Support")
    world.sync(advance=timedelta(minutes=11))
    world.sync()
    assert len(_events(caplog, "sync.reach_regained")) == 1
    assert "Sent while it was away." in world.copies_in(esc["id"])[-1]["body"]
    assert world.store.status(world.clock.now()).out_of_reach == {}


def test_the_reach_check_costs_nothing_between_its_rounds(world: World) -> None:
    _flag_and_sync(world)
    world.sync(advance=timedelta(minutes=11))  # a reach check round
    world.rsps.calls.reset()
    world.sync(advance=timedelta(seconds=30))
    assert [c for c in world.http_calls() if c.startswith("GET /api/v1/tickets/")] == []


def test_writes_to_an_original_moved_out_of_reach_wait_and_land_when_it_returns(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the kill soak: the escalation ticket is made, then an agent moves the original
    away before the note reaches it. The 403 must not fail it for good (the agents on the
    original would never be told); it waits, and goes once the ticket is back."""
    original = world.ticket_by_title(TITLE)
    billing = world.sandbox.add_group("Billing")
    world.sandbox.user_record(ALICE).group_access[billing] = ["full"]  # not the bot
    world.flag(original)
    # the pass's writes to the original are held up (an outage after the create: the PUT
    # that consumes the flag and carries the note) ...
    world.sandbox.faults.add(
        ServerError(method="PUT", path=rf"/tickets/{original}$", times=1, status=503)
    )
    world.sync()
    world.sandbox.faults.clear()
    esc = world.the_escalation_ticket()
    # ... and meanwhile an agent moves the original to a group the worker cannot read
    world.sandbox.agent_update(original, ALICE, group="Billing")
    caplog.set_level(logging.INFO)
    world.sync(advance=timedelta(minutes=20))
    waiting = [e for e in world.store.effects() if e.state is not EffectState.DONE]
    assert waiting, "nothing was left to write to the original"
    assert {e.state for e in waiting} == {EffectState.PENDING}, [e.last_error for e in waiting]
    assert all(f"ticket {original} is out of" in (e.last_error or "") for e in waiting)
    assert _events(caplog, "effect.waiting")
    # moved back: the very next pass writes them, without waiting out the back-off
    world.sandbox.agent_update(original, ALICE, group="Support")
    assert all(e.not_before > world.clock.now() + timedelta(seconds=1) for e in waiting)
    world.sync(advance=timedelta(seconds=1))
    assert [e for e in world.store.effects() if e.state is not EffectState.DONE] == []
    assert len(_events(caplog, "sync.writes_released")) == 1
    assert not world.sandbox.ticket(original)["escalation_requested"]
    assert "escalated" in world.sandbox.tags_of(original)
    notes = [a for a in world.sandbox.articles_of(original) if esc["number"] in a["body"]]
    assert len(notes) == 1
