"""The escalation process on the real osTicket 1.18, through the whole installation as
``escalations run`` wires it (``ESCALATIONS_HELPDESK=osticket``): an agent flags a ticket by
its status in the agent panel, the worker raises one escalation ticket and copies every later
customer email into it exactly once, and no mail reaches a customer. With the escalation-api
plugin (installed by the test setup) the notes, the link and the status writes are made too;
without it (disabled in the admin panel) each of those fails once, naming what is missing.

With the plugin, the rest of the process as on Zammad (``tests/jobs``): an agent raises the
level (the level field, the ``[L<n>]`` subject, the level's owner), the carrier log and the
hand-over, the communication plan's reminder and missed notes, and resolve → park → confirm →
close. The worker's clock is osTicket's moved on by a chosen offset where the plan needs time
to pass (osTicket's own clock cannot be moved); every scenario keeps the invariants: one
escalation ticket, each customer email copied once, no mail to the customer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.base import ArticleKind, Capability, LinkKind, Sender, Ticket
from connector.osticket import OsTicketAdapter
from escalations.app.wiring import Installation, build, build_adapter
from escalations.comms.calendar import BusinessCalendar
from escalations.comms.duties import EscalationFacts, PlanRules, plan
from escalations.mappings import load_mappings
from escalations.models import EffectState, Escalation, ParkingOutcome, State
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.sqlite import SqliteStore
from tests.connector.osticket.real import (
    FLAG_STATUS,
    RealOsTicket,
    counting_session,
    unique_customer,
)

pytestmark = pytest.mark.timeout(180)


class ShiftedClock:
    """The system clock moved on by ``offset``: the worker's time travel on a helpdesk whose
    clock goes on as it does (``set`` moves the offset only forward). The monotonic clock
    does not jump, as a stepped wall clock's does not."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def set(self, instant: datetime) -> None:
        offset = instant - datetime.now(UTC)
        assert offset >= self.offset, "the worker's clock only moves forward"
        self.offset = offset


@dataclass
class Installed:
    installation: Installation
    adapter: OsTicketAdapter
    requests: list[str]
    store: SqliteStore
    clock: ShiftedClock = field(default_factory=ShiftedClock)

    def run(self) -> None:
        for result in self.installation.worker().run_once():
            assert result is not None, "a job of the pass failed; see the log"
            assert not result.counts.get("tickets_failed"), f"a ticket failed: {result}"
            assert not result.counts.get("escalations_failed"), f"one failed: {result}"


@pytest.fixture(params=["plugin", "core"])
def installed(
    request: pytest.FixtureRequest, osticket: RealOsTicket, tmp_path: Path
) -> Iterator[Installed]:
    yield from _installed(osticket, tmp_path, plugin=request.param == "plugin")


@pytest.fixture
def with_plugin(osticket: RealOsTicket, tmp_path: Path) -> Iterator[Installed]:
    """The installation on an osTicket with the escalation-api plugin enabled."""
    yield from _installed(osticket, tmp_path, plugin=True)


def _installed(osticket: RealOsTicket, tmp_path: Path, *, plugin: bool) -> Iterator[Installed]:
    osticket.set_plugin_enabled(plugin)  # "core": disabled in the admin panel for the test
    # An admin step: flags left by earlier runs on this osTicket are cleared, so the first
    # poll (30 days back) sees only this test's flag.
    osticket.admin_sql(
        "UPDATE ost_ticket t JOIN ost_ticket_status s ON s.id = t.status_id "
        "SET t.status_id = 1 WHERE s.name = %s",
        (FLAG_STATUS,),
    )
    env = osticket.env
    settings = Settings(
        helpdesk="osticket",
        helpdesk_url=osticket.url,
        helpdesk_token=SecretStr(osticket.api_key),
        helpdesk_db_host=env["OSTICKET_DB_HOST"],
        helpdesk_db_port=int(env["OSTICKET_DB_PORT"]),
        helpdesk_db_name=env["OSTICKET_DB_NAME"],
        helpdesk_db_user=env["OSTICKET_DB_USER"],
        helpdesk_db_password=SecretStr(env["OSTICKET_DB_PASSWORD"]),
        state_dir=tmp_path / "state",
        http_requests_per_minute=6000,
        write_settle_seconds=0,
    )
    clock = ShiftedClock()
    sent: list[str] = []
    adapter = build_adapter(settings, clock, session=counting_session(sent))
    assert isinstance(adapter, OsTicketAdapter)
    store = SqliteStore(tmp_path / "store.sqlite3", clock)
    mappings = load_mappings(shipped_mappings_dir(), "osticket")
    installation = build(settings, clock, adapter=adapter, store=store, mappings=mappings)
    assert (Capability.ADD_NOTE in adapter.capabilities) is plugin
    try:
        yield Installed(installation, adapter, sent, store, clock)
    finally:
        store.close()
        adapter.db.close()
        osticket.set_plugin_enabled(True)


def _escalation_tickets(adapter: OsTicketAdapter, number: str, since: datetime) -> list[Ticket]:
    return [
        t
        for t in adapter.changed_tickets(since)
        if t.fields.get("origin_ticket") == number and t.fields.get("escalation_key")
    ]


def test_flag_one_escalation_ticket_every_email_copied_once_no_mail_to_the_customer(
    osticket: RealOsTicket, installed: Installed
) -> None:
    adapter = installed.adapter
    start = datetime.now(UTC) - timedelta(seconds=5)
    customer = unique_customer()
    mail = osticket.mail_files()
    number = osticket.customer_mail(customer, "Line down at the depot", "Down since 9.")
    original = adapter.ticket_by_number(number)
    assert original is not None
    osticket.agent_set_status(original.id, FLAG_STATUS)

    installed.run()
    installed.run()  # a second pass raises nothing more

    (esc_ticket,) = _escalation_tickets(adapter, number, start)
    assert esc_ticket.customer_id == original.customer_id
    assert esc_ticket.title.startswith("[L1] Line down")
    (esc,) = installed.store.escalations_for_ticket(original.id)
    assert esc.escalation_ticket_id == esc_ticket.id

    installed.run()  # settled: nothing left to write
    sent, queries = len(installed.requests), adapter.db.queries
    osticket.customer_mail(customer, f"Re: [#{number}] Line down", "Update 1: still down.")
    installed.run()
    # one copied email: one request (the mail into the escalation ticket), and these queries
    print(f"one copied email: {installed.requests[sent:]}, {adapter.db.queries - queries} queries")
    assert installed.requests[sent:] == ["POST /api/tickets.email"]
    osticket.customer_mail(customer, f"Re: [#{number}] Line down", "Update 2: still down.")
    installed.run()
    installed.run()

    # an agent's internal note on the escalation ticket is read (the carrier job looks at
    # agents' notes) without the pass failing
    osticket.agent_note(esc_ticket.id, "Carrier contact", "Carrier contact<br>Forename: Joe")
    installed.run()

    entries = adapter.list_articles(esc_ticket.id)
    for text in ("Down since 9.", "Update 1: still down.", "Update 2: still down."):
        copies = [a for a in entries if text in a.body]
        assert len(copies) == 1, f"{text!r} copied {len(copies)} times"
    assert customer not in osticket.recipients_since(mail)

    failed = installed.store.effects(EffectState.FAILED, escalation_id=esc.id)
    assert installed.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT) == []
    if Capability.ADD_NOTE not in adapter.capabilities:
        # notes and status changes cannot be made on core osTicket: each such write failed,
        # saying why, and nothing else did
        assert {e.kind for e in failed} == {"note", "update_ticket"}
        assert all("escalation-api plugin" in (e.last_error or "") for e in failed)
        assert adapter.list_links(esc_ticket.id) == []
        return
    # with the plugin every write was made, once
    assert [(e.kind, e.last_error) for e in failed] == []
    assert [(link.ticket_id, link.kind) for link in adapter.list_links(esc_ticket.id)] == [
        (original.id, LinkKind.PARENT)
    ]
    assert adapter.get_ticket(original.id).state == "Open"  # the flag status consumed
    notes = [
        a
        for a in adapter.list_articles(original.id)
        if a.kind is ArticleKind.NOTE and a.created_by_id == -1  # the plugin's bot agent
    ]
    assert len(notes) == 1, [n.body[:80] for n in notes]  # the original's "escalated" note
    assert esc_ticket.number in notes[0].body
    assert customer not in osticket.recipients_since(mail)


def test_an_idle_pass_reads_little_and_sends_no_request(installed: Installed) -> None:
    installed.run()  # the first pass connects and catches up
    queries, sent = installed.adapter.db.queries, len(installed.requests)
    installed.run()
    idle_queries = installed.adapter.db.queries - queries
    print(f"idle pass: {idle_queries} queries, {len(installed.requests) - sent} HTTP requests")
    assert len(installed.requests) == sent
    # One query: the poll's search. A second reads the form fields of the tickets the poll's
    # overlap window still holds (the other tests' tickets, changed seconds ago); on a quiet
    # helpdesk the search finds none (tests/connector/osticket: one query).
    assert 1 <= idle_queries <= 2


# -- the rest of the process, with the escalation-api plugin -------------------------------------

SUBJECT = "Line down at the depot"


@dataclass(frozen=True)
class Escalated:
    customer: str
    number: str
    original: Ticket
    ticket: Ticket
    mail: set[Path]
    since: datetime


def _escalate(osticket: RealOsTicket, installed: Installed) -> Escalated:
    """A customer's mail, the ticket flagged by an agent, two passes: the escalation ticket."""
    adapter = installed.adapter
    since = datetime.now(UTC) - timedelta(seconds=5)
    customer = unique_customer()
    mail = osticket.mail_files()
    number = osticket.customer_mail(customer, SUBJECT, "Down since 9.")
    original = adapter.ticket_by_number(number)
    assert original is not None
    osticket.agent_set_status(original.id, FLAG_STATUS)
    installed.run()
    installed.run()
    (ticket,) = _escalation_tickets(adapter, number, since)
    return Escalated(customer, number, original, ticket, mail, since)


def _record(installed: Installed, escalated: Escalated) -> Escalation:
    esc = installed.store.escalation_by_ticket(escalated.ticket.id)
    assert esc is not None
    return esc


def _notes(installed: Installed, ticket_id: int, subject: str) -> list[str]:
    """The bodies of the worker's internal notes (by the plugin's bot agent) titled so."""
    return [
        a.body
        for a in installed.adapter.list_articles(ticket_id)
        if a.kind is ArticleKind.NOTE
        and a.internal
        and a.created_by_id == BOT
        and (a.subject or "").startswith(subject)
    ]


def _next_second() -> None:
    """Wait for osTicket's clock (whole seconds) to pass the current second."""
    time.sleep(1.05 - datetime.now(UTC).microsecond / 1_000_000)


BOT = -1
"""The plugin's bot agent in the test setup: the admin agent, osTicket's staff 1."""


def _invariants(
    osticket: RealOsTicket, installed: Installed, escalated: Escalated, *mails: str
) -> None:
    """One escalation ticket, each customer email in it once, every write made (none failed
    or waiting), no mail to the customer and none about the escalation ticket."""
    adapter = installed.adapter
    assert len(_escalation_tickets(adapter, escalated.number, escalated.since)) == 1
    entries = adapter.list_articles(escalated.ticket.id)
    for text in ("Down since 9.", *mails):
        copies = [a for a in entries if a.sender is Sender.CUSTOMER and text in a.body]
        assert len(copies) == 1, f"{text!r} copied {len(copies)} times"
    esc = _record(installed, escalated)
    failed = installed.store.effects(EffectState.FAILED, escalation_id=esc.id)
    assert [(e.kind, e.key, e.last_error) for e in failed] == []
    assert installed.store.effects(EffectState.PENDING, EffectState.IN_FLIGHT) == []
    assert escalated.customer not in osticket.recipients_since(escalated.mail)
    # nor any other: the worker's writes (create, notes, assignment, status) send no alert;
    # what osTicket mailed is about the customer's own tickets (new-ticket alerts to agents)
    about = [t for t in osticket.texts_since(escalated.mail) if escalated.ticket.number in t]
    assert about == []


def test_an_agent_raising_the_level_sets_the_field_the_subject_and_the_owner(
    osticket: RealOsTicket, with_plugin: Installed
) -> None:
    installed = with_plugin
    escalated = _escalate(osticket, installed)
    esc_id = escalated.ticket.id

    osticket.agent_set_field(esc_id, "escalation_level", "2")
    installed.run()
    installed.run()
    ticket = installed.adapter.get_ticket(esc_id)
    assert ticket.fields["escalation_level"] == "2"
    assert ticket.title == f"[L2] {SUBJECT}"
    assert ticket.owner_id == osticket.agent_id("duty.manager")  # osticket.toml [people]
    (note,) = _notes(installed, esc_id, "Level 2")
    assert "Escalation Owner" in note
    assert "<b>Owner:</b> Jane Doe (SMC Manager or Duty Manager)" in note

    osticket.agent_set_field(esc_id, "escalation_level", "3")
    installed.run()
    installed.run()
    ticket = installed.adapter.get_ticket(esc_id)
    assert ticket.fields["escalation_level"] == "3"
    assert ticket.title == f"[L3] {SUBJECT}"
    assert ticket.owner_id == osticket.agent_id("duty.manager")  # level 3 keeps the owner
    (note,) = _notes(installed, esc_id, "Level 3")
    assert "Lloyd Foley" in note  # the level's executive, named in plain text
    changes = installed.store.level_changes(_record(installed, escalated).id)
    assert [(c.from_level, c.to_level) for c in changes] == [(1, 2), (2, 3)]
    assert _record(installed, escalated).level == 3
    _invariants(osticket, installed, escalated)


def test_the_carrier_log_is_read_and_a_failed_route_hands_over_to_the_supervisor(
    osticket: RealOsTicket, with_plugin: Installed
) -> None:
    installed = with_plugin
    escalated = _escalate(osticket, installed)
    esc_id = escalated.ticket.id
    heading = "Carrier contact"
    osticket.agent_note(
        esc_id,
        heading,
        "<br>".join(
            (
                heading,
                "Carrier: BT",
                "Stage: agent",
                "Forename: Dave",
                "Location: Glasgow",
                "User ID: BT-4411",
                "Time of call: 09:40",
            )
        ),
    )
    osticket.agent_note(esc_id, heading, f"{heading}<br>Carrier: BT<br>Stage: team leader")
    installed.run()
    installed.run()
    (incomplete,) = _notes(installed, esc_id, "Carrier contact incomplete")
    assert "Forename" in incomplete
    assert "Location" in incomplete
    assert len(installed.store.carrier_contacts(_record(installed, escalated).id)) == 2

    osticket.agent_set_field(esc_id, "carrier_route_failed", True)
    installed.run()
    installed.run()
    (handover,) = _notes(installed, esc_id, "Carrier route failed")
    for detail in ("Dave", "Glasgow", "BT-4411", "Sam Supervisor"):
        assert detail in handover
    ticket = installed.adapter.get_ticket(esc_id)
    assert ticket.owner_id == osticket.agent_id("cs.supervisor")
    assert len(_notes(installed, esc_id, "Carrier contact incomplete")) == 1
    _invariants(osticket, installed, escalated)


def _first_contact_call(installed: Installed, esc: Escalation) -> datetime:
    """When the first contact call of the escalation's plan is due (the window's end)."""
    profile = installed.installation.ctx.profile
    assert esc.flagged_at is not None
    rules = PlanRules(shortest_window_minutes=profile.comms.reminder_lead_minutes)
    duties = plan(
        EscalationFacts(flagged_at=esc.flagged_at),
        profile.segments[esc.segment],
        BusinessCalendar.from_profile(profile),
        rules,
        until=esc.flagged_at + timedelta(days=10),
    )
    return next(d.due_at for d in duties if d.key.startswith("call:"))


def test_the_communication_plan_reminds_and_reports_a_missed_call_in_internal_notes(
    osticket: RealOsTicket, with_plugin: Installed
) -> None:
    installed = with_plugin
    escalated = _escalate(osticket, installed)
    esc_id = escalated.ticket.id
    esc = _record(installed, escalated)
    due = _first_contact_call(installed, esc)  # residential: a morning or afternoon call

    installed.clock.set(due - timedelta(minutes=20))  # inside the 30-minute reminder lead
    installed.run()
    installed.run()
    (reminder,) = _notes(installed, esc_id, "Reminder:")
    assert "contact call" in reminder

    installed.clock.set(due + timedelta(minutes=5))  # the window closed, no call logged
    installed.run()
    installed.run()
    missed = [d for d in installed.store.duties(esc.id) if d.missed_at is not None]
    assert [d.due_at for d in missed] == [due]
    assert len(_notes(installed, esc_id, "Missed")) == 1, [
        a.subject for a in installed.adapter.list_articles(esc_id)
    ]
    assert len(_notes(installed, esc_id, "Reminder:")) == 1
    _invariants(osticket, installed, escalated)


def test_a_call_logged_as_a_phone_call_note_does_the_duty(
    osticket: RealOsTicket, with_plugin: Installed
) -> None:
    installed = with_plugin
    escalated = _escalate(osticket, installed)
    esc_id = escalated.ticket.id
    osticket.agent_set_field(esc_id, "escalation_level", "2")  # a call is due within the hour
    installed.run()
    esc = _record(installed, escalated)
    (duty,) = [d for d in installed.store.duties(esc.id) if d.slot.startswith("level:2:")]
    # osTicket keeps no phone entries of an agent's: the call is an internal note so titled
    # (a second later: osTicket stamps whole seconds, and the change opened the window)
    _next_second()
    osticket.agent_note(esc_id, "Phone call", "Called the customer: engineer booked.")

    installed.clock.set(duty.due_at - timedelta(minutes=20))  # where a reminder would go
    installed.run()
    installed.clock.set(duty.due_at + timedelta(minutes=5))  # where a miss would be noted
    installed.run()
    (done,) = [d for d in installed.store.duties(esc.id) if d.slot == duty.slot]
    assert done.done_at is not None
    assert done.missed_at is None
    assert (done.evidence or "").startswith("article:")
    assert not [n for n in _notes(installed, esc_id, "Reminder:") if "level 2" in n]
    assert not [n for n in _notes(installed, esc_id, "Missed") if "level 2" in n]
    _invariants(osticket, installed, escalated)


def test_a_level_2_close_without_the_rfo_is_reopened_once_and_with_it_parks(
    osticket: RealOsTicket, with_plugin: Installed
) -> None:
    installed = with_plugin
    adapter = installed.adapter
    escalated = _escalate(osticket, installed)
    esc_id = escalated.ticket.id
    osticket.agent_set_field(esc_id, "escalation_level", "2")  # process.toml: RFO from 2
    installed.run()
    installed.run()

    osticket.agent_set_status(esc_id, "Closed")  # no RFO given
    installed.run()
    installed.run()
    assert adapter.get_ticket(esc_id).state == "Open"  # put back by the worker
    assert _record(installed, escalated).state is State.OPEN
    assert len(_notes(installed, esc_id, "RFO needed")) == 1

    osticket.agent_set_field(esc_id, "escalation_rfo", "Fibre cut at the exchange.")
    osticket.agent_set_status(esc_id, "Closed")
    installed.run()
    installed.run()
    assert adapter.get_ticket(esc_id).state == "Parked"
    assert _record(installed, escalated).state is State.PARKED
    assert len(_notes(installed, esc_id, "RFO needed")) == 1
    _invariants(osticket, installed, escalated)


def test_resolved_parked_confirmed_and_closed(
    osticket: RealOsTicket, with_plugin: Installed
) -> None:
    installed = with_plugin
    adapter = installed.adapter
    escalated = _escalate(osticket, installed)
    esc_id = escalated.ticket.id

    osticket.agent_set_status(esc_id, "Closed")  # the agent resolves it
    installed.run()
    installed.run()
    assert adapter.get_ticket(esc_id).state == "Parked"
    parked = _record(installed, escalated)
    assert parked.state is State.PARKED
    (period,) = installed.store.parking_periods(parked.id)
    (note,) = _notes(installed, esc_id, "Parked")
    assert "set the status Confirmed" in note  # how to record the outcome on osTicket

    # day 3 of parking: the final confirmation call is reminded once
    installed.clock.set(period.pending_until - timedelta(minutes=20))
    installed.run()
    installed.run()
    assert len(_notes(installed, esc_id, "Reminder: final confirmation call")) == 1

    osticket.agent_set_status(esc_id, "Confirmed")  # the customer confirmed
    installed.run()
    installed.run()
    closed = _record(installed, escalated)
    assert closed.state in (State.CLOSED, State.ARCHIVED)
    assert closed.confirmed_at is not None
    assert installed.store.parking_periods(closed.id)[0].outcome is ParkingOutcome.CONFIRMED
    assert adapter.get_ticket(esc_id).state == "Closed"
    assert len(_notes(installed, esc_id, "Closed")) == 1
    assert adapter.get_ticket(escalated.original.id).state != "Closed"  # close_original off
    _invariants(osticket, installed, escalated)


def test_not_satisfied_or_a_new_customer_email_unparks_it(
    osticket: RealOsTicket, with_plugin: Installed
) -> None:
    installed = with_plugin
    adapter = installed.adapter
    escalated = _escalate(osticket, installed)
    esc_id = escalated.ticket.id
    osticket.agent_set_status(esc_id, "Closed")
    installed.run()
    installed.run()
    assert _record(installed, escalated).state is State.PARKED

    osticket.agent_set_status(esc_id, "Not satisfied")
    installed.run()
    installed.run()
    back = _record(installed, escalated)
    assert (back.state, back.level) == (State.OPEN, 1)
    assert adapter.get_ticket(esc_id).state == "Open"  # the outcome status replaced
    (note,) = _notes(installed, esc_id, "Un-parked")
    assert "not satisfied" in note

    osticket.agent_set_status(esc_id, "Closed")  # resolved again: a second parking
    installed.run()
    installed.run()
    assert _record(installed, escalated).state is State.PARKED
    assert len(_notes(installed, esc_id, "Parked")) == 2
    _next_second()  # a mail stamped in the second of the resolve counts as written before it
    reply = f"Re: [#{escalated.number}] {SUBJECT}"
    osticket.customer_mail(escalated.customer, reply, "It is down again!")
    installed.run()
    installed.run()
    assert _record(installed, escalated).state is State.OPEN
    assert adapter.get_ticket(esc_id).state == "Open"
    assert len(_notes(installed, esc_id, "Un-parked")) == 2
    _invariants(osticket, installed, escalated, "It is down again!")
