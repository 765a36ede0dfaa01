"""The text of every internal note the worker writes, as small HTML fragments. Times are shown
in the process time zone; values from the helpdesk are escaped. The adapter appends the
marker footer; how a person the note subscribes is written is the binding's to say."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from escalations.models import CarrierContact


def local_time(instant: datetime | None, tz: ZoneInfo, *, with_day: bool = True) -> str:
    if instant is None:
        return "not agreed"
    local = instant.astimezone(tz)
    text = f"{local:%H:%M} {tz.key}"
    return f"{text} ({local:%a %d %b %Y})" if with_day else text


class CreditBasis(enum.Enum):
    """How the worker knows who did what a note credits (flagged, changed the level, marked
    the carrier route failed)."""

    HISTORY = "history"
    """The helpdesk's history names the agent."""
    OWNER_HISTORY_UNREAD = "owner_history_unread"
    """The history could not be read: the ticket's owner is named instead."""
    OWNER_NOT_IN_HISTORY = "owner_not_in_history"
    """The history names no agent for it (an automatic rule did it): the ticket's owner."""


UNKNOWN_AGENT = "(unknown agent)"


def credited(name: str | None, basis: CreditBasis) -> str:
    """The person a note credits, saying so when it is the ticket's owner standing in for
    the agent the history would have named. ``name`` is ``None`` for nobody known."""
    if basis is CreditBasis.HISTORY:
        return name or UNKNOWN_AGENT
    why = (
        "the helpdesk's history could not be read"
        if basis is CreditBasis.OWNER_HISTORY_UNREAD
        else "the helpdesk's history names no agent for it"
    )
    if name is None:
        return f"an unknown agent ({why}, and the ticket has no owner)"
    return f"{name} (the ticket's owner; {why})"


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    return "<br>".join(f"<b>{escape(k)}:</b> {escape(v)}" for k, v in rows)


COPIES_AS_NOTES = "Every customer email on the original ticket is copied here as an internal note."
"""How the copies arrive where the helpdesk can add internal notes (a binding whose copies
arrive otherwise says so in its place)."""


@dataclass(frozen=True)
class EscalationOpened:
    original_number: str
    original_title: str
    level_name: str
    reason_label: str
    segment: str
    flagged_by: str
    flagged_at: datetime
    callback_at: datetime | None
    owner: str
    agreed_cadence_minutes: int | None = None
    repeat_faults: tuple[int, int] | None = None
    """(tickets, days): how many other tickets the customer raised in the last ``days`` days
    (the escalated one left out); ``None`` when not counted."""

    def html(self, tz: ZoneInfo) -> str:
        rows = [
            ("Original ticket", f"#{self.original_number} {self.original_title}"),
            ("Level", f"1 – {self.level_name}"),
            ("Reason", self.reason_label),
            ("Customer segment", self.segment),
            ("Flagged by", f"{self.flagged_by}, {local_time(self.flagged_at, tz)}"),
            ("Agreed callback", local_time(self.callback_at, tz)),
            ("Owner", self.owner),
        ]
        if self.agreed_cadence_minutes is not None:
            rows.append(("Agreed updates", f"every {self.agreed_cadence_minutes} business minutes"))
        if self.repeat_faults is not None:
            count, days = self.repeat_faults
            rows.append(
                (
                    "Repeat faults",
                    f"{count} other ticket{'s' if count != 1 else ''} from this customer in the "
                    f"last {days} days",
                )
            )
        return f"<p><b>Escalation raised.</b> {COPIES_AS_NOTES}</p><p>{_rows(rows)}</p>"


def original_ticket_note(escalation_number: str, level_name: str) -> str:
    return (
        f"<p><b>Escalated:</b> escalation ticket #{escape(escalation_number)} "
        f"(level 1 – {escape(level_name)}). Customer emails on this ticket are copied there; "
        "work the escalation on that ticket.</p>"
    )


def escalation_ticket_deleted_note(escalation_number: str) -> str:
    return (
        f"<p><b>The escalation ticket #{escape(escalation_number)} was deleted</b> in the "
        "helpdesk, so this escalation has ended: nothing more is copied there and no level "
        "change can be made on it.</p><p>If the escalation must go on, run the Escalate macro "
        "on this ticket again: a new escalation ticket is raised, and every customer email "
        "on this ticket is copied into it again.</p>"
    )


def rfo_missing_note(level: int, from_level: int, owner_html: str) -> str:
    """The RFO gate: why the worker put the escalation ticket back to open. ``owner_html``
    is the owner as the binding shows a person (a mention where the helpdesk has them)."""
    return (
        f"<p><b>Reopened: a Reason for Outage (RFO) is needed first.</b> {owner_html}: this "
        f"escalation is at level {level}, and from level {from_level} an escalation can only "
        "be closed once its Reason for Outage (RFO) field is filled in. Fill it in, then "
        "close the ticket again.</p><p>This note is written once; the ticket is put back "
        "to open each time it is closed without an RFO.</p>"
    )


def escalation_failed_note(error: str) -> str:
    return (
        "<p><b>The escalation could not be raised.</b> The helpdesk refused the escalation "
        f"ticket: {escape(error)}</p><p>Nothing was created and the flag was cleared. Ask your "
        "helpdesk administrator (<i>escalations status</i> shows the details), then run the "
        "Escalate macro again.</p>"
    )


def flagged_again_note(escalation_number: str, by: str, at: datetime, tz: ZoneInfo) -> str:
    return (
        f"<p><b>Flagged again</b> by {escape(by)} at {local_time(at, tz)} while escalation "
        f"#{escape(escalation_number)} is open: no second escalation ticket was raised. Move the "
        "escalation to another level on its own ticket if the customer asked for that.</p>"
    )


CHANNELS = {
    "web": "through the customer web form",
    "phone": "by phone",
    "other": "through another channel than email",
}
"""How a message that is not an email came in, by the copied article's kind (the values of
``connector.base.ArticleKind``)."""


@dataclass(frozen=True)
class CopiedEmail:
    source_number: str
    from_: str | None
    to: str | None
    cc: str | None
    sent_at: datetime
    subject: str | None
    kind: str

    def header_html(self, tz: ZoneInfo) -> str:
        channel = CHANNELS.get(self.kind)
        to = self.to or (f"(none: it came in {channel})" if channel else "(unknown)")
        rows = [("From", self.from_ or "(unknown)"), ("To", to)]
        if self.cc:
            rows.append(("Cc", self.cc))
        rows += [
            ("Date", local_time(self.sent_at, tz)),
            ("Subject", self.subject or "(no subject)"),
        ]
        return (
            f"<p><b>Customer {escape(self.kind)} copied from ticket "
            f"#{escape(self.source_number)}</b></p><p>{_rows(rows)}</p><hr>"
        )


def attachment_withheld_line(filename: str, size: int, sha256: str, cap: int) -> str:
    return (
        f"<li>{escape(filename)} – {size:,} bytes, sha256 {sha256} – not copied: larger than "
        f"the {cap:,}-byte limit; open it on the original ticket</li>"
    )


def attachment_missing_line(filename: str, size: int, reason: str) -> str:
    return (
        f"<li>{escape(filename)} – {size:,} bytes – not copied: the helpdesk would not hand it "
        f"over ({escape(reason)}); open it on the original ticket</li>"
    )


def body_truncated_line(kept: int, total: int) -> str:
    return (
        f"<p><i>The body was cut at {kept:,} of {total:,} characters; the full text is "
        "attached as original-body.html.</i></p>"
    )


PersonHtml = Callable[[int, str], str]
"""How a note names a person it subscribes (the binding's ``person_html``)."""


def plain_person(user_id: int, name: str) -> str:
    return escape(name)


@dataclass(frozen=True)
class LevelChanged:
    """The note on a level change. The owner and everyone the level subscribes are each named
    with their own role: at levels 3 and 4 the owner is still the level-2 owner."""

    level: int
    level_name: str
    role: str
    """The level's role (the executives it subscribes hold it)."""
    owner: str
    owner_role: str
    changed_at: datetime
    changed_by: str
    reason_label: str
    from_level: int
    subscribed: tuple[tuple[int, str, str], ...] = ()
    """(user id, name, role name) of the people this level subscribes."""

    def html(self, tz: ZoneInfo, person: PersonHtml = plain_person) -> str:
        rows = (
            f"<b>Level {self.level} – {escape(self.level_name)}</b> "
            f"({escape(self.role)}), {local_time(self.changed_at, tz, with_day=False)}, by agent "
            f"{escape(self.changed_by)}, reason {escape(self.reason_label)} "
            f"(from level {self.from_level}).<br><b>Owner:</b> {escape(self.owner)} "
            f"({escape(self.owner_role)})"
        )
        if self.subscribed:
            names = ", ".join(
                f"{person(uid, name)} ({escape(role)})" for uid, name, role in self.subscribed
            )
            rows += f"<br><b>Subscribed:</b> {names}"
        return f"<p>{rows}</p>"


def carrier_incomplete_note(
    written_at: datetime,
    missing: Sequence[str],
    problems: Sequence[str],
    tz: ZoneInfo,
    *,
    heading: str,
) -> str:
    """The one reply to a carrier-contact note the parser could not read in full: one line
    per detail to fix (``problems`` as the parser words them, then each label ``missing``)
    and how to resubmit."""
    items = [f"<li>{escape(p)}</li>" for p in problems]
    items += [f"<li>{escape(m)}: missing</li>" for m in missing]
    return (
        f"<p><b>The carrier contact logged at {local_time(written_at, tz, with_day=False)} is "
        "incomplete.</b> The process needs every detail of each carrier contact. "
        f"Please fix:</p><ul>{''.join(items)}</ul>"
        "<p>To resubmit, write a new internal note with every line filled in (the note above "
        f"stays logged as incomplete). Its first line must be <b>{escape(heading)}</b>, then "
        "one <b>Label: value</b> line per detail, as in the carrier-contact template.</p>"
    )


def carrier_handover_note(
    supervisor: str,
    rows: Sequence[CarrierContact],
    failed_by: str,
    at: datetime,
    tz: ZoneInfo,
) -> str:
    def cell(value: str | None) -> str:
        return f"<td>{escape(value) if value else '—'}</td>"

    lines = "".join(
        "<tr>"
        + cell(local_time(r.called_at, tz) if r.called_at else None)
        + cell(r.carrier)
        + cell((r.stage or "").replace("_", " ") or None)
        + cell(r.forename)
        + cell(r.location)
        + cell(r.user_id)
        + cell("yes" if r.complete else "no")
        + "</tr>"
        for r in rows
    )
    table = (
        "<table><tr><th>Time of call</th><th>Carrier</th><th>Stage</th><th>Forename</th>"
        f"<th>Location</th><th>User ID</th><th>Complete</th></tr>{lines}</table>"
        if rows
        else "<p>No carrier contact was logged.</p>"
    )
    return (
        f"<p><b>Carrier route failed</b> (marked by {escape(failed_by)} at "
        f"{local_time(at, tz)}). Handed over to the customer-support supervisor "
        f"{escape(supervisor)} with every carrier contact logged:</p>{table}"
    )


# -- the communication plan (jobs/comms.py) -----------------------------------------------------

DONE_BY = {
    "call": "call was logged on the original or the escalation ticket",
    "update": "customer-visible update (not an internal note) was made on the original or the "
    "escalation ticket",
}
"""What shows a duty of each kind done, for the agent reading the note ("no …"); in the
helpdesk's neutral words (a logged call is a phone article in Zammad, a "Phone call" note in
osTicket)."""


def _window(opens_at: datetime | None, due_at: datetime, tz: ZoneInfo) -> str:
    due = local_time(due_at, tz)
    return f"{local_time(opens_at, tz)} – {due}" if opens_at is not None else f"by {due}"


def duty_reminder_note(
    owner_html: str,
    reason: str,
    kind: str,
    opens_at: datetime | None,
    due_at: datetime,
    tz: ZoneInfo,
) -> str:
    return (
        f"<p><b>Reminder: {escape(reason)}</b> is due by {escape(local_time(due_at, tz))}."
        f"</p><p>{owner_html}: the window is {escape(_window(opens_at, due_at, tz))}. It "
        f"counts as done with {escape(DONE_BY.get(kind, kind))} inside the window.</p>"
    )


def duties_missed_note(
    recipients_html: Sequence[str],
    missed: Sequence[tuple[str, str, datetime | None, datetime]],
    tz: ZoneInfo,
) -> str:
    """``missed``: (reason, kind, opens_at, due_at) of each duty whose window closed undone."""
    to = ", ".join(recipients_html) or "Owner"
    if len(missed) == 1:
        reason, kind, opens_at, due_at = missed[0]
        return (
            f"<p><b>Missed: {escape(reason)}</b> ({escape(_window(opens_at, due_at, tz))}): "
            f"no {escape(DONE_BY.get(kind, kind))} in the window.</p><p>{to}: for "
            "your attention.</p>"
        )
    items = "".join(
        f"<li>{escape(reason)} ({escape(_window(opens_at, due_at, tz))})</li>"
        for reason, _kind, opens_at, due_at in missed
    )
    return (
        f"<p><b>{len(missed)} duties of the communication plan were missed:</b></p>"
        f"<ul>{items}</ul><p>{to}: for your attention.</p>"
    )


def stalled_note(recipients_html: Sequence[str], level: int, why: str) -> str:
    to = ", ".join(recipients_html) or "Owner"
    return (
        f"<p><b>This escalation is not progressing</b> (level {level}): {escape(why)}.</p>"
        f"<p>{to}: please engage; the level is changed by an agent, never by the worker.</p>"
    )


def resubscribed_note(people_html: Sequence[str]) -> str:
    """``escalations report --repair``: people the escalation's levels subscribe, found not
    subscribed; the note names them (where the helpdesk subscribes whom a note names)."""
    return (
        "<p><b>Subscribed again:</b> " + ", ".join(people_html) + ". The escalation's levels "
        "subscribe them; the nightly reconciliation found them not subscribed.</p>"
    )


# -- parking, confirmation, close (issue 12) ---------------------------------------------------


def parked_note(
    until: datetime, call_opens: datetime, call_due: datetime, howto: str, tz: ZoneInfo
) -> str:
    """The escalation was resolved and is parked; ``howto`` says how to record the outcome
    (the binding's words: a tag, a field)."""
    return (
        f"<p><b>Resolved and parked until {local_time(until, tz)}.</b> The account is watched "
        "meanwhile: a new email or a new ticket from the customer puts the escalation back to "
        "open.</p>"
        f"<p>Make the final confirmation call between {local_time(call_opens, tz)} and "
        f"{local_time(call_due, tz)} and log it. Then record the outcome: {escape(howto)}. "
        "The escalation closes once the customer has confirmed.</p>"
    )


def unparked_note(owner_html: str, why: str) -> str:
    """Back to open: ``why`` names what happened ("a new email on #31001")."""
    return (
        f"<p><b>Back to open:</b> {escape(why)}.</p><p>{owner_html}: the escalation goes on at "
        "the same level; resolve it again when it is fixed.</p>"
    )


def keep_parked_note(howto: str) -> str:
    return (
        "<p><b>Still parked: the confirmation is not recorded yet.</b> The ticket was closed "
        f"by hand and has been put back to parked. Record the outcome of the confirmation call "
        f"first: {escape(howto)}; the worker then closes the escalation.</p>"
        "<p>This note is written once; the ticket is put back each time it is closed without "
        "an outcome.</p>"
    )


def closed_note(at: datetime, tz: ZoneInfo) -> str:
    return (
        f"<p><b>Closed:</b> the customer confirmed on the confirmation call "
        f"({local_time(at, tz)}).</p>"
    )


def reopened_note(closed_at: datetime | None, tz: ZoneInfo) -> str:
    return (
        f"<p><b>Reopened:</b> this escalation, closed {local_time(closed_at, tz)}, is open "
        "again at its level. The worker copies the customer's emails here again and keeps "
        "the communication plan.</p>"
    )
