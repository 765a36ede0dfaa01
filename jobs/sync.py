"""Sync: poll the helpdesk for changed tickets and do the escalation bookkeeping
(DESIGN.md rules 1–5).

One pass, top to bottom:

1. **poll** — tickets changed since the cursor (minus the overlap window). For each new
   version of a ticket, the reads it needs are made first, then *one* local transaction
   records what must happen (escalation rows, level changes, carrier contacts, scan requests
   and helpdesk-write intents), marks the version seen and moves the cursor.
2. **execute** — the effects executor carries out the recorded writes (creating an escalation
   ticket requests, in its own commit, the scan of the original ticket's history and the
   writes on the original ticket).
3. **scan** — for each requested scan, the source ticket's articles are listed and a copy is
   requested for every customer message not yet copied, in order.
4. **execute** again, so copies land in the same pass.

Everything is level-triggered: a pass works out from the store and the helpdesk what is due
now; running it twice in a row makes no new writes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from connector.base import Article, ArticleKind, Sender, Ticket, User
from connector.errors import AuthError, HelpdeskError, TransientError
from escalations import notes, workflow
from escalations.carrier import parse_carrier_note
from escalations.clock import parse_instant
from escalations.effects import Intent
from escalations.handlers import (
    COPY_ARTICLE,
    CREATE_ESCALATION,
    NOTE,
    TAGS,
    UPDATE_TICKET,
    copied_row,
    copy_payload,
)
from escalations.markers import markers_in
from escalations.models import (
    TERMINAL_STATES,
    CarrierContact,
    EffectState,
    Escalation,
    LevelChange,
    State,
)
from escalations.notes import CarrierRow
from escalations.people import People
from escalations.store.base import LAST_SUCCESSFUL_POLL, Transaction
from jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)

NAME = "sync"
INITIAL_LOOKBACK = timedelta(days=30)
"""How far back the very first poll looks for flagged tickets."""
SIGNPOST_SKEW = timedelta(seconds=2)
"""The cursor never passes the poll's start time minus this allowance for clock skew."""
FAILED_TICKETS = "sync.failed_tickets"
"""Meta key: ticket id → the version that could not be handled (logged once per version)."""
MAX_EFFECT_ROUNDS = 6
"""Rounds of the executor per phase: a commit may request follow-up writes."""

Plan = Callable[[Transaction], None]
TITLE_PREFIX_RE = re.compile(r"^\[ESC L\d+\]\s*")


def run(ctx: JobContext) -> JobResult:
    sync = SyncPass(ctx)
    sync.poll()
    sync.execute()
    sync.scan()
    sync.execute()
    return sync.result


def followups_after_create(ctx: JobContext) -> Callable[[Escalation], list[Intent]]:
    """The writes on the original ticket once its escalation ticket exists: an internal note
    naming the escalation ticket, the 'escalated' tag, and the flag consumed."""
    fieldmap = ctx.mappings.zammad
    profile = ctx.mappings.profile

    def build(esc: Escalation) -> list[Intent]:
        assert esc.escalation_ticket_number is not None
        html = notes.original_ticket_note(esc.escalation_ticket_number, profile.level(1).name)
        absent = {fieldmap.flag.tag} if fieldmap.flag.tag else set()
        intents = [
            Intent(
                NOTE,
                f"original-note:{esc.key}",
                {"ticket_id": esc.original_ticket_id, "html": html, "subject": "Escalated"},
                escalation_id=esc.id,
            ),
            Intent(
                TAGS,
                f"original-tags:{esc.key}",
                {
                    "ticket_id": esc.original_ticket_id,
                    "present": [fieldmap.tags.escalated],
                    "absent": sorted(absent),
                },
                escalation_id=esc.id,
            ),
        ]
        if fieldmap.flag.field:
            intents.append(_consume_flag(esc, fieldmap.flag.field, "0"))
        return intents

    return build


def followups_after_failure(ctx: JobContext) -> Callable[[Escalation, str], list[Intent]]:
    """When the escalation ticket cannot be created: tell the agent on the original ticket and
    consume the flag, so the escalation is raised again only when an agent flags it again."""
    fieldmap = ctx.mappings.zammad

    def build(esc: Escalation, error: str) -> list[Intent]:
        intents = [
            Intent(
                NOTE,
                f"not-created-note:{esc.key}",
                {
                    "ticket_id": esc.original_ticket_id,
                    "html": notes.escalation_failed_note(error),
                    "subject": "Escalation not raised",
                },
                escalation_id=esc.id,
            )
        ]
        if fieldmap.flag.field:
            intents.append(_consume_flag(esc, fieldmap.flag.field, "not-created"))
        if fieldmap.flag.tag:
            intents.append(
                Intent(
                    TAGS,
                    f"consume-flag-tag:{esc.key}:not-created",
                    {"ticket_id": esc.original_ticket_id, "absent": [fieldmap.flag.tag]},
                    escalation_id=esc.id,
                )
            )
        return intents

    return build


def _consume_flag(esc: Escalation, field: str, occurrence: str) -> Intent:
    return Intent(
        UPDATE_TICKET,
        f"consume-flag:{esc.key}:{occurrence}",
        {"ticket_id": esc.original_ticket_id, "fields": {field: False}},
        escalation_id=esc.id,
    )


def _before(position: datetime, held: datetime | None) -> datetime:
    return position if held is None else min(position, held)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "on"}
    return bool(value)


def _as_level(value: Any) -> int | None:
    try:
        return int(str(value).strip().lower().removeprefix("l").removeprefix("level"))
    except (TypeError, ValueError):
        return None


class SyncPass:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.adapter = ctx.adapter
        self.effects = ctx.effects
        self.profile = ctx.mappings.profile
        self.fieldmap = ctx.mappings.zammad
        self.tz = self.profile.tz
        self.people = People(ctx.adapter, ctx.mappings.zammad)
        self.result = JobResult(NAME)
        self.stream = f"{ctx.adapter.name}.tickets"
        self._since = ctx.clock.now() - INITIAL_LOOKBACK
        self._tag_flagged: set[int] | None = None

    # -- 1. poll ---------------------------------------------------------------------------
    def poll(self) -> None:
        now = self.ctx.clock.now()
        signpost = now - SIGNPOST_SKEW
        cursor = self.store.get_cursor(self.stream)
        # min: after the clock stepped back the stored cursor may be past the new signpost
        position = min(cursor.value, signpost) if cursor else now - INITIAL_LOOKBACK
        since = position - timedelta(seconds=self.ctx.settings.poll_overlap_seconds)
        self._since = since
        log.debug("sync.poll since=%s signpost=%s", since.isoformat(), signpost.isoformat())
        held: datetime | None = None  # the oldest deferred version: the cursor stays before it
        for ticket in self.adapter.changed_tickets(since):
            if self.ctx.stop.is_set():
                log.info("sync.stopping during poll: cursor stays at %s", position.isoformat())
                return
            if self.store.ticket_seen(ticket.id, ticket.updated_at):
                self.result.add("tickets_unchanged")
                continue
            if self._awaiting_link(ticket):
                # Our escalation ticket, created but not yet committed as such (a crash or a
                # lost answer after the POST): an agent's change to it must not be marked
                # seen unhandled. Leave it unseen, and the cursor before it, until it is.
                held = ticket.updated_at if held is None else min(held, ticket.updated_at)
                self.result.add("tickets_deferred")
                continue
            try:
                plans = self._plan(ticket)
                next_position = max(position, min(ticket.updated_at, signpost))
                with self.effects.transaction() as tx:
                    for plan in plans:
                        plan(tx)
                    self.store.note_ticket_seen(tx, ticket.id, ticket.updated_at)
                    self.store.set_cursor(tx, self.stream, _before(next_position, held), signpost)
            except (TransientError, AuthError) as exc:
                if isinstance(exc, AuthError) and exc.status == 403:
                    held = self._ticket_failed(ticket, exc, held)
                    continue
                raise  # the helpdesk is down or the token refused: the whole pass stops
            except Exception as exc:  # noqa: BLE001 - this ticket only: hold it, go on
                held = self._ticket_failed(ticket, exc, held)
                continue
            position = next_position
            self.result.add("tickets_changed")
        with self.store.transaction() as tx:
            self.store.set_cursor(tx, self.stream, _before(max(position, signpost), held), signpost)
            self.store.set_meta(tx, LAST_SUCCESSFUL_POLL, now.isoformat())
            self.store.forget_seen_before(tx, since - timedelta(hours=1))

    def _ticket_failed(self, ticket: Ticket, exc: Exception, held: datetime | None) -> datetime:
        """Keep a ticket that could not be handled unseen, and the cursor before it, so the
        next pass tries it again; say so once per version of the ticket, not every pass."""
        self.result.add("tickets_failed")
        failed = dict(self.store.get_meta(FAILED_TICKETS) or {})
        version = ticket.updated_at.isoformat()
        if failed.get(str(ticket.id)) != version:
            log.error(
                "sync.ticket_failed ticket=%s updated_at=%s error=%s: %s",
                ticket.id,
                version,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, HelpdeskError),
            )
            failed[str(ticket.id)] = version
            with self.store.transaction() as tx:
                self.store.set_meta(tx, FAILED_TICKETS, failed)
        return ticket.updated_at if held is None else min(held, ticket.updated_at)

    def _awaiting_link(self, ticket: Ticket) -> bool:
        """An escalation ticket whose escalation's create effect is still pending or in
        flight, so the store does not know it as that escalation's ticket yet."""
        key = ticket.fields.get(self.fieldmap.fields.escalation_key)
        if not key or self.store.escalation_by_ticket(ticket.id) is not None:
            return False
        create = self.store.effect_by_key(CREATE_ESCALATION, str(key))
        return create is not None and create.state in (EffectState.PENDING, EffectState.IN_FLIGHT)

    def _plan(self, ticket: Ticket) -> list[Plan]:
        """Reads what is needed about a changed ticket and returns what to record."""
        if ticket.fields.get(self.fieldmap.fields.escalation_key):
            esc = self.store.escalation_by_ticket(ticket.id)
            return self._escalation_ticket(ticket, esc) if esc else []
        plans: list[Plan] = []
        active = self.store.active_escalation_for_ticket(ticket.id)
        flagged = self._is_flagged(ticket)
        if active is not None:
            plans += self._original_changed(ticket, active, flagged)
        elif flagged:
            plans.append(self._new_escalation(ticket))
        for esc in self.store.active_escalations_for_customer(ticket.customer_id):
            if (
                esc.original_ticket_id != ticket.id
                and esc.flagged_at is not None
                and ticket.created_at >= esc.flagged_at
            ):
                plans.append(self._scan_later(esc, ticket))
        return plans

    def _is_flagged(self, ticket: Ticket) -> bool:
        return self._field_flagged(ticket) or self._tag_flagged_on(ticket)

    def _field_flagged(self, ticket: Ticket) -> bool:
        field = self.fieldmap.flag.field
        return bool(field and _truthy(ticket.fields.get(field)))

    def _tag_flagged_on(self, ticket: Ticket) -> bool:
        flag = self.fieldmap.flag
        if not flag.tag:
            return False
        if self._tag_flagged is None:
            # one search for every ticket changed since the poll's start that carries the flag
            # tag, instead of reading the tags of each changed ticket; asked only when a ticket
            # changed, so an idle poll stays one request
            self._tag_flagged = {
                t.id for t in self.adapter.changed_tickets(self._since, tagged=flag.tag)
            }
        return ticket.id in self._tag_flagged

    def _flagging_agent(self, ticket: Ticket) -> tuple[int | None, User | None]:
        """Who flagged: the ticket's last editor, who ran the Escalate macro — unless someone
        who is not an agent (the customer's next email) changed the ticket before this poll;
        then the ticket's owner, the agent handling the customer, is taken instead."""
        editor = self.people.user(ticket.updated_by_id)
        if editor is not None and editor.is_agent:
            return editor.id, editor
        owner = self.people.user(ticket.owner_id)
        if owner is not None and owner.is_agent:
            log.info(
                "escalation.flagger_from_owner ticket=%s last_editor=%s owner=%s",
                ticket.id,
                ticket.updated_by_id,
                owner.id,
            )
            return owner.id, owner
        return None, None

    def _scan_later(self, esc: Escalation, ticket: Ticket) -> Plan:
        def plan(tx: Transaction) -> None:
            if self.store.request_scan(tx, esc.id, ticket.id, ticket.number, self.ctx.clock.now()):
                self.result.add("scans_requested")

        return plan

    # -- a flag on an original ticket ----------------------------------------------------------
    def _new_escalation(self, ticket: Ticket) -> Plan:
        fields = self.fieldmap.fields
        profile = self.profile
        group = self.fieldmap.groups.escalation
        sequence = len(self.store.escalations_for_ticket(ticket.id)) + 1
        key = f"{self.adapter.name}:ticket:{ticket.id}:{sequence}"
        reason = str(ticket.fields.get(fields.reason) or "")
        reason_label = (
            profile.reason(reason).label if reason in profile.reason_keys else "(not given)"
        )
        segment = str(ticket.fields.get(fields.segment) or "")
        if segment not in profile.segments:
            segment = profile.process.default_segment
        callback_at = self._instant(ticket.fields.get(fields.callback_at))
        flagged_by, flagger = self._flagging_agent(ticket)
        owner = self._owner_for_level(1, flagged_by=flagged_by, current=None, history=())
        mentions = [
            u.id
            for role in profile.roles_for_level(1)
            if (u := self.people.for_role(role)) and self.people.can_watch(u, group)
        ]
        placeholder = self.people.placeholder_customer()
        customer_id = placeholder.id if placeholder else ticket.customer_id
        now = self.ctx.clock.now()
        level_fields: dict[str, Any] = {
            fields.escalation_key: key,
            fields.level: "1",
            fields.original_ticket: ticket.number,
            fields.segment: segment,
        }
        if reason in profile.reason_keys:
            level_fields[fields.reason] = reason
        if callback_at is not None:
            level_fields[fields.callback_at] = callback_at.isoformat().replace("+00:00", "Z")
        opened = notes.EscalationOpened(
            original_number=ticket.number,
            original_title=ticket.title,
            level_name=profile.level(1).name,
            reason_label=reason_label,
            segment=profile.segment(segment).label,
            flagged_by=flagger.display_name if flagger else "(unknown agent)",
            flagged_at=ticket.updated_at,
            callback_at=callback_at,
            owner=self.people.name(owner) if owner else "unassigned",
        )
        esc = Escalation(
            key=key,
            original_ticket_id=ticket.id,
            customer_id=ticket.customer_id,
            organization_id=ticket.organization_id,
            segment=segment,
            level=1,
            reason=reason,
            state=State.FLAGGED,
            owner_id=owner,
            flagged_by_id=flagged_by,
            callback_at=callback_at,
            flagged_at=ticket.updated_at,
            updated_at=now,
        )
        payload = {
            "title": f"[ESC L1] {ticket.title}"[:250],
            "group": group,
            "customer_id": customer_id,
            "organization_id": None if placeholder else ticket.organization_id,
            "state": self.fieldmap.states.open,
            "owner_id": owner,
            "tags": sorted(self.fieldmap.escalation_tags(1)),
            "fields": level_fields,
            "parent_id": ticket.id,
            "mention_user_ids": mentions,
            "note_html": opened.html(self.tz),
            "note_subject": f"Escalation of #{ticket.number}",
            "opened_at": now.isoformat(),
            "original_number": ticket.number,
        }

        def plan(tx: Transaction) -> None:
            inserted = self.store.insert_escalation(tx, esc)
            self.effects.request(
                tx, Intent(CREATE_ESCALATION, key, payload, escalation_id=inserted.id)
            )
            self.result.add("escalations_flagged")
            log.info(
                "escalation.flagged esc=%s original=%s by=%s reason=%s segment=%s",
                key,
                ticket.id,
                flagged_by,
                reason or "-",
                segment,
            )

        return plan

    def _original_changed(self, ticket: Ticket, esc: Escalation, flagged: bool) -> list[Plan]:
        plans: list[Plan] = []
        if esc.escalation_ticket_id is not None:
            plans.append(self._scan_later(esc, ticket))
        if (
            flagged
            and esc.state is not State.FLAGGED
            and not self._flag_consumption_pending(esc, ticket)
        ):
            plans.append(self._flagged_again(ticket, esc))
        return plans

    def _flag_consumption_pending(self, esc: Escalation, ticket: Ticket) -> bool:
        """Will writes already pending clear every flag this version shows? Then it is the
        flag being consumed, not a new one. The field and the tag each count only the writes
        that clear them (``consume-flag``; ``original-tags`` and ``consume-flag-tag``): a
        field set again after its write is done is a new flag even while the tag write is
        still being retried, and a tag still showing while its removal is retried is not."""
        pending = [
            e.key
            for e in self.store.effects(
                EffectState.PENDING, EffectState.IN_FLIGHT, escalation_id=esc.id
            )
        ]
        if self._field_flagged(ticket) and not any(k.startswith("consume-flag:") for k in pending):
            return False
        return not self._tag_flagged_on(ticket) or any(
            k.startswith(("original-tags:", "consume-flag-tag:")) for k in pending
        )

    def _flagged_again(self, ticket: Ticket, esc: Escalation) -> Plan:
        occurrence = ticket.updated_at.isoformat()
        by = self.people.name(ticket.updated_by_id)
        html = notes.flagged_again_note(
            esc.escalation_ticket_number or "?", by, ticket.updated_at, self.tz
        )
        flag = self.fieldmap.flag

        def plan(tx: Transaction) -> None:
            assert esc.escalation_ticket_id is not None
            self.effects.request(
                tx,
                Intent(
                    NOTE,
                    f"flagged-again:{esc.key}:{occurrence}",
                    {
                        "ticket_id": esc.escalation_ticket_id,
                        "html": html,
                        "subject": "Flagged again",
                    },
                    escalation_id=esc.id,
                ),
            )
            if flag.field:
                self.effects.request(tx, _consume_flag(esc, flag.field, occurrence))
            if flag.tag:
                self.effects.request(
                    tx,
                    Intent(
                        TAGS,
                        f"consume-flag-tag:{esc.key}:{occurrence}",
                        {"ticket_id": esc.original_ticket_id, "absent": [flag.tag]},
                        escalation_id=esc.id,
                    ),
                )
            self.result.add("flagged_again")
            log.info("escalation.flagged_again esc=%s original=%s", esc.key, ticket.id)

        return plan

    # -- the escalation ticket itself ----------------------------------------------------------
    def _escalation_ticket(self, ticket: Ticket, esc: Escalation) -> list[Plan]:
        plans: list[Plan] = []
        if esc.state in TERMINAL_STATES:
            return plans
        level = _as_level(ticket.fields.get(self.fieldmap.fields.level))
        if esc.state is State.OPEN and level is not None and level != esc.level:
            if 1 <= level <= self.profile.max_level:
                plans.append(self._level_changed(ticket, esc, level))
            else:
                log.warning(
                    "escalation.bad_level esc=%s ticket=%s value=%r", esc.key, ticket.id, level
                )
        plans += self._carrier_log(ticket, esc)
        return plans

    def _owner_for_level(
        self,
        level: int,
        *,
        flagged_by: int | None,
        current: int | None,
        history: tuple[int, ...],
    ) -> int | None:
        """The owner at a level: the level's role, or the flagging agent until a role has
        taken ownership (level 2 owns for the rest of the life-cycle). ``None`` if nobody
        eligible (full access to the escalation group) — then the ticket stays unassigned."""
        group = self.fieldmap.groups.escalation
        role = self.profile.owner_role(level)
        if role is None:
            if any(self.profile.owner_role(lv) for lv in history):
                return current
            user = self.people.user(flagged_by)
        else:
            user = self.people.for_role(role)
        if self.people.can_own(user, group):
            assert user is not None
            return user.id
        if user is not None:
            log.warning(
                "escalation.owner_not_eligible user=%s group=%s (needs full access)",
                user.login,
                group,
            )
        return current

    def _level_changed(self, ticket: Ticket, esc: Escalation, level: int) -> Plan:
        history = tuple(c.to_level for c in self.store.level_changes(esc.id)) + (esc.level,)
        sequence = len(history)
        at = ticket.updated_at
        owner = self._owner_for_level(
            level, flagged_by=esc.flagged_by_id, current=esc.owner_id, history=history
        )
        group = self.fieldmap.groups.escalation
        watchers = [
            u
            for role in self.profile.roles_for_level(level)
            if (u := self.people.for_role(role)) and self.people.can_watch(u, group)
        ]
        spec = self.profile.level(level)
        reason = (
            self.profile.reason(esc.reason).label
            if esc.reason in self.profile.reason_keys
            else "(not given)"
        )
        html = notes.LevelChanged(
            level=level,
            level_name=spec.name,
            role=spec.role,
            owner=self.people.name(owner) if owner else "unassigned",
            changed_at=at,
            changed_by=self.people.name(ticket.updated_by_id),
            reason_label=reason,
            from_level=esc.level,
            subscribed=tuple((u.id, u.display_name) for u in watchers),
        ).html(self.tz)
        all_level_tags = {self.fieldmap.level_tag(n) for n in range(1, self.profile.max_level + 1)}
        ticket_id = ticket.id
        title = f"[ESC L{level}] {TITLE_PREFIX_RE.sub('', ticket.title)}"[:250]

        def plan(tx: Transaction) -> None:
            self.store.record_level_change(
                tx,
                LevelChange(
                    escalation_id=esc.id,
                    from_level=esc.level,
                    to_level=level,
                    changed_at=at,
                    changed_by_id=ticket.updated_by_id,
                    reason=esc.reason,
                ),
            )
            moved = workflow.apply(
                esc,
                "change_level",
                at,
                level=level,
                max_level=self.profile.max_level,
                owner_id=owner,
            )
            self.store.update_escalation(tx, moved)
            prefix = f"{esc.key}:{sequence}"
            request = self.effects.request
            request(
                tx,
                Intent(
                    TAGS,
                    f"level-tags:{prefix}",
                    {
                        "ticket_id": ticket_id,
                        "present": [self.fieldmap.level_tag(level)],
                        "absent": sorted(all_level_tags - {self.fieldmap.level_tag(level)}),
                    },
                    escalation_id=esc.id,
                    after=self._previous(TAGS, f"level-tags:{esc.key}:{sequence - 1}"),
                ),
            )
            changes: dict[str, Any] = {"ticket_id": ticket_id, "title": title}
            if owner is not None and owner != esc.owner_id:
                changes["owner_id"] = owner
            request(
                tx,
                Intent(
                    UPDATE_TICKET,
                    f"level-ticket:{prefix}",
                    changes,
                    escalation_id=esc.id,
                    after=self._previous(UPDATE_TICKET, f"level-ticket:{esc.key}:{sequence - 1}"),
                ),
            )
            request(
                tx,
                Intent(
                    NOTE,
                    f"level-note:{prefix}",
                    {"ticket_id": ticket_id, "html": html, "subject": f"Level {level}"},
                    escalation_id=esc.id,
                ),
            )
            self.result.add("level_changes")
            log.info(
                "escalation.level esc=%s ticket=%s from=%s to=%s owner=%s by=%s",
                esc.key,
                ticket_id,
                esc.level,
                level,
                owner,
                ticket.updated_by_id,
            )

        return plan

    # -- carrier contact log -------------------------------------------------------------------
    def _carrier_log(self, ticket: Ticket, esc: Escalation) -> list[Plan]:
        carrier = self.profile.carrier
        known = {c.source_article_id: c for c in self.store.carrier_contacts(esc.id)}
        new: list[tuple[Article, Any]] = []
        for article in self.adapter.list_articles(ticket.id):
            if article.id in known or not self._written_by_an_agent(article):
                continue
            parsed = parse_carrier_note(
                article.body,
                heading=self.fieldmap.carrier.note_heading,
                written_at=article.created_at,
                tz=self.tz,
                stages=tuple(carrier.stages),
                required=tuple(carrier.required_details),
            )
            if parsed is not None:
                new.append((article, parsed))
        handover_key = f"carrier-handover:{esc.key}"
        route_failed = self.store.effect_by_key(
            NOTE, handover_key
        ) is None and self.fieldmap.tags.carrier_route_failed in self.adapter.get_tags(ticket.id)
        if not new and not route_failed:
            return []
        supervisor = self.people.for_role(carrier.handover_role)
        rows = [
            CarrierRow(
                c.called_at, c.carrier, c.stage, c.forename, c.location, c.user_id, not c.missing
            )
            for c in known.values()
        ] + [
            CarrierRow(
                p.called_at, p.carrier, p.stage, p.forename, p.location, p.user_id, p.complete
            )
            for _, p in new
        ]
        rows.sort(key=lambda r: r.called_at or ticket.created_at)
        handover_html = notes.carrier_handover_note(
            supervisor.display_name if supervisor else "(no supervisor mapped)",
            rows,
            self.people.name(ticket.updated_by_id),
            ticket.updated_at,
            self.tz,
        )
        incomplete_html = {
            article.id: notes.carrier_incomplete_note(
                article.created_at, parsed.missing, parsed.problems, self.tz
            )
            for article, parsed in new
            if not parsed.complete
        }

        def plan(tx: Transaction) -> None:
            for article, parsed in new:
                self.store.record_carrier_contact(
                    tx,
                    CarrierContact(
                        escalation_id=esc.id,
                        source_article_id=article.id,
                        carrier=parsed.carrier,
                        stage=parsed.stage,
                        forename=parsed.forename,
                        location=parsed.location,
                        user_id=parsed.user_id,
                        called_at=parsed.called_at,
                        missing=tuple(parsed.missing) + tuple(parsed.problems),
                    ),
                )
                self.result.add("carrier_contacts")
                if article.id in incomplete_html:
                    self.effects.request(
                        tx,
                        Intent(
                            NOTE,
                            f"carrier-incomplete:{esc.key}:{article.id}",
                            {
                                "ticket_id": ticket.id,
                                "html": incomplete_html[article.id],
                                "subject": "Carrier contact incomplete",
                            },
                            escalation_id=esc.id,
                        ),
                    )
            if route_failed:
                self.effects.request(
                    tx,
                    Intent(
                        NOTE,
                        handover_key,
                        {
                            "ticket_id": ticket.id,
                            "html": handover_html,
                            "subject": "Carrier route failed",
                        },
                        escalation_id=esc.id,
                    ),
                )
                if supervisor is not None:
                    self.effects.request(
                        tx,
                        Intent(
                            UPDATE_TICKET,
                            f"carrier-handover-owner:{esc.key}",
                            {"ticket_id": ticket.id, "owner_id": supervisor.id},
                            escalation_id=esc.id,
                            after=(NOTE, handover_key),
                        ),
                    )
                self.result.add("carrier_handovers")
                log.info("escalation.carrier_handover esc=%s ticket=%s", esc.key, ticket.id)

        return [plan]

    def _written_by_an_agent(self, article: Article) -> bool:
        return (
            article.sender is Sender.AGENT
            and article.kind is ArticleKind.NOTE
            and not markers_in(article.body)
            and article.created_by_id != self.people.me.id
        )

    # -- 2. execute ------------------------------------------------------------------------------
    def execute(self) -> None:
        for _ in range(MAX_EFFECT_ROUNDS):
            if self.ctx.stop.is_set():
                return
            outcome = self.effects.run_pending()
            for name in ("done", "failed", "ambiguous", "deferred"):
                self.result.add(f"effects_{name}", getattr(outcome, name))
            if outcome.done == 0 and outcome.failed == 0:
                return  # nothing finished, so nothing new was requested by a commit or failure

    # -- 3. scan -------------------------------------------------------------------------------
    def scan(self) -> None:
        limits = self.fieldmap.limits
        for request in self.store.pending_scans():
            if self.ctx.stop.is_set():
                return
            esc = self.store.get_escalation(request.escalation_id)
            if esc is None or esc.state in TERMINAL_STATES:
                with self.store.transaction() as tx:
                    self.store.clear_scan(tx, request.escalation_id, request.ticket_id)
                continue
            if esc.escalation_ticket_id is None:
                continue  # the escalation ticket is not created yet; scanned after it is
            try:
                listed = self.adapter.list_articles(request.ticket_id)
            except AuthError as exc:
                if exc.status != 403:
                    raise
                # the bot may not read this ticket (yet): the request stays for the next pass
                self.result.add("scans_refused")
                log.warning(
                    "sync.scan_refused esc=%s ticket=%s error=%s", esc.key, request.ticket_id, exc
                )
                continue
            articles = [a for a in listed if a.is_customer_message]
            copied = self.store.copied_articles(esc.id)
            done = {c.source_article_id for c in copied}
            after = self._last_copy(esc, copied[-1].source_article_id) if copied else None
            now = self.ctx.clock.now()
            with self.effects.transaction() as tx:
                for article in articles:
                    if article.id in done:
                        continue
                    if not self.store.record_copied_article(tx, copied_row(esc.id, article, now)):
                        continue
                    key = f"copy:{esc.key}:{article.id}"
                    payload = copy_payload(
                        escalation_ticket_id=esc.escalation_ticket_id,
                        source_number=request.ticket_number,
                        article=article,
                        attachment_max_bytes=limits.attachment_max_bytes,
                        body_max_chars=limits.article_body_max_chars,
                        tz=self.tz,
                    )
                    self.effects.request(
                        tx, Intent(COPY_ARTICLE, key, payload, escalation_id=esc.id, after=after)
                    )
                    after = (COPY_ARTICLE, key)
                    self.result.add("copies_requested")
                self.store.clear_scan(tx, request.escalation_id, request.ticket_id)

    def _previous(self, kind: str, key: str) -> tuple[str, str] | None:
        """Order after an earlier write of the same kind, if there is one: the tags, title and
        owner of a later level change must not be overwritten by a retried earlier one."""
        return (kind, key) if self.store.effect_by_key(kind, key) is not None else None

    def _last_copy(self, esc: Escalation, source_article_id: int) -> tuple[str, str] | None:
        """The copy new copies must follow, to keep the original order; none if it failed
        for good, so one email the helpdesk refused does not hold back every later one."""
        key = f"copy:{esc.key}:{source_article_id}"
        last = self.store.effect_by_key(COPY_ARTICLE, key)
        if last is None or last.state is EffectState.FAILED:
            return None
        return (COPY_ARTICLE, key)

    def _instant(self, value: Any) -> datetime | None:
        if not value:
            return None
        try:
            return parse_instant(str(value))
        except ValueError:
            log.warning("sync.bad_time value=%r", value)
            return None
