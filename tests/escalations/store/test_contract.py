"""The store contract: every test here runs on SQLite and on PostgreSQL (the ``engine``
fixture, ``conftest.py``); what only one engine has is in ``test_sqlite.py`` and
``test_postgres.py``."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest

from escalations.clock import FakeClock
from escalations.errors import StoreError
from escalations.models import (
    ArchiveCopy,
    ArchiveIntent,
    CarrierContact,
    CopiedArticle,
    Duty,
    Effect,
    EffectRef,
    EffectState,
    Escalation,
    LevelChange,
    ParkingOutcome,
    State,
)
from escalations.store import LAST_SUCCESSFUL_POLL, Duplicate
from escalations.store.base import Store
from escalations.workflow import Event, apply, flag
from tests.escalations.store.conftest import Engine

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WHEN = "'2026-12-01T00:00:00.000000Z'"
"""A time literal both engines take in raw SQL (text on SQLite, timestamptz on PostgreSQL)."""


def new_escalation(ticket: int = 123, seq: int = 1, customer: int = 7) -> Escalation:
    return flag(
        key=f"zammad:ticket:{ticket}:{seq}",
        original_ticket_id=ticket,
        customer_id=customer,
        segment="residential",
        level=1,
        reason="crisis",
        at=T0,
        callback_at=T0 + timedelta(hours=2),
        organization_id=None,
        flagged_by_id=3,
    )


def insert(store: Store, esc: Escalation) -> Escalation:
    with store.transaction() as tx:
        return store.insert_escalation(tx, esc)


def save(store: Store, esc: Escalation) -> None:
    with store.transaction() as tx:
        store.update_escalation(tx, esc)


def close_out(esc: Escalation) -> Escalation:
    at = T0
    for event in (Event.OPEN, Event.RESOLVE, Event.PARK, Event.CONFIRM, Event.CLOSE):
        at += timedelta(hours=1)
        esc = apply(esc, event, at)
    return esc


# -- opening -----------------------------------------------------------------------------
def test_reopening_keeps_data_and_does_not_migrate_again(engine: Engine, clock: FakeClock) -> None:
    first = engine.open(clock)
    esc = insert(first, new_escalation())
    version = first.schema_version
    first.close()
    second = engine.open(clock)
    assert second.schema_version == version
    assert second.get_escalation(esc.id) == esc
    assert second.integrity_check() == ["ok"]
    second.close()


# -- transactions ------------------------------------------------------------------------
def test_an_exception_rolls_the_transaction_back(store: Store) -> None:
    class Boom(Exception):
        pass

    def fail_midway() -> None:
        with store.transaction() as tx:
            store.insert_escalation(tx, new_escalation())
            raise Boom

    with pytest.raises(Boom):
        fail_midway()
    assert store.escalations_in() == []


def test_transactions_do_not_nest(store: Store) -> None:
    with store.transaction(), pytest.raises(StoreError, match="do not nest"), store.transaction():
        pass


def test_writes_need_the_open_transaction(store: Store, engine: Engine) -> None:
    with store.transaction() as tx:
        pass
    with pytest.raises(StoreError, match="open transaction"):
        store.insert_escalation(tx, new_escalation())
    other = engine.open(FakeClock())
    with other.transaction() as foreign, pytest.raises(StoreError, match="open transaction"):
        store.insert_escalation(foreign, new_escalation())
    other.close()


def test_reads_inside_a_transaction_see_its_writes(store: Store) -> None:
    with store.transaction() as tx:
        esc = store.insert_escalation(tx, new_escalation())
        assert store.escalation_by_key(esc.key) == esc


def test_each_thread_gets_its_own_connection(store: Store) -> None:
    seen: list[object] = []

    def work() -> None:
        with store.transaction() as tx:
            seen.append(store.insert_escalation(tx, new_escalation(ticket=555)))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert len(seen) == 1
    assert store.active_escalation_for_ticket(555) == seen[0]
    assert len(store._connections) == 2


def test_a_closed_store_refuses_work(engine: Engine, clock: FakeClock) -> None:
    store = engine.open(clock)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.escalations_in()


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = dataclasses.replace(new_escalation(), updated_at=datetime(2026, 1, 1))  # noqa: DTZ001
    with store.transaction() as tx, pytest.raises(ValueError, match="naive"):
        store.insert_escalation(tx, naive)


# -- escalations and uniqueness ------------------------------------------------------------
def test_escalation_round_trip_and_lookups(store: Store) -> None:
    esc = insert(store, new_escalation())
    assert esc.id > 0
    assert store.get_escalation(esc.id) == esc
    assert store.escalation_by_key("zammad:ticket:123:1") == esc
    assert store.active_escalation_for_ticket(123) == esc
    assert store.active_escalations_for_customer(7) == [esc]
    assert store.escalations_in(State.FLAGGED) == [esc]
    assert store.escalations_in(State.OPEN) == []
    opened = apply(esc, Event.OPEN, T0 + timedelta(minutes=1), escalation_ticket_id=900)
    save(store, opened)
    assert store.escalation_by_ticket(900) == opened
    assert store.get_escalation(esc.id) == opened
    assert store.get_escalation(999) is None


def test_update_of_a_missing_escalation_is_an_error(store: Store) -> None:
    with store.transaction() as tx, pytest.raises(StoreError, match="does not exist"):
        store.update_escalation(tx, dataclasses.replace(new_escalation(), id=77))


def test_duplicate_key_is_refused_by_the_database(store: Store) -> None:
    insert(store, new_escalation())
    with pytest.raises(Duplicate):
        insert(store, dataclasses.replace(new_escalation(), original_ticket_id=999))


def test_one_active_escalation_per_original_ticket(store: Store) -> None:
    first = insert(store, new_escalation(seq=1))
    with pytest.raises(Duplicate, match="already has an active escalation"):
        insert(store, new_escalation(seq=2))
    save(store, close_out(first))
    second = insert(store, new_escalation(seq=2))
    assert store.active_escalation_for_ticket(123) == second
    assert [e.key for e in store.escalations_for_ticket(123)] == [first.key, second.key]
    assert store.active_escalations_for_customer(7) == [second]


def test_the_active_rule_is_a_database_constraint(store: Store, engine: Engine) -> None:
    insert(store, new_escalation(seq=1))
    conn = store._conn()  # type: ignore[attr-defined]
    with pytest.raises(engine.integrity_error):
        conn.execute(
            "INSERT INTO escalation (key, original_ticket_id, customer_id, segment, level,"
            f" reason, state, updated_at) VALUES ('x', 123, 7, 's', 1, 'r', 'open', {WHEN})"
        )


def test_an_escalation_ticket_belongs_to_one_escalation(store: Store) -> None:
    a = insert(store, new_escalation(ticket=1))
    b = insert(store, new_escalation(ticket=2))
    save(store, dataclasses.replace(a, escalation_ticket_id=900))
    with pytest.raises(Duplicate):
        save(store, dataclasses.replace(b, escalation_ticket_id=900))


def test_states_and_levels_are_checked_by_the_database(store: Store, engine: Engine) -> None:
    with pytest.raises(engine.integrity_error):
        insert(store, dataclasses.replace(new_escalation(), level=0))
    conn = store._conn()  # type: ignore[attr-defined]
    with pytest.raises(engine.integrity_error):
        conn.execute(
            "INSERT INTO escalation (key, original_ticket_id, customer_id, segment, level,"
            f" reason, state, updated_at) VALUES ('y', 5, 7, 's', 1, 'r', 'lost', {WHEN})"
        )


# -- history rows -------------------------------------------------------------------------
def test_level_changes_are_recorded_in_order(store: Store) -> None:
    esc = insert(store, new_escalation())
    changes = [
        LevelChange(escalation_id=esc.id, from_level=1, to_level=2, changed_at=T0, reason="asked"),
        LevelChange(
            escalation_id=esc.id,
            from_level=2,
            to_level=3,
            changed_at=T0 + timedelta(hours=1),
            changed_by_id=4,
        ),
    ]
    with store.transaction() as tx:
        for change in changes:
            store.record_level_change(tx, change)
    assert store.level_changes(esc.id) == changes


def test_copied_articles_are_unique_per_escalation_and_source(store: Store) -> None:
    esc = insert(store, new_escalation())
    row = CopiedArticle(
        escalation_id=esc.id, source_ticket_id=123, source_article_id=8812, copied_at=T0
    )
    with store.transaction() as tx:
        assert store.record_copied_article(tx, row) is True
        assert store.record_copied_article(tx, row) is False
        store.set_copy_article_id(tx, esc.id, 8812, 9001)
    assert store.copied_articles(esc.id) == [dataclasses.replace(row, copy_article_id=9001)]
    with store.transaction() as tx, pytest.raises(StoreError, match="no copied article"):
        store.set_copy_article_id(tx, esc.id, 1, 2)


def test_history_rows_need_an_existing_escalation(store: Store, engine: Engine) -> None:
    row = CopiedArticle(escalation_id=404, source_ticket_id=1, source_article_id=2, copied_at=T0)
    with pytest.raises(engine.integrity_error), store.transaction() as tx:
        store.record_copied_article(tx, row)
    assert store.copied_articles(404) == []


def test_carrier_contacts_round_trip_and_are_unique(store: Store) -> None:
    esc = insert(store, new_escalation())
    contact = CarrierContact(
        escalation_id=esc.id,
        source_article_id=50,
        carrier="BT",
        stage="fault raised",
        forename="Sam",
        location=None,
        user_id="bt-77",
        called_at=T0,
        missing=("location",),
    )
    with store.transaction() as tx:
        assert store.record_carrier_contact(tx, contact) is True
        assert store.record_carrier_contact(tx, contact) is False
    assert store.carrier_contacts(esc.id) == [contact]


def test_duties_are_unique_per_slot_and_can_be_completed(store: Store) -> None:
    esc = insert(store, new_escalation())
    am = Duty(escalation_id=esc.id, kind="call", slot="2026-12-01:am", due_at=T0)
    pm = Duty(
        escalation_id=esc.id, kind="call", slot="2026-12-01:pm", due_at=T0 + timedelta(hours=6)
    )
    with store.transaction() as tx:
        assert store.add_duty(tx, am) is True
        assert store.add_duty(tx, am) is False
        assert store.add_duty(tx, pm) is True
    assert store.duties(esc.id) == [am, pm]
    assert store.duties(due_by=T0 + timedelta(hours=1), pending_only=True) == [am]
    done_at = T0 + timedelta(minutes=30)
    with store.transaction() as tx:
        assert store.complete_duty(tx, esc.id, "call", am.slot, done_at) is True
        assert store.complete_duty(tx, esc.id, "call", am.slot, done_at) is False
        assert store.complete_duty(tx, esc.id, "call", "nope", done_at) is False
    assert store.duties(esc.id, pending_only=True) == [pm]
    assert store.duties(esc.id)[0].done_at == done_at


def test_parking_periods_open_one_at_a_time_and_end_once(store: Store) -> None:
    esc = insert(store, new_escalation())
    until = T0 + timedelta(days=3)
    with store.transaction() as tx:
        first = store.start_parking(tx, esc.id, T0, until)
        with pytest.raises(StoreError, match="parked already"):
            store.start_parking(tx, esc.id, T0, until)
    assert first.seq == 1
    later = T0 + timedelta(hours=5)
    with store.transaction() as tx:
        ended = store.end_parking(tx, esc.id, later, ParkingOutcome.CUSTOMER_WROTE, "an email")
        assert store.end_parking(tx, esc.id, later, ParkingOutcome.REOPENED) is None
        second = store.start_parking(tx, esc.id, later, later + timedelta(days=3))
    assert ended is not None
    assert ended.outcome is ParkingOutcome.CUSTOMER_WROTE
    assert second.seq == 2
    periods = store.parking_periods(esc.id)
    assert [(p.seq, p.ended_at, p.outcome, p.reason) for p in periods] == [
        (1, later, ParkingOutcome.CUSTOMER_WROTE, "an email"),
        (2, None, None, ""),
    ]
    assert periods[0].pending_until == until


# -- effects rows -------------------------------------------------------------------------
def effect_args(key: str = "k1", **over: object) -> dict[str, object]:
    args: dict[str, object] = {
        "kind": "create",
        "key": key,
        "marker": "hde1-0123456789abcdef",
        "payload_json": '{"a":1}',
        "payload_sha256": "0" * 64,
        "payload_version": 1,
        "escalation_id": None,
        "after": None,
        "at": T0,
    }
    args.update(over)
    return args


def test_effect_kind_and_key_are_unique(store: Store, engine: Engine) -> None:
    with store.transaction() as tx:
        first = store.insert_effect(tx, **effect_args())  # type: ignore[arg-type]
        again = store.insert_effect(tx, **effect_args())  # type: ignore[arg-type]
    assert first is not None
    assert again is None
    assert len(store.effects()) == 1
    with pytest.raises(engine.integrity_error):
        store._conn().execute(  # type: ignore[attr-defined]
            "INSERT INTO effect (kind, key, marker, payload, payload_sha256, not_before,"
            f" created_at, updated_at) VALUES ('create', 'k1', 'm', '{{}}', 's', {WHEN}, {WHEN},"
            f" {WHEN})"
        )


def claim(store: Store, now: datetime, worker: str = "w1", after_id: int = 0) -> Effect | None:
    with store.transaction() as tx:
        return store.claim_next(
            tx, worker=worker, now=now, after_id=after_id,
            lease_until=now + timedelta(minutes=15), orphaned_before=now - timedelta(minutes=2),
        )  # fmt: skip


def test_effect_life_cycle_in_the_store(store: Store, clock: FakeClock) -> None:
    with store.transaction() as tx:
        effect_id = store.insert_effect(tx, **effect_args(after=("create", "k0")))  # type: ignore[arg-type]
    assert effect_id is not None
    effect = store.get_effect(effect_id)
    assert effect is not None
    assert (effect.state, effect.attempts, effect.after, effect.payload_version) == (
        EffectState.PENDING,
        0,
        EffectRef("create", "k0"),
        1,
    )
    assert effect.payload == {"a": 1}
    assert store.count_due(now=T0) == 1
    claimed = claim(store, T0)
    assert claimed is not None
    assert (claimed.id, claimed.state, claimed.attempts, claimed.claimed_by) == (
        effect_id, EffectState.IN_FLIGHT, 1, "w1",
    )  # fmt: skip
    assert claim(store, T0, worker="w2") is None  # under w1's lease
    later = T0 + timedelta(minutes=5)
    with store.transaction() as tx:
        store.finish_effect(tx, effect_id, EffectState.IN_FLIGHT, last_error="x", not_before=later)
    assert claim(store, T0) is None  # not yet due
    assert store.count_due(now=T0) == 0
    assert claim(store, later) is not None  # a throttled attempt is given back
    with store.transaction() as tx:
        store.finish_effect(tx, effect_id, EffectState.PENDING, give_back_attempt=True)
    again = store.get_effect(effect_id)
    assert again is not None
    assert (again.attempts, again.deferrals) == (1, 1)
    assert claim(store, later) is not None
    with store.transaction() as tx:
        store.finish_effect(tx, effect_id, EffectState.DONE, remote_id="900")
    done = store.effect_by_key("create", "k1")
    assert done is not None
    assert (done.state, done.attempts, done.remote_id, done.last_error, done.claimed_by) == (
        EffectState.DONE, 2, "900", None, None,
    )  # fmt: skip
    assert store.effects(EffectState.DONE) == [done]
    assert claim(store, later) is None
    with store.transaction() as tx, pytest.raises(StoreError, match="cannot change state"):
        store.finish_effect(tx, effect_id, EffectState.FAILED)
    with store.transaction() as tx:
        assert store.retry_failed(tx, effect_id, at=later) is False  # only a failed one


def test_an_effect_waits_for_its_prerequisite_and_failed_ones_can_be_replayed(
    store: Store,
) -> None:
    with store.transaction() as tx:
        first = store.insert_effect(tx, **effect_args("k0"))  # type: ignore[arg-type]
        second = store.insert_effect(tx, **effect_args("k1", kind="note", after=("create", "k0")))  # type: ignore[arg-type]
    assert first is not None
    assert second is not None
    taken = claim(store, T0)
    assert taken is not None
    assert taken.id == first
    assert claim(store, T0, after_id=first) is None  # the note waits for the create
    with store.transaction() as tx:
        store.finish_effect(tx, first, EffectState.FAILED, last_error="refused")
    nxt = claim(store, T0)
    assert nxt is not None
    assert nxt.id == second
    with store.transaction() as tx:
        store.finish_effect(tx, second, EffectState.DONE)
        assert store.retry_failed(tx, first, at=T0 + timedelta(hours=1)) is True
    replay = store.get_effect(first)
    assert replay is not None
    # it may have been sent: one attempt is kept, so the next claim looks for it first
    assert (replay.state, replay.attempts, replay.not_before) == (
        EffectState.PENDING, 1, T0 + timedelta(hours=1),
    )  # fmt: skip


def test_a_done_effect_can_be_rearmed_once_and_is_then_looked_for(store: Store) -> None:
    """``rearm_done`` (the report's repair of a deleted copy): only a done row, back to
    pending with its attempt kept, so the next claim is a second attempt (look first)."""
    with store.transaction() as tx:
        effect_id = store.insert_effect(tx, **effect_args("k0"))  # type: ignore[arg-type]
    assert effect_id is not None
    with store.transaction() as tx:
        assert store.rearm_done(tx, effect_id, at=T0) is False  # pending: not done
    assert claim(store, T0) is not None
    with store.transaction() as tx:
        store.finish_effect(tx, effect_id, EffectState.DONE, remote_id="900")
    later = T0 + timedelta(hours=1)
    with store.transaction() as tx:
        assert store.rearm_done(tx, effect_id, at=later) is True
        assert store.rearm_done(tx, effect_id, at=later) is False  # pending again already
    again = claim(store, later)
    assert again is not None
    assert (again.id, again.attempts) == (effect_id, 2)


def test_a_dead_workers_claim_is_taken_over_after_the_settle_window(store: Store) -> None:
    with store.transaction() as tx:
        effect_id = store.insert_effect(tx, **effect_args())  # type: ignore[arg-type]
    assert claim(store, T0, worker="dead") is not None
    with store.transaction() as tx:
        assert store.release_claims(tx, except_worker="next") == 1
    soon = T0 + timedelta(seconds=30)
    assert claim(store, soon, worker="next") is None  # the settle window (updated_at = T0)
    late = T0 + timedelta(minutes=3)
    taken = claim(store, late, worker="next")
    assert taken is not None
    assert (taken.id, taken.attempts, taken.claimed_by) == (
        effect_id,
        2,
        "next",
    )


def test_an_expired_lease_is_taken_over(store: Store) -> None:
    with store.transaction() as tx:
        store.insert_effect(tx, **effect_args())  # type: ignore[arg-type]
    assert claim(store, T0, worker="w1") is not None
    assert claim(store, T0 + timedelta(minutes=14), worker="w2") is None
    taken = claim(store, T0 + timedelta(minutes=15), worker="w2")
    assert taken is not None
    assert taken.claimed_by == "w2"


# -- cursor, seen tickets, jobs, meta, status ---------------------------------------------
def test_cursor_round_trip(store: Store) -> None:
    assert store.get_cursor("tickets") is None
    with store.transaction() as tx:
        store.set_cursor(tx, "tickets", T0, T0 + timedelta(seconds=30))
    cursor = store.get_cursor("tickets")
    assert cursor is not None
    assert (cursor.value, cursor.signpost) == (T0, T0 + timedelta(seconds=30))


def test_cursor_never_moves_past_the_signpost(store: Store, engine: Engine) -> None:
    with store.transaction() as tx, pytest.raises(ValueError, match="past the signpost"):
        store.set_cursor(tx, "tickets", T0 + timedelta(seconds=1), T0)
    assert store.get_cursor("tickets") is None
    with pytest.raises(engine.integrity_error):  # and the database refuses it too
        store._conn().execute(  # type: ignore[attr-defined]
            "INSERT INTO sync_cursor VALUES ('tickets', '2026-12-02T00:00:00.000000Z',"
            f" '2026-12-01T00:00:00.000000Z', {WHEN})"
        )


def test_seen_versions_absorb_the_overlap(store: Store, clock: FakeClock) -> None:
    assert store.ticket_seen(5, T0) is False
    with store.transaction() as tx:
        assert store.note_ticket_seen(tx, 5, T0) is True
        assert store.ticket_seen(5, T0) is True
        # a version is seen exactly: an older stamp (a clock set back on the helpdesk, or a
        # restored backup) is a different version, not one already handled (issue 10 #2)
        assert store.ticket_seen(5, T0 - timedelta(seconds=1)) is False
        assert store.ticket_seen(5, T0 + timedelta(seconds=1)) is False
        assert store.note_ticket_seen(tx, 5, T0) is False
        assert store.note_ticket_seen(tx, 5, T0 - timedelta(seconds=1)) is True
        assert store.note_ticket_seen(tx, 5, T0 + timedelta(seconds=1)) is True
        assert store.note_ticket_seen(tx, 6, T0 - timedelta(days=2)) is True
        assert store.note_ticket_seen(tx, 7, T0 + timedelta(days=5)) is True  # a fast clock
    clock.advance(timedelta(days=3))
    with store.transaction() as tx:
        # ticket 5's three versions and ticket 6's go; ticket 7's future stamp stays
        assert store.forget_seen_before(tx, clock.now() - timedelta(days=1)) == 4
        assert store.note_ticket_seen(tx, 6, T0 - timedelta(days=2)) is True
        assert store.note_ticket_seen(tx, 7, T0 + timedelta(days=5)) is False


def test_job_runs_are_read_by_time_and_without_a_limit(store: Store) -> None:
    """The report reads the job runs of its period by time (it read the last 500: about 1.7
    hours of a default worker)."""
    with store.transaction() as tx:
        runs = [
            store.start_job_run(tx, job, T0 + timedelta(hours=n))
            for n, job in enumerate(["parking", "sync", "sync", "sync"])
        ]
    assert [r.id for r in store.job_runs(since=T0 + timedelta(hours=2))] == runs[:1:-1]
    assert [r.id for r in store.job_runs("parking", since=T0 + timedelta(hours=1))] == []
    assert [r.id for r in store.job_runs("sync", since=T0, limit=2)] == runs[:1:-1]
    assert [r.id for r in store.job_runs(limit=None)] == runs[::-1]
    assert [r.id for r in store.job_runs(limit=None, since=T0)] == runs[::-1]  # T0 itself too
    assert len(store.job_runs(limit=2)) == 2


def test_job_runs_meta_and_status(store: Store, clock: FakeClock) -> None:
    open_esc = insert(store, new_escalation(ticket=1))
    save(store, apply(open_esc, Event.OPEN, T0, level=2, max_level=4))
    insert(store, new_escalation(ticket=2))
    save(store, close_out(insert(store, new_escalation(ticket=3))))
    with store.transaction() as tx:
        store.add_duty(tx, Duty(escalation_id=open_esc.id, kind="update", slot="1", due_at=T0))
        store.add_duty(
            tx,
            Duty(escalation_id=open_esc.id, kind="update", slot="2", due_at=T0 + timedelta(days=1)),
        )
        store.insert_effect(tx, **effect_args("a"))  # type: ignore[arg-type]
        store.insert_effect(tx, **effect_args("b"))  # type: ignore[arg-type]
        ok_run = store.start_job_run(tx, "sync", T0)
        store.finish_job_run(tx, ok_run, finished_at=T0, ok=True, counts={"copied": 2})
        bad_run = store.start_job_run(tx, "parking", T0)
        store.finish_job_run(tx, bad_run, finished_at=T0, ok=False, counts={}, error="boom")
        store.set_meta(tx, LAST_SUCCESSFUL_POLL, T0)
        store.set_meta(tx, "anything", {"x": [1, 2]})
    assert store.get_meta("anything") == {"x": [1, 2]}
    assert store.get_meta("missing") is None
    runs = store.job_runs()
    assert [r.job for r in runs] == ["parking", "sync"]
    assert runs[1].counts == {"copied": 2}
    assert runs[1].ok is True
    assert [r.id for r in store.job_runs("sync")] == [ok_run]

    status = store.status(T0 + timedelta(hours=1))
    assert status.escalations == {(State.OPEN, 2): 1, (State.FLAGGED, 1): 1}
    assert status.duties_due == 1
    assert status.effects == {
        EffectState.PENDING: 2,
        EffectState.IN_FLIGHT: 0,
        EffectState.DONE: 0,
        EffectState.FAILED: 0,
    }
    assert status.last_successful_poll == T0
    assert [r.error for r in status.last_errors] == ["boom"]
    assert status.schema_version == store.schema_version


def test_integrity_check_is_ok(store: Store) -> None:
    insert(store, new_escalation())
    assert store.integrity_check() == ["ok"]


def test_scan_requests_are_unique_ordered_and_cleared(store: Store, clock: FakeClock) -> None:
    esc = insert(store, new_escalation())
    with store.transaction() as tx:
        assert store.request_scan(tx, esc.id, 200, "31200", clock.now())
        assert not store.request_scan(tx, esc.id, 200, "31200", clock.now())
    clock.advance(timedelta(seconds=1))
    with store.transaction() as tx:
        assert store.request_scan(tx, esc.id, 123, "31123", clock.now())
    scans = store.pending_scans()
    assert [(s.ticket_id, s.ticket_number) for s in scans] == [(200, "31200"), (123, "31123")]
    with store.transaction() as tx:
        store.clear_scan(tx, esc.id, 200)
    assert [s.ticket_id for s in store.pending_scans()] == [123]


def test_known_articles_are_per_escalation_and_ticket_and_absorb_repeats(store: Store) -> None:
    """Migration 011: the article ids the worker accounted for, kept per escalation and
    ticket (another escalation of the same customer has read nothing of that ticket)."""
    first = insert(store, new_escalation(ticket=123))
    second = insert(store, new_escalation(ticket=124))
    assert store.known_articles(first.id, 500) == frozenset()
    with store.transaction() as tx:
        assert store.note_articles_known(tx, first.id, 500, [9001, 9002, 9002]) == 2
        assert store.note_articles_known(tx, first.id, 500, [9002, 9003]) == 1
        assert store.note_articles_known(tx, first.id, 500, []) == 0
        assert store.note_articles_known(tx, second.id, 500, [9001]) == 1
        assert store.note_articles_known(tx, first.id, 501, [9004]) == 1
    assert store.known_articles(first.id, 500) == frozenset({9001, 9002, 9003})
    assert store.known_articles(second.id, 500) == frozenset({9001})
    assert store.known_articles(first.id, 501) == frozenset({9004})
    with pytest.raises(StoreError), store.transaction():
        store.note_articles_known(object(), first.id, 500, [9005])  # not the open transaction
    assert 9005 not in store.known_articles(first.id, 500)


def test_the_running_escalations_reading_a_ticket_are_those_with_known_articles_there(
    store: Store,
) -> None:
    """Migration 014 (``jobs.sync.merging``): by ticket id alone, running escalations only."""
    first = insert(store, new_escalation(ticket=123))
    second = insert(store, new_escalation(ticket=124, customer=8))
    third = insert(store, new_escalation(ticket=125, customer=9))
    with store.transaction() as tx:
        store.note_articles_known(tx, first.id, 500, [9001])
        store.note_articles_known(tx, second.id, 500, [9002])
        store.note_articles_known(tx, third.id, 501, [9003])
    assert [e.id for e in store.active_escalations_reading(500)] == [first.id, second.id]
    assert [e.id for e in store.active_escalations_reading(501)] == [third.id]
    assert store.active_escalations_reading(502) == []
    save(store, dataclasses.replace(second, state=State.CLOSED, closed_at=second.updated_at))
    assert [e.id for e in store.active_escalations_reading(500)] == [first.id]


def test_an_archive_intent_is_kept_until_its_copy_is_recorded_or_it_is_dropped(
    store: Store,
) -> None:
    """Migration 012: the hard copy about to be written, recorded before its first file (a
    second begin for the same close keeps the first); recording the copy drops it in the
    same transaction; one of which nothing was placed is dropped alone."""
    first = insert(store, new_escalation(ticket=123))
    second = insert(store, new_escalation(ticket=124))
    closed = T0 + timedelta(days=2)
    one = ArchiveIntent(escalation_id=first.id, closed_at=closed, path="/a/one", begun_at=T0)
    two = ArchiveIntent(escalation_id=second.id, closed_at=closed, path="/a/two", begun_at=T0)
    with store.transaction() as tx:
        store.begin_archive(tx, one)
        store.begin_archive(tx, dataclasses.replace(one, begun_at=T0 + timedelta(hours=1)))
        store.begin_archive(tx, two)
    assert store.archive_intents() == [one, two]
    copy = ArchiveCopy(
        escalation_id=first.id,
        closed_at=closed,
        path=one.path,
        manifest_sha256="ab" * 32,
        archived_at=one.begun_at,
    )
    with store.transaction() as tx:
        assert store.record_archive(tx, copy)
    assert store.archive_intents() == [two]
    assert store.archives() == [copy]
    with store.transaction() as tx:
        assert store.drop_archive_intent(tx, second.id, closed)
        assert not store.drop_archive_intent(tx, second.id, closed)
    assert store.archive_intents() == []
    assert store.archives() == [copy]
