"""Whom the notes credit (issue 10 item 10), end to end through the sandbox and the real
adapter: the agent the ticket's history names for the flag, the level or the failed carrier
route — not the ticket's last editor, which a tag write does not change — and the ticket's
owner, said so in the note, when the history cannot be read or names no agent."""

from __future__ import annotations

import html
import logging
from datetime import timedelta

import pytest

from connector.base import Capability
from sandbox import ServerError
from tests.jobs.conftest import ALICE, BOB, BOT, World

TITLE = "Broadband down since Monday"
HISTORY = "GET /api/v1/ticket_history/"
UNREAD = "(the ticket's owner; the helpdesk's history could not be read)"


def _history_reads(world: World, since: int = 0) -> int:
    return sum(1 for call in world.http_calls()[since:] if call.startswith(HISTORY))


def _escalated(world: World) -> dict:
    world.flag(world.ticket_by_title(TITLE))
    world.sync()
    world.sync()
    return world.the_escalation_ticket()


def _handover(world: World, ticket_id: int) -> str:
    (note,) = [
        a["body"]
        for a in world.sandbox.articles_of(ticket_id)
        if "Carrier route failed" in a["body"]
    ]
    return html.unescape(note)


def _opened(world: World) -> str:
    first = world.sandbox.articles_of(world.the_escalation_ticket()["id"])[0]["body"]
    return html.unescape(first.split("Flagged by:</b> ")[1].split("<br>")[0])


def test_the_hand_over_names_the_agent_who_marked_the_route_failed(world: World) -> None:
    esc = _escalated(world)
    assert world.sandbox.ticket(esc["id"])["updated_by"] == BOT  # the bot edited it last
    world.sandbox.add_tag(esc["id"], "carrier-route-failed", login=BOB)
    assert world.sandbox.ticket(esc["id"])["updated_by"] == BOT  # a tag write leaves it
    calls = len(world.rsps.calls)
    world.sync()
    assert _history_reads(world, calls) == 1
    world.sync()
    note = _handover(world, esc["id"])
    assert "(marked by Bob Agent at " in note
    assert "Escalation Bot" not in note
    assert _history_reads(world, calls) == 1  # read for the decision only


def test_the_level_note_and_record_name_who_set_the_level(world: World) -> None:
    esc = _escalated(world)
    sb = world.sandbox
    sb.agent_update(esc["id"], ALICE, escalation_level="2")
    world.clock.advance(timedelta(seconds=5))
    sb.agent_update(esc["id"], BOB, escalation_rfo="Fibre cut at the exchange")  # before the poll
    assert sb.ticket(esc["id"])["updated_by"] == BOB
    calls = len(world.rsps.calls)
    world.sync()
    assert _history_reads(world, calls) == 1
    (note,) = [a["body"] for a in sb.articles_of(esc["id"]) if "Level 2" in a["body"]]
    assert "by agent Alice Agent, reason" in note
    stored = world.store.escalation_by_ticket(esc["id"])
    assert stored is not None
    (change,) = world.store.level_changes(stored.id)
    assert change.changed_by_id == sb.user_id(ALICE)


def test_the_flag_tag_credits_the_agent_who_added_it(world: World) -> None:
    original = world.ticket_by_title(TITLE)
    sb = world.sandbox
    assert sb.ticket(original)["owner"] == ALICE
    assert sb.ticket(original)["updated_by"] != BOB
    sb.add_tag(original, "escalate", login=BOB)
    world.sync()
    assert _opened(world).startswith("Bob Agent, ")
    (esc,) = world.store.escalations_for_ticket(original)
    assert esc.flagged_by_id == sb.user_id(BOB)
    assert world.the_escalation_ticket()["owner"] == BOB  # level 1: the flagging agent owns
    assert _history_reads(world) == 1


def test_a_flag_a_rule_set_credits_the_owner_and_says_so(world: World) -> None:
    original = world.ticket_by_title(TITLE)
    world.sandbox.add_tag(original, "escalate")  # as a trigger would: by the system user
    world.sync()
    assert _opened(world).startswith(
        "Alice Agent (the ticket's owner; the helpdesk's history names no agent for it), "
    )


def test_a_refused_history_credits_the_owner_and_says_so(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    esc = _escalated(world)
    assert world.sandbox.ticket(esc["id"])["owner"] == ALICE  # level 1: the flagging agent
    world.sandbox.add_tag(esc["id"], "carrier-route-failed", login=BOB)
    world.sandbox.faults.add(ServerError(method="GET", path="/ticket_history/", status=403))
    caplog.set_level(logging.INFO)
    result = world.sync()
    world.sync()
    assert "tickets_failed" not in result.counts
    assert f"(marked by Alice Agent {UNREAD} at " in _handover(world, esc["id"])
    assert world.sandbox.ticket(esc["id"])["owner"] != ALICE  # handed over all the same
    unread = [r for r in caplog.records if r.getMessage().startswith("sync.history_unread")]
    assert len(unread) == 1
    assert "Forbidden" in unread[0].getMessage()


def test_an_unreachable_history_does_not_hold_back_the_escalation(world: World) -> None:
    original = world.ticket_by_title(TITLE)
    world.sandbox.faults.add(
        ServerError(method="GET", path="/ticket_history/", status=503, times=100)
    )
    world.flag(original, by=BOB)
    result = world.sync()
    world.sandbox.faults.clear()
    assert result.counts.get("escalations_flagged") == 1
    assert _opened(world).startswith(f"Alice Agent {UNREAD}, ")


def test_a_helpdesk_without_history_is_not_asked(world: World) -> None:
    adapter = world.ctx.adapter
    adapter.capabilities = frozenset(Capability) - {Capability.HISTORY}  # type: ignore[misc]
    world.flag(world.ticket_by_title(TITLE), by=BOB)
    world.sync()
    assert _history_reads(world) == 0
    assert _opened(world).startswith(f"Alice Agent {UNREAD}, ")
