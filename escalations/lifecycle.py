"""The state change and the follow-up writes of each domain event, in one place.

======================  ================================  =====================================
event                   state (``workflow``)              writes (binding + notes)
======================  ================================  =====================================
flagged                 new escalation, ``flagged``       the create (and what the binding
                                                          chains after it)
escalation_created      ``open``, ticket id and number;   note on the original; the original
                        the original's history scanned    marked, the flag consumed
creation_refused        ``closed`` (abandoned)            note on the original; flag consumed
escalation_ticket_gone  ``closed`` (the ticket deleted    note on the original (a new flag
                        in the helpdesk)                  raises a new escalation)
level_changed           ``open`` at the new level, the    marks, title, owner, subscriptions;
                        change recorded                   the level note
flagged_again           —                                 note on the escalation ticket; flag
                                                          consumed
rfo_blocked             — (stays ``open``)                the ticket back to open; one note
                                                          to the owner (once)
comms_note              —                                 a reminder, a missed duty or a stall
                                                          on the escalation ticket (once each)
parked                  ``resolved`` then ``parked``;     the ticket parked (pending until the
                        a parking period starts           end of parking, marked); a note
unparked                ``open``; the period ends (the    the ticket back to open, unmarked; a
                        customer wrote, not satisfied,    note to the owner saying why
                        an agent reopened it)
kept_parked             — (stays ``parked``)              the ticket back to parked; one note
                                                          (once per parking)
confirmed               ``confirmed`` then ``closed``;    the ticket closed (and the original,
                        the period ends                   per the mappings); a note
reopened                ``open`` again (a closed one an   a note
                        agent reopened in retention)
======================  ================================  =====================================

Every method runs inside the caller's transaction and does no I/O: the jobs read what a
decision needs first (people, names, the helpdesk's answers), then call one of these.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from escalations import notes, workflow
from escalations.bindings.base import FlagState, HelpdeskBinding, LevelMove, NewEscalationTicket
from escalations.comms import next_duty
from escalations.comms.calendar import BusinessCalendar
from escalations.effects.base import Intent
from escalations.effects.helpdesk import AddNote, NotePayload
from escalations.effects.outbox import Outbox
from escalations.errors import WorkflowError
from escalations.models import (
    ACTIVE_STATES,
    ArchiveCopy,
    EffectRef,
    Escalation,
    LevelChange,
    ParkingOutcome,
    State,
)
from escalations.profile import ProcessProfile
from escalations.store.base import Store, Transaction

log = logging.getLogger(__name__)


def note_intent(
    purpose: str,
    esc: Escalation,
    *parts: object,
    html: str,
    subject: str,
    ticket_id: int | None = None,
) -> Intent:
    """An internal note for ``esc``: on ``ticket_id``, or on its escalation ticket."""
    target = (
        NotePayload(ticket_id=ticket_id, html=html, subject=subject)
        if ticket_id is not None
        else NotePayload(escalation_ticket_of=esc.id, html=html, subject=subject)
    )
    return AddNote.intent(AddNote.key(purpose, esc.key, *parts), target, escalation_id=esc.id)


class Lifecycle:
    def __init__(
        self, store: Store, outbox: Outbox, binding: HelpdeskBinding, profile: ProcessProfile
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.binding = binding
        self.profile = profile

    def _request(self, tx: Transaction, intents: list[Intent]) -> None:
        for intent in intents:
            self.outbox.request(tx, intent)

    def _exists(self, ref: EffectRef) -> bool:
        return self.store.effect_by_key(ref.kind, ref.key) is not None

    # -- events ----------------------------------------------------------------------------
    def flagged(self, tx: Transaction, new: NewEscalationTicket) -> Escalation:
        """Store the new escalation and request its escalation ticket (showing its first
        duty's time, where the binding shows one)."""
        inserted = self.store.insert_escalation(tx, new.escalation)
        due = None
        if self.binding.shows_next_duty:
            calendar = BusinessCalendar.from_profile(self.profile)
            due = next_duty.at_raise(inserted, self.profile, calendar, new.opened_at)
            self.store.set_meta(tx, next_duty.shown_key(inserted.id), next_duty.entry(0, due))
        self._request(
            tx, self.binding.open_escalation(replace(new, escalation=inserted, next_duty_at=due))
        )
        log.info(
            "escalation.flagged esc=%s original=%s by=%s reason=%s segment=%s",
            inserted.key,
            inserted.original_ticket_id,
            inserted.flagged_by_id,
            inserted.reason or "-",
            inserted.segment,
        )
        return inserted

    def escalation_created(
        self,
        tx: Transaction,
        escalation_id: int,
        *,
        ticket_id: int,
        number: str,
        opened_at: datetime,
        original_number: str,
    ) -> None:
        esc = self._get(escalation_id)
        opened = workflow.apply(
            esc,
            workflow.Event.OPEN,
            opened_at,
            escalation_ticket_id=ticket_id,
            escalation_ticket_number=number,
        )
        self.store.update_escalation(tx, opened)
        self.store.request_scan(
            tx, opened.id, opened.original_ticket_id, original_number, opened.updated_at
        )
        note = note_intent(
            "original-note",
            opened,
            html=notes.original_ticket_note(number, self.profile.level(1).name),
            subject="Escalated",
            ticket_id=opened.original_ticket_id,
        )
        self._request(tx, self.binding.mark_original(opened, note))
        log.info(
            "escalation.created esc=%s ticket=%s number=%s original=%s level=%s",
            opened.key,
            ticket_id,
            number,
            opened.original_ticket_id,
            opened.level,
        )

    def creation_refused(self, tx: Transaction, escalation_id: int, error: str) -> None:
        """The helpdesk refused the escalation ticket for good: the escalation ends before it
        began (so a new flag raises a new one), and the agent is told on the original."""
        esc = self._get(escalation_id)
        if esc.state is not State.FLAGGED:
            return
        abandoned = workflow.apply(esc, workflow.Event.ABANDON, esc.updated_at)
        self.store.update_escalation(tx, abandoned)
        self._request(
            tx,
            [
                note_intent(
                    "not-created-note",
                    abandoned,
                    html=notes.escalation_failed_note(error),
                    subject="Escalation not raised",
                    ticket_id=abandoned.original_ticket_id,
                ),
                *self.binding.consume_flag(
                    abandoned, "not-created", FlagState(by_field=True, by_mark=True)
                ),
            ],
        )
        log.error(
            "escalation.not_created esc=%s original=%s error=%s",
            esc.key,
            esc.original_ticket_id,
            error,
        )

    def carried_note_refused(
        self, tx: Transaction, escalation_id: int, ticket_id: int, html: str, subject: str | None
    ) -> None:
        """The update that carried the note on the original (``mark_original``) was refused for
        good: the note goes alone, under the key the note has when no update carries it."""
        esc = self._get(escalation_id)
        self._request(
            tx,
            [
                note_intent(
                    "original-note", esc, html=html, subject=subject or "Escalated",
                    ticket_id=ticket_id,
                )
            ],
        )  # fmt: skip
        log.warning("escalation.note_alone esc=%s ticket=%s", esc.key, ticket_id)

    def escalation_ticket_gone(self, tx: Transaction, escalation_id: int, ticket_id: int) -> None:
        """A write found the escalation ticket deleted: the escalation ends, and the agent is
        told once, on the original. Every other write still queued for that ticket fails the
        same way and finds the escalation already ended."""
        esc = self._get(escalation_id)
        if esc.escalation_ticket_id != ticket_id or esc.state not in ACTIVE_STATES:
            return
        if esc.state is State.FLAGGED:
            return  # not created yet, so not deleted: creation_refused handles that path
        ended = workflow.apply(esc, workflow.Event.LOSE_TICKET, esc.updated_at)
        self.store.update_escalation(tx, ended)
        self._request(
            tx,
            [
                note_intent(
                    "ticket-deleted-note",
                    ended,
                    html=notes.escalation_ticket_deleted_note(esc.escalation_ticket_number or "?"),
                    subject="Escalation ticket deleted",
                    ticket_id=ended.original_ticket_id,
                )
            ],
        )
        log.error(
            "escalation.ticket_deleted esc=%s ticket=%s number=%s original=%s: the escalation "
            "has ended",
            esc.key,
            ticket_id,
            esc.escalation_ticket_number,
            esc.original_ticket_id,
        )

    def level_changed(
        self, tx: Transaction, move: LevelMove, change: LevelChange, note_html: str
    ) -> Escalation:
        esc = move.escalation
        self.store.record_level_change(tx, change)
        moved = workflow.apply(
            esc,
            workflow.Event.CHANGE_LEVEL,
            change.changed_at,
            level=move.level,
            max_level=self.profile.max_level,
            owner_id=move.owner_id if move.owner_id is not None else esc.owner_id,
        )
        self.store.update_escalation(tx, moved)
        self._request(
            tx,
            [
                *self.binding.apply_level(move, self._exists),
                note_intent(
                    "level-note",
                    esc,
                    move.sequence,
                    html=note_html,
                    subject=f"Level {move.level}",
                    ticket_id=move.ticket.id,
                ),
            ],
        )
        log.info(
            "escalation.level esc=%s ticket=%s from=%s to=%s owner=%s by=%s",
            esc.key,
            move.ticket.id,
            esc.level,
            move.level,
            moved.owner_id,
            change.changed_by_id,
        )
        return moved

    def flagged_again(
        self, tx: Transaction, esc: Escalation, *, occurrence: str, note_html: str, flag: FlagState
    ) -> None:
        """A flag on an original whose escalation is already open: no second escalation; the
        flag is consumed and the owner told on the escalation ticket."""
        if esc.escalation_ticket_id is None:
            raise WorkflowError(esc.id, esc.state, "flagged_again", "no escalation ticket yet")
        self._request(
            tx,
            [
                note_intent(
                    "flagged-again",
                    esc,
                    occurrence,
                    html=note_html,
                    subject="Flagged again",
                    ticket_id=esc.escalation_ticket_id,
                ),
                *self.binding.consume_flag(esc, occurrence, flag),
            ],
        )
        log.info("escalation.flagged_again esc=%s original=%s", esc.key, esc.original_ticket_id)

    def rfo_blocked(
        self, tx: Transaction, esc: Escalation, *, ticket_id: int, occurrence: str, note_html: str
    ) -> None:
        """An agent closed the escalation ticket at a level that needs an RFO, without one:
        back to open (each time), and one note to the owner (once per escalation)."""
        self._request(
            tx,
            [
                *self.binding.reopen(esc, ticket_id, occurrence),
                note_intent(
                    "rfo-gate", esc, html=note_html, subject="RFO needed", ticket_id=ticket_id
                ),
            ],
        )
        log.info(
            "escalation.rfo_blocked esc=%s ticket=%s level=%s: closed without an RFO, reopened",
            esc.key,
            ticket_id,
            esc.level,
        )

    def parked(
        self,
        tx: Transaction,
        esc: Escalation,
        *,
        resolved_at: datetime,
        until: datetime,
        note_html: str,
    ) -> Escalation:
        """An agent resolved the escalation: it is parked until ``until``."""
        esc = self._get(esc.id)
        parked = workflow.apply(
            workflow.apply(esc, workflow.Event.RESOLVE, resolved_at),
            workflow.Event.PARK,
            resolved_at,
        )
        self.store.update_escalation(tx, parked)
        period = self.store.start_parking(tx, esc.id, resolved_at, until)
        self._request(
            tx,
            [
                *self.binding.park(parked, period.seq, until),
                note_intent("parked-note", esc, period.seq, html=note_html, subject="Parked"),
            ],
        )
        log.info(
            "escalation.parked esc=%s ticket=%s until=%s parking=%s",
            esc.key,
            esc.escalation_ticket_id,
            until.isoformat(),
            period.seq,
        )
        return parked

    def unparked(
        self,
        tx: Transaction,
        esc: Escalation,
        *,
        at: datetime,
        outcome: ParkingOutcome,
        reason: str,
        note_html: str,
    ) -> None:
        """Parking ends without a confirmation: back to open at the same level."""
        esc = self._get(esc.id)
        period = self.store.end_parking(tx, esc.id, at, outcome, reason)
        if period is None:
            raise WorkflowError(esc.id, esc.state, "unpark", "no parking period is open")
        self.store.update_escalation(tx, workflow.apply(esc, workflow.Event.UNPARK, at))
        self._request(
            tx,
            [
                *self.binding.unpark(esc, period.seq),
                note_intent("unparked-note", esc, period.seq, html=note_html, subject="Un-parked"),
            ],
        )
        log.info(
            "escalation.unparked esc=%s ticket=%s outcome=%s reason=%s",
            esc.key,
            esc.escalation_ticket_id,
            outcome.value,
            reason,
        )

    def kept_parked(
        self,
        tx: Transaction,
        esc: Escalation,
        *,
        occurrence: str,
        until: datetime,
        note_html: str,
    ) -> None:
        """An agent closed a parked escalation's ticket with no outcome recorded: back to
        parked each time, one note per parking."""
        periods = self.store.parking_periods(esc.id)
        seq = periods[-1].seq if periods else 0
        self._request(
            tx,
            [
                *self.binding.keep_parked(esc, occurrence, until),
                note_intent(
                    "keep-parked-note", esc, seq, html=note_html, subject="Confirmation needed"
                ),
            ],
        )
        log.info("escalation.kept_parked esc=%s ticket=%s", esc.key, esc.escalation_ticket_id)

    def confirmed(self, tx: Transaction, esc: Escalation, *, at: datetime, note_html: str) -> None:
        """The customer confirmed on the confirmation call: the escalation closes."""
        esc = self._get(esc.id)
        period = self.store.end_parking(tx, esc.id, at, ParkingOutcome.CONFIRMED, "confirmed")
        if period is None:
            raise WorkflowError(esc.id, esc.state, "confirm", "no parking period is open")
        closed = workflow.apply(
            workflow.apply(esc, workflow.Event.CONFIRM, at), workflow.Event.CLOSE, at
        )
        self.store.update_escalation(tx, closed)
        self._request(
            tx,
            [
                note_intent("closed-note", esc, period.seq, html=note_html, subject="Closed"),
                *self.binding.close(closed, period.seq),
            ],
        )
        log.info(
            "escalation.closed esc=%s ticket=%s: the customer confirmed",
            esc.key,
            esc.escalation_ticket_id,
        )

    def reopened(self, tx: Transaction, esc: Escalation, *, at: datetime, note_html: str) -> None:
        """An agent reopened the ticket of a closed escalation: the same escalation goes on
        (no new one), open at its level."""
        esc = self._get(esc.id)
        closed_at = esc.closed_at.isoformat() if esc.closed_at else "?"
        reopened = workflow.apply(esc, workflow.Event.REOPEN, at)
        self.store.update_escalation(tx, reopened)
        periods = self.store.parking_periods(esc.id)
        self._request(
            tx,
            [
                note_intent("reopened-note", esc, closed_at, html=note_html, subject="Reopened"),
                # the last confirmation's outcome comes off, or the next resolve would close
                # the escalation again at once
                *self.binding.unpark(reopened, periods[-1].seq if periods else 0),
            ],
        )
        log.info("escalation.reopened esc=%s ticket=%s", esc.key, esc.escalation_ticket_id)

    def archived(self, tx: Transaction, esc: Escalation, copy: ArchiveCopy) -> bool:
        """The hard copy of a closed escalation is on disk: record it and mark the escalation
        archived. ``False`` if this close was recorded before (nothing changes)."""
        esc = self._get(esc.id)
        if esc.state is not State.CLOSED or not self.store.record_archive(tx, copy):
            return False
        self.store.update_escalation(
            tx, workflow.apply(esc, workflow.Event.ARCHIVE, copy.archived_at)
        )
        log.info("escalation.archived esc=%s path=%s", esc.key, copy.path)
        return True

    def comms_note(
        self,
        tx: Transaction,
        esc: Escalation,
        purpose: str,
        *parts: object,
        html: str,
        subject: str,
    ) -> bool:
        """A note of the communication plan (a reminder, a miss, a stall) on the escalation
        ticket, keyed by ``purpose`` and ``parts`` so it is written once. ``False``: it was
        requested before (its text may have changed since, e.g. a longer run of misses: the
        first request stands, and no new one is made)."""
        if self.store.effect_by_key(AddNote.name, AddNote.key(purpose, esc.key, *parts)):
            return False
        return self.outbox.request(
            tx, note_intent(purpose, esc, *parts, html=html, subject=subject)
        )

    def next_duty_shown(
        self, tx: Transaction, esc: Escalation, seq: int, due: datetime | None
    ) -> int:
        """The escalation ticket is to show ``due`` as its next duty's time: a change written
        once and after the one before, numbered from ``seq`` on — past any number the store
        already holds (a lost meta entry must not reuse a change that wrote another value).
        Returns the number used."""
        intents = self.binding.next_duty(esc, seq, due, self._exists)
        while intents and any(self._exists(i.ref) for i in intents):
            seq += 1
            intents = self.binding.next_duty(esc, seq, due, self._exists)
        self._request(tx, intents)
        return seq

    def _get(self, escalation_id: int) -> Escalation:
        esc = self.store.get_escalation(escalation_id)
        if esc is None:
            raise WorkflowError(escalation_id, None, "lookup", "no such escalation")
        return esc
