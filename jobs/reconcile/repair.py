"""``escalations report --repair``: the findings that are safe to fix, fixed the way the worker
writes everything — intents recorded in one store transaction through the outbox, then carried
out by the effects executor (claim, look, write, commit). Every other finding is only
reported: nothing is guessed.

==========================  ==============================================================
finding                     repair
==========================  ==============================================================
escalation_ticket_unlinked  a ``link`` of the escalation ticket to its original
email_not_copied            the copy path: a copy that was written and then deleted has its
                            own ``copy_article`` effect re-armed (``Store.rearm_done``); an
                            email never copied gets the copy job's scan of the ticket it is on
                            (the original, or a new ticket of the customer), and
                            the copy job's pass (``jobs.sync.copying.run``, every pending scan,
                            as the worker runs it) requests its copy — and does what it does
                            with a new email (one newer than a parking un-parks)
level_mark_differs          the level's mark (tags in Zammad), from the binding's
                            ``apply_level``
owner_differs               the level's owner, from the binding's ``apply_level`` (its title
                            left alone)
subscriber_missing          what the binding's ``apply_level`` subscribes with: a ``subscribe``
                            per person missing, or (where the helpdesk subscribes whom a note
                            names, Zammad after an atomic create) one note naming them
closed_without_archive      the hard copy, filed by the archive job's ``archive_one``
==========================  ==============================================================

Not repaired even then: anything on an escalation whose ticket shows another level than the
worker applied (``level_differs``: a person decides which is right), on one the store changed
since the report read it, or with writes of the same kind still pending or in flight for it
(the worker is at it already).

Effect keys, and why a repair is written once:

- A copy is the same write the copy job makes, so it has the same key
  (``copy:<escalation>:<article>``) and the same row. An email never copied gets that key
  through the copy job itself: if the worker's copy job requests it at the same moment, the
  store's unique ``(kind, key)`` (and the unique copied-article row) make one request a no-op.
  A deleted copy's row is re-armed only while it is ``done`` (a second ``--repair`` finds it
  pending, or finds the copy back); a re-armed row keeps its attempt, so the executor that
  claims it — this command's or the worker's, whichever comes first — looks for the copy by
  its marker before writing, and a copy written by a racing repair is found, not repeated.
- The other repairs are writes the worker made once and an agent undid, so the job's key is
  taken (and done). They get keys of their own, ``repair-<what>:<escalation>[:<user>]:<n>``,
  where ``n`` counts the repairs of that thing: the next ``n`` only once the last one is done
  and finished before this report began to read the helpdesk. A second ``--repair`` while a
  repair is pending or in flight finds the same key (a no-op, listed as pending); one after it
  is done finds no drift; two at once pick the same ``n`` and the unique key keeps one, and
  one that began reading before the other's repair finished skips it (``read_at``). The
  kinds (tags, link, subscribe: read first; owner: set to a value) write nothing the ticket
  already shows, so even a repair racing an agent writes no duplicate; the subscribing note
  is one row per ``n``, looked for by its marker on any attempt after the first. The worker
  itself never writes these again after they are done; while it has a write of the same kind
  pending for the escalation (a level move under way) no repair is made, and the requesting
  transaction checks that the escalation is still as the report read it.
- A hard copy is filed by ``archive_one``, which keeps an archive already on disk that
  verifies and records one per close: the archive job racing it files it once.

``--dry-run`` plans the same repairs and writes nothing: no intent, no store row, no file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from connector.errors import HelpdeskError
from escalations import notes
from escalations.archive.directory import ArchiveDamaged
from escalations.bindings.base import LevelMove
from escalations.effects.base import Intent, effect_key, key_purpose
from escalations.effects.executor import Executor
from escalations.effects.helpdesk import (
    COPY_ARTICLE,
    AddNote,
    CopyArticle,
    LinkPayload,
    LinkTickets,
    NotePayload,
    Subscribe,
    SubscribePayload,
    UpdateTicket,
    UpdateTicketPayload,
)
from escalations.models import ACTIVE_STATES, Effect, EffectState, Escalation, State
from escalations.people import People
from escalations.reconcile.findings import REPAIRABLE, Finding, Repair, RepairOutcome, Report
from escalations.reconcile.findings import FindingKind as K
from escalations.store.base import Transaction
from jobs import archive
from jobs.context import JobContext
from jobs.reconcile import snapshot
from jobs.reconcile.snapshot import Snapshot
from jobs.reconcile.tickets import missing_watchers
from jobs.sync import copying

log = logging.getLogger(__name__)

UNFINISHED = (EffectState.PENDING, EffectState.IN_FLIGHT)
PURPOSE_PREFIX = "repair-"
"""How the key purposes of the repairs' own writes begin."""


@dataclass
class _Plan:
    """One finding's repair: what it will write, or why not."""

    finding: Finding
    action: str
    esc: Escalation | None = None
    intents: list[Intent] = field(default_factory=list)
    rearm: Effect | None = None
    """A done copy whose note is gone from the helpdesk."""
    scan: bool = False
    """Ask the copy job to scan the original."""
    file_archive: bool = False
    known: list[Effect] = field(default_factory=list)
    """Repair writes requested before (pending): nothing new is requested."""
    skipped: str = ""
    effect_ids: list[int] = field(default_factory=list)
    outcome: RepairOutcome | None = None
    detail: str = ""

    def skip(self, why: str) -> _Plan:
        self.skipped = why
        return self

    def repair(self, outcome: RepairOutcome, detail: str = "") -> Repair:
        f = self.finding
        effects = [f"{i.kind} {i.key}" for i in self.intents]
        effects += [f"{e.kind} {e.key}" for e in self.known]
        if self.rearm is not None:
            effects.append(f"{self.rearm.kind} {self.rearm.key}")
        return Repair(
            kind=f.kind,
            subject=f.subject,
            action=self.action,
            outcome=outcome,
            detail=detail,
            escalation=f.escalation,
            ticket_id=f.ticket_id,
            ticket_number=f.ticket_number,
            effects=tuple(effects),
        )


class Repairs:
    """Plans the repairs of one report's findings and carries them out."""

    def __init__(
        self,
        ctx: JobContext,
        executor: Executor,
        report: Report,
        snap: Snapshot,
        *,
        read_at: datetime,
    ) -> None:
        self.ctx = ctx
        self.executor = executor
        self.report = report
        self.snap = snap
        self.read_at = read_at
        """When the report began to read: a repair finished since then may be what it saw."""
        self.people = People(ctx.adapter, ctx.binding, ctx.profile)
        self._level_differs = {
            f.escalation for f in report.findings if f.kind is K.LEVEL_DIFFERS and f.escalation
        }
        self._original_deleted = {
            f.escalation for f in report.findings if f.kind is K.ORIGINAL_DELETED and f.escalation
        }

    # -- planning (reads only) -----------------------------------------------------------
    def plan(self) -> list[_Plan]:
        return [self._plan(f) for f in self.report.findings if f.kind in REPAIRABLE]

    def _plan(self, f: Finding) -> _Plan:
        planners: dict[K, tuple[str, Callable[[_Plan, Escalation], _Plan]]] = {
            K.ESCALATION_TICKET_UNLINKED: ("link the ticket to its original", self._link),
            K.EMAIL_NOT_COPIED: ("copy the customer's email", self._copy),
            K.LEVEL_MARK_DIFFERS: ("set the level's mark", self._marks),
            K.OWNER_DIFFERS: ("give the ticket back to the level's owner", self._owner),
            K.SUBSCRIBER_MISSING: ("subscribe the level's people", self._watchers),
            K.CLOSED_WITHOUT_ARCHIVE: ("file the hard copy", self._archive),
        }  # fmt: skip
        action, planner = planners[f.kind]
        p = _Plan(finding=f, action=action)
        esc = self.ctx.store.escalation_by_key(f.escalation) if f.escalation else None
        if esc is None:
            return p.skip("the store knows no such escalation")
        p.esc = esc
        if f.kind is K.CLOSED_WITHOUT_ARCHIVE:
            return planner(p, esc)
        if esc.state not in ACTIVE_STATES or esc.escalation_ticket_id is None:
            return p.skip(f"the escalation is {esc.state.value}")
        if f.kind is not K.ESCALATION_TICKET_UNLINKED and esc.key in self._level_differs:
            return p.skip(
                "the ticket shows another level than the worker applied: a person decides "
                "which is right"
            )
        return planner(p, esc)

    def _busy(self, esc: Escalation, kind: str) -> bool:
        """The worker has a write of ``kind`` for this escalation pending or in flight (a
        level move, a parking): what it writes may be what the report saw missing, and the
        two must not cross. Notes never cross."""
        return any(
            e.kind == kind and not key_purpose(e.key).startswith(PURPOSE_PREFIX)
            for e in self.ctx.store.effects(*UNFINISHED, escalation_id=esc.id)
        )

    def _keyed(self, p: _Plan, intent: Intent, purpose: str, *parts: object) -> _Plan:
        """``intent`` under the repair's own key (see the module docstring), or why not."""
        assert p.esc is not None
        if intent.kind != AddNote.name and self._busy(p.esc, intent.kind):
            return p.skip(f"the worker has {intent.kind} writes pending for it")
        store = self.ctx.store
        n, last = 1, None
        while True:
            key = effect_key(purpose, p.esc.key, *parts, n)
            found = store.effect_by_key(intent.kind, key)
            if found is None:
                break
            last, n = found, n + 1
        if last is not None and last.state in UNFINISHED:
            p.known.append(last)
            return p
        if last is not None and last.state is EffectState.FAILED:
            return p.skip(
                f"an earlier repair failed ({last.kind} {last.key}: {last.last_error}); "
                f"replay it with 'escalations effects retry {last.id}'"
            )
        if last is not None and last.updated_at >= self.read_at:
            return p.skip("repaired while this report was reading the helpdesk")
        p.intents.append(dataclasses.replace(intent, key=key, after=None))
        return p

    def _link(self, p: _Plan, esc: Escalation) -> _Plan:
        assert esc.escalation_ticket_id is not None
        if esc.key in self._original_deleted:
            return p.skip("the original no longer exists in the helpdesk: a person decides")
        intent = LinkTickets.intent(
            "-",
            LinkPayload(ticket_id=esc.escalation_ticket_id, parent_id=esc.original_ticket_id),
            escalation_id=esc.id,
        )
        return self._keyed(p, intent, "repair-link")

    def _level_writes(self, esc: Escalation, watchers: tuple[int, ...] = ()) -> list[Intent]:
        """What the binding writes to make the escalation ticket show ``esc``'s level."""
        assert esc.escalation_ticket_id is not None
        ticket = snapshot.ticket(self.ctx.adapter, self.snap, esc.escalation_ticket_id)
        if ticket is None:
            return []
        move = LevelMove(
            escalation=esc,
            ticket=ticket,
            level=esc.level,
            sequence=1,
            owner_id=esc.owner_id,
            watcher_ids=watchers,
        )
        return self.ctx.binding.apply_level(move, lambda _ref: False)

    def _marks(self, p: _Plan, esc: Escalation) -> _Plan:
        # the binding's level writes: the ticket update, subscriptions, and the mark's own
        marks = [
            i for i in self._level_writes(esc) if i.kind not in (UpdateTicket.name, Subscribe.name)
        ]
        if not marks:
            return p.skip("this helpdesk's level has no mark the worker writes")
        return self._keyed(p, marks[0], "repair-level-mark")

    def _owner(self, p: _Plan, esc: Escalation) -> _Plan:
        updates = [i for i in self._level_writes(esc) if i.kind == UpdateTicket.name]
        if esc.owner_id is None or not updates:
            return p.skip("the level names no owner")
        payload = updates[0].payload
        assert isinstance(payload, UpdateTicketPayload)
        only_owner = payload.model_copy(update={"title": None, "owner_id": esc.owner_id})
        return self._keyed(p, dataclasses.replace(updates[0], payload=only_owner), "repair-owner")

    def _watchers(self, p: _Plan, esc: Escalation) -> _Plan:
        assert esc.escalation_ticket_id is not None
        missing = missing_watchers(self.ctx, self.people, esc, esc.escalation_ticket_id)
        if not missing:
            return p.skip("everyone is subscribed now")
        p.action = "subscribe " + ", ".join(f"{u.display_name} ({role})" for u, role in missing)
        writes = self._level_writes(esc, watchers=tuple(u.id for u, _ in missing))
        subscribes = [i for i in writes if i.kind == Subscribe.name]
        if not subscribes:
            # the binding subscribes with the level note's mentions (a Zammad create can
            # carry them): a note naming them, as the level note does
            binding = self.ctx.binding
            html = notes.resubscribed_note(
                [f"{binding.person_html(u.id, u.display_name)} ({escape(role)})"
                 for u, role in missing]
            )  # fmt: skip
            intent = AddNote.intent(
                "-",
                NotePayload(ticket_id=esc.escalation_ticket_id, html=html, subject="Subscribed"),
                escalation_id=esc.id,
            )
            return self._keyed(p, intent, "repair-watch-note")
        for intent in subscribes:
            assert isinstance(intent.payload, SubscribePayload)
            self._keyed(p, intent, "repair-watch", intent.payload.user_id)
            if p.skipped:
                break
        return p

    def _copy(self, p: _Plan, esc: Escalation) -> _Plan:
        key = CopyArticle.key("copy", esc.key, _article_id(p.finding))
        effect = self.ctx.store.effect_by_key(COPY_ARTICLE, key)
        if effect is None:
            p.scan = True
            p.action += (
                " (the copy job scans the original)"
                if p.finding.ticket_id in (None, esc.original_ticket_id)
                else f" (the copy job scans #{p.finding.ticket_number})"
            )
            return p
        if effect.state is EffectState.DONE and effect.updated_at < self.read_at:
            p.rearm = effect
            p.action += " again (its copy was deleted)"
            return p
        return p.skip(f"its copy is {effect.state.value.replace('_', ' ')}")

    def _archive(self, p: _Plan, esc: Escalation) -> _Plan:
        if esc.state is not State.CLOSED or esc.confirmed_at is None:
            return p.skip(f"the escalation is {esc.state.value}")
        if self.ctx.store.archives(esc.id):
            return p.skip("a hard copy is filed now")
        p.file_archive = True
        return p

    # -- carrying out ------------------------------------------------------------------------
    def run(self, *, dry_run: bool) -> tuple[Repair, ...]:
        plans = self.plan()
        if dry_run:
            return tuple(self._dry(p) for p in plans)
        self._request([p for p in plans if not p.skipped])
        for p in plans:
            for intent in p.intents if p.outcome is None and not p.skipped else ():
                requested = self.ctx.store.effect_by_key(intent.kind, intent.key)
                if requested is not None:
                    p.effect_ids.append(requested.id)
        if any(p.scan and p.outcome is None for p in plans):
            copying.run(self.ctx)  # the copy job's pass: it requests the copies
            for p in plans:
                if p.scan and p.outcome is None and p.esc is not None:
                    key = CopyArticle.key("copy", p.esc.key, _article_id(p.finding))
                    effect = self.ctx.store.effect_by_key(COPY_ARTICLE, key)
                    if effect is not None:
                        p.effect_ids.append(effect.id)
                        p.known.append(effect)
        ids = [i for p in plans if p.outcome is None for i in p.effect_ids]
        if ids:
            result = self.executor.run_effects(ids)
            log.info(
                "report.repairs_run done=%d failed=%d deferred=%d",
                result.done,
                result.failed,
                result.deferred,
            )
        repairs = tuple(self._outcome(p) for p in plans)
        for r in repairs:
            log.info(
                "report.repair kind=%s subject=%s outcome=%s effects=%s",
                r.kind,
                r.subject,
                r.outcome,
                ",".join(r.effects) or "-",
            )
        return repairs

    def _dry(self, p: _Plan) -> Repair:
        if p.skipped:
            return p.repair(RepairOutcome.SKIPPED, p.skipped)
        if p.known:
            return p.repair(RepairOutcome.PENDING, "requested before; the worker finishes it")
        return p.repair(RepairOutcome.PLANNED)

    def _request(self, plans: list[_Plan]) -> None:
        """Every repair's intents in one transaction (the outbox rule), each only if its
        escalation is as the report read it."""
        store = self.ctx.store
        with self.ctx.outbox.transaction() as tx:
            for p in plans:
                p.effect_ids += [e.id for e in p.known]
                if p.esc is not None and store.get_escalation(p.esc.id) != p.esc:
                    p.outcome, p.detail = RepairOutcome.SKIPPED, "changed since the report read it"
                    continue
                if p.file_archive:
                    continue  # filed after the commit: the archive job's reads come first
                self._request_one(tx, p)

    def _request_one(self, tx: Transaction, p: _Plan) -> None:
        store = self.ctx.store
        for intent in p.intents:
            self.ctx.outbox.request(tx, intent)
        if p.rearm is not None and not store.rearm_done(tx, p.rearm.id, at=self.ctx.clock.now()):
            p.outcome, p.detail = RepairOutcome.SKIPPED, "its copy is being written already"
            return
        if p.rearm is not None:
            p.effect_ids.append(p.rearm.id)
        if p.scan and p.esc is not None:
            source = p.finding.ticket_id or p.esc.original_ticket_id  # or another of its tickets
            number = p.finding.ticket_number or ""
            if source == p.esc.original_ticket_id:
                number = p.esc.original_ticket_number or number
            store.request_scan(tx, p.esc.id, source, number, self.ctx.clock.now())

    def _outcome(self, p: _Plan) -> Repair:
        if p.skipped:
            return p.repair(RepairOutcome.SKIPPED, p.skipped)
        if p.outcome is not None:
            return p.repair(p.outcome, p.detail)
        if p.file_archive:
            return self._file(p)
        store = self.ctx.store
        effects = [store.effect_by_key(i.kind, i.key) for i in p.intents]
        effects += [store.get_effect(e.id) for e in p.known]
        if p.rearm is not None:
            effects.append(store.get_effect(p.rearm.id))
        if p.scan and not p.known:
            return p.repair(RepairOutcome.PENDING, "the copy job has not requested it yet")
        failed = [e for e in effects if e is not None and e.state is EffectState.FAILED]
        if failed:
            return p.repair(RepairOutcome.FAILED, failed[0].last_error or "refused")
        if effects and all(e is not None and e.state is EffectState.DONE for e in effects):
            return p.repair(RepairOutcome.DONE)
        return p.repair(RepairOutcome.PENDING, "the worker's executor finishes it")

    def _file(self, p: _Plan) -> Repair:
        assert p.esc is not None
        try:
            copy = archive.archive_one(self.ctx, self.people, p.esc)
        except (HelpdeskError, ArchiveDamaged, OSError) as exc:
            return p.repair(RepairOutcome.FAILED, f"{type(exc).__name__}: {exc}")
        return p.repair(RepairOutcome.DONE, f"filed as {copy.path}")


def _article_id(finding: Finding) -> int:
    """The customer email an ``email_not_copied`` finding is about (``article:<id>``)."""
    return int(finding.subject.removeprefix("article:"))


def repair(
    ctx: JobContext,
    executor: Executor,
    report: Report,
    snap: Snapshot,
    *,
    read_at: datetime,
    dry_run: bool,
) -> tuple[Repair, ...]:
    """Repair what is safe among ``report``'s findings (``dry_run``: only say what)."""
    return Repairs(ctx, executor, report, snap, read_at=read_at).run(dry_run=dry_run)
