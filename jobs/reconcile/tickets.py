"""The reconciliation's ticket checks: each escalation the store knows against its tickets in
the helpdesk (present, not merged, linked, one of them, level, marks, owner, subscribers,
group, state, RFO), every ticket the helpdesk shows as flagged or as an escalation ticket
against the store, and the copies of customer messages (each exactly once, none without its source).

A ticket changed within the grace period, in a version the worker's poll has not handled,
is left for the next report: the worker may not have seen the change yet. Copies are checked
for escalations still running (active ones), one articles read per ticket (the helpdesk has
no search over articles)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.base import Article, Capability, LinkKind, Ticket, User
from connector.errors import Forbidden, NotFound
from escalations.effects.helpdesk import COPY_ARTICLE, CopyArticle
from escalations.markers import marker_for, markers_in
from escalations.models import ACTIVE_STATES, EffectState, Escalation, State
from escalations.people import People
from escalations.reconcile.findings import FindingKind as K
from escalations.reconcile.marks import ReconcileMarks
from jobs.context import JobContext
from jobs.reconcile import snapshot
from jobs.reconcile._found import Found
from jobs.reconcile.records import PERIOD
from jobs.reconcile.snapshot import Snapshot

log = logging.getLogger(__name__)

RESOLVED_STATES = frozenset(
    {State.RESOLVED, State.PARKED, State.CONFIRMED, State.CLOSED, State.ARCHIVED}
)
WATCHED_STATES = ACTIVE_STATES | {State.CLOSED}
"""Escalations whose tickets are checked; archived and purged ones are done with."""


@dataclass(frozen=True)
class Checks:
    ctx: JobContext
    marks: ReconcileMarks
    snap: Snapshot
    found: Found
    at: datetime
    grace: timedelta
    people: People
    merge_targets: dict[str, int] = field(default_factory=dict)
    """Escalation key → the ticket its merged original went into (its emails arrive there:
    ``jobs.reconcile.customers`` checks them)."""

    def settled(self, ticket: Ticket) -> bool:
        """The worker has had its chance to act on this version of the ticket: its poll
        handled exactly this version (its own writes' echoes included), or it changed long
        enough ago."""
        return ticket.updated_at <= self.at - self.grace or self.ctx.store.ticket_seen(
            ticket.id, ticket.updated_at
        )

    def run(self) -> int:
        """Every check; returns how many escalations were checked."""
        escalations = [e for e in self.ctx.store.escalations_in() if e.state in WATCHED_STATES]
        for esc in escalations:
            try:
                self._escalation(esc)
            except Forbidden as exc:
                self.found.skipped(f"escalation {esc.key}: a ticket may not be read ({exc})")
        self._unknown_and_duplicates()
        self._flagged()
        return len(escalations)

    # -- per escalation ------------------------------------------------------------------
    def _escalation(self, esc: Escalation) -> None:
        original = self._original(esc)
        if esc.escalation_ticket_id is None:
            return  # not created yet: the flag check sees a flag left unhandled
        ticket = snapshot.ticket(self.ctx.adapter, self.snap, esc.escalation_ticket_id)
        number = esc.escalation_ticket_number
        if ticket is None:
            if esc.active:
                detail = f"escalation ticket #{number} no longer exists in the helpdesk"
            elif self._ended_lately(esc):  # a write found it gone, and the worker ended it
                detail = (
                    f"escalation ticket #{number} was deleted; the worker ended the escalation "
                    f"at {esc.closed_at:%Y-%m-%d %H:%M} UTC"
                )
            else:
                return
            self.found.add(
                K.ESCALATION_TICKET_DELETED,
                f"escalation:{esc.key}",
                detail,
                escalation=esc.key,
                other_ticket_id=esc.original_ticket_id,
                since=esc.closed_at,
            )
            return
        if ticket.state in self.snap.merged_states:
            self.found.add(
                K.ESCALATION_TICKET_MERGED,
                f"escalation:{esc.key}",
                f"escalation ticket #{ticket.number} was merged into another ticket",
                escalation=esc.key,
                ticket_id=ticket.id,
                ticket_number=ticket.number,
                other_ticket_id=self._merge_target(ticket.id),
            )
            return
        self._rfo(esc, ticket)
        if not esc.active or not self.settled(ticket):
            return
        if not any(
            self.found.has(kind, f"escalation:{esc.key}")
            for kind in (K.ORIGINAL_DELETED, K.ORIGINAL_MERGED)
        ):
            # a link to a deleted original is no drift of its own; nor is one a merge moved
            # to the merge target (``ticket.rb#merge_to`` moves the merged ticket's links)
            self._link(esc, ticket)
        self._level(esc, ticket)
        self._people_and_place(esc, ticket)
        self._subscriptions(esc, ticket)
        if original is not None:
            self._copies(esc, ticket, original)

    def _ended_lately(self, esc: Escalation) -> bool:
        """Closed in the report's period without the customer's confirmation."""
        return (
            esc.state is State.CLOSED
            and esc.confirmed_at is None
            and esc.closed_at is not None
            and self.at - PERIOD < esc.closed_at <= self.at
        )

    def _original(self, esc: Escalation) -> Ticket | None:
        if not esc.active:
            return None
        original = snapshot.ticket(self.ctx.adapter, self.snap, esc.original_ticket_id)
        label = f"#{esc.original_ticket_number or esc.original_ticket_id}"
        if original is None:
            self.found.add(
                K.ORIGINAL_DELETED,
                f"escalation:{esc.key}",
                f"original ticket {label} no longer exists in the helpdesk",
                escalation=esc.key,
                ticket_id=esc.escalation_ticket_id,
                ticket_number=esc.escalation_ticket_number,
            )
            return None
        if original.state in self.snap.merged_states:
            target = self._merge_target(original.id)
            into = f" into #{self._number(target)}" if target is not None else ""
            if target is not None:
                self.merge_targets[esc.key] = target
            self.found.add(
                K.ORIGINAL_MERGED,
                f"escalation:{esc.key}",
                f"original ticket {label} was merged{into}; its emails now arrive there",
                escalation=esc.key,
                ticket_id=original.id,
                ticket_number=original.number,
                other_ticket_id=target,
            )
            return None
        return original

    def _merge_target(self, ticket_id: int) -> int | None:
        """Where a merged ticket went: ``ticket.rb#merge_to`` moves every link of the merged
        ticket to the target, then links the target as its parent, so the parent link left
        is the target (``tests/sandbox/test_merge.py``)."""
        try:
            links = self.ctx.adapter.list_links(ticket_id)
        except (NotFound, Forbidden):
            return None
        targets = [lk.ticket_id for lk in links if lk.kind is LinkKind.PARENT]
        targets += [lk.ticket_id for lk in links if lk.kind is LinkKind.NORMAL]
        return targets[0] if targets else None

    def _number(self, ticket_id: int) -> str:
        try:
            found = snapshot.ticket(self.ctx.adapter, self.snap, ticket_id)
        except Forbidden:
            found = None
        return found.number if found is not None else str(ticket_id)

    def _link(self, esc: Escalation, ticket: Ticket) -> None:
        links = self.ctx.adapter.list_links(ticket.id)
        if any(lk.ticket_id == esc.original_ticket_id for lk in links):
            return
        self.found.add(
            K.ESCALATION_TICKET_UNLINKED,
            f"escalation:{esc.key}",
            f"escalation ticket #{ticket.number} has no link to its original "
            f"#{esc.original_ticket_number or esc.original_ticket_id}",
            escalation=esc.key,
            ticket_id=ticket.id,
            ticket_number=ticket.number,
            other_ticket_id=esc.original_ticket_id,
        )

    def _level(self, esc: Escalation, ticket: Ticket) -> None:
        asked = self.ctx.binding.requested_level(ticket)
        common = {
            "escalation": esc.key,
            "ticket_id": ticket.id,
            "ticket_number": ticket.number,
        }
        if asked != esc.level:
            shown = "no level" if asked is None else f"level {asked}"
            self.found.add(
                K.LEVEL_DIFFERS,
                f"escalation:{esc.key}",
                f"the ticket shows {shown}; the worker applied level {esc.level}",
                **common,  # type: ignore[arg-type]
            )
        if not self.marks.level_marks:
            return
        names = self.marks.level_mark_names
        carried = sorted(n for n, ids in self.snap.level_members.items() if ticket.id in ids)
        if carried != [esc.level]:
            shown = ", ".join(names[n] for n in carried) or "no level tag"
            self.found.add(
                K.LEVEL_MARK_DIFFERS,
                f"escalation:{esc.key}",
                f"the ticket carries {shown}; level {esc.level} needs {names[esc.level]} only",
                **common,  # type: ignore[arg-type]
            )

    def _people_and_place(self, esc: Escalation, ticket: Ticket) -> None:
        common = {
            "escalation": esc.key,
            "ticket_id": ticket.id,
            "ticket_number": ticket.number,
        }
        if esc.owner_id is not None and ticket.owner_id != esc.owner_id:
            self.found.add(
                K.OWNER_DIFFERS,
                f"escalation:{esc.key}",
                f"owned by {self._person(ticket.owner_id)}; level {esc.level} is owned by "
                f"{self._person(esc.owner_id)}",
                **common,  # type: ignore[arg-type]
            )
        group = self.ctx.binding.escalation_group
        if ticket.group != group:
            self.found.add(
                K.GROUP_DIFFERS,
                f"escalation:{esc.key}",
                f"in group {ticket.group!r}, not {group!r}",
                **common,  # type: ignore[arg-type]
            )
        expected = self.marks.state_names.get(esc.state)
        if expected is not None and ticket.state != expected:
            self.found.add(
                K.STATE_DIFFERS,
                f"escalation:{esc.key}",
                f"the ticket is {ticket.state!r}; an escalation {esc.state.value} shows "
                f"{expected!r}",
                **common,  # type: ignore[arg-type]
            )

    def _subscriptions(self, esc: Escalation, ticket: Ticket) -> None:
        """Everyone the levels the escalation went through subscribe (executives engaged
        stay on); more subscribers are fine (agents subscribe themselves)."""
        if Capability.SUBSCRIBE not in self.ctx.adapter.capabilities:
            return
        missing = missing_watchers(self.ctx, self.people, esc, ticket.id)
        if missing:
            names = ", ".join(f"{u.display_name} ({role})" for u, role in missing)
            self.found.add(
                K.SUBSCRIBER_MISSING,
                f"escalation:{esc.key}",
                f"not subscribed: {names}",
                escalation=esc.key,
                ticket_id=ticket.id,
                ticket_number=ticket.number,
            )

    def _person(self, user_id: int | None) -> str:
        if user_id is None:
            return "nobody"
        try:
            user = self.ctx.adapter.get_user(user_id)
        except (NotFound, Forbidden):
            return f"user {user_id}"
        return user.display_name

    def _rfo(self, esc: Escalation, ticket: Ticket) -> None:
        if esc.state not in RESOLVED_STATES or not self.ctx.profile.rfo_required(esc.level):
            return
        if self.ctx.binding.rfo_of(ticket) is None:
            self.found.add(
                K.RESOLVED_WITHOUT_RFO,
                f"escalation:{esc.key}",
                f"{esc.state.value} at level {esc.level} with no Reason for Outage on the ticket",
                escalation=esc.key,
                ticket_id=ticket.id,
                ticket_number=ticket.number,
                since=esc.resolved_at,
            )

    # -- copies --------------------------------------------------------------------------
    def _copies(self, esc: Escalation, ticket: Ticket, original: Ticket) -> None:
        adapter = self.ctx.adapter
        in_escalation = Counter(_marker_of(a) for a in adapter.list_articles(ticket.id))
        effects = {
            e.marker.value: e
            for e in self.ctx.store.effects(escalation_id=esc.id)
            if e.kind == COPY_ARTICLE
        }
        sources: dict[int, Sequence[Article] | None] = {
            original.id: adapter.list_articles(original.id)
        }
        cutoff = self.at - self.grace
        for message in sources[original.id] or []:
            if not message.is_customer_message or message.created_at > cutoff:
                continue
            if esc.opened_at is None:
                continue
            marker = marker_for(COPY_ARTICLE, CopyArticle.key("copy", esc.key, message.id)).value
            effect = effects.get(marker)
            if in_escalation[marker] == 0 and (
                effect is None or effect.state is EffectState.DONE
            ):  # pending, in flight or failed: the effect checks report it
                self.found.add(
                    K.EMAIL_NOT_COPIED,
                    f"article:{message.id}",
                    f"{_message(message)} on #{original.number} is not in escalation ticket "
                    f"#{ticket.number}",
                    escalation=esc.key,
                    ticket_id=original.id,
                    ticket_number=original.number,
                    other_ticket_id=ticket.id,
                    since=message.created_at,
                )
        for marker, effect in effects.items():
            copies = in_escalation[marker]
            if copies > 1:
                self.found.add(
                    K.COPY_TWICE,
                    f"effect:{effect.id}",
                    f"copied {copies} times into escalation ticket #{ticket.number} "
                    f"(source article {effect.payload.get('source', {}).get('id')})",
                    escalation=esc.key,
                    ticket_id=ticket.id,
                    ticket_number=ticket.number,
                )
            if copies == 0 or effect.state is not EffectState.DONE:
                continue
            source = effect.payload.get("source", {})
            source_ticket, source_article = source.get("ticket_id"), source.get("id")
            if not isinstance(source_ticket, int) or not isinstance(source_article, int):
                continue
            if source_ticket not in sources:
                sources[source_ticket] = _articles_or_none(self.ctx, source_ticket)
            listed = sources[source_ticket]
            if listed is None or all(a.id != source_article for a in listed):
                self.found.add(
                    K.COPY_WITHOUT_SOURCE,
                    f"effect:{effect.id}",
                    f"the copy in #{ticket.number} of article {source_article} of "
                    f"#{source.get('number', source_ticket)}: that article is gone",
                    escalation=esc.key,
                    ticket_id=ticket.id,
                    ticket_number=ticket.number,
                    other_ticket_id=source_ticket,
                )

    # -- what the helpdesk shows that the store does not ----------------------------------
    def _unknown_and_duplicates(self) -> None:
        by_key: dict[str, list[Ticket]] = {}
        for ticket in self.snap.escalation_tickets.values():
            key = self.ctx.binding.escalation_key_of(ticket)
            if key is not None and ticket.state not in self.snap.merged_states:
                by_key.setdefault(key, []).append(ticket)
        for key, tickets in sorted(by_key.items()):
            tickets.sort(key=lambda t: t.id)
            esc = self.ctx.store.escalation_by_key(key)
            if esc is None and all(self.settled(t) for t in tickets):
                for t in tickets:
                    self.found.add(
                        K.ESCALATION_TICKET_UNKNOWN,
                        f"ticket:{t.id}",
                        f"#{t.number} carries escalation key {key}, which the worker does not "
                        "know (its state lost, or a ticket copied by hand?)",
                        escalation=key,
                        ticket_id=t.id,
                        ticket_number=t.number,
                    )
            if len(tickets) > 1:
                kept = esc.escalation_ticket_id if esc is not None else None
                extra = [t for t in tickets if t.id != kept] if kept else tickets[1:]
                numbers = ", ".join(f"#{t.number}" for t in tickets)
                for t in extra:
                    self.found.add(
                        K.DUPLICATE_ESCALATION_TICKET,
                        f"ticket:{t.id}",
                        f"{len(tickets)} escalation tickets carry key {key}: {numbers}",
                        escalation=key,
                        ticket_id=t.id,
                        ticket_number=t.number,
                        other_ticket_id=kept,
                    )

    def _flagged(self) -> None:
        binding = self.ctx.binding
        for ticket in sorted(self.snap.flagged.values(), key=lambda t: t.id):
            if binding.escalation_key_of(ticket) is not None or not self.settled(ticket):
                continue
            flag = binding.flag_state(ticket, matched=ticket.id in self.snap.flag_matched)
            if not flag.raised:
                continue
            if self.ctx.store.active_escalation_for_ticket(ticket.id) is not None:
                # raised again on a running escalation (the worker clears it), or its
                # escalation ticket is being created (a write stuck or failed is listed)
                continue
            self.found.add(
                K.FLAGGED_WITHOUT_ESCALATION,
                f"ticket:{ticket.id}",
                f"#{ticket.number} is flagged for escalation and has no escalation ticket",
                ticket_id=ticket.id,
                ticket_number=ticket.number,
                since=ticket.updated_at,
            )


def missing_watchers(
    ctx: JobContext, people: People, esc: Escalation, ticket_id: int
) -> list[tuple[User, str]]:
    """Everyone the levels ``esc`` went through subscribe (with the role they are there
    for) who is not subscribed to ``ticket_id``; reads its subscribers only when the levels
    subscribe anyone."""
    levels = {1, esc.level} | {c.to_level for c in ctx.store.level_changes(esc.id)}
    wanted = {
        user.id: (user, role)
        for level in sorted(levels)
        for user, role in people.watchers_for_level(level)
    }
    if not wanted:
        return []
    present = ctx.adapter.list_subscribers(ticket_id)
    return [(u, role) for uid, (u, role) in sorted(wanted.items()) if uid not in present]


def _marker_of(article: Article) -> str | None:
    found = markers_in(article.body)
    return found[-1].value if found else None


def _message(article: Article) -> str:
    subject = f" \u201c{article.subject}\u201d" if article.subject else ""
    return f"the customer's email{subject} of {article.created_at:%Y-%m-%d %H:%M} UTC"


def _articles_or_none(ctx: JobContext, ticket_id: int) -> Sequence[Article] | None:
    try:
        return ctx.adapter.list_articles(ticket_id)
    except NotFound:
        return None
