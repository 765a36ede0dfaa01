"""The escalation process on the real osTicket 1.18 where it differs from Zammad, through the
whole installation as ``escalations run`` wires it (``ESCALATIONS_HELPDESK=osticket``): an
agent flags a ticket by its status in the agent panel, the worker raises one escalation ticket
and copies every later customer email into it exactly once — one request each —, and no mail
reaches a customer. With the escalation-api plugin (installed by the test setup) the notes,
the link and the status writes are made too; without it (disabled in the admin panel) each of
those fails once, naming what is missing. An idle pass sends no request.

The rest of the process (levels and owners, the carrier log and the hand-over, the
communication plan, the RFO gate, parking, confirmation) runs on osTicket and on Zammad as one
suite: ``tests/behaviour``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.base import ArticleKind, Capability, LinkKind, Ticket
from connector.osticket import OsTicketAdapter
from escalations.models import EffectState
from tests.behaviour.osticket import Installed, installed_on
from tests.connector.osticket.real import FLAG_STATUS, RealOsTicket, unique_customer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["plugin", "core"])
def installed(
    request: pytest.FixtureRequest, osticket: RealOsTicket, tmp_path: Path
) -> Iterator[Installed]:
    yield from installed_on(osticket, tmp_path, plugin=request.param == "plugin")


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
