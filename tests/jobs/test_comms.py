"""The communication plan on time (issue 11), by time travel: the worker's clock (and the
sandbox's) is moved through a week holding Good Friday, a weekend with the change to summer
time and Easter Monday (Europe/London, 2027-03-25 … 03-31); passes run at chosen instants and
each is run twice, which must write nothing more. Calls are phone articles an agent logs in the
sandbox, read through the real adapter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from escalations.app.provision import provision_sandbox
from escalations.clock import FakeClock
from escalations.comms import next_duty
from escalations.errors import StoreConflict, StoreUnavailable
from escalations.mappings import Mappings
from escalations.models import EffectState
from escalations.settings import shipped_mappings_dir
from jobs import comms
from tests.conftest import edited_mappings
from tests.jobs.conftest import ALICE, BASE_URL, BOT, World, make_world

THU = datetime(2027, 3, 25, 8, 30, tzinfo=UTC)  # 08:30 GMT, the Thursday before Good Friday
TITLE = "Broadband down since Monday"
ENTERPRISE_TITLE = "HQ VPN outage"


@pytest.fixture
def week(tmp_path: Path) -> Iterator[World]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(THU), rsps, None)
        yield w
        w.store.close()


def _z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pass_at(world: World, instant: datetime) -> None:
    """One pass at ``instant`` (the clock only moves forward); the world runs it twice, and
    the second must write nothing."""
    assert world.twice
    assert instant >= world.clock.now(), (instant, world.clock.now())
    world.clock.set(instant)
    world.sync(advance=timedelta(0))


def escalate(world: World, title: str, **flag: Any) -> dict[str, Any]:
    world.flag(world.ticket_by_title(title), **flag)
    world.sync(advance=timedelta(0))
    (esc,) = [t for t in world.escalation_tickets() if title in t["title"]]
    return esc


def call_logged(world: World, ticket_id: int, at: datetime) -> None:
    """An agent logs a phone call on the ticket at ``at``."""
    world.clock.set(at)
    world.sandbox.agent_article(
        ticket_id, ALICE, "Called the customer: engineer booked.", type="phone", internal=False
    )


def notes_titled(world: World, ticket_id: int, prefix: str) -> list[dict[str, Any]]:
    return [
        a for a in world.sandbox.articles_of(ticket_id) if (a["subject"] or "").startswith(prefix)
    ]


def duty(world: World, slot: str) -> Any:
    (found,) = [d for d in world.store.duties() if d.slot == slot]
    return found


# -- residential: two calls every business day -------------------------------------------------


def test_residential_calls_through_a_holiday_weekend_and_the_clocks_going_forward(
    week: World,
) -> None:
    w = week
    esc = escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
    original = w.ticket_by_title(TITLE)
    call_logged(w, original, _z("2027-03-25T09:50"))  # the callback, and the morning call
    pass_at(w, _z("2027-03-25T11:40"))
    # the afternoon window (13:00–17:00 GMT) passes without a call: reminded at 16:30, missed
    pass_at(w, _z("2027-03-25T16:35"))
    pass_at(w, _z("2027-03-25T17:05"))
    # Good Friday, the weekend (clocks forward on Sunday) and Easter Monday: nothing due
    for day in ("2027-03-26T10:00", "2027-03-27T10:00", "2027-03-28T10:00", "2027-03-29T10:00"):
        pass_at(w, _z(day))
    # Tuesday, in summer time: the morning window is 08:00–11:00 UTC; a call at 09:30 BST
    call_logged(w, esc["id"], _z("2027-03-30T08:30"))
    pass_at(w, _z("2027-03-30T10:45"))
    pass_at(w, _z("2027-03-30T15:31"))  # afternoon 12:00–16:00 UTC: reminder at 15:30 UTC
    call_logged(w, original, _z("2027-03-30T15:45"))
    pass_at(w, _z("2027-03-30T16:10"))

    slots = sorted(d.slot for d in w.store.duties())
    assert slots == sorted(
        [
            "callback",
            "call:2027-03-25:morning",
            "call:2027-03-25:afternoon",
            "call:2027-03-30:morning",
            "call:2027-03-30:afternoon",
        ]
    )
    assert duty(w, "callback").done_at is not None
    assert duty(w, "call:2027-03-25:morning").evidence is not None
    assert duty(w, "call:2027-03-30:morning").opens_at == _z("2027-03-30T08:00")  # 09:00 BST
    assert duty(w, "call:2027-03-30:afternoon").done_at == _z("2027-03-30T15:45")
    missed = duty(w, "call:2027-03-25:afternoon")
    assert missed.missed_at is not None
    assert missed.done_at is None
    reminders = notes_titled(w, esc["id"], "Reminder:")
    assert [r["subject"] for r in reminders] == [
        "Reminder: afternoon contact call",
        "Reminder: afternoon contact call",
    ]  # Thursday's and Tuesday's; the done mornings never reminded
    (miss,) = notes_titled(w, esc["id"], "Missed:")
    assert "afternoon contact call" in miss["body"]
    assert all(r["internal"] for r in [*reminders, miss])


def test_a_phone_article_outside_the_window_does_not_count(week: World) -> None:
    w = week
    escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
    call_logged(w, w.ticket_by_title(TITLE), _z("2027-03-25T12:30"))  # between the windows
    pass_at(w, _z("2027-03-25T17:05"))
    assert duty(w, "call:2027-03-25:morning").missed_at is not None
    assert duty(w, "call:2027-03-25:afternoon").missed_at is not None


# -- enterprise: the segment's cadence in business time ----------------------------------------


def test_enterprise_hourly_calls_stop_at_night_and_on_holidays(week: World) -> None:
    w = week
    w.clock.set(_z("2027-03-25T15:55"))
    esc = escalate(w, ENTERPRISE_TITLE, customer_segment="enterprise", escalation_callback_at=None)
    call_logged(w, esc["id"], _z("2027-03-25T16:20"))  # cadence 1: 15:55–16:55
    pass_at(w, _z("2027-03-25T16:30"))
    pass_at(w, _z("2027-03-25T17:30"))  # cadence 2 (16:55–17:55) not done: reminded
    pass_at(w, _z("2027-03-25T18:30"))  # … and missed; cadence 3 waits for Tuesday
    pass_at(w, _z("2027-03-29T12:00"))  # Easter Monday: nothing opens
    duties = {d.slot: d for d in w.store.duties()}
    assert sorted(duties) == ["cadence:1", "cadence:2", "cadence:3"]
    assert duties["cadence:1"].done_at == _z("2027-03-25T16:20")
    assert duties["cadence:2"].missed_at is not None
    # 5 business minutes were left on Thursday; the rest from 08:00 BST on Tuesday
    assert duties["cadence:3"].opens_at == _z("2027-03-25T17:55")
    assert duties["cadence:3"].due_at == _z("2027-03-30T07:55")
    assert len(notes_titled(w, esc["id"], "Reminder:")) == 1
    assert len(notes_titled(w, esc["id"], "Missed:")) == 1


def test_two_missed_in_a_row_alert_the_next_levels_executive_once(week: World) -> None:
    w = week
    w.clock.set(_z("2027-03-25T14:00"))
    esc = escalate(w, ENTERPRISE_TITLE, customer_segment="enterprise", escalation_callback_at=None)
    for at in ("2027-03-25T15:05", "2027-03-25T16:05", "2027-03-25T17:05"):
        pass_at(w, _z(at))
    (stalled,) = notes_titled(w, esc["id"], "Not progressing")
    assert "missed in a row" in stalled["body"]
    assert "data-mention-user-id" in stalled["body"]  # the executive is mentioned


# -- a worker stopped for days -----------------------------------------------------------------


def test_a_worker_stopped_for_three_days_flags_what_it_missed_in_one_note(world: World) -> None:
    """Flagged Tuesday 09:00, the worker then stopped until Friday 09:05: the callback and
    the six windows of Tuesday to Thursday are flagged in one note, none of them reminded."""
    w = world
    esc = escalate(w, TITLE)
    pass_at(w, w.clock.now() + timedelta(minutes=5))
    pass_at(w, _z("2026-12-04T09:05"))
    missed = [d for d in w.store.duties() if d.missed_at is not None]
    assert len(missed) == 7
    assert notes_titled(w, esc["id"], "Reminder:") == []
    (summary,) = notes_titled(w, esc["id"], "Missed:")
    assert summary["subject"] == "Missed: 7 duties"
    assert duty(w, "call:2026-12-04:morning").missed_at is None  # still open: 09:00–12:00
    pass_at(w, _z("2026-12-04T11:35"))
    assert len(notes_titled(w, esc["id"], "Reminder:")) == 1
    assert len(notes_titled(w, esc["id"], "Missed:")) == 1


def test_status_lists_duties_due_and_missed(world: World) -> None:
    esc = escalate(world, TITLE)
    pass_at(world, _z("2026-12-01T12:05"))
    summary = world.store.status(world.clock.now())
    assert summary.duties_missed == 1  # the morning call
    assert summary.duties_due == 0  # the callback's window opens at 14:30, the afternoon's at 13
    pass_at(world, _z("2026-12-01T14:35"))
    assert world.store.status(world.clock.now()).duties_due == 2  # afternoon call, callback
    # resolved: parked, the plan pauses, and nothing is due but the confirmation call later
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    pass_at(world, _z("2026-12-01T14:40"))
    assert world.store.status(world.clock.now()).duties_due == 0


def test_a_level_change_makes_a_call_due_and_a_long_run_of_misses_alerts_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    esc = escalate(w, TITLE)
    changed = w.clock.now()  # 09:00, in business hours
    w.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    pass_at(w, _z("2026-12-01T09:30"))
    (level_duty,) = [d for d in w.store.duties() if d.slot.startswith("level:2:")]
    assert (level_duty.kind, level_duty.due_at) == ("call", changed + timedelta(minutes=60))
    caplog.set_level("WARNING")
    for at in ("2026-12-01T10:31", "2026-12-01T12:01", "2026-12-01T15:31", "2026-12-01T17:01"):
        pass_at(w, _z(at))
    assert level_duty.slot in {d.slot for d in w.store.duties() if d.missed_at is not None}
    alerts = notes_titled(w, esc["id"], "Not progressing")
    assert len([a for a in alerts if "missed in a row" in a["body"]]) == 1
    # and 480 business minutes without an agent article since the level change at 09:00
    assert len([a for a in alerts if "no agent activity" in a["body"]]) == 1
    assert not [r for r in caplog.records if "payload_differs" in r.getMessage()]


# -- the caller log: the phone system's own record -----------------------------------------------


def _with_caller_log(tmp_path: Path) -> Mappings:
    return edited_mappings(
        tmp_path, "process.toml", "\ncaller_log = false\n", "\ncaller_log = true\n"
    )


@pytest.fixture
def calls_week(tmp_path: Path) -> Iterator[World]:
    """The week, with ``[comms] caller_log = true`` and a token that may read the log."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(THU), rsps, _with_caller_log(tmp_path))
        w.sandbox.grant_token(w.sandbox.token_of(BOT), "cti.agent")
        yield w
        w.store.close()


def called(world: World, at: datetime, number: str, **call: Any) -> int:
    """The phone system reports a call by Alice to ``number``, ringing at ``at``."""
    world.clock.set(at)
    return world.sandbox.phone_call(number, agent=ALICE, **call)


def test_an_answered_call_in_the_caller_log_is_a_call_done(calls_week: World) -> None:
    w = calls_week
    esc = escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
    morning = called(w, _z("2027-03-25T09:50"), "+353 1 555 0101")  # Sean's number
    # the afternoon: nobody answers; another customer's line; Sean calls in himself
    called(w, _z("2027-03-25T13:30"), "+353 1 555 0101", answered_after=None)
    called(w, _z("2027-03-25T14:00"), "+353 1 555 0202")
    called(w, _z("2027-03-25T14:30"), "+353 1 555 0101", direction="in")
    pass_at(w, _z("2027-03-25T17:05"))
    assert duty(w, "callback").evidence == f"call:{morning}"
    assert duty(w, "call:2027-03-25:morning").evidence == f"call:{morning}"
    assert duty(w, "call:2027-03-25:morning").done_at == _z("2027-03-25T09:50:12")
    assert duty(w, "call:2027-03-25:afternoon").missed_at is not None
    (miss,) = notes_titled(w, esc["id"], "Missed:")
    assert "afternoon contact call" in miss["body"]
    # Tuesday morning: dialled as a national number, which Zammad matched to nobody
    national = called(w, _z("2027-03-30T08:40"), "01 555 0101")
    pass_at(w, _z("2027-03-30T10:45"))
    assert duty(w, "call:2027-03-30:morning").evidence == f"call:{national}"
    assert notes_titled(w, esc["id"], "Not progressing") == []  # the calls were activity
    # one read of the caller log per pass, not one per escalation or per duty
    reads = [c for c in w.http_calls() if c == "GET /api/v1/cti/log"]
    assert 0 < len(reads) <= 8  # eight passes ran (each twice)


def test_without_the_switch_the_caller_log_is_not_read(week: World) -> None:
    w = week
    escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
    called(w, _z("2027-03-25T09:50"), "+353 1 555 0101")
    pass_at(w, _z("2027-03-25T12:05"))
    assert duty(w, "call:2027-03-25:morning").missed_at is not None
    assert "GET /api/v1/cti/log" not in w.http_calls()


def test_a_token_without_cti_agent_counts_articles_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(THU), rsps, _with_caller_log(tmp_path))
        escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
        called(w, _z("2027-03-25T09:40"), "+353 1 555 0101")
        call_logged(w, w.ticket_by_title(TITLE), _z("2027-03-25T09:50"))
        caplog.set_level("WARNING")
        pass_at(w, _z("2027-03-25T12:05"))
        assert duty(w, "call:2027-03-25:morning").evidence.startswith("article:")
        assert [r for r in caplog.records if "comms.caller_log_unread" in r.getMessage()]
        w.store.close()


def test_a_flag_late_in_a_window_makes_no_call_due_in_it(week: World) -> None:
    """Flagged at 11:55 (the morning window closes at 12:00): no morning call is due, and a
    phone article logged before the flag counts for nothing."""
    w = week
    call_logged(w, w.ticket_by_title(TITLE), _z("2027-03-25T09:30"))  # before the flag
    w.clock.set(_z("2027-03-25T11:55"))
    escalate(w, TITLE, escalation_callback_at=None)
    pass_at(w, _z("2027-03-25T13:10"))
    slots = {d.slot for d in w.store.duties()}
    assert "call:2027-03-25:morning" not in slots
    afternoon = duty(w, "call:2027-03-25:afternoon")
    assert afternoon.opens_at == _z("2027-03-25T13:00")
    pass_at(w, _z("2027-03-25T17:05"))
    assert duty(w, "call:2027-03-25:afternoon").missed_at is not None  # the 09:30 call: no


def test_a_reminder_lead_shorter_than_the_pass_interval_still_reminds(
    tmp_path: Path,
) -> None:
    """With a 5-minute lead and passes every 15 minutes, a pass may never fall inside the
    lead: the lead is taken as at least the interval, so the reminder goes out."""
    mappings = edited_mappings(
        tmp_path, "process.toml", "\nreminder_lead_minutes = 30\n", "\nreminder_lead_minutes = 5\n"
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(THU), rsps, mappings)
        w.installation.ctx.settings.__dict__["comms_interval_seconds"] = 900
        esc = escalate(w, TITLE, escalation_callback_at=None)
        pass_at(w, _z("2027-03-25T11:48"))  # 12 minutes before the morning window closes
        assert len(notes_titled(w, esc["id"], "Reminder:")) == 1
        w.store.close()


def test_one_failing_escalation_does_not_stop_the_others(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    first = escalate(w, TITLE)
    second = escalate(w, ENTERPRISE_TITLE, customer_segment="enterprise")
    real = w.ctx.adapter.list_articles

    def broken(ticket_id: int) -> Any:
        if ticket_id in (first["id"], w.ticket_by_title(TITLE)):
            raise ValueError("an article the adapter cannot read")
        return real(ticket_id)

    w.ctx.adapter.list_articles = broken  # type: ignore[method-assign]
    w.twice = False
    w.clock.set(_z("2026-12-01T11:35"))
    w.sync(advance=timedelta(0))
    assert notes_titled(w, second["id"], "Reminder:") or notes_titled(w, second["id"], "Missed:")
    assert [r for r in caplog.records if "comms.escalation_failed" in r.getMessage()]


RESELLER_TITLE = "Leased line flapping - end users affected"


def test_a_reseller_update_is_a_customer_visible_article_not_an_internal_note(
    week: World,
) -> None:
    """Reseller: an update every 2 business hours by ticket; an internal note does not count,
    a reply the customer can see does."""
    w = week
    w.clock.set(_z("2027-03-25T09:00"))
    esc = escalate(w, RESELLER_TITLE, customer_segment="reseller", escalation_callback_at=None)
    original = w.ticket_by_title(RESELLER_TITLE)
    w.clock.set(_z("2027-03-25T10:00"))
    w.sandbox.agent_article(original, ALICE, "Checked the line: still flapping.")  # internal
    pass_at(w, _z("2027-03-25T11:05"))
    assert duty(w, "cadence:1").missed_at is not None  # due 11:00: the internal note did not do
    w.clock.set(_z("2027-03-25T12:00"))
    w.sandbox.agent_article(
        original, ALICE, "Update: BT engineer on site at 14:00.", type="email", internal=False,
        to="orla.byrne@netreseller.example",
    )  # fmt: skip
    pass_at(w, _z("2027-03-25T13:05"))
    assert duty(w, "cadence:2").done_at == _z("2027-03-25T12:00")
    assert duty(w, "cadence:2").kind == "update"
    assert len(notes_titled(w, esc["id"], "Missed:")) == 1


def test_the_caller_log_is_read_once_per_pass_for_every_escalation(calls_week: World) -> None:
    w = calls_week
    escalate(w, TITLE, escalation_callback_at=None)
    escalate(w, ENTERPRISE_TITLE, customer_segment="enterprise", escalation_callback_at=None)
    before = len([c for c in w.http_calls() if c == "GET /api/v1/cti/log"])
    w.twice = False
    w.clock.set(_z("2027-03-25T11:45"))  # both have a duty at its decision point
    result = w.sync(advance=timedelta(0))
    reads = len([c for c in w.http_calls() if c == "GET /api/v1/cti/log"]) - before
    assert result.counts.get("tickets_read", 0) >= 4  # two escalations' tickets were read
    assert reads == 1


# -- the next duty's time on the escalation ticket, and the "due today" overview ---------------


def _next_duty(world: World, ticket_id: int) -> str | None:
    value = world.sandbox.ticket(ticket_id).get("escalation_next_duty_at")
    return None if value is None else str(value)


def _due_today(world: World, token: str) -> list[int]:
    """The tickets of the provisioned "Calls and updates due today" overview, as the agent
    sees them: its condition, searched with the agent's token."""
    (overview,) = [
        row
        for row in world.sandbox.state.db.admin["overviews"].values()
        if row["name"] == "Calls and updates due today"
    ]
    response = requests.post(
        f"{BASE_URL}/api/v1/tickets/search",
        json={"condition": overview["condition"], "limit": 50},
        headers={"Authorization": f"Token token={token}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()]


def test_the_next_duty_is_kept_on_the_escalation_ticket_for_the_due_today_overview(
    week: World,
) -> None:
    w = week
    provision_sandbox(BASE_URL, "sandbox-admin-token", w.clock, shipped_mappings_dir())
    alice = w.sandbox.issue_token(ALICE)
    esc = escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
    # the agreed callback (10:00 and 30 minutes' grace) comes before the morning call (12:00)
    assert _next_duty(w, esc["id"]) == "2027-03-25T10:30:00.000Z"
    assert _due_today(w, alice) == [esc["id"]]

    call_logged(w, w.ticket_by_title(TITLE), _z("2027-03-25T09:50"))  # callback and morning
    pass_at(w, _z("2027-03-25T11:40"))
    # the afternoon call is due the same day: no write (each notifies the ticket's people)
    assert _next_duty(w, esc["id"]) == "2027-03-25T10:30:00.000Z"
    assert _due_today(w, alice) == [esc["id"]]

    pass_at(w, _z("2027-03-25T17:05"))  # the afternoon call missed
    # Good Friday, the weekend and Easter Monday: Tuesday's morning call, 12:00 BST
    assert _next_duty(w, esc["id"]) == "2027-03-30T11:00:00.000Z"
    assert _due_today(w, alice) == []
    pass_at(w, _z("2027-03-30T08:00"))
    assert _due_today(w, alice) == [esc["id"]]

    shown = [e for e in w.store.effects() if e.key.startswith("next-duty:")]
    # the first time went with the create; then one write, for Tuesday
    assert len(shown) == 1
    assert {e.state for e in shown} == {EffectState.DONE}


def test_a_store_outage_stops_the_comms_pass_for_the_worker_to_wait_out(
    week: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store down (or in conflict) is no one escalation's failure: it stops the pass, so
    the worker waits for the store and runs it again, rather than logging a failure per
    escalation and going on."""
    w = week
    escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
    for error in (StoreUnavailable("the server closed the connection"), StoreConflict("40001")):

        def down(*_args: object, error: Exception = error, **_kw: object) -> None:
            raise error

        monkeypatch.setattr(w.store, "duties", down)
        with pytest.raises(type(error)):
            comms.run(w.ctx)


def test_a_lost_next_duty_entry_does_not_reuse_a_change_number(week: World) -> None:
    """The change numbers come from the store's effects, not only from the meta entry: with
    the entry lost, the next change is a new write, not the first change's key again (which
    was done, with another value, and would write nothing)."""
    w = week
    esc = escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")
    pass_at(w, _z("2027-03-25T17:05"))  # every duty of the day missed: Tuesday's is next
    assert _next_duty(w, esc["id"]) == "2027-03-30T11:00:00.000Z"
    (stored,) = w.store.escalations_in()
    with w.store.transaction() as tx:
        w.store.set_meta(tx, next_duty.shown_key(stored.id), None)
    pass_at(w, _z("2027-03-30T11:05"))  # Tuesday's morning call missed too
    assert _next_duty(w, esc["id"]) == "2027-03-30T16:00:00.000Z"  # the afternoon, 17:00 BST
    keys = sorted(e.key for e in w.store.effects() if e.key.startswith("next-duty:"))
    assert [k.rsplit(":", 1)[1] for k in keys] == ["1", "2"]


def test_a_pass_reads_each_escalations_own_entries_not_one_of_them_all(
    week: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comms pass kept its per-escalation state (last activity, stall told, the next
    duty shown) in one meta entry holding every escalation, read and rewritten whole for
    each one: a pass over 10 000 open escalations took 19 s of CPU. Each escalation has its
    own entry now; a shared entry (a store written before) is read once per pass."""
    w = week
    for title in (TITLE, ENTERPRISE_TITLE):
        escalate(w, title, escalation_callback_at=None)
    read: list[str] = []
    real = w.store.get_meta

    def counting(key: str) -> object:
        read.append(key)
        return real(key)

    monkeypatch.setattr(w.store, "get_meta", counting)
    comms.run(w.ctx)
    shared = [k for k in read if k.startswith("comms.") and ":" not in k]
    assert len(shared) == len(set(shared)), shared  # each shared key once, whatever the count
    own = {k for k in read if k.startswith("comms.") and ":" in k}
    assert len({k.rsplit(":", 1)[1] for k in own}) == 2  # both escalations' own entries


def test_next_duty_writes_are_capped_per_pass_the_soonest_first(
    week: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade every open escalation wants its next duty written; a pass requests
    only a few, the soonest due first, so they never crowd out the copies of customer
    emails in the request budget."""
    w = week
    monkeypatch.setattr(comms, "NEXT_DUTY_WRITES_PER_PASS", 1)
    late = escalate(w, ENTERPRISE_TITLE, customer_segment="enterprise", escalation_callback_at=None)
    soon = escalate(w, TITLE, escalation_callback_at="2027-03-25T08:45:00.000Z")
    with w.store.transaction() as tx:  # as a store from before the field knows nothing of it
        for esc in w.store.escalations_in():
            w.store.set_meta(tx, next_duty.shown_key(esc.id), None)
    w.twice = False
    first = comms.run(w.ctx)
    assert first.counts["next_duty_shown"] == 1
    assert first.counts["next_duty_deferred"] == 1
    by_ticket = {e.escalation_ticket_id: e.id for e in w.store.escalations_in()}
    (requested,) = [e for e in w.store.effects() if e.key.startswith("next-duty:")]
    assert requested.escalation_id == by_ticket[soon["id"]]  # callback by 09:15, update 09:30
    second = comms.run(w.ctx)
    assert second.counts["next_duty_shown"] == 1
    assert "next_duty_deferred" not in second.counts
    shown = {e.escalation_id for e in w.store.effects() if e.key.startswith("next-duty:")}
    assert shown == {by_ticket[soon["id"]], by_ticket[late["id"]]}


def test_the_plan_ahead_is_not_worked_out_while_todays_duty_stands(
    week: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass over 10 000 escalations planned ten days ahead for each (2 s of CPU): while the
    ticket shows today and a stored duty still to be met is due later today, the next duty
    is today's whatever the plan says, and the plan ahead is skipped."""
    w = week
    escalate(w, TITLE, escalation_callback_at="2027-03-25T10:00:00.000Z")  # shows 10:30 today

    def not_needed(*_args: object, **_kw: object) -> None:
        raise AssertionError("next_due worked out while today's duty stands")

    monkeypatch.setattr(comms, "next_due", not_needed)
    w.clock.set(_z("2027-03-25T09:45"))  # the callback's window (09:30–10:30) is open
    result = comms.run(w.ctx)
    assert "escalations_failed" not in result.counts


def test_a_quiet_pass_reads_each_escalations_lists_once(
    week: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass over 10 000 open escalations made eleven store queries for each (its duties
    three times, its parking periods three, its level changes twice): 3 s of CPU. A pass that
    writes nothing reads each list once."""
    w = week
    for title in (TITLE, ENTERPRISE_TITLE):
        escalate(w, title, escalation_callback_at=None)
    comms.run(w.ctx)  # whatever the plan stores now is stored: the next pass is quiet
    reads: list[tuple[str, int]] = []
    for name in ("duties", "parking_periods", "level_changes"):
        real = getattr(w.store, name)

        def counting(
            escalation_id: int, *a: Any, _real: Any = real, _name: str = name, **k: Any
        ) -> Any:
            reads.append((_name, escalation_id))
            return _real(escalation_id, *a, **k)

        monkeypatch.setattr(w.store, name, counting)
    result = comms.run(w.ctx)
    assert not result.counts, result.counts  # nothing planned, reminded or shown
    assert len(reads) == 2 * 3, reads
    assert len(set(reads)) == len(reads), reads
