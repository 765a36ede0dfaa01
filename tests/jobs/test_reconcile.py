"""The nightly reconciliation (issue 16 #1), end to end: the real adapter against the
sandbox. A clean world gives no finding; each kind of drift injected into the helpdesk (or
the store, or the archive directory) is listed exactly once, and the others stay silent."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import responses

from escalations.app.wiring import build
from escalations.clock import FakeClock
from escalations.models import EffectState, State
from escalations.reconcile.findings import FindingKind, Report, WorkerState
from escalations.store.base import WorkerBeat
from escalations.store.sqlite import SqliteStore
from jobs import reconcile
from tests.conftest import edited_mappings
from tests.jobs.conftest import ALICE, BOB, LLOYD, World, make_world
from tests.jobs.test_archive import _confirmed

TITLE = "Broadband down since Monday"
SETTLE = timedelta(minutes=15)
"""Longer than the report's grace with the default settings (390 s)."""


def _report(world: World) -> Report:
    return reconcile.build_report(
        world.ctx, world.clock.now(), requests=lambda: len(world.rsps.calls)
    )


def _kinds(report: Report) -> Counter[FindingKind]:
    return Counter(f.kind for f in report.findings)


@contextmanager
def _helpdesk_state(world: World) -> Iterator[Any]:
    """The sandbox's database, for drift no API call makes (as an admin's console would)."""
    with world.sandbox.lock:
        yield world.sandbox.state


def _escalated(world: World, *, emails: int = 1) -> tuple[int, dict[str, Any]]:
    """A flagged original with its escalation ticket and ``emails`` customer emails copied."""
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.sync()
    for n in range(emails):
        world.sandbox.seed_customer_email(original, f"Still down ({n}).", subject=f"Down {n}")
    world.sync()
    world.sync()
    return original, world.the_escalation_ticket()


def _settle(world: World) -> None:
    """The worker keeps running; the report comes once the grace has passed."""
    world.sync()
    world.clock.advance(SETTLE)
    world.sync()


def test_a_clean_world_has_no_finding(world: World) -> None:
    _escalated(world, emails=2)
    _settle(world)
    report = _report(world)
    assert report.findings == ()
    assert report.escalations_checked == 1
    assert report.open_by_level[1] == 1
    assert report.requests == 10 + 3  # see test_requests_are_a_search_per_mark_…


def test_reads_in_bulk_not_per_ticket(world: World) -> None:
    """Ticket reads go through searches; per escalation only its articles and links are
    read (the helpdesk has no search over them)."""
    _escalated(world)
    _settle(world)
    before = len(world.rsps.calls)
    _report(world)
    calls = [c.request for c in world.rsps.calls[before:]]
    single_ticket_reads = [
        r for r in calls if r.method == "GET" and "/api/v1/tickets/" in (r.path_url or "")
    ]
    assert single_ticket_reads == []


def test_a_deleted_link_is_listed_once(world: World) -> None:
    original, esc = _escalated(world)
    with _helpdesk_state(world) as st:
        for link_id, link in list(st.db.links.items()):
            if {link.source_value, link.target_value} == {original, esc["id"]}:
                del st.db.links[link_id]
        st.touch_id(esc["id"])
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.ESCALATION_TICKET_UNLINKED: 1}
    (finding,) = report.findings
    assert finding.ticket_id == esc["id"]
    assert finding.other_ticket_id == original


def _delete_copy(world: World, escalation_ticket_id: int, text: str) -> None:
    """An agent deletes the one copy holding ``text`` from the escalation ticket."""
    (copy,) = [c for c in world.copies_in(escalation_ticket_id) if text in c["body"]]
    with _helpdesk_state(world) as st:
        del st.db.articles[copy["id"]]
        st.touch_id(escalation_ticket_id)


def test_a_deleted_copy_is_listed_once(world: World) -> None:
    original, esc = _escalated(world, emails=2)
    _delete_copy(world, esc["id"], "Down 0")
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.EMAIL_NOT_COPIED: 1}
    (finding,) = report.findings
    assert finding.ticket_id == original
    assert finding.other_ticket_id == esc["id"]
    assert "Down 0" in finding.detail


def test_a_copy_duplicated_by_hand_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    copy = world.copies_in(esc["id"])[-1]
    world.sandbox.agent_article(esc["id"], ALICE, copy["body"], internal=True)
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.COPY_TWICE: 1}


def test_a_copy_whose_source_is_deleted_is_listed_once(world: World) -> None:
    original, esc = _escalated(world)
    (source,) = [a for a in world.sandbox.articles_of(original) if a["subject"] == "Down 0"]
    with _helpdesk_state(world) as st:
        del st.db.articles[source["id"]]
        st.touch_id(original)
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.COPY_WITHOUT_SOURCE: 1}


def test_an_owner_changed_by_hand_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, owner_id=world.sandbox.user_id(BOB))
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.OWNER_DIFFERS: 1}
    (finding,) = report.findings
    assert "Bob" in finding.detail


def test_a_level_tag_removed_by_hand_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.remove_tag(esc["id"], "escalation-l1", login=ALICE)
    world.sandbox.add_tag(esc["id"], "escalation-l3", login=ALICE)
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.LEVEL_MARK_DIFFERS: 1}
    assert "escalation-l3" in report.findings[0].detail


def test_a_deleted_escalation_ticket_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.delete_ticket(esc["id"])
    world.clock.advance(SETTLE)
    report = _report(world)
    kinds = _kinds(report)
    assert kinds[FindingKind.ESCALATION_TICKET_DELETED] == 1
    # the worker had no pass since: only what follows from the deletion is listed, and the
    # worker itself (no poll, no heartbeat for 15 minutes)
    assert set(kinds) <= {
        FindingKind.ESCALATION_TICKET_DELETED,
        FindingKind.WORKER_UNHEALTHY,
        FindingKind.WORKER_SILENT,
    }


def test_an_escalation_the_worker_ended_because_its_ticket_was_deleted_is_listed(
    world: World,
) -> None:
    original, esc = _escalated(world)
    world.sandbox.delete_ticket(esc["id"])
    world.sandbox.seed_customer_email(original, "Anyone there?", subject="Anyone")
    world.sync()  # the copy finds the ticket gone: the escalation ends
    assert world.store.escalations_in(State.OPEN) == []
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.ESCALATION_TICKET_DELETED: 1}
    assert "the worker ended the escalation" in report.findings[0].detail
    world.clock.advance(timedelta(days=2))
    world.sync()
    assert FindingKind.ESCALATION_TICKET_DELETED not in _kinds(_report(world))  # reported once


def test_a_merged_original_is_listed_once_with_its_target(world: World) -> None:
    original, _esc = _escalated(world)
    target = world.ticket_by_title("HQ VPN outage")
    split_from = world.ticket_by_title("Leased line flapping - end users affected")
    world.sandbox.link(split_from, original, "parent")  # the original's own parent link
    world.sandbox.merge(original, target)  # its links, to the escalation ticket too, move
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.ORIGINAL_MERGED: 1}
    assert report.findings[0].other_ticket_id == target


def test_a_flag_left_unhandled_is_listed_once(world: World) -> None:
    """A flagged ticket the worker never raised an escalation for (it was down)."""
    original = world.ticket_by_title(TITLE)
    world.flag(original)
    world.clock.advance(SETTLE)
    report = _report(world)
    kinds = _kinds(report)
    assert kinds[FindingKind.FLAGGED_WITHOUT_ESCALATION] == 1
    assert report.findings[0].ticket_id == original


def test_a_lost_state_database_shows_the_ticket_it_does_not_know(
    world: World, tmp_path: Path
) -> None:
    _escalated(world)
    _settle(world)
    fresh = SqliteStore(tmp_path / "lost" / "escalations.sqlite3", world.clock)
    try:
        ctx = build(
            world.ctx.settings,
            world.clock,
            adapter=world.ctx.adapter,
            store=fresh,
            mappings=world.ctx.mappings,
        ).ctx
        report = reconcile.build_report(ctx, world.clock.now())
    finally:
        fresh.close()
    kinds = _kinds(report)
    assert kinds[FindingKind.ESCALATION_TICKET_UNKNOWN] == 1
    assert set(kinds) == {FindingKind.ESCALATION_TICKET_UNKNOWN, FindingKind.WORKER_UNHEALTHY}


def test_a_stuck_and_a_failed_write_are_listed(world: World) -> None:
    _escalated(world)
    _settle(world)
    (esc,) = world.store.escalations_in(State.OPEN)
    now = world.clock.now()
    with world.store.transaction() as tx:
        stuck = world.store.insert_effect(
            tx, kind="note", key="test-stuck:1", marker="hde1-00000000000000aa",
            payload_json="{}", payload_sha256="0" * 64, payload_version=1,
            escalation_id=esc.id, after=None, at=now - timedelta(hours=2),
        )  # fmt: skip
        failed = world.store.insert_effect(
            tx, kind="note", key="test-failed:1", marker="hde1-00000000000000ab",
            payload_json="{}", payload_sha256="0" * 64, payload_version=1,
            escalation_id=esc.id, after=None, at=now,
        )  # fmt: skip
        assert stuck is not None
        assert failed is not None
        world.store.finish_effect(tx, failed, EffectState.FAILED, last_error="422 refused")
    report = reconcile.build_report(world.ctx, now)
    assert _kinds(report) == {FindingKind.EFFECT_STUCK: 1, FindingKind.EFFECT_FAILED: 1}
    assert "422 refused" in next(
        f.detail for f in report.findings if f.kind is FindingKind.EFFECT_FAILED
    )


def test_the_report_reads_and_writes_nothing(world: World) -> None:
    _escalated(world)
    _settle(world)
    writes = len(world.writes())
    effects = len(world.store.effects())
    _report(world)
    _report(world)
    assert len(world.writes()) == writes
    assert len(world.store.effects()) == effects


def test_a_second_ticket_with_the_escalations_key_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    copy = world.sandbox.create_ticket_as_customer(
        "someone@example.com", "[ESC L1] copied by hand", "see the other one"
    )
    world.sandbox.agent_update(copy, ALICE, escalation_key=esc["escalation_key"])
    world.sandbox.add_tag(copy, "escalation", login=ALICE)
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.DUPLICATE_ESCALATION_TICKET: 1}
    (finding,) = report.findings
    assert finding.ticket_id == copy
    assert finding.other_ticket_id == esc["id"]


def test_a_skipped_call_is_listed_once(tmp_path: Path) -> None:
    """Residential: the afternoon contact call is never logged; the comms job marks it
    missed at the window's end, and the report lists that one duty."""
    thu = datetime(2027, 3, 25, 8, 30, tzinfo=UTC)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(thu), rsps, None)
        try:
            original = w.ticket_by_title(TITLE)
            w.flag(original, escalation_callback_at="2027-03-25T10:00:00.000Z")
            w.sync(advance=timedelta(0))
            w.clock.set(datetime(2027, 3, 25, 9, 50, tzinfo=UTC))
            w.sandbox.agent_article(
                original, ALICE, "Called the customer back.", type="phone", internal=False
            )
            for hhmm in ((11, 40), (16, 35), (17, 5), (17, 40)):
                w.clock.set(datetime(2027, 3, 25, *hhmm, tzinfo=UTC))
                w.sync(advance=timedelta(0))
            report = _report(w)
        finally:
            w.store.close()
    assert _kinds(report) == {FindingKind.DUTY_MISSED: 1}
    (finding,) = report.findings
    assert finding.subject.endswith("call:2027-03-25:afternoon")
    assert sum(d.missed for d in report.duties_by_day) == 1
    assert sum(d.done for d in report.duties_by_day) == 2  # the callback and the morning call


def test_a_corrupted_archive_file_is_listed_once(world: World) -> None:
    _confirmed(world)
    _settle(world)
    assert _report(world).findings == ()
    (copy,) = world.store.archives()
    pdf = Path(copy.path) / "escalation.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pdf.write_bytes(bytes(data))
    report = _report(world)
    assert _kinds(report) == {FindingKind.ARCHIVE_DAMAGED: 1}
    assert "escalation.pdf: checksum differs" in report.findings[0].detail


def test_an_rfo_cleared_while_parked_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    world.sandbox.agent_update(esc["id"], ALICE, escalation_rfo="Fibre cut.", state="closed")
    world.sync()
    assert world.store.escalations_in(State.PARKED)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_rfo="")
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.RESOLVED_WITHOUT_RFO: 1}
    assert "level 2" in report.findings[0].detail


# -- the nightly run from the worker loop ---------------------------------------------------


def _job_counts(world: World) -> list[dict[str, int]]:
    return [dict(r.counts) for r in world.store.job_runs("report", limit=100)]


def test_the_worker_writes_the_report_once_a_day_from_its_time(tmp_path: Path) -> None:
    early = datetime(2026, 12, 2, 5, 50, tzinfo=UTC)  # Europe/London: GMT in December
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(early), rsps, None)
        try:
            reports = w.ctx.settings.reports_path
            w.sync(advance=timedelta(0))
            assert not (reports / "2026-12-02").exists()  # before [report] at = 06:00
            w.clock.set(datetime(2026, 12, 2, 6, 1, tzinfo=UTC))
            w.sync(advance=timedelta(0))
            first = json.loads((reports / "2026-12-02" / "report.json").read_text())
            assert first["generated_at"] == "2026-12-02T06:01:00Z"
            assert first["summary"]["previous_counts"] is None
            w.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
            w.sync(advance=timedelta(0))
            again = json.loads((reports / "2026-12-02" / "report.json").read_text())
            assert again == first  # once a day, however many passes
            w.clock.set(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))  # the worker was down at 06:00
            w.sync(advance=timedelta(0))
            third = json.loads((reports / "2026-12-03" / "report.json").read_text())
            assert third["summary"]["previous_counts"] == first["summary"]["counts"]
            written = [c for c in _job_counts(w) if c.get("reports")]
        finally:
            w.store.close()
    assert len(written) == 2


def test_nightly_false_leaves_the_report_to_the_command(tmp_path: Path) -> None:
    mappings = edited_mappings(tmp_path, "process.toml", "nightly = true", "nightly = false")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(), rsps, mappings)
        try:
            w.sync()
            assert not w.ctx.settings.reports_path.exists()
        finally:
            w.store.close()


def test_a_hard_copy_past_its_retention_is_listed_for_the_record(world: World) -> None:
    _confirmed(world)
    _settle(world)
    world.clock.advance(timedelta(days=400))  # retention_months = 12; the worker was stopped
    report = _report(world)
    kinds = _kinds(report)
    assert kinds[FindingKind.ARCHIVE_PURGE_DUE] == 1
    assert set(kinds) == {FindingKind.ARCHIVE_PURGE_DUE, FindingKind.WORKER_UNHEALTHY}
    assert report.drift == 1  # the stopped worker; the copy is for the record
    due = next(f for f in report.findings if f.kind is FindingKind.ARCHIVE_PURGE_DUE)
    assert "not purged yet" in due.detail


def test_requests_are_a_search_per_mark_and_three_per_running_escalation(world: World) -> None:
    """Searches (escalation tickets, escalated originals, flag field, flag tag, four level
    tags) and the state list are nine requests whatever the helpdesk's size, and one search
    for the running escalations' customers' new tickets (``test_reconcile_customers.py``);
    each running escalation adds its ticket's links and the articles of its two tickets."""
    titles = (TITLE, "Leased line flapping - end users affected", "HQ VPN outage")
    for title in titles:
        world.flag(world.ticket_by_title(title))
    world.sync()
    world.sync()
    _settle(world)
    assert len(world.store.escalations_in(State.OPEN)) == 3
    report = _report(world)
    assert report.findings == ()
    assert report.requests == 10 + 3 * len(titles)


def test_an_executive_unsubscribed_by_hand_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="3")
    world.sync()
    world.sync()
    _settle(world)
    assert _report(world).findings == ()  # level 3: everyone it subscribes is subscribed
    lloyd = world.sandbox.user_id(LLOYD)
    assert lloyd in world.sandbox.subscribers_of(esc["id"])
    with _helpdesk_state(world) as st:
        for mention_id, mention in list(st.db.mentions.items()):
            if mention.user_id == lloyd:
                del st.db.mentions[mention_id]
        st.touch_id(esc["id"])
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.SUBSCRIBER_MISSING: 1}
    assert "Lloyd" in report.findings[0].detail


def test_a_helpdesk_without_report_marks_skips_the_nightly_report(world: World) -> None:
    """The worker on a helpdesk the report does not know yet (osTicket) carries on: the
    job says so in its counts and writes nothing, every pass, without failing."""
    other = dataclasses.replace(
        world.ctx, mappings=dataclasses.replace(world.ctx.mappings, helpdesk_name="osticket")
    )
    assert reconcile.run(other).counts == {"not_supported": 1}
    assert not (world.ctx.settings.reports_path / "2026-12-01").exists()


def _beat(world: World, worker: str, pid: int, started: datetime) -> None:
    with world.store.transaction() as tx:
        world.store.heartbeat(
            tx,
            WorkerBeat(
                id=worker, host="h9", pid=pid, role="leader", version="0.3.0",
                started_at=started, heartbeat_at=world.clock.now(),
            ),
        )  # fmt: skip


def _take(world: World, worker: str) -> None:
    now = world.clock.now()
    with world.store.transaction() as tx:
        taken = world.store.acquire_lease(
            tx, "lease:relay", holder=worker, now=now, until=now + timedelta(minutes=1)
        )
    assert taken is not None


def test_a_killed_worker_its_restart_and_the_leader_change_are_listed_once(
    world: World,
) -> None:
    """Issue 16 "restarts", issue 19 "leader changes and workers that went silent": a worker
    on h9 leads a job, then stops beating without a clean stop (SIGKILL); a new one on h9
    starts, takes the lead once the lease ran out, and stops cleanly. The report lists the
    killed worker as silent (drift), the restart and the change of leader (for the record),
    each once; the next night's report lists none of them again."""
    _escalated(world)
    _settle(world)
    killed = world.clock.now()
    _beat(world, "w-killed", 101, killed)
    _take(world, "w-killed")
    world.clock.advance(timedelta(minutes=1))
    _beat(world, "w-killed", 101, killed)  # its last heartbeat
    world.clock.advance(timedelta(minutes=4))
    restarted = world.clock.now()
    _beat(world, "w-new", 102, restarted)
    _take(world, "w-new")
    world.clock.advance(timedelta(minutes=1))
    with world.store.transaction() as tx:
        world.store.forget_worker(tx, "w-new")  # a clean stop
    _settle(world)
    report = _report(world)
    worker_kinds = {FindingKind.WORKER_SILENT, FindingKind.WORKER_RESTARTED,
                    FindingKind.LEADER_CHANGED}  # fmt: skip
    found = {(f.kind, f.subject): f for f in report.findings if f.kind in worker_kinds}
    assert sorted(found, key=str) == sorted(
        [
            (FindingKind.WORKER_SILENT, "worker:w-killed"),
            (FindingKind.WORKER_RESTARTED, "worker:w-new"),
            (FindingKind.LEADER_CHANGED, "leader:w-new:w-killed"),
        ],
        key=str,
    )
    assert _kinds(report)[FindingKind.WORKER_UNHEALTHY] == 0  # the world's own worker is fine
    silent = found[(FindingKind.WORKER_SILENT, "worker:w-killed")]
    assert silent.since == killed + timedelta(minutes=1)
    assert silent.detail == (
        f"the worker on h9 (pid 101, version 0.3.0) was last heard at "
        f"{killed + timedelta(minutes=1):%Y-%m-%d %H:%M:%S} UTC and did not stop cleanly; "
        f"the worker on h9 (pid 102, version 0.3.0) started at {restarted:%Y-%m-%d %H:%M:%S} UTC"
    )
    last = f"{killed + timedelta(minutes=1):%Y-%m-%d %H:%M:%S} UTC"
    restart = found[(FindingKind.WORKER_RESTARTED, "worker:w-new")].detail
    assert restart.endswith(f"went silent (last heard at {last}, no clean stop)")
    change = found[(FindingKind.LEADER_CHANGED, "leader:w-new:w-killed")].detail
    assert "took over relay from the worker on h9 (pid 101" in change
    assert "which had gone silent" in change
    assert report.drift == 1  # the silent worker; the restart and the change are for the record
    table = {w.pid: w for w in report.workers}
    assert (table[101].state, table[101].stopped_at) == (WorkerState.SILENT, None)
    assert (table[102].state, table[102].started_at) == (WorkerState.STOPPED, restarted)
    assert table[101].leading == table[102].leading == ()  # the relay lease ran out
    (own,) = [w for w in report.workers if w.pid not in (101, 102)]
    assert own.state is WorkerState.RUNNING  # the world's worker, leading its jobs
    assert "sync" in own.leading

    world.sync(advance=timedelta(days=1))
    later = _report(world)
    assert [f for f in later.findings if f.kind in worker_kinds] == []


def test_a_worker_without_a_version_is_named_by_host_and_pid(world: World) -> None:
    """The world's worker (as the demo's) records no version: its findings say host and pid
    only (they said "version )")."""
    _escalated(world)
    world.clock.advance(timedelta(minutes=10))  # the world's worker neither polls nor beats
    _beat(world, "w-new", 102, world.clock.now())
    now = world.clock.now()
    with world.store.transaction() as tx:
        world.store.acquire_lease(
            tx, "lease:sync", holder="w-new", now=now, until=now + timedelta(minutes=1)
        )
    report = _report(world)
    own = f"the worker on {socket.gethostname()} (pid {os.getpid()})"
    (silent,) = [f for f in report.findings if f.kind is FindingKind.WORKER_SILENT]
    assert silent.detail.startswith(f"{own} was last heard at ")
    (change,) = [f for f in report.findings if f.kind is FindingKind.LEADER_CHANGED]
    assert f"took over sync from {own} at " in change.detail


# -- the kinds no test injected before (review of issue 16, B): each listed exactly once --
WORKER_DOWN = {FindingKind.WORKER_SILENT: 1, FindingKind.WORKER_UNHEALTHY: 1}
"""What a report lists of a worker that neither polls nor beats (the drift's own kind aside)."""


def test_a_merged_escalation_ticket_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    target = world.ticket_by_title("HQ VPN outage")
    world.sandbox.merge(esc["id"], target)
    _settle(world)
    report = _report(world)
    assert _kinds(report) == {FindingKind.ESCALATION_TICKET_MERGED: 1}
    assert report.findings[0].other_ticket_id == target


def test_a_deleted_original_is_listed_once_not_also_as_unlinked(world: World) -> None:
    """Its link went with it: one drift, one finding (it was also listed as unlinked)."""
    original, _esc = _escalated(world)
    world.sandbox.delete_ticket(original)
    _settle(world)
    assert _kinds(_report(world)) == {FindingKind.ORIGINAL_DELETED: 1}


def test_a_level_set_by_hand_while_the_worker_is_down_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    _settle(world)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    world.clock.advance(SETTLE)  # no poll: the worker is down
    assert _kinds(_report(world)) == {FindingKind.LEVEL_DIFFERS: 1} | WORKER_DOWN


def test_a_group_changed_by_hand_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, group="Support")
    _settle(world)
    assert _kinds(_report(world)) == {FindingKind.GROUP_DIFFERS: 1}


def test_a_state_changed_by_hand_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.agent_update(
        esc["id"], ALICE, state="pending reminder", pending_time="2026-12-09T10:00:00Z"
    )
    _settle(world)
    assert _kinds(_report(world)) == {FindingKind.STATE_DIFFERS: 1}


def test_a_duty_overdue_while_the_worker_is_down_is_listed_once(world: World) -> None:
    _escalated(world)
    _settle(world)
    world.clock.advance(timedelta(hours=30))  # no pass: the duties' times go by
    # (its last beat is before the period: no longer listed as a silent worker)
    expected = {FindingKind.DUTY_OVERDUE: 1, FindingKind.WORKER_UNHEALTHY: 1}
    assert _kinds(_report(world)) == expected


def test_an_escalation_parked_past_its_confirmation_is_listed_once(world: World) -> None:
    _original, esc = _escalated(world)
    world.sandbox.agent_update(esc["id"], ALICE, escalation_level="2")
    world.sync()
    world.sandbox.agent_update(esc["id"], ALICE, escalation_rfo="Fibre cut.", state="closed")
    world.sync()
    assert world.store.escalations_in(State.PARKED)
    world.clock.advance(timedelta(days=10))
    kinds = _kinds(_report(world))
    assert kinds[FindingKind.PARKED_PAST_CONFIRMATION] == 1
    assert kinds[FindingKind.DUTY_OVERDUE] == 0


def test_a_hard_copy_purged_in_the_period_is_listed_once(world: World) -> None:
    _confirmed(world)
    _settle(world)
    world.clock.advance(timedelta(days=370))
    world.sync()
    assert _kinds(_report(world))[FindingKind.ARCHIVE_PURGED] == 1


def test_a_job_that_failed_three_hours_ago_is_in_the_period(world: World) -> None:
    """The period is 24 hours: the report read the last 500 job runs, about 1.7 hours of a
    default worker (sync and copy every 30 s, four more jobs every 300 s)."""
    _escalated(world)
    _settle(world)
    store = world.store
    t0 = world.clock.now()
    with store.transaction() as tx:
        failed = store.start_job_run(tx, "comms", t0)
        store.finish_job_run(tx, failed, finished_at=t0, ok=False, counts={}, error="boom")
        for n in range(360):  # three hours of a healthy worker: 1 008 runs
            at = t0 + timedelta(seconds=30 * (n + 1))
            jobs = ["sync", "copy"] + (["comms", "archive", "retention", "report"] * (n % 10 == 0))
            for job in jobs:
                run = store.start_job_run(tx, job, at)
                store.finish_job_run(tx, run, finished_at=at, ok=True, counts={})
    world.clock.set(t0 + timedelta(hours=3))
    world.sync()
    (finding,) = [f for f in _report(world).findings if f.subject == "job:comms"]
    assert finding.kind is FindingKind.WORKER_UNHEALTHY
    assert "the comms job failed 1 time(s) in the period" in finding.detail


def test_a_nightly_report_that_cannot_be_written_waits_an_hour_before_reading_again(
    tmp_path: Path,
) -> None:
    """Its files could not be written after the helpdesk was read (a file in the day
    directory's place): the job failed, and then read the whole helpdesk again every comms
    interval. Now it fails once (one job.failed line, the run recorded), waits an hour
    (``jobs.reconcile.backoff``), then writes the report once the path is fixed."""
    from jobs.reconcile.backoff import RETRY_AFTER

    at = datetime(2026, 12, 2, 6, 1, tzinfo=UTC)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        w = make_world(tmp_path, FakeClock(at), rsps, None)
        try:
            reports = w.ctx.settings.reports_path
            reports.mkdir(parents=True, exist_ok=True)
            (reports / "2026-12-02").write_text("in the way")
            w.worker.run_once()
            (failed,) = w.store.job_runs("report", limit=None)
            assert failed.ok is False
            assert (failed.error or "").startswith("ReportNotWritten: cannot write the report: ")
            for _ in range(5):  # the passes within the hour: the job returns at once
                w.clock.advance(timedelta(minutes=10))
                assert all(r is not None for r in w.worker.run_once())
            held = w.store.job_runs("report", limit=None)[:-1]
            assert held
            shown = [(r.ok, {k: n for k, n in r.counts.items() if n}) for r in held]
            assert shown == [(True, {})] * len(held)  # nothing read, nothing written
            (reports / "2026-12-02").unlink()
            w.clock.set(at + RETRY_AFTER + timedelta(minutes=1))
            assert all(r is not None for r in w.worker.run_once())
            assert (reports / "2026-12-02" / "report.json").is_file()
        finally:
            w.store.close()
