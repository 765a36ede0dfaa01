from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.errors import (
    AuthError,
    Conflict,
    Forbidden,
    Maintenance,
    NotFound,
    RateLimited,
    RedirectError,
    Rejected,
    TransientError,
    Unauthorized,
)
from escalations.clock import FakeClock
from escalations.effects import EffectError, EffectRef, Intent
from escalations.effects import executor as effects_module
from escalations.faults import POINTS, NoFaults, RaiseAt, SimulatedCrash
from escalations.markers import marker_for
from escalations.models import Effect, EffectState, State
from escalations.store import SqliteStore
from escalations.workflow import flag
from tests.escalations.effects.fakes import (
    AMBIGUOUS_APPLIED,
    AMBIGUOUS_LOST,
    KIND,
    CreateHandler,
    Effects,
    FakePayload,
    FakeRemote,
    fake_intent,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def remote() -> FakeRemote:
    return FakeRemote()


@pytest.fixture
def handler(remote: FakeRemote) -> CreateHandler:
    return CreateHandler(remote)


def executor(
    store: SqliteStore,
    remote: FakeRemote,
    handler: CreateHandler,
    clock: FakeClock,
    faults: Any = None,
    **kw: Any,
) -> Effects:
    handler.remote = remote
    return Effects(store, [handler], clock, faults or NoFaults(), **kw)


@pytest.fixture
def fx(store: SqliteStore, remote: FakeRemote, handler: CreateHandler, clock: FakeClock) -> Effects:
    return executor(store, remote, handler, clock)


def intent(n: int = 1, **kw: Any) -> Intent:
    return fake_intent(f"create:esc:{n}", f"escalation {n}", **kw)


def request(fx: Effects, *intents: Intent) -> list[bool]:
    with fx.transaction() as tx:
        return [fx.request(tx, i) for i in intents]


def only_effect(store: SqliteStore) -> Effect:
    (effect,) = store.effects()
    return effect


# -- intents -----------------------------------------------------------------------------
def test_intent_marker_is_recomputable() -> None:
    i = intent()
    assert i.marker == marker_for(KIND, "create:esc:1")
    assert i.ref == EffectRef(KIND, "create:esc:1")
    assert i.payload_json == '{"title":"escalation 1"}'


def test_intent_payload_must_be_the_kinds_model() -> None:
    class Other(FakePayload):
        pass

    with pytest.raises(EffectError, match="payload must be FakePayload"):
        CreateHandler.intent("k", object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind and a key"):
        fake_intent("")


def test_an_unknown_kind_is_refused_when_requested(fx: Effects) -> None:
    stray = Intent("teleport", "k", FakePayload())
    with pytest.raises(EffectError, match="no effect kind 'teleport'"), fx.transaction() as tx:
        fx.request(tx, stray)


def test_after_must_name_a_stored_effect(fx: Effects, store: SqliteStore) -> None:
    """An ``after`` naming nothing used to defer forever; now it is an error when requested
    (issue 9), and nothing of that transaction is kept."""
    orphan = intent(1, after=EffectRef(KIND, "never-requested"))
    with pytest.raises(EffectError, match="never requested"), fx.transaction() as tx:
        fx.request(tx, orphan)
    assert store.effects() == []
    # earlier in the same transaction counts
    first = intent(1)
    assert request(fx, first, intent(2, after=first.ref)) == [True, True]


def test_request_twice_gives_one_row(fx: Effects, store: SqliteStore) -> None:
    assert request(fx, intent(), intent()) == [True, False]
    assert request(fx, intent()) == [False]
    effect = only_effect(store)
    assert (effect.state, effect.attempts, effect.marker) == (
        EffectState.PENDING,
        0,
        intent().marker,
    )
    assert effect.payload == {"title": "escalation 1"}


def test_a_differing_second_request_keeps_the_first_and_warns(
    fx: Effects, store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    request(fx, intent())
    with caplog.at_level(logging.WARNING):
        assert request(fx, fake_intent("create:esc:1", "other")) == [False]
    assert only_effect(store).payload == {"title": "escalation 1"}
    assert "effect.payload_differs" in caplog.text


def test_intent_is_part_of_the_callers_transaction(fx: Effects, store: SqliteStore) -> None:
    class Boom(Exception):
        pass

    def fail_after_request() -> None:
        with store.transaction() as tx:
            fx.request(tx, intent())
            raise Boom

    with pytest.raises(Boom):
        fail_after_request()
    assert store.effects() == []


def test_intent_committed_point_fires_once_per_new_intent(
    store: SqliteStore, remote: FakeRemote, handler: CreateHandler, clock: FakeClock
) -> None:
    hits: list[tuple[str, str | None]] = []

    class Recorder:
        def point(self, name: str, *, kind: str | None = None) -> None:
            hits.append((name, kind))

    fx = executor(store, remote, handler, clock, Recorder())
    request(fx, intent(1), intent(1), intent(2))
    assert hits == [("intent.committed", KIND)] * 2
    hits.clear()
    with store.transaction() as tx:  # the plain store transaction plus committed(tx)
        fx.request(tx, intent(3))
    assert hits == []
    fx.committed(tx)
    assert hits == [("intent.committed", KIND)]


def test_intents_requested_on_commit_pass_the_intent_committed_point(
    store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    """Follow-ups requested in an effect's commit (the writes on the original ticket after the
    escalation ticket is created) are intents like any other: a crash test must be able to
    stop right after they commit."""
    hits: list[tuple[str, str | None]] = []

    class Recorder:
        def point(self, name: str, *, kind: str | None = None) -> None:
            hits.append((name, kind))

    class WithFollowUp(CreateHandler):
        def on_commit(
            self, tx: Any, effect: Effect, payload: FakePayload, remote_id: str | None
        ) -> None:
            if not effect.key.startswith("after:"):
                fx.request(tx, fake_intent(f"after:{effect.key}"))

    handler = WithFollowUp(remote)
    fx = Effects(store, [handler], clock, Recorder())
    request(fx, intent())
    hits.clear()
    fx.run_pending()
    assert hits[:4] == [
        ("effect.claimed", KIND),
        ("effect.sent", KIND),
        ("intent.committed", KIND),
        ("effect.committed", KIND),
    ]
    # the follow-up has a larger id, so the same sweep reaches it
    assert hits[4:] == [("effect.claimed", KIND), ("effect.sent", KIND), ("effect.committed", KIND)]


# -- the happy path ------------------------------------------------------------------------
def test_run_pending_writes_once_and_commits(
    fx: Effects, store: SqliteStore, remote: FakeRemote, handler: CreateHandler
) -> None:
    request(fx, intent())
    result = fx.run_pending()
    assert (result.done, result.failed, result.ambiguous, result.deferred) == (1, 0, 0, 0)
    effect = only_effect(store)
    assert (effect.state, effect.attempts, effect.remote_id) == (EffectState.DONE, 1, "1")
    assert remote.count(effect.marker) == 1
    assert remote.finds == 0, "a first attempt does not look"
    assert handler.commits == [(effect.id, "1")]


def test_run_pending_is_reentrant(fx: Effects, remote: FakeRemote) -> None:
    request(fx, intent())
    fx.run_pending()
    result = fx.run_pending()
    assert (result.done, result.failed, result.ambiguous, result.deferred) == (0, 0, 0, 0)
    assert remote.write_attempts == 1


def test_effects_run_in_creation_order_up_to_the_limit(
    fx: Effects, store: SqliteStore, remote: FakeRemote
) -> None:
    request(fx, intent(3), intent(1), intent(2))
    assert fx.run_pending(limit=2).done == 2
    assert [e.key for e in store.effects(EffectState.DONE)] == ["create:esc:3", "create:esc:1"]
    assert fx.run_pending().done == 1


def test_run_effects_carries_out_only_the_effects_named(
    fx: Effects, store: SqliteStore, remote: FakeRemote
) -> None:
    """``Executor.run_effects`` (``escalations report --repair``): the effects named, each
    if claimable now; one waiting for its prerequisite is left pending, and a claim that
    would have picked another row is rolled back, so the rest stays the worker's."""
    first, second = intent(1), intent(2, after=intent(1).ref)
    request(fx, first, second, intent(3))
    by_key = {e.key: e.id for e in store.effects()}
    result = fx.executor.run_effects([by_key["create:esc:2"]])
    assert (result.done, result.deferred) == (0, 1)  # it waits for the first
    assert {e.key: e.state for e in store.effects()} == {
        "create:esc:1": EffectState.PENDING,
        "create:esc:2": EffectState.PENDING,
        "create:esc:3": EffectState.PENDING,
    }  # the third, which a plain claim would have picked next, was not taken
    assert all(e.attempts == 0 for e in store.effects())
    result = fx.executor.run_effects([by_key["create:esc:1"], by_key["create:esc:2"]])
    assert (result.done, result.deferred) == (2, 0)
    assert [e.key for e in store.effects(EffectState.PENDING)] == ["create:esc:3"]
    assert remote.write_attempts == 2


def test_on_commit_runs_in_the_commit_transaction(
    store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    class LinkingHandler(CreateHandler):
        def on_commit(
            self, tx: Any, effect: Effect, payload: FakePayload, remote_id: str | None
        ) -> None:
            esc = store.get_escalation(effect.escalation_id or 0)
            assert esc is not None
            store.update_escalation(
                tx, dataclasses.replace(esc, escalation_ticket_id=int(remote_id or 0))
            )

    esc = flag(
        key="zammad:ticket:1:1",
        original_ticket_id=1,
        customer_id=2,
        segment="s",
        level=1,
        reason="r",
        at=T0,
    )
    fx = executor(store, remote, LinkingHandler(remote), clock)
    with fx.transaction() as tx:
        esc = store.insert_escalation(tx, esc)
        fx.request(tx, intent(escalation_id=esc.id))
    fx.run_pending()
    stored = store.get_escalation(esc.id)
    assert stored is not None
    assert stored.escalation_ticket_id == 1
    assert stored.state is State.FLAGGED


def test_a_failing_on_commit_rolls_back_and_is_recovered_without_a_second_write(
    store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    class FlakyCommit(CreateHandler):
        fail = True

        def on_commit(
            self, tx: Any, effect: Effect, payload: FakePayload, remote_id: str | None
        ) -> None:
            if self.fail:
                self.fail = False
                raise RuntimeError("bug in the hook")
            super().on_commit(tx, effect, payload, remote_id)

    handler = FlakyCommit(remote)
    fx = executor(store, remote, handler, clock)
    request(fx, intent())
    assert fx.run_pending().ambiguous == 1
    assert only_effect(store).state is EffectState.IN_FLIGHT
    clock.advance(timedelta(minutes=1))
    assert fx.run_pending().done == 1
    assert remote.write_attempts == 1
    assert len(handler.commits) == 1


# -- every crash point of §B2 ------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_crash_at_each_point_then_recover_writes_exactly_once(
    point: str, db_path: Path, clock: FakeClock, remote: FakeRemote, handler: CreateHandler
) -> None:
    crashing_store = SqliteStore(db_path, clock)
    crashing = executor(crashing_store, remote, handler, clock, RaiseAt(point, kind=KIND))

    def run_until_crash() -> None:
        request(crashing, intent())
        crashing.run_pending()

    with pytest.raises(SimulatedCrash):
        run_until_crash()
    crashing_store.close()  # the process is gone; only the file remains

    store = SqliteStore(db_path, clock)
    store.acquire_lock()  # a restarted process: the dead one's claims are released
    fresh = executor(store, remote, handler, clock)
    fresh.run_pending()
    effect = only_effect(store)
    assert effect.state is EffectState.DONE
    assert remote.count(effect.marker) == 1
    assert remote.write_attempts == 1
    assert effect.remote_id == remote.find(effect.marker.value)
    assert store.integrity_check() == ["ok"]
    again = fresh.run_pending()
    assert (again.done, again.ambiguous, again.deferred) == (0, 0, 0)
    store.close()


# -- errors --------------------------------------------------------------------------------
def test_ambiguous_write_is_found_by_marker_and_not_written_again(
    fx: Effects, store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    remote.planned = [AMBIGUOUS_APPLIED]
    request(fx, intent())
    assert fx.run_pending().ambiguous == 1
    effect = only_effect(store)
    assert effect.state is EffectState.IN_FLIGHT
    assert effect.last_error is not None
    assert "AmbiguousWrite" in effect.last_error
    assert effect.not_before == clock.now() + timedelta(seconds=5)
    assert fx.run_pending().ambiguous == 0, "backs off before looking"
    clock.advance(timedelta(seconds=5))
    assert fx.run_pending().done == 1
    effect = only_effect(store)
    assert (effect.state, effect.attempts, effect.remote_id) == (EffectState.DONE, 2, "1")
    assert remote.write_attempts == 1
    assert remote.count(effect.marker) == 1


def test_ambiguous_write_that_never_landed_is_written_after_looking(
    fx: Effects, store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    remote.planned = [AMBIGUOUS_LOST]
    request(fx, intent())
    fx.run_pending()
    clock.advance(timedelta(minutes=1))
    assert fx.run_pending().done == 1
    assert remote.finds == 1
    assert remote.count(only_effect(store).marker) == 1


@pytest.mark.parametrize(
    "error",
    [
        Rejected("422 body too long", status=422),
        NotFound("no such ticket", status=404),
        Conflict("conflict", status=409),
    ],
)
def test_permanent_errors_fail_the_effect(
    fx: Effects, store: SqliteStore, remote: FakeRemote, error: Exception, clock: FakeClock
) -> None:
    remote.planned = [error]
    request(fx, intent())
    assert fx.run_pending().failed == 1
    effect = only_effect(store)
    assert effect.state is EffectState.FAILED
    assert effect.last_error is not None
    assert type(error).__name__ in effect.last_error
    clock.advance(timedelta(days=1))
    assert fx.run_pending().done == 0
    assert remote.write_attempts == 1


def test_transient_error_goes_back_to_pending_with_backoff(
    fx: Effects, store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    remote.planned = [TransientError("503", status=503), TransientError("503", status=503)]
    request(fx, intent())
    assert fx.run_pending().deferred == 1
    effect = only_effect(store)
    # nothing reached the helpdesk: the attempt is given back, the deferral counted
    assert (effect.state, effect.attempts, effect.deferrals) == (EffectState.PENDING, 0, 1)
    assert effect.not_before == clock.now() + timedelta(seconds=5)
    clock.advance(timedelta(seconds=5))
    assert fx.run_pending().deferred == 1
    assert only_effect(store).not_before == clock.now() + timedelta(seconds=10)
    clock.advance(timedelta(seconds=10))
    assert fx.run_pending().done == 1
    assert remote.count(only_effect(store).marker) == 1


@pytest.mark.parametrize(("retry_after", "wait"), [(7.0, 7.0), (1.0, 5.0)])
def test_rate_limited_waits_at_least_retry_after(
    fx: Effects,
    store: SqliteStore,
    remote: FakeRemote,
    clock: FakeClock,
    retry_after: float,
    wait: float,
) -> None:
    remote.planned = [RateLimited("429", status=429, retry_after=retry_after)]
    request(fx, intent())
    assert fx.run_pending().deferred == 1
    assert only_effect(store).not_before == clock.now() + timedelta(seconds=wait)


def test_gives_up_after_max_attempts(
    store: SqliteStore, remote: FakeRemote, handler: CreateHandler, clock: FakeClock
) -> None:
    fx = executor(store, remote, handler, clock, max_attempts=3)
    remote.planned = [AMBIGUOUS_LOST] * 5
    request(fx, intent())
    outcomes = []
    for _ in range(4):
        result = fx.run_pending()
        outcomes.append((result.ambiguous, result.failed))
        clock.advance(timedelta(hours=1))
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0)]
    effect = only_effect(store)
    assert effect.state is EffectState.FAILED
    assert effect.last_error is not None
    assert effect.last_error.startswith("gave up after 3 attempts")
    assert f"its marker is {effect.marker}" in effect.last_error


@pytest.mark.parametrize(
    "busy",
    [
        RateLimited("429", status=429, retry_after=60),
        TransientError("503", status=503),
        TransientError("connection refused"),
        Maintenance("HTTP 403 maintenance mode", status=403),
    ],
    ids=["429", "503", "refused", "maintenance"],
)
def test_throttling_and_outages_never_use_up_the_attempts(
    store: SqliteStore,
    remote: FakeRemote,
    handler: CreateHandler,
    clock: FakeClock,
    busy: Exception,
) -> None:
    """Issue 10 item 5: a 429 storm or an outage longer than the attempts allow used to fail
    the write for good (and lose the copy); nothing was applied, so nothing is counted."""
    fx = executor(store, remote, handler, clock, max_attempts=3)
    remote.planned = [busy] * 20
    request(fx, intent())
    for _ in range(20):
        assert fx.run_pending().failed == 0
        clock.advance(timedelta(hours=1))
    assert fx.run_pending().done == 1
    effect = only_effect(store)
    assert (effect.state, effect.attempts, effect.deferrals) == (EffectState.DONE, 1, 20)
    assert remote.finds == 0  # nothing was ever sent, so nothing is looked for


def test_a_redirecting_helpdesk_pauses_writes_instead_of_dropping_them(
    store: SqliteStore,
    remote: FakeRemote,
    handler: CreateHandler,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 3xx (the helpdesk URL is not its final address) used to fail every write for good;
    nothing was applied, so the writes wait, the sweep stops, and the admin is told why."""
    fx = executor(store, remote, handler, clock, max_attempts=2)
    moved = RedirectError("HTTP 301 redirect to /helpdesk/api/v1/tickets", status=301)
    remote.planned = [moved] * 5
    request(fx, intent(1), intent(2))
    for _ in range(5):
        result = fx.run_pending()
        assert (result.failed, result.deferred) == (0, 2)
        clock.advance(timedelta(hours=1))
    assert remote.write_attempts == 5  # one per sweep: the second write is not tried
    (line, *_) = [r for r in caplog.records if r.getMessage().startswith("effect.paused")]
    assert line.levelno == logging.ERROR
    assert "helpdesk URL" in line.getMessage()
    assert fx.run_pending().done == 2  # the URL was fixed: both land, once each
    assert remote.finds == 0


def test_an_unreachable_helpdesk_stops_the_sweep(
    fx: Effects, store: SqliteStore, remote: FakeRemote
) -> None:
    """One write turned away as unreachable: the others are not tried in the same sweep
    (each would wait out its own retries)."""
    remote.planned = [TransientError("connection refused")]
    request(fx, intent(1), intent(2), intent(3))
    result = fx.run_pending()
    assert (result.done, result.deferred) == (0, 3)
    assert remote.write_attempts == 1


def test_a_server_error_on_an_idempotent_write_counts_as_an_attempt(
    store: SqliteStore, remote: FakeRemote, handler: CreateHandler, clock: FakeClock
) -> None:
    fx = executor(store, remote, handler, clock, max_attempts=2)
    remote.planned = [TransientError("500", status=500)] * 3
    request(fx, intent())
    fx.run_pending()
    clock.advance(timedelta(hours=1))
    assert fx.run_pending().failed == 1


def test_auth_error_propagates_and_the_row_is_looked_for_next_time(
    fx: Effects, store: SqliteStore, remote: FakeRemote
) -> None:
    remote.planned = [Unauthorized("401", status=401)]
    request(fx, intent())
    with pytest.raises(AuthError):
        fx.run_pending()
    assert only_effect(store).state is EffectState.IN_FLIGHT
    store.acquire_lock()  # the worker stopped; a restarted one releases its claims
    assert fx.run_pending().done == 1
    assert remote.finds == 1


def test_a_handler_bug_leaves_the_row_in_flight(
    fx: Effects, store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    remote.planned = [KeyError("payload field")]
    request(fx, intent())
    assert fx.run_pending().ambiguous == 1
    effect = only_effect(store)
    assert effect.state is EffectState.IN_FLIGHT
    assert effect.last_error is not None
    assert "KeyError" in effect.last_error
    clock.advance(timedelta(minutes=1))
    assert fx.run_pending().done == 1


def test_a_stored_effect_of_an_unknown_kind_fails_clearly(
    fx: Effects, store: SqliteStore, clock: FakeClock
) -> None:
    """A row of a kind this version does not have (written by a newer version)."""
    with store.transaction() as tx:
        store.insert_effect(
            tx,
            kind="teleport",
            key="k",
            marker=marker_for("teleport", "k").value,
            payload_json="{}",
            payload_sha256="0" * 64,
            payload_version=1,
            escalation_id=None,
            after=None,
            at=clock.now(),
        )
    assert fx.run_pending().failed == 1
    effect = only_effect(store)
    assert effect.state is EffectState.FAILED
    assert effect.last_error == "no effect kind 'teleport' in this version"


def test_a_stored_payload_that_does_not_load_fails_clearly(
    fx: Effects, store: SqliteStore, clock: FakeClock
) -> None:
    with store.transaction() as tx:
        store.insert_effect(
            tx,
            kind=KIND,
            key="k",
            marker=marker_for(KIND, "k").value,
            payload_json='{"titel": "typo"}',
            payload_sha256="0" * 64,
            payload_version=1,
            escalation_id=None,
            after=None,
            at=clock.now(),
        )
    assert fx.run_pending().failed == 1
    assert "stored payload does not load (titel" in (only_effect(store).last_error or "")


def test_a_payload_from_a_newer_version_is_refused(
    fx: Effects, store: SqliteStore, clock: FakeClock
) -> None:
    with store.transaction() as tx:
        store.insert_effect(
            tx,
            kind=KIND,
            key="k",
            marker=marker_for(KIND, "k").value,
            payload_json="{}",
            payload_sha256="0" * 64,
            payload_version=9,
            escalation_id=None,
            after=None,
            at=clock.now(),
        )
    assert fx.run_pending().failed == 1
    assert "version 9 is newer" in (only_effect(store).last_error or "")


# -- stopping and ordering -----------------------------------------------------------------
def test_no_effect_starts_once_stop_is_set(
    store: SqliteStore, remote: FakeRemote, handler: CreateHandler, clock: FakeClock
) -> None:
    stop = threading.Event()
    fx = executor(store, remote, handler, clock, stop_event=stop)
    request(fx, intent(1), intent(2))
    stop.set()
    assert fx.run_pending().done == 0
    assert {e.state for e in store.effects()} == {EffectState.PENDING}
    assert remote.write_attempts == 0


def test_stop_during_a_pass_lets_the_current_effect_finish(
    store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    stop = threading.Event()

    class StoppingHandler(CreateHandler):
        def apply(self, effect: Any, payload: FakePayload) -> str | None:
            stop.set()  # SIGTERM arrives during the HTTP call
            return super().apply(effect, payload)

    fx = executor(store, remote, StoppingHandler(remote), clock, stop_event=stop)
    request(fx, intent(1), intent(2))
    assert fx.run_pending().done == 1
    assert [e.state for e in store.effects()] == [EffectState.DONE, EffectState.PENDING]


def test_an_effect_waits_for_its_prerequisite(
    fx: Effects, store: SqliteStore, remote: FakeRemote, clock: FakeClock
) -> None:
    first = intent(1)
    second = intent(2, after=first.ref)
    remote.planned = [TransientError("503")]
    request(fx, first, second)
    result = fx.run_pending()
    assert (result.done, result.deferred) == (0, 2)
    clock.advance(timedelta(minutes=1))
    assert fx.run_pending().done == 2
    assert [e.state for e in store.effects()] == [EffectState.DONE] * 2


def test_an_effect_runs_after_its_prerequisite_failed_for_good(
    fx: Effects, store: SqliteStore, remote: FakeRemote
) -> None:
    """``after`` orders writes; a refused write must not hold back the ones behind it (a
    refused email copy once blocked every later copy)."""
    first = intent(1)
    remote.planned = [Rejected("no")]
    request(fx, first, intent(2, after=first.ref))
    result = fx.run_pending()
    assert (result.failed, result.done, result.deferred) == (1, 1, 0)
    second = store.effect_by_key(KIND, "create:esc:2")
    assert second is not None
    assert second.state is EffectState.DONE


def test_a_403_fails_that_effect_only(fx: Effects, store: SqliteStore, remote: FakeRemote) -> None:
    remote.planned = [Forbidden("Not authorized", status=403)]
    request(fx, intent(1), intent(2))
    result = fx.run_pending()
    assert (result.failed, result.done) == (1, 1)
    first = store.effect_by_key(KIND, "create:esc:1")
    assert first is not None
    assert first.state is EffectState.FAILED
    assert "403" in (first.last_error or "") or "Not authorized" in (first.last_error or "")


def test_the_module_docstring_draws_the_steps() -> None:
    doc = effects_module.__doc__ or ""
    for word in ("INTENT", "CLAIM", "LOOK", "EFFECT", "COMMIT", *POINTS):
        assert word in doc


def test_a_write_of_unknown_outcome_is_not_looked_for_before_it_settles(
    store: SqliteStore, remote: FakeRemote, handler: CreateHandler, clock: FakeClock
) -> None:
    """Zammad may still be running a request our read timeout gave up on: looking too early
    finds nothing and sends it twice (zammad/zammad#5628)."""
    fx = executor(store, remote, handler, clock, settle=timedelta(minutes=5))
    remote.planned = [AMBIGUOUS_APPLIED]
    request(fx, intent())
    assert fx.run_pending().ambiguous == 1
    clock.advance(timedelta(minutes=1))  # past the back-off, not past the settle window
    assert fx.run_pending().deferred == 1
    assert remote.finds == 0
    clock.advance(timedelta(minutes=5))
    assert fx.run_pending().done == 1
    assert remote.finds == 1
    assert remote.write_attempts == 1
