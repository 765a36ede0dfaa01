"""The ``comms`` job: the communication plan on time (DESIGN.md rules 6 and 7, issue 11).

Level-triggered and re-entrant: each pass works out, for every open escalation, from the store
and the helpdesk what is due *now*:

1. the duties the plan gives so far (``escalations.comms.duties.plan``: the agreed callback,
   the segment's daily contact calls or its update cadence in business time, a call or update
   after each level change) are stored, each with its window;
2. a duty whose window has opened is **done** when the helpdesk shows it: an agent's phone
   article (a call) or customer-visible article (an update) on the original or the escalation
   ticket inside the window — never a box ticked; the article is stored as evidence. With
   ``[comms] caller_log`` on, an answered outbound call to the customer's number in the
   helpdesk's caller log (the phone system's own record, read once per pass) counts as a
   call too, stored as ``call:<id>``;
3. one **reminder** note, mentioning the owner, once the window closes within
   ``[comms] reminder_lead_minutes`` and it is not done;
4. a window closed undone is **missed**: one note to the next level's executives (mentioned,
   so Zammad notifies them); several missed at once (after the worker was stopped) are one
   summary note, never a storm of stale reminders;
5. **the next duty's time** on the escalation ticket, where the binding shows it (a Zammad
   datetime attribute the "Calls and updates due today" overview lists by): written when it
   changes, each change once and in order;
6. **stalled**: no agent article for ``stalled_after_minutes`` business minutes, or
   ``stalled_after_missed`` duties missed in a row: one note to the next level's executives.

Each note is an effect whose key names the duty (or the quiet spell), requested in the same
transaction that records the reminder or the miss, so each is written exactly once whatever
crashes and restarts happen. The helpdesk's articles are read only for an escalation with a
duty at a decision point (its reminder time has come, or its window has closed) or a stall to
confirm: a duty done early is recognised then, never later than a reminder would go out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.errors import HelpdeskError, TransientError, Unauthorized
from escalations import notes, parking
from escalations.comms import next_duty
from escalations.comms.calendar import BusinessCalendar
from escalations.comms.duties import (
    CONFIRMATION_PREFIX,
    EscalationFacts,
    next_due,
    plan,
    suspended,
)
from escalations.errors import StoreConflict, StoreUnavailable
from escalations.models import Duty, Escalation, LevelChange, ParkingPeriod, State
from escalations.people import People
from escalations.profile import Segment
from escalations.store.base import LeaseLost, Transaction
from jobs.context import JobContext, JobResult
from jobs.evidence import EvidenceReader, evidence_for

log = logging.getLogger(__name__)

NAME = "comms"
REMINDER = "duty-reminder"
MISSED = "duty-missed"
STALLED = "stalled"
STALLED_MISSED = "stalled-missed"
ACTIVITY = "comms.last_activity"
"""Meta key prefix (``<key>:<escalation id>``): the latest agent activity seen (ISO time), so a
quiet escalation is read again only when its stall could be due. (A store written before
holds one entry of every escalation under the bare key: still read, once per pass.)"""
NEXT_DUTY_WRITES_PER_PASS = 100
"""Next-duty writes requested per pass at most (the soonest first): with the default pass
every 5 minutes and the default budget of 60 requests a minute, a burst (an upgrade onto many
open escalations; the end of a business day, when every residential escalation's next call
moves to the next day) holds the copies of customer emails back by at most about 100 s a
pass, and converges at 100 escalations a pass."""
STALL_TOLD = "comms.stall_told"
"""Meta key prefix, as ``ACTIVITY``: the activity (ISO time) whose quiet spell was alerted, so
a stalled escalation is not read again every pass."""


def run(ctx: JobContext) -> JobResult:
    result = JobResult(NAME)
    now = ctx.clock.now()
    comms = CommsPass(ctx, result, now)
    for esc in ctx.store.escalations_in(State.OPEN, State.PARKED):
        if ctx.stop.is_set():
            log.info("comms.stopping")
            break
        if esc.escalation_ticket_id is None:
            continue
        try:
            comms.escalation(esc)
        except (Unauthorized, TransientError, LeaseLost, StoreUnavailable, StoreConflict):
            raise  # the token, the helpdesk, another leader or the store: none would fare better
        except Exception as exc:  # noqa: BLE001 - this escalation only: the others go on
            result.add("escalations_failed")
            log.error(
                "comms.escalation_failed esc=%s error=%s: %s",
                esc.key,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, HelpdeskError),
            )
    if not ctx.stop.is_set():
        comms.show_next_duties()
    return result


class CommsPass:
    def __init__(self, ctx: JobContext, result: JobResult, now: datetime) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.result = result
        self.now = now
        self.profile = ctx.profile
        self.tz = ctx.profile.tz
        self.settings = ctx.profile.comms
        self.calendar = BusinessCalendar.from_profile(ctx.profile)
        self.rules = next_duty.rules_of(ctx.profile)
        self.people = People(ctx.adapter, ctx.binding, ctx.profile)
        # a pass must fall inside the lead for the reminder to go out: never less than the
        # time between two passes
        self.lead = max(
            timedelta(minutes=self.settings.reminder_lead_minutes),
            timedelta(seconds=ctx.settings.comms_interval_seconds),
        )
        self.evidence = EvidenceReader(ctx, result, self.people)
        self._shared: dict[str, dict[str, str]] = {}
        self.next_duties: list[tuple[Escalation, datetime | None, int]] = []
        """(escalation, next duty, last change number) whose ticket shows another day."""

    # -- one escalation ------------------------------------------------------------------------
    def escalation(self, esc: Escalation) -> None:
        # each of the escalation's lists is read once (its duties again only after a step
        # wrote them): at 10 000 open escalations a pass made eleven queries for each
        seen = _Seen(
            periods=self.store.parking_periods(esc.id),
            changes=self.store.level_changes(esc.id),
        )
        facts = self._facts(esc, seen)
        duties = self.store.duties(esc.id)
        if self._store_plan(esc, facts, duties):
            duties = self.store.duties(esc.id)
        if self._decide(esc, facts.pauses, duties, seen) and self.ctx.binding.shows_next_duty:
            duties = self.store.duties(esc.id)
        if self.ctx.binding.shows_next_duty:
            self._want_next_duty(esc, facts, duties)

    def _decide(
        self,
        esc: Escalation,
        pauses: tuple[tuple[datetime, datetime | None], ...],
        duties: Sequence[Duty],
        seen: _Seen,
    ) -> bool:
        """Remind, settle and flag the duties in play; whether the store was written."""
        in_play = [
            d
            for d in duties
            if not d.settled
            and (d.opens_at or d.due_at) <= self.now
            and (d.slot.startswith(CONFIRMATION_PREFIX) or not _suspended(d, pauses))
        ]
        parked = esc.state is State.PARKED
        activity = self._known_activity(esc, seen)
        stall_due = not parked and self._stall_due(esc, activity)
        decisions = [d for d in in_play if self.now >= d.due_at - self.lead]
        if not decisions and not stall_due:
            return False  # nothing to remind, flag or alert yet: the helpdesk is not read
        evidence, last_agent_article = self.evidence.read(esc)
        activity = max(activity, last_agent_article or activity)
        done = {d.slot: evidence_for(d, evidence) for d in in_play}
        missed = [d for d in in_play if done[d.slot] is None and self.now > d.due_at]
        self.evidence.warn_unseen_calls(esc, missed)
        remind = [
            d
            for d in in_play
            if done[d.slot] is None
            and d.reminded_at is None
            and d.due_at - self.lead <= self.now <= d.due_at
        ]
        owner_html = self._owner_html(esc)  # the helpdesk is read before the transaction
        executives = self._executives_html(esc)
        with self.ctx.outbox.transaction() as tx:
            for d in in_play:
                found = done[d.slot]
                if found is not None and self.store.complete_duty(
                    tx, esc.id, d.kind, d.slot, found.at, evidence=found.ref
                ):
                    self.result.add("duties_done")
            for d in remind:
                if self.store.duty_reminded(tx, esc.id, d.kind, d.slot, self.now):
                    self.ctx.lifecycle.comms_note(
                        tx, esc, REMINDER, d.kind, d.slot,
                        html=notes.duty_reminder_note(
                            owner_html, d.reason, d.kind, d.opens_at, d.due_at, self.tz
                        ),
                        subject=f"Reminder: {d.reason}",
                    )  # fmt: skip
                    self.result.add("reminders")
            newly_missed = [
                d for d in missed if self.store.duty_missed(tx, esc.id, d.kind, d.slot, self.now)
            ]
            if newly_missed:
                self._flag_missed(tx, esc, newly_missed, executives)
            if not parked:  # a parked escalation is quiet by design
                self._stalled_by_misses(tx, esc, executives)
                if self._stall_due(esc, activity):
                    self._stalled_quiet(tx, esc, activity, executives)
            self._remember(tx, ACTIVITY, esc, activity)
        return True

    def _facts(self, esc: Escalation, seen: _Seen) -> EscalationFacts:
        return next_duty.facts_of(
            esc,
            level_changes=tuple((c.to_level, c.changed_at) for c in seen.changes),
            pauses=parking.pauses(seen.periods),
            confirmations=self._confirmations(seen.periods),
        )

    def _store_plan(self, esc: Escalation, facts: EscalationFacts, duties: Sequence[Duty]) -> bool:
        """Store the plan's duties up to now not stored yet; whether there were any."""
        specs = plan(facts, self._segment(esc), self.calendar, self.rules, until=self.now)
        stored = {d.slot for d in duties}
        new = [s for s in specs if s.key not in stored]
        if not new:
            return False
        with self.store.transaction() as tx:
            for spec in new:
                self.store.add_duty(
                    tx,
                    Duty(
                        escalation_id=esc.id,
                        kind=spec.kind.value,
                        slot=spec.key,
                        due_at=spec.due_at,
                        opens_at=spec.opens_at,
                        reason=spec.reason,
                    ),
                )
        self.result.add("duties_planned", len(new))
        return True

    def _want_next_duty(
        self, esc: Escalation, facts: EscalationFacts, duties: Sequence[Duty]
    ) -> None:
        """Note the escalation ticket's next-duty time for ``show_next_duties`` when its local
        day changed (after this pass's duties were settled): each write notifies the ticket's
        owner and subscribers, so it is made about once a day, not once per duty."""
        shown = next_duty.parse_entry(self.store.get_meta(next_duty.shown_key(esc.id)))
        if shown and self._due_today_still(shown[1], duties, facts.pauses):
            return  # the plan ten days ahead need not be worked out: the day shown stands
        settled = {d.slot for d in duties if d.settled}
        due = next_due(facts, self._segment(esc), self.calendar, self.rules, self.now, settled)
        if not next_duty.same_day((shown or (0, ""))[1], due, self.tz):
            self.next_duties.append((esc, due, shown[0] if shown else 0))

    def _due_today_still(
        self,
        shown: str,
        duties: Sequence[Duty],
        pauses: tuple[tuple[datetime, datetime | None], ...],
    ) -> bool:
        """The ticket shows today, and a stored duty still to be met is due later today: then
        the next duty (the earliest still to be met, from now on) is due today as well."""
        today = self.now.astimezone(self.tz).date()
        if not next_duty.same_day(shown, self.now, self.tz):
            return False
        return any(
            not d.settled
            and d.due_at >= self.now
            and d.due_at.astimezone(self.tz).date() == today
            and (d.slot.startswith(CONFIRMATION_PREFIX) or not _suspended(d, pauses))
            for d in duties
        )

    def show_next_duties(self) -> None:
        """Request the noted next-duty times, the soonest first and at most
        ``NEXT_DUTY_WRITES_PER_PASS``: after an upgrade every open escalation wants one, and
        they must not crowd out the copies of customer emails in the request budget; the rest
        follow in later passes."""
        far = datetime.max.replace(tzinfo=self.now.tzinfo)
        wanted = sorted(self.next_duties, key=lambda w: (w[1] or far, w[0].id))
        for esc, due, seq in wanted[:NEXT_DUTY_WRITES_PER_PASS]:
            self._show_next_duty(esc, due, seq)
        if len(wanted) > NEXT_DUTY_WRITES_PER_PASS:
            self.result.add("next_duty_deferred", len(wanted) - NEXT_DUTY_WRITES_PER_PASS)

    def _show_next_duty(self, esc: Escalation, due: datetime | None, seq: int) -> None:
        wanted = "" if due is None else due.isoformat()
        with self.ctx.outbox.transaction() as tx:
            used = self.ctx.lifecycle.next_duty_shown(tx, esc, seq + 1, due)
            self.store.set_meta(tx, next_duty.shown_key(esc.id), next_duty.entry(used, due))
        self.result.add("next_duty_shown")
        log.info(
            "comms.next_duty esc=%s ticket=%s due=%s",
            esc.key,
            esc.escalation_ticket_id,
            wanted or "none",
        )

    def _confirmations(
        self, periods: Sequence[ParkingPeriod]
    ) -> tuple[tuple[int, datetime, datetime], ...]:
        """The confirmation call of each parking still open, or ended after its window (an
        escalation un-parked before the call was due needs no call)."""
        found = []
        for period in periods:
            opens, due = parking.confirmation_window(
                self.profile, self.calendar, period.resolved_at
            )
            if period.ended_at is None or period.ended_at >= due:
                found.append((period.seq, opens, due))
        return tuple(found)

    def _segment(self, esc: Escalation) -> Segment:
        return next_duty.segment_of(self.profile, esc)

    # -- notes ----------------------------------------------------------------------------
    def _owner_html(self, esc: Escalation) -> str:
        if esc.owner_id is None:
            return "Owner"
        return self.ctx.binding.person_html(esc.owner_id, self.people.name(esc.owner_id))

    def _executives_html(self, esc: Escalation) -> list[str]:
        """The next level's people (at the top level, its own), as the binding shows them."""
        level = min(esc.level + 1, self.profile.max_level)
        return [
            self.ctx.binding.person_html(user.id, user.display_name)
            for user, _role in self.people.watchers_for_level(level)
        ]

    def _flag_missed(
        self, tx: Transaction, esc: Escalation, missed: Sequence[Duty], executives: list[str]
    ) -> None:
        slots = ",".join(sorted(d.slot for d in missed))
        digest = hashlib.sha256(slots.encode()).hexdigest()[:16]
        html = notes.duties_missed_note(
            executives,
            [(d.reason, d.kind, d.opens_at, d.due_at) for d in missed],
            self.tz,
        )
        subject = (
            f"Missed: {missed[0].reason}" if len(missed) == 1 else f"Missed: {len(missed)} duties"
        )
        self.ctx.lifecycle.comms_note(tx, esc, MISSED, digest, html=html, subject=subject)
        self.result.add("duties_missed", len(missed))
        log.warning(
            "comms.missed esc=%s ticket=%s count=%s duties=%s",
            esc.key,
            esc.escalation_ticket_id,
            len(missed),
            slots,
        )

    def _stalled_by_misses(self, tx: Transaction, esc: Escalation, executives: list[str]) -> None:
        need = self.settings.stalled_after_missed
        settled = [d for d in self.store.duties(esc.id) if d.settled]
        run: list[Duty] = []
        for d in sorted(settled, key=lambda d: (d.due_at, d.slot)):
            run = [*run, d] if d.missed_at is not None else []
        if len(run) < need:
            return
        first = run[0]  # one alert per run of misses, however long it grows
        html = notes.stalled_note(
            executives,
            esc.level,
            f"{len(run)} duties of the communication plan missed in a row",
        )
        if self.ctx.lifecycle.comms_note(
            tx, esc, STALLED_MISSED, first.slot, html=html, subject="Not progressing"
        ):
            self.result.add("stalled")
            log.warning("comms.stalled esc=%s missed_in_a_row=%s", esc.key, len(run))

    def _stalled_quiet(
        self, tx: Transaction, esc: Escalation, activity: datetime, executives: list[str]
    ) -> None:
        minutes = self.settings.stalled_after_minutes
        why = (
            f"no agent activity on its tickets since {notes.local_time(activity, self.tz)} "
            f"({minutes} business minutes)"
        )
        html = notes.stalled_note(executives, esc.level, why)
        if self.ctx.lifecycle.comms_note(
            tx, esc, STALLED, activity.isoformat(), html=html, subject="Not progressing"
        ):
            self.result.add("stalled")
            log.warning("comms.stalled esc=%s quiet_since=%s", esc.key, activity.isoformat())
        self._remember(tx, STALL_TOLD, esc, activity)

    # -- activity --------------------------------------------------------------------------
    def _meta(self, key: str, esc: Escalation) -> str | None:
        """One escalation's entry: its own meta key, else (a store written before) the shared
        entry of every escalation, read once per pass."""
        own = self.store.get_meta(f"{key}:{esc.id}")
        if own is not None:
            return str(own)
        if key not in self._shared:
            self._shared[key] = dict(self.store.get_meta(key) or {})
        return self._shared[key].get(str(esc.id))

    def _remember(self, tx: Transaction, key: str, esc: Escalation, at: datetime) -> None:
        if self._meta(key, esc) != at.isoformat():
            self.store.set_meta(tx, f"{key}:{esc.id}", at.isoformat())

    def _known_activity(self, esc: Escalation, seen: _Seen) -> datetime:
        known = self._meta(ACTIVITY, esc)
        changes = [c.changed_at for c in seen.changes]
        # back from parking counts as activity: the quiet spell starts again there
        changes += [p.ended_at for p in seen.periods if p.ended_at]
        start = esc.opened_at or esc.flagged_at or esc.updated_at
        return max([start, *changes, *([datetime.fromisoformat(known)] if known else [])])

    def _stall_due(self, esc: Escalation, activity: datetime) -> bool:
        """The quiet spell since ``activity`` is long enough, and not alerted yet."""
        if self._meta(STALL_TOLD, esc) == activity.isoformat():
            return False
        quiet = self.settings.stalled_after_minutes
        return self.calendar.add_business_minutes(activity, quiet) <= self.now


@dataclass(frozen=True)
class _Seen:
    """What one escalation's step read of the store once: its parking periods and level
    changes (the comms job writes neither)."""

    periods: Sequence[ParkingPeriod]
    changes: Sequence[LevelChange]


def _suspended(duty: Duty, pauses: tuple[tuple[datetime, datetime | None], ...]) -> bool:
    """A duty stored before the escalation was parked whose window met the parking: the plan
    was suspended then, so it is neither reminded nor flagged."""
    return suspended(duty.opens_at or duty.due_at, duty.due_at, pauses)
