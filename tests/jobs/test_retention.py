"""Retention of the hard copies (issue 12 #5) over simulated time: purged 12 months after
the close, kept on legal hold (the tag on the ticket, or a local hold for a ticket that is
gone), kept when the worker's clock jumps ahead of the helpdesk's, and a purge interrupted
between its steps finished once."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from escalations import parking
from escalations.models import State
from jobs.retention import HOLDS
from tests.jobs.conftest import ALICE, SkewedClock, World

TITLE = "Broadband down since Monday"


def _archived(world: World) -> tuple[dict[str, Any], Path]:
    world.flag(world.ticket_by_title(TITLE))
    world.sync()
    esc = world.the_escalation_ticket()
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    world.sync()
    world.sandbox.add_tag(esc["id"], "escalation-confirmed", login=ALICE)
    world.sync()
    (copy,) = world.store.archives()
    assert Path(copy.path).is_dir()
    return esc, Path(copy.path)


def _months_after_close(world: World, months: int, extra: timedelta = timedelta(0)) -> None:
    (copy,) = world.store.archives()
    world.clock.set(parking.add_months(copy.closed_at, months) + extra)


def test_a_copy_is_purged_twelve_months_after_the_close_and_recorded(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    _, path = _archived(world)
    _months_after_close(world, 12, -timedelta(minutes=5))
    world.sync(advance=timedelta(0))
    assert path.is_dir()  # not a minute early
    caplog.set_level(logging.INFO)
    _months_after_close(world, 12, timedelta(minutes=1))
    world.sync(advance=timedelta(0))
    assert not path.exists()
    assert not list(path.parent.iterdir())  # nothing left under another name either
    (copy,) = world.store.archives()
    assert copy.purged_at is not None
    assert copy.purge_reason == "retention"
    (esc,) = world.store.escalations_in()
    assert esc.state is State.PURGED
    (line,) = [r.getMessage() for r in caplog.records if "archive.purged" in r.getMessage()]
    assert copy.manifest_sha256 in line


def test_the_legal_hold_tag_keeps_the_copy_until_it_is_removed(world: World) -> None:
    esc, path = _archived(world)
    world.sandbox.add_tag(esc["id"], "legal-hold", login=ALICE)
    _months_after_close(world, 13)
    world.sync(advance=timedelta(0))
    assert path.is_dir()
    world.sandbox.remove_tag(esc["id"], "legal-hold", login=ALICE)
    world.sync()
    assert not path.exists()


def test_a_local_hold_keeps_a_copy_whose_ticket_is_gone(world: World) -> None:
    esc, path = _archived(world)
    (stored,) = world.store.escalations_in()
    with world.store.transaction() as tx:
        world.store.set_meta(tx, HOLDS, {stored.key: "court order 2027/114"})
    world.sandbox.delete_ticket(esc["id"])
    _months_after_close(world, 13)
    world.sync(advance=timedelta(0))
    assert path.is_dir()
    with world.store.transaction() as tx:
        world.store.set_meta(tx, HOLDS, {})
    world.sync()
    assert not path.exists()


def test_a_clock_jump_ahead_of_the_helpdesk_purges_nothing(world: World) -> None:
    _, path = _archived(world)
    jump = timedelta(days=400)
    helpdesk = SkewedClock(world.clock, -jump)  # the helpdesk's clock stays where it was
    world.sandbox.clock = helpdesk
    world.sandbox.state.clock = helpdesk
    world.clock.advance(jump)
    world.sync(advance=timedelta(0))
    world.sync()
    assert path.is_dir()
    (copy,) = world.store.archives()
    assert copy.purged_at is None


def test_a_purge_interrupted_after_the_rename_is_finished_and_recorded_once(
    world: World,
) -> None:
    _, path = _archived(world)
    real = world.store.archive_purged

    def dies(*args: Any, **kwargs: Any) -> bool:
        raise KeyboardInterrupt  # the worker is killed before the purge is recorded

    world.store.archive_purged = dies  # type: ignore[method-assign]
    _months_after_close(world, 13)
    world.twice = False
    with pytest.raises(KeyboardInterrupt):
        world.sync(advance=timedelta(0))
    world.store.archive_purged = real  # type: ignore[method-assign]
    assert not path.exists()
    assert (path.parent / f".purging-{path.name}").is_dir()  # out of place, not yet gone
    world.sync()
    world.sync()
    assert list(path.parent.iterdir()) == []
    (copy,) = world.store.archives()
    assert copy.purged_at is not None
