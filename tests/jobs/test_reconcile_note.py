"""``[report] note_on_ticket``: the nightly report's summary posted as an internal note on
the ticket the mappings name, once per day, through the effects executor."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import responses

from escalations.clock import FakeClock
from escalations.models import EffectState
from sandbox import ZammadSandbox
from tests.conftest import edited_mappings
from tests.jobs.conftest import World, make_world

MANAGERS = "Leased line flapping - end users affected"
"""The demo ticket the managers are said to watch."""


def _demo_id(title: str) -> int:
    return next(i for i, t in ZammadSandbox.demo().tickets.items() if t["title"] == title)


def _notes(world: World, ticket_id: int) -> list[dict[str, object]]:
    return [
        a
        for a in world.sandbox.articles_of(ticket_id)
        if "Escalations reconciliation report" in str(a["body"])
    ]


def test_the_nightly_summary_is_posted_once_a_day_as_an_internal_note(tmp_path: Path) -> None:
    managers = _demo_id(MANAGERS)
    mappings = edited_mappings(
        tmp_path, "process.toml", 'at = "06:00"', f'at = "06:00"\nnote_on_ticket = {managers}'
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = make_world(tmp_path, FakeClock(), rsps, mappings)
        try:
            world.sync()
            world.sync()
            (posted,) = _notes(world, managers)
            assert posted["internal"] is True
            body = str(posted["body"])
            assert "Escalations reconciliation report 2026-12-01" in body
            assert str(world.ctx.settings.reports_path / "2026-12-01" / "report.html") in body
            assert "escalations and" in body
            for _ in range(3):  # later passes that day post nothing more
                world.sync(advance=timedelta(hours=2))
            assert len(_notes(world, managers)) == 1
            world.clock.advance(timedelta(days=1))
            world.sync()
            world.sync()
            assert len(_notes(world, managers)) == 2
            assert "report 2026-12-02" in str(_notes(world, managers)[-1]["body"])
        finally:
            world.store.close()


def test_without_the_setting_no_note_is_posted(world: World) -> None:
    world.sync()
    world.sync()
    assert (world.ctx.settings.reports_path / "2026-12-01" / "report.html").exists()
    assert not any(_notes(world, t) for t in world.sandbox.tickets)


def test_a_note_ticket_that_does_not_exist_fails_once_and_the_next_report_lists_it(
    tmp_path: Path,
) -> None:
    mappings = edited_mappings(
        tmp_path, "process.toml", 'at = "06:00"', 'at = "06:00"\nnote_on_ticket = 99999'
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        world = make_world(tmp_path, FakeClock(), rsps, mappings)
        try:
            world.sync()
            world.sync()
            (failed,) = world.store.effects(EffectState.FAILED)
            assert failed.key.startswith("report")
            world.clock.advance(timedelta(days=1))
            world.sync()
            report = json.loads(
                (world.ctx.settings.reports_path / "2026-12-02" / "report.json").read_text()
            )
            listed = [f for f in report["findings"] if f["kind"] == "effect_failed"]
            assert len(listed) == 1
            assert "report" in listed[0]["detail"]
        finally:
            world.store.close()
