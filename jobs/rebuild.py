"""``escalations rebuild-state`` (issue 16 #4): the worker's store rebuilt from the helpdesk
alone, after the state database is lost.

Two steps, both through the adapter the worker uses, neither writing to the helpdesk:

1. **The escalations**, from what the worker wrote on the helpdesk: every ticket the
   reconciliation's bulk read (``jobs.reconcile.snapshot``) finds carrying an escalation key
   is one escalation; the key names its original; the ticket's fields give its level,
   reason, segment and callback (``HelpdeskBinding``), its owner and state (open, parked,
   closed) come from the ticket — closed only with the worker's closed note on it: a ticket
   an agent closed is an escalation still open, which the replayed poll resolves. The
   times and moves come from the worker's own notes, found by the markers their keys give
   (``escalations.markers``): when it was parked (``parked-note``) and closed
   (``closed-note``), its level moves (``level-note``, each at the time and by the agent
   the ticket's history shows); who flagged it and when from the original's history. Each
   escalation's create is recorded as done, with the marker the create carried, so it is
   never created again.
2. **What followed**, by the worker's own jobs: one poll (from the first poll's look-back, so
   every recent ticket version is considered again), the copy job over each active
   escalation's original and the communication-plan pass, with their writes *adopted*
   instead of made (``adopt``): a note or a copy is looked for by its marker and, found,
   recorded as done (with the copied article, the duty's reminder or miss it stood for);
   an idempotent write (tags, fields, links, subscriptions) the ticket already shows
   (``escalations.app.rebuild_shown``) is recorded as done unsent. A write the helpdesk
   does not show is left pending: the worker makes it, once, when it runs — something the
   lost worker had not done yet (or drift since, which the report lists).

Re-run after an interruption it goes on where it stopped: an escalation already in the store
is kept, the jobs are level-triggered and the effects' keys are unique.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from connector.base import Article, Capability, HelpdeskAdapter, Ticket, TicketEvent
from connector.errors import HelpdeskError
from escalations import copies, parking
from escalations.bindings.marks import marks_for
from escalations.clock import parse_instant
from escalations.comms import next_duty
from escalations.comms.calendar import BusinessCalendar
from escalations.effects.base import EffectKind, Payload, Registry
from escalations.effects.helpdesk import (
    COPY_ARTICLE,
    CREATE_ESCALATION,
    NOTE,
    AddNote,
    CopyArticle,
    CreateEscalation,
    UpdateTicketPayload,
)
from escalations.errors import StoreError
from escalations.markers import marker_for, markers_in
from escalations.models import (
    CopiedArticle,
    EffectState,
    Escalation,
    LevelChange,
    ParkingOutcome,
    State,
)
from escalations.reconcile.marks import ReconcileMarks
from escalations.store.base import Duplicate, Store, Transaction
from jobs import comms, sync
from jobs.context import JobContext
from jobs.reconcile import snapshot

log = logging.getLogger(__name__)

ADOPTER = "rebuild-state"
"""The worker id the rebuild holds the store's lock as."""
NOT_SHOWN = "rebuild-state: not in the helpdesk (left for the worker)"
"""What a write the rebuild looked for and did not find is marked with while it runs."""
PROGRESS_EVERY = 100
"""A progress line per this many escalations, or writes looked for."""
MAX_SEQUENCE = 50
"""How many parkings (or closes) of one escalation the rebuild looks for notes of."""

Progress = Callable[[str], None]
Shown = Callable[[HelpdeskAdapter, Store, Payload], bool | None]


@dataclass
class Rebuilt:
    """What the rebuild did (the command prints it)."""

    escalations: int = 0
    kept: int = 0
    """Escalations already in the store (a re-run)."""
    by_state: dict[str, int] = field(default_factory=dict)
    found: int = 0
    """Writes found in the helpdesk by their marker and recorded as done."""
    adopted: int = 0
    """Idempotent writes the helpdesk already shows, recorded as done without being sent."""
    looked: int = 0
    """Writes the replayed jobs requested, looked for (or compared) in the helpdesk."""
    left: list[str] = field(default_factory=list)
    """Writes the helpdesk does not show, left for the worker (``kind/key``)."""
    skipped: list[str] = field(default_factory=list)
    """Escalation tickets not rebuilt, and why."""
    requests: int | None = None


def rebuild(ctx: JobContext, registry: Registry, progress: Progress, shown: Shown) -> Rebuilt:
    """Rebuild ``ctx.store`` from the helpdesk (see the module's docstring).

    Args:
        ctx: the wired job context, its store empty or an interrupted rebuild's.
        registry: the effect kinds (the executor's), to look for writes by marker.
        progress: told one line per step (the command prints them on stderr).
        shown: whether the helpdesk already shows what an idempotent write would make it
            show (``escalations.app.rebuild_shown.shown``); ``None``: cannot tell.

    Raises:
        ConfigError: the helpdesk's binding has no marks to find escalation tickets by.
    """
    marks = marks_for(ctx.mappings, ctx.adapter.capabilities)
    _give_back(ctx)  # a run interrupted before it gave them back
    done = Rebuilt()
    progress("reading the escalation tickets, originals and marks (bulk searches)")
    snap = snapshot.read(ctx.adapter, marks)
    tickets = sorted(snap.escalation_tickets.values(), key=lambda t: t.id)
    progress(f"{len(tickets)} escalation tickets found")
    for n, ticket in enumerate(tickets, 1):
        if n % PROGRESS_EVERY == 0 or n == len(tickets):
            progress(f"escalations: {n}/{len(tickets)}")
        _escalation(ctx, marks, snap, ticket, done)
    progress("replaying the poll (the first poll's look-back)")
    _adopt(ctx, registry, shown, done, progress)
    sync.run(ctx)
    _adopt(ctx, registry, shown, done, progress)
    progress("replaying the copies of customer messages")
    with ctx.store.transaction() as tx:
        for esc in ctx.store.escalations_in(State.OPEN, State.PARKED):
            if esc.escalation_ticket_id is not None:
                ctx.store.request_scan(
                    tx,
                    esc.id,
                    esc.original_ticket_id,
                    esc.original_ticket_number or str(esc.original_ticket_id),
                    ctx.clock.now(),
                )
    sync.run_copy(ctx)
    _adopt(ctx, registry, shown, done, progress)
    progress("replaying the communication plan")
    comms.run(ctx)
    _adopt(ctx, registry, shown, done, progress)
    done.left = _give_back(ctx)
    for esc in ctx.store.escalations_in():
        done.by_state[esc.state.value] = done.by_state.get(esc.state.value, 0) + 1
    log.info(
        "rebuild.done escalations=%d kept=%d found=%d adopted=%d left=%d skipped=%d",
        done.escalations,
        done.kept,
        done.found,
        done.adopted,
        len(done.left),
        len(done.skipped),
    )
    return done


# -- step 1: the escalations --------------------------------------------------------------


def _original_id(key: str) -> int | None:
    """``<helpdesk>:ticket:<original id>:<n>`` (``jobs.sync.flagging.escalation_key``)."""
    parts = key.split(":")
    if len(parts) != 4 or parts[1] != "ticket" or not parts[2].isdigit():
        return None
    return int(parts[2])


def _note(articles: Sequence[Article], key: str, purpose: str, *parts: object) -> Article | None:
    """The note of ``purpose`` the worker wrote for escalation ``key`` (by its marker)."""
    wanted = marker_for(NOTE, AddNote.key(purpose, key, *parts)).value
    for article in articles:
        if any(m.value == wanted for m in markers_in(article.body)):
            return article
    return None


def _note_at(
    articles: Sequence[Article], key: str, purpose: str, *parts: object
) -> datetime | None:
    found = _note(articles, key, purpose, *parts)
    return found.created_at if found is not None else None


@dataclass(frozen=True)
class _Parking:
    seq: int
    resolved_at: datetime
    ended_at: datetime | None = None
    outcome: ParkingOutcome | None = None


def _parkings(
    articles: Sequence[Article],
    key: str,
    events: Sequence[TicketEvent] | None,
    opened_at: datetime,
) -> list[_Parking]:
    """The parkings, from the worker's notes: each began with its parked note and ended
    with its un-parked note (back to open, why not known: ``REOPENED``) or its closed note
    (the customer confirmed); each at the time of the agent's change the note answered, as
    the ticket's history shows it (the note's own time without one)."""
    found = []
    after = opened_at
    for seq in range(1, MAX_SEQUENCE + 1):
        began = _note(articles, key, "parked-note", seq)
        if began is None:
            break
        resolved = _answered(events, began, after)
        end = _note(articles, key, "closed-note", seq)
        outcome = ParkingOutcome.CONFIRMED
        if end is None:
            end, outcome = _note(articles, key, "unparked-note", seq), ParkingOutcome.REOPENED
        if end is None:
            found.append(_Parking(seq, resolved))
            break
        ended = _answered(events, end, began.created_at)
        found.append(_Parking(seq, resolved, ended, outcome))
        after = end.created_at
    return found


def _answered(events: Sequence[TicketEvent] | None, note: Article, after: datetime) -> datetime:
    """When the change happened that the worker's ``note`` answers: the latest event of the
    ticket after ``after`` and before the note by someone other than the note's author (the
    worker's own writes are its author's)."""
    times = [
        e.at
        for e in events or ()
        if after < e.at < note.created_at and e.actor_id != note.created_by_id
    ]
    return max(times, default=note.created_at)


def _level_changes(
    ctx: JobContext, articles: Sequence[Article], key: str, events: Sequence[TicketEvent] | None
) -> list[LevelChange]:
    """The level moves, from the worker's level notes (``level-note``, numbered from 1, each
    with the subject ``Level <n>``), each at the time and by whom the escalation ticket's
    history shows that level set (the note's own time without a history); ``escalation_id``
    is 0 until the row exists."""
    changes: list[LevelChange] = []
    level = 1
    for seq in range(1, MAX_SEQUENCE + 1):
        note = _note(articles, key, "level-note", seq)
        if note is None:
            break
        shown = (note.subject or "").removeprefix("Level ").strip()
        if not shown.isdigit() or not 1 <= int(shown) <= ctx.profile.max_level:
            break
        before = [e for e in events or () if e.at <= note.created_at]
        event = ctx.binding.level_event(before, int(shown)) if before else None
        changes.append(
            LevelChange(
                escalation_id=0,
                from_level=level,
                to_level=int(shown),
                changed_at=event.at if event is not None else note.created_at,
                changed_by_id=event.actor_id if event is not None else None,
            )
        )
        level = int(shown)
    return changes


def _history(ctx: JobContext, ticket_id: int) -> list[TicketEvent] | None:
    """The ticket's history; ``None`` where the helpdesk keeps none or it cannot be read."""
    if Capability.HISTORY not in ctx.adapter.capabilities:
        return None
    try:
        return ctx.adapter.ticket_events(ticket_id)
    except HelpdeskError as exc:
        log.warning("rebuild.history_unread ticket=%s: %s", ticket_id, exc)
        return None


def _escalation(
    ctx: JobContext, marks: ReconcileMarks, snap: snapshot.Snapshot, ticket: Ticket, done: Rebuilt
) -> None:
    binding, store, profile = ctx.binding, ctx.store, ctx.profile
    key = binding.escalation_key_of(ticket)
    if key is None:
        return
    if ticket.state in snap.merged_states:
        done.skipped.append(f"#{ticket.number}: merged into another ticket")
        return
    if store.escalation_by_key(key) is not None:
        done.kept += 1
        return
    original_id = _original_id(key)
    if original_id is None:
        done.skipped.append(f"#{ticket.number}: escalation key {key!r} names no original")
        return
    try:
        original = snapshot.ticket(ctx.adapter, snap, original_id)
    except HelpdeskError as exc:
        done.skipped.append(f"#{ticket.number}: its original may not be read ({exc})")
        return
    details = binding.flag_details(ticket)
    level = binding.requested_level(ticket) or 1
    level = min(max(level, 1), profile.max_level)
    segment = details.segment if details.segment in profile.segments else ""
    opened_at = ticket.created_at
    articles = ctx.adapter.list_articles(ticket.id)
    state = State.OPEN
    resolved_at = parked_at = closed_at = confirmed_at = None
    history = _history(ctx, ticket.id)
    periods = _parkings(articles, key, history, opened_at)
    last = periods[-1] if periods else None
    parked_state = marks.state_names.get(State.PARKED)
    shows_parked = (
        ticket.state == parked_state if parked_state else ticket.pending_until is not None
    )
    if last is not None and last.ended_at is None:
        # parked by the worker: whatever an agent did to the ticket since (set it back to
        # open, closed it, recorded the outcome), the replayed poll takes it from there
        state = State.PARKED
    elif last is not None and last.outcome is ParkingOutcome.CONFIRMED and binding.closing(ticket):
        state, closed_at = State.CLOSED, last.ended_at
        confirmed_at = closed_at
    elif shows_parked:  # parked with no parked note found
        state = State.PARKED
        periods.append(_Parking(len(periods) + 1, ticket.updated_at))
    # else open; a ticket an agent closed with no closed note is an escalation still open,
    # which the replayed poll resolves (parks) as the lost worker would have
    if state is State.PARKED:
        resolved_at = parked_at = periods[-1].resolved_at
    if state is not State.CLOSED:
        closed_at = None
    changes = _level_changes(ctx, articles, key, history)
    flagged_at, flagged_by = opened_at, None
    original_events = _history(ctx, original_id) if original is not None else None
    if original_events:
        flag = binding.flag_event([e for e in original_events if e.at <= opened_at])
        if flag is not None:
            flagged_at, flagged_by = flag.at, flag.actor_id
    esc = Escalation(
        key=key,
        original_ticket_id=original_id,
        original_ticket_number=original.number if original is not None else None,
        escalation_ticket_id=ticket.id,
        escalation_ticket_number=ticket.number,
        customer_id=original.customer_id if original is not None else ticket.customer_id,
        organization_id=original.organization_id if original is not None else None,
        segment=segment or profile.process.default_segment,
        level=level,
        reason=details.reason,
        state=state,
        owner_id=ticket.owner_id,
        callback_at=details.callback_at,
        agreed_cadence_minutes=details.agreed_cadence_minutes,
        flagged_by_id=flagged_by,
        flagged_at=flagged_at,
        opened_at=opened_at,
        resolved_at=resolved_at,
        parked_at=parked_at,
        confirmed_at=confirmed_at,
        closed_at=closed_at,
        updated_at=ctx.clock.now(),
    )
    create = CreateEscalation.key("escalation", key)
    with store.transaction() as tx:
        try:
            inserted = store.insert_escalation(tx, esc)
        except Duplicate:
            done.skipped.append(f"#{ticket.number}: another escalation is active on its original")
            return
        for change in changes:
            store.record_level_change(
                tx, replace(change, escalation_id=inserted.id, reason=details.reason)
            )
        calendar = BusinessCalendar.from_profile(profile)
        for n, period in enumerate(periods, 1):
            last_open = n == len(periods) and state is State.PARKED
            until = (ticket.pending_until if last_open else None) or parking.pending_until(
                profile, calendar, period.resolved_at
            )
            store.start_parking(tx, inserted.id, period.resolved_at, until)
            if not last_open:
                store.end_parking(
                    tx,
                    inserted.id,
                    period.ended_at or period.resolved_at,
                    period.outcome or ParkingOutcome.REOPENED,
                    "rebuilt from the worker's notes",
                )
        effect_id = store.insert_effect(
            tx,
            kind=CREATE_ESCALATION,
            key=create,
            marker=marker_for(CREATE_ESCALATION, create).value,
            payload_json="{}",
            payload_sha256="",
            payload_version=1,
            escalation_id=inserted.id,
            after=None,
            at=ctx.clock.now(),
        )
        if effect_id is not None:
            _finish_unsent(ctx, tx, effect_id, f"{ticket.id}#{ticket.number}")
        store.note_articles_known(tx, inserted.id, ticket.id, [a.id for a in articles])
        if state is not State.CLOSED:
            _next_duty_shown(ctx, tx, inserted, ticket)
        if state is State.CLOSED and original is not None:
            _copies_of_ended(ctx, tx, inserted, original, articles)
    done.escalations += 1


def _finish_unsent(ctx: JobContext, tx: Transaction, effect_id: int, remote_id: str) -> None:
    """The escalation's create, done: the ticket exists (it carries the create's key)."""
    now = ctx.clock.now()
    effect = ctx.store.claim_next(
        tx, worker=ADOPTER, now=now, after_id=effect_id - 1, lease_until=now, orphaned_before=now
    )
    if effect is None or effect.id != effect_id:
        raise StoreError(f"rebuild-state: the create of effect {effect_id} could not be recorded")
    ctx.store.finish_effect(tx, effect_id, EffectState.DONE, remote_id=remote_id)


def _next_duty_shown(ctx: JobContext, tx: Transaction, esc: Escalation, ticket: Ticket) -> None:
    """What the escalation ticket shows as its next duty's time, as the comms job's record of
    what it requested (``escalations.comms.next_duty``): the job then writes only a change,
    as the lost worker would have. The field is the one the binding's own write names."""
    if not ctx.binding.shows_next_duty:
        return
    names = {
        name
        for intent in ctx.binding.next_duty(esc, 0, None, lambda ref: False)
        if isinstance(intent.payload, UpdateTicketPayload)
        for name in intent.payload.fields
    }
    if len(names) != 1:
        return
    value = ticket.fields.get(names.pop())
    try:
        due = parse_instant(value) if isinstance(value, str) and value else None
    except ValueError:
        return
    ctx.store.set_meta(tx, next_duty.shown_key(esc.id), next_duty.entry(0, due))


def _copies_of_ended(
    ctx: JobContext,
    tx: Transaction,
    esc: Escalation,
    original: Ticket,
    in_escalation: Sequence[Article],
) -> None:
    """For an escalation that has ended, the customer messages of its original that its
    ticket holds a copy of (by the copy's marker), recorded as copied; the copy job does not
    look at ended escalations, and one reopened must not copy them again. Their writes are
    requested here and found by the adoption."""
    assert esc.escalation_ticket_id is not None
    present = {m.value for a in in_escalation for m in markers_in(a.body)}
    limits = ctx.binding.limits
    for message in ctx.adapter.list_articles(original.id):
        if not message.is_customer_message:
            continue
        key = CopyArticle.key("copy", esc.key, message.id)
        if marker_for(COPY_ARTICLE, key).value not in present:
            continue
        ctx.store.record_copied_article(
            tx,
            CopiedArticle(
                escalation_id=esc.id,
                source_ticket_id=original.id,
                source_article_id=message.id,
                copied_at=message.created_at,
            ),
        )
        payload = copies.capture(
            message,
            escalation_ticket_id=esc.escalation_ticket_id,
            source_number=original.number,
            attachment_max_bytes=limits.attachment_max_bytes,
            body_max_chars=limits.body_max_chars,
            tz=ctx.profile.tz,
        )
        ctx.outbox.request(tx, CopyArticle.intent(key, payload, escalation_id=esc.id))


# -- step 2: the writes the replayed jobs request -------------------------------------------


def _finds(kind: EffectKind[Any]) -> bool:
    return type(kind).find is not EffectKind.find


def _adopt(
    ctx: JobContext, registry: Registry, shown: Shown, done: Rebuilt, progress: Progress
) -> None:
    """Every pending write, claimed in id order: looked for by its marker (found: done, with
    its commit's bookkeeping), recorded as done unsent when idempotent, else set aside as
    failed (``NOT_SHOWN``) until the rebuild ends (``_give_back``), so a write ordered after
    it (``after``: the copies of one escalation are) is looked for too, and one found is not
    written again."""
    store = ctx.store
    last = 0
    while True:
        now = ctx.clock.now()
        with store.transaction() as tx:
            effect = store.claim_next(
                tx, worker=ADOPTER, now=now, after_id=last, lease_until=now, orphaned_before=now
            )
        if effect is None:
            return
        last = effect.id
        done.looked += 1
        if done.looked % PROGRESS_EVERY == 0:
            progress(f"writes looked for in the helpdesk: {done.looked}")
        kind = registry.get(effect.kind)
        payload = kind.load(effect.payload, effect.payload_version) if kind else None
        remote: str | None = None
        ok = False
        try:
            if kind is not None and _finds(kind):
                remote = kind.find(effect, payload)
                ok = remote is not None
            elif kind is not None:
                ok = payload is not None and shown(ctx.adapter, store, payload) is True
        except HelpdeskError as exc:
            log.warning("rebuild.unread kind=%s key=%s: %s", effect.kind, effect.key, exc)
        with ctx.outbox.transaction() as tx:
            if kind is None or not ok:
                store.finish_effect(tx, effect.id, EffectState.FAILED, last_error=NOT_SHOWN)
                continue
            store.finish_effect(tx, effect.id, EffectState.DONE, remote_id=remote)
            kind.on_commit(tx, effect, payload, remote)
        if remote is not None:
            done.found += 1
        else:
            done.adopted += 1


def _give_back(ctx: JobContext) -> list[str]:
    """The writes set aside (``NOT_SHOWN``) back to pending, for the worker; each counts as
    one attempt that may have been sent, so the executor looks for it by its marker once
    more before it writes."""
    left = []
    with ctx.store.transaction() as tx:
        for effect in ctx.store.effects(EffectState.FAILED):
            if effect.last_error == NOT_SHOWN:
                ctx.store.retry_failed(tx, effect.id, at=ctx.clock.now())
                left.append(f"{effect.kind}/{effect.key}")
    return left
