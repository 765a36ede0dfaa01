"""A marked write that Zammad applied but whose 2xx answer cannot be read (an empty body, a
proxy's page, a JSON object without the id) must be looked for by its marker before it is
sent again. The adapter raised a TransientError without a status for it, which the executor
takes as "nothing was applied": it handed the attempt back and wrote again without looking
(two notes on the original, three copies of one email). Found in the review of issue 15."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from connector.http import HttpClient
from escalations.effects.helpdesk import UPDATE_WITH_NOTE
from tests.jobs.conftest import World

TITLE = "Broadband down since Monday"


def _notes_on(world: World, ticket_id: int) -> list[dict[str, Any]]:
    return [a for a in world.sandbox.articles_of(ticket_id) if a["subject"] == "Escalated"]


def _garble_once(
    monkeypatch: pytest.MonkeyPatch, name: str, wanted: Callable[[str, Any], bool]
) -> list[str]:
    """The first call of ``HttpClient.<name>`` that ``wanted`` picks is applied by the
    sandbox, but its answer reaches the adapter as ``{}``."""
    real = getattr(HttpClient, name)
    garbled: list[str] = []

    def call(self: HttpClient, path: str, *args: Any, **kwargs: Any) -> Any:
        out = real(self, path, *args, **kwargs)
        if not garbled and wanted(path, kwargs):
            garbled.append(path)
            return {}
        return out

    monkeypatch.setattr(HttpClient, name, call)
    return garbled


def test_an_update_with_its_note_applied_but_unreadable_is_looked_for(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.twice = False
    original = world.ticket_by_title(TITLE)
    garbled = _garble_once(monkeypatch, "put_json", lambda _p, kw: kw.get("idempotent") is False)
    world.flag(original)
    world.sync()
    assert garbled
    (effect,) = [e for e in world.store.effects() if e.kind == UPDATE_WITH_NOTE]
    assert effect.state.value == "in_flight"  # ambiguous: the next attempt looks first
    world.sync(advance=timedelta(minutes=10))
    world.sync(advance=timedelta(minutes=10))
    assert len(_notes_on(world, original)) == 1


def test_a_copy_applied_but_unreadable_is_looked_for(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.twice = False
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    world.sync(advance=timedelta(minutes=10))
    garbled = _garble_once(monkeypatch, "post_json", lambda p, _kw: p == "/api/v1/ticket_articles")
    world.sandbox.seed_customer_email(
        original, "Probe 7731: the line is still dead.", subject="Re: down"
    )
    for _ in range(3):
        world.sync(advance=timedelta(minutes=10))
    assert garbled
    esc = world.the_escalation_ticket()
    assert (
        len(
            [
                a
                for a in world.copies_in(esc["id"])
                if "Probe 7731: the line is still dead." in a["body"]
            ]
        )
        == 1
    )


def test_a_create_applied_but_unreadable_is_looked_for(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.twice = False
    original = world.ticket_by_title(TITLE)
    garbled = _garble_once(monkeypatch, "post_json", lambda p, _kw: p == "/api/v1/tickets")
    world.flag(original)
    for _ in range(3):
        world.sync(advance=timedelta(minutes=10))
    assert garbled
    escalation_tickets = [t for t in world.escalation_tickets() if TITLE in t["title"]]
    assert len(escalation_tickets) == 1
