"""``jobs.rebuild`` (issue 16 #4): the store rebuilt from the helpdesk alone after the state
database is lost, on the sandbox through the real adapter. After the rebuild the report lists
what it listed before (not the tickets it does not know), and the next pass writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from escalations.app.rebuild_shown import shown
from escalations.app.wiring import Installation, build
from escalations.models import EffectState, State
from escalations.reconcile.findings import FindingKind
from escalations.store.sqlite import SqliteStore
from jobs import rebuild, reconcile
from tests.jobs.conftest import ALICE, World
from tests.jobs.test_archive import _confirmed
from tests.jobs.test_reconcile import _escalated, _helpdesk_state, _kinds, _settle


@contextmanager
def _lost(world: World, tmp_path: Path) -> Iterator[Installation]:
    """The installation wired to an empty store, as after the state database was lost."""
    fresh = SqliteStore(tmp_path / "lost" / "escalations.sqlite3", world.clock)
    try:
        yield build(
            world.ctx.settings,
            world.clock,
            adapter=world.ctx.adapter,
            store=fresh,
            mappings=world.ctx.mappings,
        )
    finally:
        fresh.close()


def _rebuild(
    installation: Installation, progress: rebuild.Progress | None = None
) -> rebuild.Rebuilt:
    lines: list[str] = []
    made = rebuild.rebuild(
        installation.ctx, installation.executor.registry, progress or lines.append, shown
    )
    assert lines or progress is not None  # it says what it is doing
    return made


def _pass_writes(world: World, installation: Installation) -> list[str]:
    """The helpdesk writes of one worker pass on the rebuilt store, 30 s on."""
    before = len(world.writes())
    world.clock.advance(timedelta(seconds=30))
    for result in installation.worker().run_once():
        assert result is not None, "a job of the pass failed; see the log"
    return world.writes()[before:]


def test_after_a_rebuild_the_report_is_as_before_and_a_pass_writes_nothing(
    world: World, tmp_path: Path
) -> None:
    original, esc = _escalated(world, emails=2)
    world.sandbox.agent_article(original, ALICE, "Called the customer back.", type="phone",
                                internal=False)  # fmt: skip
    _settle(world)
    assert _kinds(reconcile.build_report(world.ctx, world.clock.now())) == {}
    old = world.store
    with _lost(world, tmp_path) as rebuilt:
        before = len(world.writes())
        made = _rebuild(rebuilt)
        assert world.writes()[before:] == []  # the rebuild itself never writes
        assert (made.escalations, made.left, made.skipped) == (1, [], [])
        (new,) = rebuilt.ctx.store.escalations_in()
        (was,) = old.escalations_in()
        same = ("key", "original_ticket_id", "escalation_ticket_id", "level", "state",
                "owner_id", "segment", "reason", "callback_at", "customer_id")  # fmt: skip
        assert {f: getattr(new, f) for f in same} == {f: getattr(was, f) for f in same}
        copied = {(c.source_article_id, c.copy_article_id) for c in old.copied_articles(was.id)}
        assert {
            (c.source_article_id, c.copy_article_id)
            for c in rebuilt.ctx.store.copied_articles(new.id)
        } == copied
        assert len(copied) == 3  # the first message and the two emails
        report = reconcile.build_report(rebuilt.ctx, world.clock.now())
        assert _kinds(report) == {}
        assert _pass_writes(world, rebuilt) == []


def _drop_link(world: World, original: int, esc_id: int) -> None:
    with _helpdesk_state(world) as st:
        for link_id, link in list(st.db.links.items()):
            if {link.source_value, link.target_value} == {original, esc_id}:
                del st.db.links[link_id]
        st.touch_id(esc_id)


def _swap_level_tag(world: World, original: int, esc_id: int) -> None:
    world.sandbox.remove_tag(esc_id, "escalation-l1", login=ALICE)
    world.sandbox.add_tag(esc_id, "escalation-l3", login=ALICE)


@pytest.mark.parametrize(
    ("drift", "kind"),
    [
        (_drop_link, FindingKind.ESCALATION_TICKET_UNLINKED),
        (_swap_level_tag, FindingKind.LEVEL_MARK_DIFFERS),
    ],
    ids=["link deleted", "level tag swapped"],
)
def test_drift_there_before_the_loss_is_listed_once_after_the_rebuild(
    world: World, tmp_path: Path, drift: object, kind: FindingKind
) -> None:
    """Issue 16's "lose the state database": without the rebuild the report lists the
    ticket it does not know (``test_a_lost_state_database_shows_the_ticket_it_does_not_know``);
    after it, what it listed before, once."""
    original, esc = _escalated(world)
    drift(world, original, esc["id"])  # type: ignore[operator]
    _settle(world)
    assert _kinds(reconcile.build_report(world.ctx, world.clock.now())) == {kind: 1}
    with _lost(world, tmp_path) as rebuilt:
        _rebuild(rebuilt)
        assert _kinds(reconcile.build_report(rebuilt.ctx, world.clock.now())) == {kind: 1}


def test_a_copy_deleted_before_the_loss_is_left_to_the_worker_and_written_once(
    world: World, tmp_path: Path
) -> None:
    original, esc = _escalated(world, emails=2)
    (first,) = [c for c in world.copies_in(esc["id"]) if "Down 0" in c["body"]]
    with _helpdesk_state(world) as st:
        del st.db.articles[first["id"]]
        st.touch_id(esc["id"])
    _settle(world)
    with _lost(world, tmp_path) as rebuilt:
        made = _rebuild(rebuilt)
        assert made.left == ["copy_article/copy:zammad:ticket:1:1:9"]
        assert _pass_writes(world, rebuilt) == ["POST /api/v1/ticket_articles"]
        assert _pass_writes(world, rebuilt) == []
    assert len([c for c in world.copies_in(esc["id"]) if "Down 0" in c["body"]]) == 1


class _Interrupted(Exception):
    pass


def test_an_interrupted_rebuild_run_again_ends_as_one_that_was_not(
    world: World, tmp_path: Path
) -> None:
    _escalated(world, emails=2)
    _settle(world)

    def stop_at_the_copies(line: str) -> None:
        if line.startswith("replaying the copies"):
            raise _Interrupted

    with _lost(world, tmp_path) as rebuilt:
        with pytest.raises(_Interrupted):
            _rebuild(rebuilt, stop_at_the_copies)
        store = rebuilt.ctx.store
        (esc,) = store.escalations_in()
        assert store.copied_articles(esc.id) == []  # stopped before the copies
        again = _rebuild(rebuilt)
        assert (again.escalations, again.kept, again.left) == (0, 1, [])
        assert len(store.copied_articles(esc.id)) == 3
        assert {e.state for e in store.effects()} == {EffectState.DONE}
        assert _kinds(reconcile.build_report(rebuilt.ctx, world.clock.now())) == {}
        assert _pass_writes(world, rebuilt) == []


def test_a_closed_escalation_keeps_its_copies_so_a_reopen_copies_nothing_twice(
    world: World, tmp_path: Path
) -> None:
    _confirmed(world)  # closed by the worker once the customer confirmed, 3 emails copied
    (was,) = world.store.escalations_in()
    assert was.state is State.ARCHIVED  # its hard copy filed (the archive directory stays)
    with _lost(world, tmp_path) as rebuilt:
        _rebuild(rebuilt)
        store = rebuilt.ctx.store
        (closed,) = store.escalations_in()
        assert (closed.state, closed.level) == (State.CLOSED, 2)
        assert closed.closed_at == closed.confirmed_at
        assert {c.source_article_id for c in store.copied_articles(closed.id)} == {
            c.source_article_id for c in world.store.copied_articles(was.id)
        }
        assert len(store.copied_articles(closed.id)) == 4  # the first message and 3 emails
        assert (closed.closed_at, closed.confirmed_at) == (was.closed_at, was.confirmed_at)
        assert _pass_writes(world, rebuilt) == []
        # the archive directory was not lost: its hard copy is recorded, not written again
        assert [a.path for a in store.archives()] == [a.path for a in world.store.archives()]
        assert store.escalations_in()[0].state is State.ARCHIVED


def test_a_ticket_an_agent_closed_while_the_store_was_lost_is_parked_by_the_worker(
    world: World, tmp_path: Path
) -> None:
    """Closed by an agent, not by the worker (no closed note): the escalation is still open
    and resolved now — parked, as the lost worker would have parked it."""
    _original, esc = _escalated(world)
    world.twice = False
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    with _lost(world, tmp_path) as rebuilt:
        made = _rebuild(rebuilt)
        assert any(ref.startswith("note/parked-note:") for ref in made.left)
        (parked,) = rebuilt.ctx.store.escalations_in()
        assert parked.state is State.PARKED
        assert _pass_writes(world, rebuilt) != []  # the parking's writes, once
        assert _pass_writes(world, rebuilt) == []
    assert world.sandbox.ticket(esc["id"])["state"] == "parked"


def test_parked_and_unparked_before_the_loss_it_is_rebuilt_open_with_its_parking(
    world: World, tmp_path: Path
) -> None:
    """Parked (an agent resolved it), then un-parked (the customer wrote again): the
    parking is rebuilt from the worker's parked and un-parked notes, so the plan's duties
    stay suspended over it and no note about them is written again."""
    original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, state="closed")
    world.sync()
    world.sync()
    world.clock.advance(timedelta(hours=5))
    world.sandbox.seed_customer_email(original, "It is down again.", subject="Again")
    world.sync()
    world.sync()
    _settle(world)
    (was,) = world.store.escalations_in()
    assert was.state is State.OPEN
    (period,) = world.store.parking_periods(was.id)
    assert period.ended_at is not None
    before = _kinds(reconcile.build_report(world.ctx, world.clock.now()))
    old = {d.slot: (d.done_at is not None, d.missed_at is not None) for d in world.store.duties()}
    with _lost(world, tmp_path) as rebuilt:
        made = _rebuild(rebuilt)
        assert made.left == []
        store = rebuilt.ctx.store
        (new,) = store.escalations_in()
        assert new.state is State.OPEN
        (again,) = store.parking_periods(new.id)
        assert again.resolved_at == period.resolved_at
        assert again.ended_at is not None
        duties = {d.slot: (d.done_at is not None, d.missed_at is not None) for d in store.duties()}
        assert {k: v for k, v in duties.items() if k in old} == {
            k: v for k, v in old.items() if k in duties
        }
        assert _kinds(reconcile.build_report(rebuilt.ctx, world.clock.now())) == before
        assert _pass_writes(world, rebuilt) == []


def test_an_original_merged_before_the_loss_is_followed_again_and_nothing_is_written_twice(
    world: World, tmp_path: Path
) -> None:
    """The merge target's emails were copied (``jobs.sync.merging``); after the loss the
    rebuild's replayed poll follows the merge again and finds each copy, so the next pass
    writes nothing and the report lists only the merge."""
    original, esc = _escalated(world)
    target = world.ticket_by_title("HQ VPN outage")
    world.sandbox.merge(original, target)
    world.sync()
    world.sandbox.seed_customer_email(target, "The VPN is down as well.", subject="VPN too")
    world.sync()
    _settle(world)
    copies = len(world.copies_in(esc["id"]))
    with _lost(world, tmp_path) as rebuilt:
        made = _rebuild(rebuilt)
        assert (made.escalations, made.left, made.skipped) == (1, [], [])
        assert _pass_writes(world, rebuilt) == []
        assert len(world.copies_in(esc["id"])) == copies
        report = reconcile.build_report(rebuilt.ctx, world.clock.now())
        assert _kinds(report) == {FindingKind.ORIGINAL_MERGED: 1}
        # and the rebuilt worker still follows the target
        world.sandbox.seed_customer_email(target, "And the phones.", subject="Phones")
        _pass_writes(world, rebuilt)
        _pass_writes(world, rebuilt)
        assert len(world.copies_in(esc["id"])) == copies + 1
