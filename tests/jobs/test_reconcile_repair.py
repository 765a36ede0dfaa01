"""``escalations report --repair`` (issue 16 #3), end to end: the real adapter against the
sandbox. Drift is injected by hand; the repair fixes the safe kinds through the outbox and the
executor, a later report shows them gone while the unsafe ones stay, a dry run writes
nothing, and a second repair writes nothing."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from escalations.effects.helpdesk import COPY_ARTICLE
from escalations.models import EffectState, State
from escalations.reconcile.findings import FindingKind, RepairOutcome, Report
from jobs import reconcile
from tests.jobs.conftest import ALICE, BOB, LLOYD, World
from tests.jobs.test_archive import _confirmed
from tests.jobs.test_reconcile import (
    SETTLE,
    _delete_copy,
    _escalated,
    _helpdesk_state,
    _kinds,
    _report,
    _settle,
)

K = FindingKind
OTHER = "HQ VPN outage"


def _repair(world: World, *, dry_run: bool = False) -> Report:
    return reconcile.build_and_repair(
        world.ctx,
        world.installation.executor,
        world.clock.now(),
        dry_run=dry_run,
        requests=lambda: len(world.rsps.calls),
    )


def _outcomes(report: Report) -> Counter[tuple[FindingKind, RepairOutcome]]:
    return Counter((r.kind, r.outcome) for r in report.repairs or ())


def _drift(world: World) -> tuple[int, dict[str, Any], int]:
    """One escalation with its link deleted, a copy deleted, another copy duplicated by
    hand, its owner changed and its level tag swapped; a second escalation whose ticket an
    agent deleted. Returns the original, the first escalation ticket, the deleted one."""
    original, esc = _escalated(world, emails=2)
    world.flag(world.ticket_by_title(OTHER))
    world.sync()
    world.sync()
    doomed = next(t["id"] for t in world.escalation_tickets() if t["id"] != esc["id"])
    copies = world.copies_in(esc["id"])
    (first,) = [c for c in copies if "Down 0" in c["body"]]
    (second,) = [c for c in copies if "Down 1" in c["body"]]
    with _helpdesk_state(world) as st:
        for link_id, link in list(st.db.links.items()):
            if {link.source_value, link.target_value} == {original, esc["id"]}:
                del st.db.links[link_id]
        del st.db.articles[first["id"]]
        st.touch_id(esc["id"])
    world.sandbox.agent_article(esc["id"], ALICE, second["body"], internal=True)
    world.sandbox.agent_update(esc["id"], ALICE, owner_id=world.sandbox.user_id(BOB))
    world.sandbox.remove_tag(esc["id"], "escalation-l1", login=ALICE)
    world.sandbox.add_tag(esc["id"], "escalation-l3", login=ALICE)
    world.sandbox.delete_ticket(doomed)
    _settle(world)
    return original, esc, doomed


REPAIRED = {
    K.ESCALATION_TICKET_UNLINKED,
    K.EMAIL_NOT_COPIED,
    K.OWNER_DIFFERS,
    K.LEVEL_MARK_DIFFERS,
}
UNSAFE = {K.COPY_TWICE, K.ESCALATION_TICKET_DELETED}


def test_repair_fixes_the_safe_drift_and_leaves_the_rest_reported(world: World) -> None:
    original, esc, _doomed = _drift(world)
    assert set(_kinds(_report(world))) == REPAIRED | UNSAFE
    made = _repair(world)
    assert set(_kinds(made)) == REPAIRED | UNSAFE  # what it found, before repairing
    assert _outcomes(made) == {(kind, RepairOutcome.DONE): 1 for kind in REPAIRED}
    # the helpdesk shows the repairs
    assert any(lk["link_object_value"] == original for lk in world.sandbox.links_of(esc["id"]))
    assert sum("Down 0" in c["body"] for c in world.copies_in(esc["id"])) == 1
    tags = world.sandbox.tags_of(esc["id"])
    assert "escalation-l1" in tags
    assert "escalation-l3" not in tags
    assert world.sandbox.tickets[esc["id"]]["owner_id"] != world.sandbox.user_id(BOB)
    # the worker polls the repaired tickets; once settled, a new report lists only the rest
    _settle(world)
    after = _report(world)
    assert set(_kinds(after)) == UNSAFE
    assert after.repairs is None


def test_a_second_repair_writes_nothing(world: World) -> None:
    _drift(world)
    _repair(world)
    _settle(world)
    writes, effects = len(world.writes()), len(world.store.effects())
    again = _repair(world)
    assert set(_kinds(again)) == UNSAFE
    assert again.repairs == ()
    assert world.writes()[writes:] == []
    assert len(world.store.effects()) == effects


def test_a_second_repair_while_the_first_is_pending_requests_nothing_new(world: World) -> None:
    """A repair the executor could not finish (here: the helpdesk was busy) is pending; the
    next ``--repair`` finds its key taken and lists it as pending, requesting nothing."""
    _original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, owner_id=world.sandbox.user_id(BOB))
    _settle(world)
    plans = reconcile.build_and_repair(
        world.ctx, _NoExecutor(), world.clock.now(), dry_run=False
    ).repairs
    assert plans is not None
    assert [(r.kind, r.outcome) for r in plans] == [(K.OWNER_DIFFERS, RepairOutcome.PENDING)]
    effects = world.store.effects()
    again = _repair(world)
    assert again.repairs is not None
    assert [r.effects for r in again.repairs] == [plans[0].effects]
    assert [r.outcome for r in again.repairs] == [RepairOutcome.DONE]  # carried out now
    assert len(world.store.effects()) == len(effects)


class _NoExecutor:
    """An executor that never gets to run anything (the helpdesk busy)."""

    def run_effects(self, effect_ids: object) -> object:
        from escalations.effects.executor import ExecutorResult

        return ExecutorResult(deferred=1)


def test_dry_run_lists_the_planned_repairs_and_writes_nothing(world: World) -> None:
    _drift(world)
    writes, effects = len(world.writes()), world.store.effects()
    planned = _repair(world, dry_run=True)
    assert _outcomes(planned) == {(kind, RepairOutcome.PLANNED): 1 for kind in REPAIRED}
    assert world.writes()[writes:] == []  # the sandbox's request log: reads only
    assert world.store.effects() == effects
    actions = {r.kind: r for r in planned.repairs or ()}
    assert actions[K.EMAIL_NOT_COPIED].effects[0].startswith(f"{COPY_ARTICLE} copy:")
    assert actions[K.OWNER_DIFFERS].effects[0].startswith("update_ticket repair-owner:")
    assert set(_kinds(_report(world))) == REPAIRED | UNSAFE  # nothing was repaired


def test_a_deleted_copy_is_written_again_by_its_own_effect(world: World) -> None:
    """The same row, re-armed: the executor looks for the copy by its marker first."""
    _original, esc = _escalated(world)
    (copy,) = [c for c in world.copies_in(esc["id"]) if "Down 0" in c["body"]]
    copies = [e.id for e in world.store.effects() if e.kind == COPY_ARTICLE]
    (effect,) = [
        e
        for e in world.store.effects()
        if e.kind == COPY_ARTICLE and e.payload["source"]["subject"] == "Down 0"
    ]
    with _helpdesk_state(world) as st:
        del st.db.articles[copy["id"]]
        st.touch_id(esc["id"])
    _settle(world)
    made = _repair(world)
    assert _outcomes(made) == {(K.EMAIL_NOT_COPIED, RepairOutcome.DONE): 1}
    again = world.store.get_effect(effect.id)
    assert again is not None
    assert (again.state, again.attempts) == (EffectState.DONE, effect.attempts + 1)
    assert [e.id for e in world.store.effects() if e.kind == COPY_ARTICLE] == copies
    assert sum("Down 0" in c["body"] for c in world.copies_in(esc["id"])) == 1


def test_a_missing_archive_of_a_closed_escalation_is_filed(world: World) -> None:
    _confirmed(world)
    (esc,) = world.store.escalations_in(State.ARCHIVED)
    (copy,) = world.store.archives()
    shutil.rmtree(copy.path)
    with world.store.transaction() as tx:
        conn = world.store._tx(tx)
        conn.execute("DELETE FROM archive")
        conn.execute("UPDATE escalation SET state = 'closed' WHERE id = ?", (esc.id,))
    world.clock.advance(SETTLE)
    assert _kinds(_report(world))[K.CLOSED_WITHOUT_ARCHIVE] == 1
    made = _repair(world)
    assert _outcomes(made)[(K.CLOSED_WITHOUT_ARCHIVE, RepairOutcome.DONE)] == 1
    (filed,) = world.store.archives()
    assert Path(filed.path, "escalation.pdf").is_file()
    assert world.store.escalations_in(State.ARCHIVED)
    assert K.CLOSED_WITHOUT_ARCHIVE not in _kinds(_report(world))


def test_an_executive_unsubscribed_by_hand_is_subscribed_again(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="3")
    world.sync()
    world.sync()
    lloyd = world.sandbox.user_id(LLOYD)
    with _helpdesk_state(world) as st:
        for mention_id, mention in list(st.db.mentions.items()):
            if mention.user_id == lloyd:
                del st.db.mentions[mention_id]
        st.touch_id(esc["id"])
    _settle(world)
    made = _repair(world)
    assert _outcomes(made) == {(K.SUBSCRIBER_MISSING, RepairOutcome.DONE): 1}
    assert lloyd in world.sandbox.subscribers_of(esc["id"])
    _settle(world)
    assert _report(world).findings == ()


def test_a_copy_repair_racing_the_worker_is_written_once(world: World) -> None:
    """The re-armed copy is left pending (this run's executor never gets to it); the
    worker's executor writes it; the row re-armed once more (a second repair that read the
    helpdesk before that write) is claimed, looked for by its marker, found: no second
    copy."""
    _original, esc = _escalated(world)
    (copy,) = [c for c in world.copies_in(esc["id"]) if "Down 0" in c["body"]]
    with _helpdesk_state(world) as st:
        del st.db.articles[copy["id"]]
        st.touch_id(esc["id"])
    _settle(world)
    pending = reconcile.build_and_repair(
        world.ctx, _NoExecutor(), world.clock.now(), dry_run=False
    ).repairs
    assert [(r.kind, r.outcome) for r in pending or ()] == [
        (K.EMAIL_NOT_COPIED, RepairOutcome.PENDING)
    ]
    world.sync()  # the worker's executor writes the copy
    (effect,) = [
        e
        for e in world.store.effects(EffectState.DONE)
        if e.kind == COPY_ARTICLE and e.payload["source"]["subject"] == "Down 0"
    ]
    with world.store.transaction() as tx:
        assert world.store.rearm_done(tx, effect.id, at=world.clock.now())
    writes = len(world.writes())
    world.sync()
    assert [w for w in world.writes()[writes:] if "articles" in w] == []
    assert sum("Down 0" in c["body"] for c in world.copies_in(esc["id"])) == 1
    _settle(world)
    assert _report(world).findings == ()


def test_an_email_never_copied_is_copied_through_the_copy_job(world: World) -> None:
    """The worker never requested this copy (its rows gone, as if it missed the email): the
    repair asks the copy job to scan the original, which requests the copy under the copy
    job's own key, and the executor writes it."""
    original, esc = _escalated(world)
    (copy,) = [c for c in world.copies_in(esc["id"]) if "Down 0" in c["body"]]
    (source,) = [a for a in world.sandbox.articles_of(original) if a["subject"] == "Down 0"]
    with _helpdesk_state(world) as st:
        del st.db.articles[copy["id"]]
        st.touch_id(esc["id"])
    with world.store.transaction() as tx:
        conn = world.store._tx(tx)
        conn.execute("DELETE FROM copied_article WHERE source_article_id = ?", (source["id"],))
        conn.execute(
            "DELETE FROM effect WHERE kind = ? AND key LIKE ?", (COPY_ARTICLE, f"%:{source['id']}")
        )
    _settle(world)
    made = _repair(world)
    assert _outcomes(made) == {(K.EMAIL_NOT_COPIED, RepairOutcome.DONE): 1}
    (repair,) = made.repairs or ()
    assert repair.effects == (f"{COPY_ARTICLE} copy:{repair.escalation}:{source['id']}",)
    assert sum("Down 0" in c["body"] for c in world.copies_in(esc["id"])) == 1
    _settle(world)
    assert _report(world).findings == ()


def test_a_deleted_original_is_not_linked_to(world: World) -> None:
    """Its escalation ticket lost the link with it: the repair writes nothing (it linked to
    the deleted ticket: a 404, and a failed write listed from then on)."""
    original, _esc = _escalated(world)
    world.sandbox.delete_ticket(original)
    _settle(world)
    writes = len(world.writes())
    made = _repair(world)
    assert made.repairs == ()
    assert world.writes()[writes:] == []
    assert world.store.effects(EffectState.FAILED) == []
    _settle(world)
    assert _kinds(_report(world)) == {K.ORIGINAL_DELETED: 1}


def test_an_unlinked_finding_beside_a_deleted_original_is_skipped(world: World) -> None:
    """Whatever lists both (an older report's findings, another check), the repair never
    links to an original that no longer exists."""
    original, _esc = _escalated(world)
    world.sandbox.delete_ticket(original)
    _settle(world)
    made, snap = reconcile._build(world.ctx, world.clock.now(), requests=None, previous=None)
    (deleted,) = made.findings
    unlinked = dataclasses.replace(
        deleted, kind=K.ESCALATION_TICKET_UNLINKED, other_ticket_id=original
    )
    both = dataclasses.replace(made, findings=(deleted, unlinked))
    repairs = reconcile.repair.repair(
        world.ctx,
        world.installation.executor,
        both,
        snap,
        read_at=world.clock.now(),
        dry_run=False,
    )
    assert [(r.kind, r.outcome) for r in repairs] == [
        (K.ESCALATION_TICKET_UNLINKED, RepairOutcome.SKIPPED)
    ]
    assert world.store.effects(EffectState.FAILED) == []
    assert [e.key for e in world.store.effects() if e.key.startswith("repair-link")] == []


def test_an_email_on_a_merge_target_is_listed_and_copied_by_the_repair(world: World) -> None:
    """The original was merged into another ticket and the worker follows it there
    (``jobs.sync.merging``); an email there whose copy an agent deleted is found, and
    ``--repair`` copies it again."""
    original, esc = _escalated(world)
    target = world.ticket_by_title(OTHER)
    world.sandbox.merge(original, target)
    world.sync()
    world.sandbox.seed_customer_email(target, "The VPN is down as well.", subject="VPN too")
    world.sync()
    _settle(world)
    assert _kinds(_report(world)) == {K.ORIGINAL_MERGED: 1}  # followed: nothing missing
    _delete_copy(world, esc["id"], "The VPN is down as well.")
    _settle(world)
    found = _report(world)
    assert _kinds(found) == {K.ORIGINAL_MERGED: 1, K.EMAIL_NOT_COPIED: 1}
    (missing,) = [f for f in found.findings if f.kind is K.EMAIL_NOT_COPIED]
    assert missing.ticket_id == target
    assert "the ticket its original was merged into" in missing.detail
    made = _repair(world)
    assert _outcomes(made) == {(K.EMAIL_NOT_COPIED, RepairOutcome.DONE): 1}
    assert sum("The VPN is down as well." in c["body"] for c in world.copies_in(esc["id"])) == 1
    _settle(world)
    assert _kinds(_report(world)) == {K.ORIGINAL_MERGED: 1}
