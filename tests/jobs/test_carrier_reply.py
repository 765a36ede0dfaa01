"""The reply to a carrier-contact note the worker cannot read in full (issue 13 item 5): one
internal note on the same ticket, one line per detail to fix and how to resubmit, written
once per note however many passes, restarts and crashes come between."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from escalations.app.wiring import build
from escalations.bindings.zammad.provision import as_html
from escalations.carrier import carrier_template
from escalations.faults import FaultPoints, RaiseAt, SimulatedCrash
from escalations.models import EffectState
from escalations.settings import Settings
from escalations.store.sqlite import SqliteStore
from tests.jobs.conftest import ALICE, BASE_URL, BOT, World

TITLE = "Broadband down since Monday"
UNREADABLE = "Carrier contact\nCarrier: BT\nStage: boss\nLocation: Glasgow\nTime of call: 25:99"
LINES = [
    "Stage: 'boss' is not one of agent, team leader, manager",
    "Time of call: '25:99' is not a time (write 14:05 or 2.05pm)",
    "Forename: missing",
]


def _escalate(world: World) -> int:
    world.flag(world.ticket_by_title(TITLE))
    world.sync()
    world.sync(advance=timedelta(minutes=1))  # the escalation's own writes settle
    return int(world.the_escalation_ticket()["id"])


def _replies(world: World, ticket_id: int) -> list[dict[str, Any]]:
    return [a for a in world.sandbox.articles_of(ticket_id) if "is incomplete" in a["body"]]


def _lines(reply: dict[str, Any]) -> list[str]:
    return [
        re.sub("<[^>]+>", "", item).replace("&#x27;", "'")
        for item in re.findall(r"<li>(.*?)</li>", reply["body"])
    ]


def _restart(world: World, tmp_path: Path, faults: FaultPoints | None = None) -> None:
    """A new worker process on the same store file and the same helpdesk."""
    world.store.close()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        helpdesk_url=BASE_URL,
        helpdesk_token=world.sandbox.token_of(BOT),
        state_dir=tmp_path,
    )
    store = SqliteStore(tmp_path / "escalations.sqlite3", world.clock)
    world.installation = build(
        settings,
        world.clock,
        adapter=world.ctx.adapter,
        store=store,
        mappings=world.ctx.mappings,
        faults=faults,
    )
    store.acquire_lock(worker=world.installation.executor.worker_id)  # as the CLI's run does


def test_an_unreadable_note_gets_one_reply_saying_what_to_fix(world: World) -> None:
    esc = _escalate(world)
    note_id = world.sandbox.agent_article(esc, ALICE, UNREADABLE)
    world.sync()  # and the fixture's second pass at the same instant writes nothing
    for _ in range(3):
        world.sync(advance=timedelta(minutes=5))
    (reply,) = _replies(world, esc)
    assert _lines(reply) == LINES
    assert reply["internal"] is True
    assert reply["ticket_id"] == esc
    assert "write a new internal note" in reply["body"]
    assert "first line must be <b>Carrier contact</b>" in reply["body"]
    (contact,) = world.store.carrier_contacts(world.store.escalation_by_ticket(esc).id)  # type: ignore[union-attr]
    assert contact.source_article_id == note_id
    assert not contact.complete
    assert not world.store.effects(EffectState.PENDING, EffectState.FAILED)


def test_each_unreadable_note_gets_its_own_reply_and_a_readable_one_none(world: World) -> None:
    esc = _escalate(world)
    sb = world.sandbox
    sb.agent_article(esc, ALICE, UNREADABLE)
    sb.agent_article(esc, ALICE, "Carrier contact\nCarrier: BT\nForename: Dave")
    world.sync()
    sb.agent_article(
        esc, ALICE, "Carrier contact\nCarrier: BT\nStage: Team Leader\nForename: Dave\n"
        "Location: Glasgow\nTime of call: 2.05pm",
    )  # fmt: skip
    world.sync()
    world.sync(advance=timedelta(minutes=5))
    replies = _replies(world, esc)
    assert [_lines(r) for r in replies] == [
        LINES,
        ["Stage: missing", "Location: missing", "Time of call: missing"],
    ]
    contacts = world.store.carrier_contacts(world.store.escalation_by_ticket(esc).id)  # type: ignore[union-attr]
    assert [c.complete for c in contacts] == [False, False, True]


def test_the_template_pasted_unfilled_gets_a_reply_naming_every_missing_detail(
    world: World,
) -> None:
    esc = _escalate(world)
    template = carrier_template(world.ctx.mappings)
    world.sandbox.agent_article(esc, ALICE, as_html(template), content_type="text/html")
    world.sync()
    (reply,) = _replies(world, esc)
    assert _lines(reply) == [
        "Carrier: missing",
        "Stage: missing",
        "Forename: missing",
        "Location: missing",
        "Time of call: missing",
    ]


def test_the_template_filled_in_as_the_text_module_gives_it_needs_no_reply(
    world: World,
) -> None:
    esc = _escalate(world)
    values = iter(["BT", "manager", "Priya", "Leeds", "", "2pm"])
    filled = "\n".join(
        re.sub(r"\((.*)\)$", lambda m: next(values) or m.group(0), line) if ": (" in line else line
        for line in carrier_template(world.ctx.mappings).splitlines()
    )
    world.clock.set(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    world.sandbox.agent_article(esc, ALICE, as_html(filled), content_type="text/html")
    world.sync()
    assert _replies(world, esc) == []
    (contact,) = world.store.carrier_contacts(world.store.escalation_by_ticket(esc).id)  # type: ignore[union-attr]
    assert contact.complete
    assert (contact.stage, contact.user_id) == ("manager", None)
    assert contact.called_at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_a_restart_does_not_write_the_reply_again(world: World, tmp_path: Path) -> None:
    esc = _escalate(world)
    world.sandbox.agent_article(esc, ALICE, UNREADABLE)
    world.sync()
    _restart(world, tmp_path)
    for _ in range(2):
        world.sync(advance=timedelta(minutes=5))
    assert len(_replies(world, esc)) == 1


@pytest.mark.parametrize(
    ("point", "posted"),
    [
        ("intent.committed", 0),  # the contact and the reply's intent recorded, not sent
        ("effect.claimed", 0),
        ("effect.sent", 1),  # posted, the answer never recorded: found again by its marker
        ("effect.committed", 1),
    ],
)
def test_a_crash_around_the_reply_leaves_exactly_one(
    world: World, tmp_path: Path, point: str, posted: int
) -> None:
    esc = _escalate(world)
    world.sandbox.agent_article(esc, ALICE, UNREADABLE)
    _restart(world, tmp_path, RaiseAt(point, "note"))
    world.clock.advance(timedelta(seconds=30))
    with pytest.raises(SimulatedCrash):
        list(world.worker.run_once())
    assert len(_replies(world, esc)) == posted
    _restart(world, tmp_path)
    for _ in range(4):
        world.sync(advance=timedelta(minutes=3))
    (reply,) = _replies(world, esc)
    assert _lines(reply) == LINES
    assert not world.store.effects(EffectState.PENDING, EffectState.FAILED)
