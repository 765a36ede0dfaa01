"""End-to-end: the sync job against the sandbox, through the real Zammad adapter."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import responses

from escalations.clock import FakeClock
from escalations.errors import StoreConflict, StoreUnavailable
from escalations.mappings import load_mappings
from escalations.models import EffectState, State
from escalations.settings import shipped_mappings_dir
from escalations.store.base import LeaseLost
from escalations.workflow import apply
from jobs import sync
from tests.jobs.conftest import (
    ALICE,
    BOB,
    DUTY_MANAGER,
    LLOYD,
    PLACEHOLDER,
    RESIDENTIAL,
    World,
    make_world,
)

MARKER_LINE = re.compile(r"ref hde1-[0-9a-f]{16}")
TITLE = "Broadband down since Monday"


def _customer_messages(world: World, ticket_id: int) -> list[dict]:
    return [
        a
        for a in world.sandbox.articles_of(ticket_id)
        if a["sender"] == "Customer" and a["type"] in ("email", "web")
    ]


def _flag_and_sync(world: World) -> tuple[int, dict]:
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    return original, world.the_escalation_ticket()


# -- rule 1 and 2: one linked escalation ticket ------------------------------------------------


def test_flag_raises_exactly_one_linked_escalation_ticket(world: World) -> None:
    original, esc = _flag_and_sync(world)
    sb = world.sandbox
    assert esc["title"] == f"[ESC L1] {TITLE}"
    assert esc["group"] == "Escalations"
    assert esc["customer"] == PLACEHOLDER
    assert esc["owner"] == ALICE
    assert esc["escalation_level"] == "1"
    assert esc["escalation_reason"] == "outage_beyond_sla"
    assert esc["escalation_original"] == sb.ticket(original)["number"]
    assert set(sb.tags_of(esc["id"])) == {"escalation", "escalation-l1"}
    # the original is the parent: seen from the escalation ticket, the original is its parent
    assert {"link_type": "parent", "link_object": "Ticket", "link_object_value": original} in (
        sb.links_of(esc["id"])
    )
    first = sb.articles_of(esc["id"])[0]
    assert (first["type"], first["internal"], first["sender"]) == ("note", True, "Agent")
    assert MARKER_LINE.search(first["body"])
    assert "Alice" in first["body"]
    assert "15:00 Europe/London" in first["body"]  # the agreed callback, local time
    # the original: tagged, noted with the escalation number, flag consumed
    assert "escalated" in sb.tags_of(original)
    assert not sb.ticket(original)["escalation_requested"]
    notes = [a for a in sb.articles_of(original) if a["sender"] == "Agent"]
    assert any(f"#{esc['number']}" in a["body"] and a["internal"] for a in notes)
    stored = world.store.escalation_by_ticket(esc["id"])
    assert stored is not None
    assert stored.state is State.OPEN
    assert stored.level == 1


def test_history_is_copied_at_flag_time_in_order(world: World) -> None:
    original, esc = _flag_and_sync(world)
    sources = _customer_messages(world, original)
    copies = world.copies_in(esc["id"])
    assert len(sources) >= 1
    assert len(copies) == len(sources)
    for source, copy in zip(sources, copies, strict=True):
        assert (copy["type"], copy["internal"], copy["sender"]) == ("note", True, "Agent")
        assert MARKER_LINE.search(copy["body"])
        assert source["from"].replace("<", "&lt;").replace(">", "&gt;") in copy["body"]
        assert not copy.get("message_id") or copy["message_id"] != source["message_id"]


def test_a_later_email_is_copied_within_one_poll(world: World) -> None:
    original, esc = _flag_and_sync(world)
    before = len(world.copies_in(esc["id"]))
    world.sandbox.seed_customer_email(
        original,
        "The engineer did not turn up.",
        subject="Re: broadband down",
        attachments=[("photo.txt", "text/plain", b"router lights all red")],
    )
    world.sync()
    copies = world.copies_in(esc["id"])
    assert len(copies) == before + 1
    assert "The engineer did not turn up." in copies[-1]["body"]
    assert [a["filename"] for a in copies[-1]["attachments"]] == ["photo.txt"]
    source = _customer_messages(world, original)[-1]
    assert source["message_id"]
    assert all(a.get("message_id") != source["message_id"] for a in copies)
    attachment = copies[-1]["attachments"][0]
    assert world.sandbox.attachment_data(copies[-1]["id"], attachment["id"]) == (
        b"router lights all red"
    )


@pytest.mark.parametrize("minutes", [-5, 5, -90])
def test_a_helpdesk_clock_behind_or_ahead_loses_no_mail(
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    minutes: int,
) -> None:
    """Issue 10 #3: with Zammad's clock 5 minutes behind the worker's, 0 of 3 mails were
    copied and nothing was logged (the signpost was the worker's time, past every later
    stamp). The signpost is now in the helpdesk's time (its Date header), and the skew is
    logged once."""
    caplog.set_level(logging.INFO)
    offset = timedelta(minutes=minutes)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = make_world(tmp_path, clock, rsps, None, helpdesk_clock_offset=offset)
        original, esc = _flag_and_sync(world)
        before = len(world.copies_in(esc["id"]))
        for n in range(3):
            world.sandbox.seed_customer_email(original, f"Still down, message {n}.")
            world.sync()
        bodies = [c["body"] for c in world.copies_in(esc["id"])]
        assert len(bodies) == before + 3
        assert all(any(f"message {n}." in b for b in bodies) for n in range(3))
        world.store.close()
    warnings = [r for r in caplog.records if r.getMessage().startswith("sync.clock_skew ")]
    assert len(warnings) == 1  # once, not every pass
    assert f"seconds={minutes * 60:+d}" in warnings[0].getMessage()
    assert ("behind" if minutes < 0 else "ahead of") in warnings[0].getMessage()


def test_clocks_that_agree_log_no_skew(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _flag_and_sync(world)
    world.sync()
    assert world.ctx.adapter.clock_offset() == timedelta(0)
    assert not [r for r in caplog.records if "clock_skew" in r.getMessage()]


def test_a_new_ticket_from_the_same_customer_is_copied(world: World) -> None:
    _, esc = _flag_and_sync(world)
    before = len(world.copies_in(esc["id"]))
    world.clock.advance(timedelta(minutes=5))
    world.sandbox.create_ticket_as_customer(
        RESIDENTIAL, "Still no broadband", "Day three without internet.", subject="Complaint"
    )
    world.sync()
    copies = world.copies_in(esc["id"])
    assert len(copies) == before + 1
    assert "Day three without internet." in copies[-1]["body"]


def test_a_second_pass_requests_no_new_effects(world: World) -> None:
    _flag_and_sync(world)
    world.sync()
    effects_before = len(world.store.effects(*EffectState))
    world.sync()
    assert len(world.store.effects(*EffectState)) == effects_before


def test_every_kind_of_write_is_re_entrant(world: World) -> None:
    """STYLE.md rule 23 for each thing the sync job writes: right after the pass that does
    a step's writes, another pass requests no effect and writes nothing to the helpdesk
    (the echoes of our own writes included)."""
    sb = world.sandbox
    original = world.ticket_by_title(TITLE)
    esc: dict = {}

    def flag() -> None:
        world.flag(original)

    def customer_email() -> None:
        sb.seed_customer_email(original, "Still nothing.", subject="Re: broadband down")

    def new_ticket_from_the_customer() -> None:
        sb.create_ticket_as_customer(RESIDENTIAL, "Phone line too", "And the phone is dead.")

    def level(n: int, by: str) -> Callable[[], None]:
        return lambda: sb.agent_update(esc["id"], by, escalation_level=str(n)) and None

    def carrier_note() -> None:
        sb.agent_article(esc["id"], ALICE, "Carrier contact\nCarrier: BT\nStage: agent")

    def carrier_route_failed() -> None:
        sb.add_tag(esc["id"], "carrier-route-failed", login=ALICE)

    def flag_again() -> None:
        world.flag(original, by=BOB)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("flag", flag),
        ("customer email", customer_email),
        ("new ticket from the customer", new_ticket_from_the_customer),
        ("level 2", level(2, ALICE)),
        ("level 3", level(3, DUTY_MANAGER)),
        ("carrier note", carrier_note),
        ("carrier route failed", carrier_route_failed),
        ("flagged again", flag_again),
    ]

    def writes_since(calls: int) -> list[str]:
        return [
            call
            for call in world.http_calls()[calls:]
            if not call.startswith("GET ") and call != "POST /api/v1/tickets/search"
        ]

    for name, step in steps:
        step()
        calls = len(world.rsps.calls)
        world.sync()
        assert writes_since(calls), f"{name}: the first pass wrote nothing"
        if not esc:
            esc.update(world.the_escalation_ticket())
        effects = len(world.store.effects(*EffectState))
        calls = len(world.rsps.calls)
        second = world.sync()
        assert len(world.store.effects(*EffectState)) == effects, name
        assert writes_since(calls) == [], name
        assert not {k for k, v in second.counts.items() if v and k.startswith("effects_")}, name
    assert len(world.escalation_tickets()) == 1
    assert not world.store.effects(EffectState.PENDING, EffectState.FAILED)


def test_hostile_html_is_cleaned(world: World) -> None:
    original, esc = _flag_and_sync(world)
    world.sandbox.seed_customer_email(
        original,
        '<p onclick="steal()">Hi <script>alert(1)</script><a data-mention-user-id="7" '
        'href="javascript:x()">boss</a><img src="https://tracker.example/p.gif"></p>',
        subject="Re: x",
        content_type="text/html",
    )
    world.sync()
    body = world.copies_in(esc["id"])[-1]["body"].lower()
    assert "<script" not in body
    assert "onclick" not in body
    assert "javascript:" not in body
    assert "data-mention-user-id" not in body
    assert "tracker.example" not in body
    assert "[image removed]" in body
    # and nobody was subscribed through the customer's anchor
    assert 7 not in world.sandbox.subscribers_of(esc["id"])


def test_an_oversized_attachment_is_replaced_by_its_note(
    tmp_path: object, clock: FakeClock
) -> None:
    mappings = load_mappings(shipped_mappings_dir())
    small = mappings.helpdesk.model_copy(
        update={"limits": mappings.helpdesk.limits.model_copy(update={"attachment_max_bytes": 100})}
    )
    mappings = type(mappings)(
        profile=mappings.profile, helpdesk=small, directory=mappings.directory
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = make_world(tmp_path, clock, rsps, mappings)  # type: ignore[arg-type]
        original, esc = _flag_and_sync(world)
        big = b"x" * 5000
        world.sandbox.seed_customer_email(
            original,
            "See the logs.",
            subject="Re: logs",
            attachments=[
                ("big.log", "text/plain", big),
                ("small.txt", "text/plain", b"ok"),
            ],
        )
        world.sync()
        copy = world.copies_in(esc["id"])[-1]
        assert [a["filename"] for a in copy["attachments"]] == ["small.txt"]
        import hashlib

        assert "big.log" in copy["body"]
        assert "5,000 bytes" in copy["body"]
        assert hashlib.sha256(big).hexdigest() in copy["body"]
        world.store.close()


# -- flags again, and after close ----------------------------------------------------------------


def test_a_second_flag_while_open_is_noted_not_raised(world: World) -> None:
    original, esc = _flag_and_sync(world)
    world.sync()
    world.flag(original, by=BOB)
    world.sync()
    world.sync()
    assert len(world.escalation_tickets()) == 1
    notes = [a for a in world.sandbox.articles_of(esc["id"]) if "Flagged again" in a["body"]]
    assert len(notes) == 1
    assert "Bob" in notes[0]["body"]
    assert not world.sandbox.ticket(original)["escalation_requested"]


def test_a_flag_raised_again_while_the_tag_write_is_retried_is_not_swallowed(
    world: World,
) -> None:
    """Found by the model test: the first flag's field is consumed, but its tag write got a 500
    after Zammad applied it (so its retry finds nothing to change and bumps nothing). Bob
    flags again meanwhile: a flag the pending tag write will not clear is a new flag."""
    from sandbox import ServerError

    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sandbox.faults.add(
        ServerError(method="POST", path="^/api/v1/tags/add$", status=500, apply=True)
    )
    world.sync()
    esc = world.the_escalation_ticket()
    assert not world.sandbox.ticket(original)["escalation_requested"]
    assert [e.key for e in world.store.effects(EffectState.PENDING)] == [
        "original-tags:zammad:ticket:1:1"
    ]
    world.clock.advance(timedelta(seconds=1))
    world.flag(original, by=BOB)
    for _ in range(3):
        world.sync()
    notes = [a for a in world.sandbox.articles_of(esc["id"]) if "Flagged again" in a["body"]]
    assert len(notes) == 1
    assert "Bob" in notes[0]["body"]
    assert not world.sandbox.ticket(original)["escalation_requested"]
    assert not world.store.effects(EffectState.PENDING, EffectState.FAILED)


def test_a_flag_tag_seen_again_while_its_removal_is_retried_is_noted_once(world: World) -> None:
    """The other way round: the tag flagged again, its removal is being retried when the
    customer's next email changes the ticket; the tag still showing is the same flag."""
    from sandbox import ServerError

    original, esc = _flag_and_sync(world)
    world.sync()
    world.sandbox.add_tag(original, "escalate", login=BOB)
    world.sandbox.faults.add(ServerError(method="DELETE", path="^/api/v1/tags/remove$", status=500))
    world.sync()
    assert [e.key.split(":")[0] for e in world.store.effects(EffectState.PENDING)] == [
        "consume-flag-tag"
    ]
    world.sandbox.seed_customer_email(original, "Any news?", subject="Re: x")
    for _ in range(3):
        world.sync()
    notes = [a for a in world.sandbox.articles_of(esc["id"]) if "Flagged again" in a["body"]]
    assert len(notes) == 1
    assert "escalate" not in world.sandbox.tags_of(original)


def test_a_new_flag_after_the_escalation_closed_raises_a_new_ticket(world: World) -> None:
    original, esc = _flag_and_sync(world)
    world.sync()
    stored = world.store.escalation_by_ticket(esc["id"])
    assert stored is not None
    now = world.clock.now()
    closed = stored
    for event in ("resolve", "park", "confirm", "close"):
        closed = apply(closed, event, now)
    with world.store.transaction() as tx:
        world.store.update_escalation(tx, closed)
    world.flag(original)
    world.sync()
    tickets = world.escalation_tickets()
    assert len(tickets) == 2
    assert {t["escalation_key"] for t in tickets} == {
        f"zammad:ticket:{original}:1",
        f"zammad:ticket:{original}:2",
    }


# -- rule 4: levels ------------------------------------------------------------------------------


def test_level_2_takes_ownership_and_level_3_subscribes_its_executive(world: World) -> None:
    _, esc = _flag_and_sync(world)
    sb = world.sandbox
    world.clock.advance(timedelta(minutes=10))
    sb.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    ticket = sb.ticket(esc["id"])
    assert ticket["owner"] == DUTY_MANAGER
    assert ticket["title"] == f"[ESC L2] {TITLE}"
    assert set(sb.tags_of(esc["id"])) == {"escalation", "escalation-l2"}
    note = [a for a in sb.articles_of(esc["id"]) if "Level 2" in a["body"]]
    assert len(note) == 1
    assert note[0]["internal"]
    assert re.search(r"Level 2 – Escalation Owner</b>.* \d\d:\d\d Europe/London", note[0]["body"])
    assert "<b>Owner:</b> Jane Doe (SMC Manager or Duty Manager)" in note[0]["body"]
    assert "by agent Alice" in note[0]["body"]

    sb.agent_update(esc["id"], DUTY_MANAGER, escalation_level="3")
    world.sync()
    ticket = sb.ticket(esc["id"])
    assert ticket["owner"] == DUTY_MANAGER  # level 3 keeps the level-2 owner
    assert ticket["title"] == f"[ESC L3] {TITLE}"
    assert set(sb.tags_of(esc["id"])) == {"escalation", "escalation-l3"}
    assert sb.user_id(LLOYD) in sb.subscribers_of(esc["id"])
    (level3,) = [a for a in sb.articles_of(esc["id"]) if "Level 3" in a["body"]]
    # issue 10 item 11: the owner and the level's executives, each under their own role
    assert "<b>Owner:</b> Jane Doe (SMC Manager or Duty Manager)" in level3["body"]
    assert "Head of Service Management Jane Doe" not in level3["body"]
    assert re.search(
        r"Subscribed:</b> .*<a [^>]*>Lloyd Foley</a> \(Head of Service Management", level3["body"]
    )
    assert re.search(r"<a [^>]*>Jane Doe</a> \(SMC Manager or Duty Manager\)", level3["body"])
    changes = world.store.level_changes(world.store.escalation_by_ticket(esc["id"]).id)  # type: ignore[union-attr]
    assert [(c.from_level, c.to_level) for c in changes] == [(1, 2), (2, 3)]


def test_level_changes_come_only_from_agents(world: World) -> None:
    _, esc = _flag_and_sync(world)
    for _ in range(3):
        world.sync()
    assert world.sandbox.ticket(esc["id"])["escalation_level"] == "1"
    assert world.store.level_changes(world.store.escalation_by_ticket(esc["id"]).id) == []  # type: ignore[union-attr]


# (rule 5, the carrier log and the hand-over: tests/behaviour/test_escalation.py)


# -- the echo of the worker's own writes (known_article) -----------------------------------------

CARRIER_NOTE = (
    "Carrier contact\nCarrier: BT\nStage: agent\nForename: Dave\nLocation: Glasgow\n"
    "User ID: BT-4411\nTime of call: 09:40"
)


def _settled_escalation(world: World) -> tuple[int, int, int]:
    """An open escalation whose echoes have passed: (original, escalation ticket, id)."""
    world.twice = False  # each pass here is one tick; nothing may run in between
    original, esc = _flag_and_sync(world)
    world.sync()
    world.sync()
    stored = world.store.escalation_by_ticket(esc["id"])
    assert stored is not None
    return original, esc["id"], stored.id


def test_an_agent_note_in_the_instant_of_the_workers_own_copy_is_read(world: World) -> None:
    """The copy and an agent's carrier note stamp the escalation ticket with the same
    ``updated_at`` (the clock stands still): the note's article id is not one the worker
    knows, so the next pass lists the ticket and records the contact."""
    original, esc_ticket, esc_id = _settled_escalation(world)
    sb = world.sandbox
    sb.seed_customer_email(original, "Still down.", subject="Re: broadband down")
    world.sync()
    assert len(world.copies_in(esc_ticket)) == 2  # the history copy and this one
    copied_at = sb.ticket(esc_ticket)["updated_at"]
    sb.agent_article(esc_ticket, ALICE, CARRIER_NOTE)
    assert sb.ticket(esc_ticket)["updated_at"] == copied_at  # the same instant
    world.sync()
    assert [c.carrier for c in world.store.carrier_contacts(esc_id)] == ["BT"]


def test_an_agent_note_between_the_poll_and_the_workers_own_copy_is_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note lands after the poll read the escalation ticket and before the worker's
    copy goes in, so the copy's write covers it in ``updated_at``: still read."""
    original, esc_ticket, esc_id = _settled_escalation(world)
    sb = world.sandbox
    adapter = world.ctx.adapter
    listed = adapter.list_articles

    def list_then_note(ticket_id: int) -> list:
        if ticket_id == original and not world.store.carrier_contacts(esc_id):
            sb.agent_article(esc_ticket, ALICE, CARRIER_NOTE)  # during the copy job
        return listed(ticket_id)

    monkeypatch.setattr(adapter, "list_articles", list_then_note)
    sb.seed_customer_email(original, "Still down.", subject="Re: broadband down")
    world.sync()
    assert len(world.copies_in(esc_ticket)) == 2
    assert world.store.carrier_contacts(esc_id) == []  # the poll came before the note
    world.sync()
    assert [c.carrier for c in world.store.carrier_contacts(esc_id)] == ["BT"]


def test_a_customer_email_in_the_instant_of_the_workers_own_note_is_copied(
    world: World,
) -> None:
    """The worker's own note on the original and the customer's email in the same instant:
    the email's id is not known, so the original is scanned and the email copied."""
    original, esc_ticket, _ = _settled_escalation(world)
    sb = world.sandbox
    sb.agent_update(original, ALICE, escalation_requested=True)  # flagged again: a note
    world.sync()
    noted_at = sb.ticket(original)["updated_at"]
    sb.seed_customer_email(original, "Any news?", subject="Re: broadband down")
    assert sb.ticket(original)["updated_at"] == noted_at  # the same instant
    world.sync()
    assert any("Any news?" in a["body"] for a in world.copies_in(esc_ticket))


# -- polling cost ------------------------------------------------------------------------------


def test_an_idle_poll_is_one_request(world: World) -> None:
    world.twice = False  # counts the requests of one pass
    _flag_and_sync(world)
    world.sync(advance=timedelta(minutes=10))  # echoes of our own writes settle
    world.sync(advance=timedelta(minutes=10))
    calls = len(world.rsps.calls)
    world.sync(advance=timedelta(seconds=30))  # (between the reach checks of jobs.sync.reach)
    assert [c.request.method + " " + c.request.path_url for c in world.rsps.calls[calls:]] == [
        "POST /api/v1/tickets/search"
    ]


@pytest.mark.parametrize("field_value", [True, "true"])
def test_flag_values_the_macro_may_set(world: World, field_value: object) -> None:
    original = world.ticket_by_title(TITLE)
    world.flag(original, escalation_requested=field_value)
    world.sync()
    assert len(world.escalation_tickets()) == 1


def test_the_flag_tag_alone_raises_an_escalation(world: World) -> None:
    original = world.ticket_by_title(TITLE)
    world.sandbox.add_tag(original, "escalate", login=ALICE)
    world.sync()
    world.the_escalation_ticket()
    world.sync()
    assert "escalate" not in world.sandbox.tags_of(original)


def test_polling_survives_the_clock_stepping_back(world: World) -> None:
    """An NTP step back (or a pass run with ``--at`` in the future) leaves the stored cursor
    ahead of the new signpost: the poll starts from the signpost instead (re-reading is
    absorbed) rather than failing every pass until the clock catches up."""
    original, esc = _flag_and_sync(world)
    world.sync()
    before = world.clock.now()
    world.clock.set(before - timedelta(minutes=10))
    result = world.sync()
    assert "effects_failed" not in {k for k, v in result.counts.items() if v}
    cursor = world.store.get_cursor("zammad.tickets")
    assert cursor is not None
    assert cursor.value <= world.clock.now()
    world.clock.set(before + timedelta(minutes=1))
    world.sandbox.seed_customer_email(original, "Sent after the step back.", subject="Re: x")
    world.sync()
    assert "Sent after the step back." in world.copies_in(esc["id"])[-1]["body"]


def test_a_copy_refused_for_good_does_not_hold_back_later_ones(world: World) -> None:
    from sandbox import ServerError

    original, esc = _flag_and_sync(world)
    world.sandbox.faults.add(
        ServerError(method="POST", path="/api/v1/ticket_articles", times=1, status=422)
    )
    world.sandbox.seed_customer_email(original, "This one is refused.", subject="Re: 1")
    world.sync()
    failed = world.store.effects(EffectState.FAILED)
    assert [e.kind for e in failed] == ["copy_article"]
    world.sandbox.seed_customer_email(original, "This one must still arrive.", subject="Re: 2")
    world.sync()
    assert "This one must still arrive." in world.copies_in(esc["id"])[-1]["body"]


def test_a_customer_email_before_the_poll_does_not_make_the_customer_the_flagger(
    world: World,
) -> None:
    original = world.ticket_by_title(TITLE)
    world.flag(original, by=BOB)
    world.sandbox.seed_customer_email(original, "Are you escalating?", subject="Re: x")
    world.sync()
    first = world.sandbox.articles_of(world.the_escalation_ticket()["id"])[0]["body"]
    flagged_by = first.split("Flagged by:")[1].split("<br>")[0]
    assert "Sean" not in flagged_by
    # the ticket's history names Bob, who flagged; not its owner (Alice) standing in for him
    assert "Bob Agent, " in flagged_by
    assert "owner" not in flagged_by


# -- one bad thing must not stop everything (found in review) ------------------------------------


def test_a_carrier_note_without_carrier_or_stage_does_not_stop_the_job(world: World) -> None:
    original, esc = _flag_and_sync(world)
    world.sandbox.agent_article(esc["id"], ALICE, "Carrier contact\nForename: Dave")
    world.sync()
    world.sandbox.seed_customer_email(original, "Is anyone there?", subject="Re: x")
    result = world.sync()
    assert "tickets_failed" not in result.counts
    assert "Is anyone there?" in world.copies_in(esc["id"])[-1]["body"]
    incomplete = [a for a in world.sandbox.articles_of(esc["id"]) if "is incomplete" in a["body"]]
    assert len(incomplete) == 1
    assert "Carrier" in incomplete[0]["body"]


def test_a_403_on_one_write_fails_that_write_and_the_worker_goes_on(world: World) -> None:
    from sandbox import ServerError

    original, esc = _flag_and_sync(world)
    world.sandbox.faults.add(
        ServerError(method="POST", path="/api/v1/ticket_articles", times=1, status=403)
    )
    world.sandbox.seed_customer_email(original, "First.", subject="Re: 1")
    world.sync()
    world.sandbox.seed_customer_email(original, "Second.", subject="Re: 2")
    world.sync()
    assert "Second." in world.copies_in(esc["id"])[-1]["body"]
    assert [e.kind for e in world.store.effects(EffectState.FAILED)] == ["copy_article"]


def test_a_ticket_that_cannot_be_read_is_held_and_retried(world: World) -> None:
    from sandbox import ServerError

    world.twice = False  # a repeated pass would retry the refused read at once
    original, esc = _flag_and_sync(world)
    world.sync()
    world.sandbox.seed_customer_email(original, "Held back.", subject="Re: held")
    world.sandbox.faults.add(
        ServerError(
            method="GET", path=f"/ticket_articles/by_ticket/{original}$", times=1, status=403
        )
    )
    other = world.ticket_by_title("HQ VPN outage")
    world.flag(other)
    first = world.sync()
    assert first.counts.get("escalations_flagged") == 1  # the other ticket went on
    second = world.sync()
    assert "Held back." in world.copies_in(esc["id"])[-1]["body"]
    assert "tickets_failed" not in second.counts


def test_a_retried_level_change_never_overwrites_a_later_one(world: World) -> None:
    from sandbox import ServerError

    _, esc = _flag_and_sync(world)
    sb = world.sandbox
    sb.agent_update(esc["id"], ALICE, escalation_level="2")
    sb.faults.add(ServerError(method="POST", path="/api/v1/tags/add", times=5, status=503))
    world.sync()  # the level-2 tag write fails for now and backs off
    sb.agent_update(esc["id"], DUTY_MANAGER, escalation_level="3")
    world.sync(advance=timedelta(seconds=1))  # level 3 arrives while level 2 is backing off
    for _ in range(3):
        world.sync(advance=timedelta(minutes=20))
    assert set(sb.tags_of(esc["id"])) == {"escalation", "escalation-l3"}
    assert sb.ticket(esc["id"])["title"] == f"[ESC L3] {TITLE}"


def test_a_refused_escalation_ticket_tells_the_agent_and_a_new_flag_tries_again(
    world: World,
) -> None:
    from sandbox import ServerError

    original = world.ticket_by_title(TITLE)
    world.sandbox.faults.add(
        ServerError(method="POST", path="/api/v1/tickets$", times=1, status=422)
    )
    world.flag(original)
    world.sync()
    assert world.escalation_tickets() == []
    note = [a for a in world.sandbox.articles_of(original) if "could not be raised" in a["body"]]
    assert len(note) == 1
    assert note[0]["internal"]
    assert not world.sandbox.ticket(original)["escalation_requested"]
    (abandoned,) = world.store.escalations_for_ticket(original)
    assert abandoned.state is State.CLOSED
    assert abandoned.opened_at is None

    world.flag(original)  # the admin fixed the cause; the agent runs the macro again
    world.sync()
    (ticket,) = world.escalation_tickets()
    assert ticket["escalation_key"] == f"zammad:ticket:{original}:2"


def test_unrelated_changes_cost_no_request_per_ticket(world: World) -> None:
    world.twice = False  # counts the requests of one pass
    world.sync()  # the first pass sees the demo tickets
    for n in range(5):
        world.sandbox.create_ticket_as_customer(
            f"customer{n}@elsewhere.example", f"Unrelated {n}", "hello"
        )
    calls = len(world.rsps.calls)
    world.sync()
    made = [
        f"{c.request.method} {(c.request.path_url or '').split('?')[0]}"
        for c in world.rsps.calls[calls:]
    ]
    # the poll, and one search for tickets carrying the flag tag: not one read per ticket
    assert made == ["POST /api/v1/tickets/search", "POST /api/v1/tickets/search"]


def test_an_owner_with_group_access_through_a_role_is_assigned(world: World) -> None:
    sb = world.sandbox
    jane = sb.user_record(DUTY_MANAGER)
    with sb.lock:
        jane.group_access.pop(sb.group_id("Escalations"))
    sb.add_role("Escalation owners", groups={"Escalations": ["full"]}, members=[DUTY_MANAGER])
    _, esc = _flag_and_sync(world)
    sb.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    assert sb.ticket(esc["id"])["owner"] == DUTY_MANAGER


def test_a_store_outage_or_a_lost_lease_stops_the_poll_for_the_worker(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store down or in conflict, or the lease gone to another worker, is not one
    ticket's failure: the poll stops (the cursor stays), the worker waits or hands over."""
    world.sync()
    world.flag(world.ticket_by_title("Broadband down since Monday"))
    for error in (
        StoreUnavailable("the server closed the connection"),
        StoreConflict("40001"),
        LeaseLost("lease:sync is held by another worker"),
    ):

        def down(*_args: object, error: Exception = error, **_kw: object) -> None:
            raise error

        monkeypatch.setattr(world.store, "note_ticket_seen", down)
        with pytest.raises(type(error)):
            sync.run(world.ctx)
