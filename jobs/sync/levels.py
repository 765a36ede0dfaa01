"""A level an agent set on an escalation ticket (DESIGN.md rule 4): only an agent moves an
escalation; the worker re-marks, re-owns, subscribes the level's executives, writes the level
note and records the change with its time and the agent the ticket's history names for it."""

from __future__ import annotations

import logging

from connector.base import Ticket
from escalations import notes
from escalations.bindings.base import LevelMove
from escalations.models import Escalation, LevelChange, State
from escalations.store.base import Transaction
from jobs.sync._pass import Plan, SyncPass
from jobs.sync.credit import credit

log = logging.getLogger(__name__)

NOT_GIVEN = "(not given)"


def level_asked(p: SyncPass, ticket: Ticket, esc: Escalation) -> Plan | None:
    """The plan for a level change the escalation ticket shows, if it shows one."""
    level = p.binding.requested_level(ticket)
    if esc.state is not State.OPEN or level is None or level == esc.level:
        return None
    if not 1 <= level <= p.profile.max_level:
        log.warning("escalation.bad_level esc=%s ticket=%s value=%r", esc.key, ticket.id, level)
        return None
    return _level_changed(p, ticket, esc, level)


def owner_role_name(p: SyncPass, level: int, history: tuple[int, ...]) -> str:
    """The role of whoever owns at ``level``: the latest level so far whose owner is a role
    (level 2's duty manager keeps it at 3 and 4), else level 1's role (the flagging agent)."""
    for lv in (level, *reversed(history)):
        role = p.profile.owner_role(lv)
        if role is not None:
            return p.profile.roles[role].name
    return p.profile.level(1).role


def _level_changed(p: SyncPass, ticket: Ticket, esc: Escalation, level: int) -> Plan:
    history = tuple(c.to_level for c in p.store.level_changes(esc.id)) + (esc.level,)
    sequence = len(history)
    at = ticket.updated_at
    changer = credit(
        p, ticket, lambda events: p.binding.level_event(events, level), what=f"level {level}"
    )
    owner = p.people.owner_for_level(
        level, flagged_by=esc.flagged_by_id, current=esc.owner_id, history=history
    )
    watchers = p.people.watchers_for_level(level)
    spec = p.profile.level(level)
    reason = (
        p.profile.reason(esc.reason).label if esc.reason in p.profile.reason_keys else NOT_GIVEN
    )
    html = notes.LevelChanged(
        level=level,
        level_name=spec.name,
        role=spec.role,
        owner=p.people.name(owner) if owner else "unassigned",
        owner_role=owner_role_name(p, level, history),
        changed_at=at,
        changed_by=changer.text,
        reason_label=reason,
        from_level=esc.level,
        subscribed=tuple((u.id, u.display_name, role) for u, role in watchers),
    ).html(p.tz, p.binding.person_html)
    move = LevelMove(
        escalation=esc,
        ticket=ticket,
        level=level,
        sequence=sequence,
        owner_id=owner if owner is not None and owner != esc.owner_id else None,
        watcher_ids=tuple(u.id for u, _ in watchers),
    )
    change = LevelChange(
        escalation_id=esc.id,
        from_level=esc.level,
        to_level=level,
        changed_at=at,
        changed_by_id=changer.user_id,
        reason=esc.reason,
    )

    def plan(tx: Transaction) -> None:
        p.lifecycle.level_changed(tx, move, change, html)
        p.result.add("level_changes")

    return plan
