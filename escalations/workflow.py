"""The escalation life-cycle as a pure state machine.

::

                   change_level
                      ┌──┐
                      ▼  │
    flagged ──open──► open ──resolve──► resolved ──park──► parked ──confirm──► confirmed
       │              ▲ ▲                  │                  │                    │
       │              │ └──open (reopen)───┘                  │                  close
       │              └────────────────unpark─────────────────┘                    ▼
       │   purged ◄──purge── archived ◄──archive────────────────────────────── closed
       └──abandon (the escalation ticket could not be created)──────────────────────▲
    open, resolved, parked, confirmed ──lose_ticket (deleted in the helpdesk)──► closed
    closed, archived ──reopen (an agent reopened the ticket within retention)──► open

``apply(esc, event, at, **data)`` returns a new ``Escalation`` with the new state, the matching
timestamp and ``updated_at`` set; an event the table does not allow raises ``WorkflowError``.
Going back to ``open`` (reopen, unpark) clears ``resolved_at``, ``parked_at`` and every later
stage's timestamp, so a set timestamp always means "this stage was reached on the current
path"; ``opened_at`` keeps the first opening. Guards that need the helpdesk (an RFO before
closing at level 2+) belong to the jobs, not here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from escalations.errors import WorkflowError
from escalations.models import Escalation, State


class Event(enum.StrEnum):
    OPEN = "open"
    CHANGE_LEVEL = "change_level"
    RESOLVE = "resolve"
    PARK = "park"
    UNPARK = "unpark"
    CONFIRM = "confirm"
    CLOSE = "close"
    ARCHIVE = "archive"
    PURGE = "purge"
    ABANDON = "abandon"
    """The escalation ticket could not be created: the escalation ends before it began."""
    LOSE_TICKET = "lose_ticket"
    """The escalation ticket was deleted in the helpdesk: the escalation ends where it is."""
    REOPEN = "reopen"
    """An agent reopened the ticket of a closed escalation: the same escalation goes on."""


TRANSITIONS: Mapping[tuple[State, Event], State] = {
    (State.FLAGGED, Event.OPEN): State.OPEN,
    (State.FLAGGED, Event.ABANDON): State.CLOSED,
    (State.OPEN, Event.CHANGE_LEVEL): State.OPEN,
    (State.OPEN, Event.RESOLVE): State.RESOLVED,
    (State.RESOLVED, Event.OPEN): State.OPEN,  # reopen
    (State.RESOLVED, Event.PARK): State.PARKED,
    (State.PARKED, Event.UNPARK): State.OPEN,
    (State.PARKED, Event.CONFIRM): State.CONFIRMED,
    (State.CONFIRMED, Event.CLOSE): State.CLOSED,
    (State.CLOSED, Event.ARCHIVE): State.ARCHIVED,
    (State.ARCHIVED, Event.PURGE): State.PURGED,
    (State.OPEN, Event.LOSE_TICKET): State.CLOSED,
    (State.RESOLVED, Event.LOSE_TICKET): State.CLOSED,
    (State.PARKED, Event.LOSE_TICKET): State.CLOSED,
    (State.CONFIRMED, Event.LOSE_TICKET): State.CLOSED,
    (State.CLOSED, Event.REOPEN): State.OPEN,
    (State.ARCHIVED, Event.REOPEN): State.OPEN,
}

STAGE_TIMESTAMP: Mapping[State, str] = {
    State.FLAGGED: "flagged_at",
    State.OPEN: "opened_at",
    State.RESOLVED: "resolved_at",
    State.PARKED: "parked_at",
    State.CONFIRMED: "confirmed_at",
    State.CLOSED: "closed_at",
    State.ARCHIVED: "archived_at",
    State.PURGED: "purged_at",
}
"""The timestamp each state sets when it is entered; ordered along the life-cycle."""

_EVENT_DATA: Mapping[Event, frozenset[str]] = {
    Event.OPEN: frozenset(
        {"escalation_ticket_id", "escalation_ticket_number", "owner_id", "level", "max_level"}
    ),
    Event.CHANGE_LEVEL: frozenset({"level", "max_level", "owner_id"}),
}


def flag(
    *,
    key: str,
    original_ticket_id: int,
    customer_id: int,
    segment: str,
    level: int,
    reason: str,
    at: datetime,
    organization_id: int | None = None,
    flagged_by_id: int | None = None,
    callback_at: datetime | None = None,
    agreed_cadence_minutes: int | None = None,
    owner_id: int | None = None,
    updated_at: datetime | None = None,
    original_ticket_number: str | None = None,
) -> Escalation:
    """A new escalation in state ``flagged`` (not yet stored: ``id`` is 0), flagged at ``at``
    and recorded at ``updated_at`` (default: ``at``)."""
    at = _aware(at)
    if level < 1:
        raise ValueError(f"level must be at least 1, not {level}")
    return Escalation(
        key=key,
        original_ticket_id=original_ticket_id,
        original_ticket_number=original_ticket_number,
        customer_id=customer_id,
        organization_id=organization_id,
        segment=segment,
        level=level,
        reason=reason,
        state=State.FLAGGED,
        owner_id=owner_id,
        flagged_by_id=flagged_by_id,
        callback_at=_aware(callback_at) if callback_at else None,
        agreed_cadence_minutes=agreed_cadence_minutes,
        flagged_at=at,
        updated_at=_aware(updated_at) if updated_at else at,
    )


def allowed_events(state: State) -> list[Event]:
    return [event for (source, event) in TRANSITIONS if source is state]


def transition_table() -> str:
    """``TRANSITIONS`` as text, one ``state --event--> state`` line each."""
    width = max(len(s) for s in State)
    return "\n".join(
        f"{source:<{width}} --{event}--> {target}"
        for (source, event), target in TRANSITIONS.items()
    )


def apply(esc: Escalation, event: Event | str, at: datetime, **data: Any) -> Escalation:
    """Apply ``event`` at instant ``at`` and return the new escalation.

    Args:
        esc: the escalation as it is now.
        event: an ``Event`` or its name.
        at: when it happened (aware). An instant before ``esc.updated_at`` (a clock step back)
            is taken as ``esc.updated_at``, so timestamps never go backwards.
        **data: ``open`` takes ``escalation_ticket_id``, ``escalation_ticket_number``,
            ``owner_id`` and ``level`` (with ``max_level``); ``change_level`` needs ``level`` and
            ``max_level`` and takes ``owner_id``. Other events take nothing.

    Raises:
        WorkflowError: the event is unknown, not allowed in the current state, or asks for a
            level out of range or equal to the current one.
        TypeError: ``data`` has a key the event does not take.
    """
    try:
        ev = Event(event)
    except ValueError:
        raise WorkflowError(esc.id, esc.state, str(event), "unknown event") from None
    target = TRANSITIONS.get((esc.state, ev))
    if target is None:
        raise WorkflowError(esc.id, esc.state, ev)
    if ev is Event.REOPEN and esc.opened_at is None:
        raise WorkflowError(esc.id, esc.state, ev, "it was abandoned before it opened")
    unknown = set(data) - _EVENT_DATA.get(ev, frozenset())
    if unknown:
        raise TypeError(f"event '{ev}' takes no {', '.join(sorted(unknown))}")
    at = max(_aware(at), esc.updated_at)

    changes: dict[str, Any] = {"state": target, "updated_at": at}
    if ev is Event.CHANGE_LEVEL and ("level" not in data or "max_level" not in data):
        raise TypeError("change_level needs level and max_level")
    if "level" in data:
        changes["level"] = _level(esc, ev, data["level"], data.get("max_level"))
        if ev is Event.CHANGE_LEVEL and changes["level"] == esc.level:
            raise WorkflowError(esc.id, esc.state, ev, f"already at level {esc.level}")
    for name in ("escalation_ticket_id", "escalation_ticket_number", "owner_id"):
        if name in data:
            changes[name] = data[name]

    if target is not esc.state:
        if esc.state is State.FLAGGED or target is not State.OPEN:
            changes[STAGE_TIMESTAMP[target]] = at
        else:  # back to open: reopen or unpark
            for later in ("resolved_at", "parked_at", "confirmed_at", "closed_at", "archived_at"):
                changes[later] = None
    return replace(esc, **changes)


def _level(esc: Escalation, event: Event, level: Any, max_level: Any) -> int:
    if max_level is None:
        raise TypeError(f"'{event}' with a level needs max_level")
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= max_level:
        raise WorkflowError(esc.id, esc.state, event, f"level {level!r} is not in 1..{max_level}")
    return level


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}; times must be aware")
    return at.astimezone(UTC)
