"""What the flag carries into the escalation (jobs/sync/flagging.py): the repeat-fault count in
the first note (one ticket search) and an update cadence agreed with the customer, read
through the real adapter from the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import responses

from connector.base import Capability
from connector.errors import Forbidden
from escalations.bindings.zammad import ZammadBinding
from escalations.clock import FakeClock
from escalations.effects.helpdesk import NOTE, UPDATE_TICKET, UPDATE_WITH_NOTE
from escalations.models import EffectState, State
from sandbox import LoseResponse, Refuse, ServerError
from tests.conftest import edited_mappings
from tests.jobs.conftest import RESIDENTIAL, World, make_world

TITLE = "Broadband down since Monday"


def _first_note(world: World) -> str:
    esc = world.the_escalation_ticket()
    return str(world.sandbox.articles_of(esc["id"])[0]["body"])


def test_the_first_note_counts_the_customer_s_tickets_of_the_last_30_days(world: World) -> None:
    w = world
    w.sandbox.create_ticket_as_customer(RESIDENTIAL, "Slow line", "Slow again.")  # old by then
    w.clock.advance(timedelta(days=31))
    w.sandbox.create_ticket_as_customer(RESIDENTIAL, "No dial tone", "Phone dead.")
    latest = w.sandbox.create_ticket_as_customer(RESIDENTIAL, "Line down", "Down again.")
    w.flag(latest)
    w.sync()
    assert (
        "Repeat faults:</b> 1 other ticket from this customer in the last 30 days" in _first_note(w)
    )
    counts = [
        json.loads(c.request.body)
        for c in w.rsps.calls
        if c.request.method == "POST" and b"only_total_count" in (c.request.body or b"")
    ]
    assert len(counts) == 1  # one search, however many tickets the customer has
    assert counts[0]["condition"]["ticket.customer_id"]["value"] == [
        str(w.sandbox.user_id(RESIDENTIAL))
    ]


def test_a_failed_count_leaves_the_row_out_and_the_escalation_goes_ahead(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    original = w.ticket_by_title("Broadband down since Monday")
    w.flag(original)
    real = w.ctx.adapter.count_customer_tickets

    def refused(*args: object, **kwargs: object) -> int:
        raise Forbidden("Not authorized", status=403)

    w.ctx.adapter.count_customer_tickets = refused  # type: ignore[method-assign]
    try:
        w.sync()
    finally:
        w.ctx.adapter.count_customer_tickets = real  # type: ignore[method-assign]
    assert "Repeat faults" not in _first_note(w)
    assert [r for r in caplog.records if "flag.repeat_faults_unknown" in r.getMessage()]


# -- an update cadence agreed at the flag -------------------------------------------------------


@pytest.fixture
def agreed(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    mappings = edited_mappings(
        tmp_path,
        "zammad.toml",
        '# agreed_cadence = "escalation_update_minutes"',
        'agreed_cadence = "escalation_update_minutes"',
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, clock, rsps, mappings)
        w.sandbox.add_attribute("escalation_update_minutes", "integer")
        yield w
        w.store.close()


def test_an_agreed_cadence_replaces_the_segment_s(agreed: World) -> None:
    w = agreed
    flagged = w.clock.now()
    w.flag(
        w.ticket_by_title("HQ VPN outage"),
        customer_segment="enterprise",
        escalation_callback_at=None,
        escalation_update_minutes=30,
    )
    w.sync(advance=timedelta(0))
    w.sync(advance=timedelta(minutes=5))
    (esc,) = w.store.escalations_in(State.OPEN)
    assert esc.agreed_cadence_minutes == 30
    assert w.the_escalation_ticket()["escalation_update_minutes"] == 30
    assert "Agreed updates:</b> every 30 business minutes" in _first_note(w)
    cadence = {d.slot: d for d in w.store.duties() if d.slot.startswith("cadence:")}
    assert cadence["cadence:1"].due_at == flagged + timedelta(minutes=30)  # not the segment's 60


@pytest.mark.parametrize("value", [0, -5, 1, None])
def test_no_usable_agreed_cadence_keeps_the_segment_s(agreed: World, value: object) -> None:
    w = agreed
    w.flag(
        w.ticket_by_title("HQ VPN outage"),
        customer_segment="enterprise",
        escalation_callback_at=None,
        escalation_update_minutes=value,
    )
    w.sync(advance=timedelta(0))
    w.sync(advance=timedelta(minutes=5))
    (esc,) = w.store.escalations_in(State.OPEN)
    assert esc.agreed_cadence_minutes is None
    assert "Agreed updates" not in _first_note(w)


# -- the note on the original and the consumed flag: one update (issue 15) ---------------------


def _original_notes(world: World, ticket_id: int) -> list[dict[str, object]]:
    return [a for a in world.sandbox.articles_of(ticket_id) if a["subject"] == "Escalated"]


def test_the_note_on_the_original_rides_on_the_update_that_consumes_the_flag(
    world: World,
) -> None:
    w = world
    original = w.ticket_by_title(TITLE)
    w.flag(original)
    w.sync()
    puts = [c for c in w.rsps.calls if c.request.method == "PUT"]
    assert len(puts) == 1
    sent = json.loads(puts[0].request.body)
    assert sent["escalation_requested"] is False
    assert sent["article"]["internal"] is True
    assert sent["article"]["type"] == "note"
    (note,) = _original_notes(w, original)
    assert note["internal"]
    assert note["sender"] == "Agent"
    assert not w.sandbox.ticket(original)["escalation_requested"]
    (update,) = [e for e in w.store.effects() if e.kind == UPDATE_WITH_NOTE]
    assert update.state is EffectState.DONE
    assert not [e for e in w.store.effects() if e.kind == NOTE and "original-note" in e.key]


def test_a_lost_answer_to_the_update_is_not_sent_again(world: World) -> None:
    """The PUT with the note is applied and its answer lost (a read timeout): it is not
    repeated; the next pass finds the note by its marker and the flag stays consumed."""
    w = world
    w.twice = False
    original = w.ticket_by_title(TITLE)
    w.sandbox.faults.add(LoseResponse(method="PUT", path=rf"^/api/v1/tickets/{original}$"))
    w.flag(original)
    w.sync()
    assert w.sandbox.faults.fired == [("LoseResponse", "PUT", f"/api/v1/tickets/{original}")]
    (update,) = [e for e in w.store.effects() if e.kind == UPDATE_WITH_NOTE]
    assert update.state is EffectState.IN_FLIGHT
    assert "AmbiguousWrite" in (update.last_error or "")
    assert len(_original_notes(w, original)) == 1  # applied, though the worker never heard
    w.sync(advance=timedelta(minutes=10))
    w.sync(advance=timedelta(minutes=10))
    puts = [
        c for c in w.rsps.calls if c.request.method == "PUT" and f"/{original}" in c.request.url
    ]
    assert len(puts) == 1, "the update with the note was sent again"
    (update,) = [e for e in w.store.effects() if e.kind == UPDATE_WITH_NOTE]
    assert update.state is EffectState.DONE
    (note,) = _original_notes(w, original)
    assert update.remote_id == str(note["id"])
    assert not w.sandbox.ticket(original)["escalation_requested"]


def test_the_separate_note_and_update_an_older_version_stored_still_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written by the version before: the note on the original and the flag's PUT
    are two pending effects (``note`` and ``update_ticket``, as that version requested
    them). This version runs them as they are: one note, the flag consumed, no third
    write for the same thing."""
    w = world
    w.twice = False
    binding = w.ctx.binding
    assert isinstance(binding, ZammadBinding)
    monkeypatch.setattr(
        binding, "capabilities", binding.capabilities - {Capability.NOTE_ON_UPDATE}
    )  # requests what the older version requested
    original = w.ticket_by_title(TITLE)
    # the writes to the original wait (nothing reaches the helpdesk), as after a crash
    w.sandbox.faults.add(Refuse(method="POST", path=r"^/api/v1/ticket_articles$", times=50))
    w.sandbox.faults.add(Refuse(method="PUT", path=rf"^/api/v1/tickets/{original}$", times=50))
    w.flag(original)
    w.sync()
    pending = sorted(
        (e.kind, e.key.split(":", 1)[0])
        for e in w.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT)
        if e.kind in (NOTE, UPDATE_TICKET)
    )
    assert pending == [(NOTE, "original-note"), (UPDATE_TICKET, "consume-flag")]
    monkeypatch.undo()
    w.sandbox.faults.clear()
    w.sync(advance=timedelta(minutes=10))
    w.sync(advance=timedelta(minutes=10))
    assert len(_original_notes(w, original)) == 1
    assert not w.sandbox.ticket(original)["escalation_requested"]
    assert [e for e in w.store.effects() if e.kind == UPDATE_WITH_NOTE] == []
    assert all(e.state is EffectState.DONE for e in w.store.effects())


@pytest.mark.parametrize("status", [422, 409])
def test_a_refused_flag_update_still_tells_the_original_once(world: World, status: int) -> None:
    """The note on the original rides on the flag's update; Zammad makes both or neither,
    so a refusal of the update (a validation or core-workflow 422, a 409) made no note
    either: the agents of the original were never told (review of issue 15, its P2). The
    note now goes alone, once."""
    world.twice = False
    original = world.ticket_by_title(TITLE)
    world.sandbox.faults.add(
        ServerError(method="PUT", path=rf"^/api/v1/tickets/{original}$", status=status, times=100)
    )
    world.flag(original)
    for _ in range(3):
        world.sync(advance=timedelta(minutes=10))
    escalated = [a for a in world.sandbox.articles_of(original) if a["subject"] == "Escalated"]
    assert len(escalated) == 1
    (carried,) = [e for e in world.store.effects() if e.kind == UPDATE_WITH_NOTE]
    assert carried.state is EffectState.FAILED
    (alone,) = [e for e in world.store.effects() if e.key.startswith("original-note:")]
    assert alone.state is EffectState.DONE
