"""What the helpdesk shows an agent did, for the communication plan (``jobs/comms.py``): an
agent's phone article (a call) or customer-visible article (an update) on the original or the
escalation ticket, and, with ``[comms] caller_log``, an answered outbound call to the
customer in the helpdesk's caller log (read at most once per pass)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from connector.base import (
    MARKER_RE,
    Article,
    ArticleKind,
    CallDirection,
    CallLog,
    CallRecord,
    Capability,
    Sender,
)
from connector.errors import Forbidden, NotFound
from escalations.comms.duties import DutyKind
from escalations.comms.phones import same_number
from escalations.models import Duty, Escalation
from escalations.people import People
from jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    """What the helpdesk shows an agent did: an article (``ref`` is ``article:<id>``) or a
    call in the caller log (``call:<id>``)."""

    ref: str
    kind: DutyKind
    at: datetime


class EvidenceReader:
    """Reads the evidence of one comms pass."""

    def __init__(self, ctx: JobContext, result: JobResult, people: People) -> None:
        self.ctx = ctx
        self.result = result
        self.people = people
        self.settings = ctx.profile.comms
        self._call_log: CallLog | None = None
        self._call_log_read = False

    def read(self, esc: Escalation) -> tuple[list[Evidence], datetime | None]:
        """What the two tickets (and the caller log) show done, and when an agent last wrote
        on them (any article, internal notes too; never the worker's own) or called."""
        found: list[Evidence] = []
        last: datetime | None = None
        for ticket_id in (esc.original_ticket_id, esc.escalation_ticket_id):
            if ticket_id is None:
                continue
            try:
                articles = self.ctx.adapter.list_articles(ticket_id)
            except (Forbidden, NotFound) as exc:  # out of reach or gone: no evidence there
                log.info("comms.ticket_unread esc=%s ticket=%s error=%s", esc.key, ticket_id, exc)
                continue
            for article in articles:
                if by_an_agent(article):
                    last = max(last or article.created_at, article.created_at)
                kind = counts_as(article)
                if kind is not None:
                    found.append(Evidence(f"article:{article.id}", kind, article.created_at))
        self.result.add("tickets_read", 2)  # at most two requests per escalation
        calls = self._calls_to_customer(esc)
        if calls:  # a call the phone system recorded is an agent's activity too
            last = max([*([last] if last else []), *(c.at for c in calls)])
        return [*found, *calls], last

    def _calls(self) -> CallLog | None:
        """The caller log, read at most once per pass, when ``[comms] caller_log`` is on and
        the helpdesk has one; ``None`` otherwise or when the token may not read it."""
        if not self.settings.caller_log or Capability.CALL_LOG not in self.ctx.adapter.capabilities:
            return None
        if not self._call_log_read:
            self._call_log_read = True
            try:
                self._call_log = self.ctx.adapter.recent_calls()
            except Forbidden as exc:
                log.warning("comms.caller_log_unread error=%s (articles count only)", exc)
            else:
                self.result.add("call_logs_read")
        return self._call_log

    def _calls_to_customer(self, esc: Escalation) -> list[Evidence]:
        """Answered outbound calls to the escalation's customer, as evidence of a call."""
        calls = self._calls()
        if calls is None:
            return []
        answered = [
            (c, c.answered_at)
            for c in calls.calls
            if c.direction is CallDirection.OUTBOUND and c.answered_at is not None
        ]
        mine = [(c, at) for c, at in answered if esc.customer_id in c.to_user_ids]
        unmatched = [(c, at) for c, at in answered if not c.to_user_ids]
        if unmatched:  # a number the helpdesk matched to nobody: compare with the customer's
            customer = self.people.user(esc.customer_id)
            phones = customer.phones if customer is not None else ()
            mine += [(c, at) for c, at in unmatched if _to_any(c, phones)]
        return [Evidence(f"call:{c.id}", DutyKind.CALL, at) for c, at in mine]

    def warn_unseen_calls(self, esc: Escalation, missed: Sequence[Duty]) -> None:
        """A duty about to be flagged whose window began before the oldest call the caller
        log still lists: a call in it could not be seen (logged, not hidden)."""
        calls = self._call_log
        if calls is None or calls.complete_since is None:
            return
        for d in missed:
            if (d.opens_at or d.due_at) < calls.complete_since:
                log.warning(
                    "comms.caller_log_too_short esc=%s duty=%s log_from=%s "
                    "(raise Zammad's cti_config view_limit, or log calls as phone articles)",
                    esc.key,
                    d.slot,
                    calls.complete_since.isoformat(),
                )


def by_an_agent(article: Article) -> bool:
    """Written by an agent, not by the worker (its articles carry a marker)."""
    return article.sender is Sender.AGENT and not MARKER_RE.search(article.body or "")


def counts_as(article: Article) -> DutyKind | None:
    """What an article shows an agent did: a call (a phone article), or an update (anything
    customer-visible). The worker's own notes and customers' messages count for nothing."""
    if not by_an_agent(article):
        return None
    if article.kind is ArticleKind.PHONE:
        return DutyKind.CALL
    if not article.internal:
        return DutyKind.UPDATE
    return None


def _to_any(call: CallRecord, phones: Sequence[str]) -> bool:
    return any(same_number(call.to_number, phone) for phone in phones)


def evidence_for(duty: Duty, evidence: Sequence[Evidence]) -> Evidence | None:
    """The first evidence of the duty's kind inside its window (a call is also an update:
    the customer heard from the agent)."""
    opens = duty.opens_at or duty.due_at
    for item in sorted(evidence, key=lambda e: e.at):
        if not opens <= item.at <= duty.due_at:
            continue
        if item.kind.value == duty.kind or (
            duty.kind == DutyKind.UPDATE.value and item.kind is DutyKind.CALL
        ):
            return item
    return None
