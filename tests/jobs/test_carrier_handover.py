"""The carrier route's hand-over (rule 5) gives the escalation ticket to the supervisor, and the
worker's store says so: the nightly report compares the ticket's owner with the store's, and
``report --repair`` gives a ticket back to the owner the store names."""

from __future__ import annotations

from datetime import timedelta

from escalations.reconcile.findings import FindingKind
from jobs import reconcile
from tests.jobs.conftest import BOB, SUPERVISOR, World

TITLE = "Broadband down since Monday"


def test_the_hand_over_is_the_escalations_owner_in_the_store_too(world: World) -> None:
    """The store kept the level's owner after the hand-over, so the next report listed the
    worker's own change as an owner differing from the level's (and ``--repair`` would have
    taken the ticket back from the supervisor)."""
    world.flag(world.ticket_by_title(TITLE))
    world.sync()
    esc_ticket = world.the_escalation_ticket()
    world.sandbox.add_tag(esc_ticket["id"], "carrier-route-failed", login=BOB)
    world.sync()
    world.sync()
    supervisor = world.sandbox.user_id(SUPERVISOR)
    assert world.sandbox.ticket(esc_ticket["id"])["owner_id"] == supervisor
    (esc,) = world.store.escalations_in()
    assert esc.owner_id == supervisor
    world.clock.advance(timedelta(hours=1))  # past the report's grace
    world.sync()
    report = reconcile.build_report(world.ctx, world.clock.now())
    assert FindingKind.OWNER_DIFFERS not in {f.kind for f in report.findings}
