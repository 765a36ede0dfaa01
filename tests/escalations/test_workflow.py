from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from escalations import workflow
from escalations.errors import WorkflowError
from escalations.models import Escalation, State
from escalations.workflow import STAGE_TIMESTAMP, TRANSITIONS, Event, apply, flag

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MAX_LEVEL = 4
LIFECYCLE = list(State)  # declaration order is the life-cycle order

# The shortest legal path from flagged to each state.
PATH: dict[State, list[Event]] = {
    State.FLAGGED: [],
    State.OPEN: [Event.OPEN],
    State.RESOLVED: [Event.OPEN, Event.RESOLVE],
    State.PARKED: [Event.OPEN, Event.RESOLVE, Event.PARK],
    State.CONFIRMED: [Event.OPEN, Event.RESOLVE, Event.PARK, Event.CONFIRM],
    State.CLOSED: [Event.OPEN, Event.RESOLVE, Event.PARK, Event.CONFIRM, Event.CLOSE],
    State.ARCHIVED: [
        *[Event.OPEN, Event.RESOLVE, Event.PARK, Event.CONFIRM, Event.CLOSE],
        Event.ARCHIVE,
    ],
    State.PURGED: [
        *[Event.OPEN, Event.RESOLVE, Event.PARK, Event.CONFIRM, Event.CLOSE],
        *[Event.ARCHIVE, Event.PURGE],
    ],
}
ILLEGAL = [(s, e) for s in State for e in Event if (s, e) not in TRANSITIONS]


def flagged(level: int = 1) -> Escalation:
    return dataclasses.replace(
        flag(
            key="zammad:ticket:123:1",
            original_ticket_id=123,
            customer_id=7,
            segment="business",
            level=level,
            reason="crisis",
            at=T0,
            callback_at=T0 + timedelta(hours=1),
            flagged_by_id=3,
        ),
        id=41,
    )


def in_state(state: State) -> tuple[Escalation, datetime]:
    esc, at = flagged(), T0
    for event in PATH[state]:
        at += timedelta(hours=1)
        esc = apply(esc, event, at)
    assert esc.state is state
    return esc, at


def data_for(event: Event, esc: Escalation) -> dict[str, Any]:
    if event is Event.CHANGE_LEVEL:
        return {"level": esc.level % MAX_LEVEL + 1, "max_level": MAX_LEVEL}
    return {}


def test_flag_makes_a_flagged_escalation() -> None:
    esc = flagged()
    assert esc.state is State.FLAGGED
    assert esc.flagged_at == esc.updated_at == T0
    assert esc.opened_at is None
    assert esc.active


def test_flag_refuses_a_level_below_one_and_naive_times() -> None:
    with pytest.raises(ValueError, match="level"):
        flag(key="k", original_ticket_id=1, customer_id=1, segment="s", level=0, reason="r", at=T0)
    with pytest.raises(ValueError, match="naive"):
        flag(
            key="k",
            original_ticket_id=1,
            customer_id=1,
            segment="s",
            level=1,
            reason="r",
            at=datetime(2026, 1, 1),  # noqa: DTZ001
        )


@pytest.mark.parametrize(("source", "event"), list(TRANSITIONS), ids=lambda v: str(v))
def test_every_legal_transition(source: State, event: Event) -> None:
    esc, at = in_state(source)
    later = at + timedelta(minutes=5)
    result = apply(esc, event, later, **data_for(event, esc))
    target = TRANSITIONS[(source, event)]
    assert result.state is target
    assert result.updated_at == later
    assert esc.state is source, "apply must not change its input"
    if source is not target and not (target is State.OPEN and source is not State.FLAGGED):
        assert getattr(result, STAGE_TIMESTAMP[target]) == later


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: str(v))
def test_every_illegal_pair_raises(state: State, event: Event) -> None:
    esc, at = in_state(state)
    with pytest.raises(WorkflowError) as info:
        apply(esc, event, at + timedelta(minutes=1), **data_for(event, esc))
    assert info.value.escalation_id == 41
    assert info.value.state is state
    assert info.value.event == event
    assert f"'{event}' is not allowed in state '{state}'" in str(info.value)


def test_open_sets_ticket_owner_and_level() -> None:
    at = T0 + timedelta(minutes=2)
    esc = apply(
        flagged(),
        "open",
        at,
        escalation_ticket_id=900,
        escalation_ticket_number="31001",
        owner_id=5,
        level=2,
        max_level=MAX_LEVEL,
    )
    assert (esc.state, esc.opened_at, esc.level) == (State.OPEN, at, 2)
    assert (esc.escalation_ticket_id, esc.escalation_ticket_number, esc.owner_id) == (
        900,
        "31001",
        5,
    )


def test_change_level_moves_level_and_owner() -> None:
    esc, at = in_state(State.OPEN)
    result = apply(esc, Event.CHANGE_LEVEL, at, level=3, max_level=MAX_LEVEL, owner_id=9)
    assert (result.state, result.level, result.owner_id) == (State.OPEN, 3, 9)
    assert result.opened_at == esc.opened_at


@pytest.mark.parametrize("level", [0, 5, -1, True, "2"])
def test_change_level_out_of_range_is_refused(level: Any) -> None:
    esc, at = in_state(State.OPEN)
    with pytest.raises(WorkflowError, match="not in 1..4"):
        apply(esc, Event.CHANGE_LEVEL, at, level=level, max_level=MAX_LEVEL)


def test_change_level_to_the_same_level_is_refused() -> None:
    esc, at = in_state(State.OPEN)
    with pytest.raises(WorkflowError, match="already at level 1"):
        apply(esc, Event.CHANGE_LEVEL, at, level=1, max_level=MAX_LEVEL)


def test_change_level_needs_level_and_max_level() -> None:
    esc, at = in_state(State.OPEN)
    with pytest.raises(TypeError, match="needs level and max_level"):
        apply(esc, Event.CHANGE_LEVEL, at, level=2)


def test_open_with_a_level_needs_max_level() -> None:
    with pytest.raises(TypeError, match="max_level"):
        apply(flagged(), Event.OPEN, T0, level=2)


def test_unknown_data_is_a_type_error() -> None:
    esc, at = in_state(State.OPEN)
    with pytest.raises(TypeError, match="takes no owner_id"):
        apply(esc, Event.RESOLVE, at, owner_id=3)


def test_unknown_event_is_a_workflow_error() -> None:
    with pytest.raises(WorkflowError, match="unknown event"):
        apply(flagged(), "explode", T0)


def test_reopen_clears_resolution_and_keeps_first_opening() -> None:
    esc, at = in_state(State.RESOLVED)
    result = apply(esc, Event.OPEN, at + timedelta(hours=1))
    assert result.state is State.OPEN
    assert result.resolved_at is None
    assert result.opened_at == esc.opened_at


def test_unpark_clears_resolution_and_parking() -> None:
    esc, at = in_state(State.PARKED)
    result = apply(esc, Event.UNPARK, at + timedelta(hours=1))
    assert result.state is State.OPEN
    assert (result.resolved_at, result.parked_at) == (None, None)


def test_a_clock_step_back_never_moves_timestamps_backwards() -> None:
    esc, at = in_state(State.OPEN)
    result = apply(esc, Event.RESOLVE, at - timedelta(minutes=10))
    assert result.resolved_at == result.updated_at == at


def test_non_utc_times_are_stored_as_utc() -> None:
    esc, at = in_state(State.OPEN)
    local = (at + timedelta(hours=1)).astimezone(
        datetime.now(UTC).astimezone().tzinfo  # any fixed offset will do
    )
    result = apply(esc, Event.RESOLVE, local)
    assert result.resolved_at is not None
    assert result.resolved_at.tzinfo is UTC


def test_transition_table_lists_every_transition_and_the_diagram_every_event() -> None:
    table = workflow.transition_table()
    for (source, event), target in TRANSITIONS.items():
        assert f"--{event}--> {target}" in table
        assert source in table
    assert workflow.__doc__ is not None
    for event in Event:
        assert event.value in workflow.__doc__
    assert set(workflow.allowed_events(State.PARKED)) == {
        Event.UNPARK,
        Event.CONFIRM,
        Event.LOSE_TICKET,
    }


# -- model-based: random event sequences -------------------------------------------------
LEGAL_EDGES = {(source, target) for (source, _), target in TRANSITIONS.items()}


class WorkflowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.esc = flagged()
        self.model = State.FLAGGED
        self.now = T0
        self.last_updated = T0
        self.lost_at: State | None = None
        """The state the escalation ticket was lost in (the path then jumps to closed)."""

    @rule(
        event=st.sampled_from(Event),
        step=st.integers(-3600, 3 * 86400),
        level=st.integers(-1, MAX_LEVEL + 2),
        with_level=st.booleans(),
    )
    def any_event(self, event: Event, step: int, level: int, with_level: bool) -> None:
        self._happen(event, step, level, with_level)

    @precondition(lambda self: self.model is not State.PURGED)
    @rule(
        data=st.data(),
        step=st.integers(0, 86400),
        level=st.integers(1, MAX_LEVEL),
        with_level=st.booleans(),
    )
    def allowed_event(self, data: st.DataObject, step: int, level: int, with_level: bool) -> None:
        event = data.draw(st.sampled_from(workflow.allowed_events(self.model)))
        self._happen(event, step, level, with_level)

    def _happen(self, event: Event, step: int, level: int, with_level: bool) -> None:
        self.now += timedelta(seconds=step)
        data: dict[str, Any] = {}
        if event is Event.CHANGE_LEVEL or (event is Event.OPEN and with_level):
            data = {"level": level, "max_level": MAX_LEVEL}
        target = TRANSITIONS.get((self.model, event))
        legal = (
            target is not None
            and (not (event is Event.REOPEN and self.esc.opened_at is None))
            and (
                "level" not in data
                or (
                    1 <= level <= MAX_LEVEL
                    and not (event is Event.CHANGE_LEVEL and level == self.esc.level)
                )
            )
        )
        before = self.esc
        if not legal:
            with pytest.raises(WorkflowError):
                apply(self.esc, event, self.now, **data)
            return
        assert target is not None
        self.esc = apply(self.esc, event, self.now, **data)
        assert (before.state, self.esc.state) in LEGAL_EDGES
        if event is Event.LOSE_TICKET:
            self.lost_at = self.model
        if event is Event.REOPEN:
            self.lost_at = None
        self.model = target

    @invariant()
    def state_follows_the_model(self) -> None:
        assert self.esc.state is self.model

    @invariant()
    def level_in_bounds(self) -> None:
        assert 1 <= self.esc.level <= MAX_LEVEL

    @invariant()
    def timestamps_monotone_and_match_the_path(self) -> None:
        assert self.esc.updated_at >= self.last_updated
        self.last_updated = self.esc.updated_at
        here = LIFECYCLE.index(self.esc.state)
        if self.esc.opened_at is None and here >= LIFECYCLE.index(State.CLOSED):
            # abandoned: the ticket could not be created; flagged, then straight to closed
            reached = [State.FLAGGED, *LIFECYCLE[LIFECYCLE.index(State.CLOSED) : here + 1]]
        elif self.lost_at is not None:
            # the escalation ticket was deleted: the path jumps from there to closed
            reached = [
                *LIFECYCLE[: LIFECYCLE.index(self.lost_at) + 1],
                *LIFECYCLE[LIFECYCLE.index(State.CLOSED) : here + 1],
            ]
        else:
            reached = LIFECYCLE[: here + 1]
        stamps = [getattr(self.esc, STAGE_TIMESTAMP[s]) for s in reached]
        assert all(t is not None for t in stamps)
        assert stamps == sorted(stamps)
        assert stamps[-1] <= self.esc.updated_at
        for other in LIFECYCLE:
            if other not in reached:
                assert getattr(self.esc, STAGE_TIMESTAMP[other]) is None


TestWorkflowMachine = WorkflowMachine.TestCase
TestWorkflowMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


def test_an_abandoned_escalation_cannot_be_reopened() -> None:
    esc = apply(flagged(), Event.ABANDON, T0 + timedelta(minutes=1))
    with pytest.raises(WorkflowError, match="abandoned before it opened"):
        apply(esc, Event.REOPEN, T0 + timedelta(minutes=2))


def test_reopening_a_closed_escalation_clears_the_later_stages() -> None:
    esc, at = in_state(State.CLOSED)
    again = apply(esc, Event.REOPEN, at + timedelta(days=1))
    assert again.state is State.OPEN
    assert (again.resolved_at, again.parked_at, again.confirmed_at, again.closed_at) == (
        None,
        None,
        None,
        None,
    )
    assert again.opened_at == esc.opened_at
