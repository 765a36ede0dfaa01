"""The behaviour suite's driver over the real osTicket 1.18 (``tests/connector/osticket/
real.py``), with the whole installation as ``escalations run`` wires it
(``ESCALATIONS_HELPDESK=osticket``) and the escalation-api plugin enabled. Agents act in the
agent panel (``/scp``) as the admin agent; customers' mail arrives as a mail server hands it
over (``tickets.email``). osTicket's clock cannot be moved: the worker's is osTicket's moved on
by an offset where a scenario needs time to pass (``ShiftedClock``). Every pass runs twice and
the second must send no request; no mail may reach a customer (the capture dir)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from pydantic import SecretStr

from connector.base import ArticleKind, Capability, LinkKind, Sender
from connector.osticket import OsTicketAdapter
from escalations.app.wiring import Installation, build, build_adapter
from escalations.mappings import load_mappings
from escalations.settings import Settings, shipped_mappings_dir
from escalations.store.sqlite import SqliteStore
from tests.behaviour.driver import Attachments, Copy, Original, Outcome, Status
from tests.connector.osticket.real import (
    FLAG_STATUS,
    RealOsTicket,
    counting_session,
    unique_customer,
)

BOT = -1
"""The plugin's bot agent in the test setup: the admin agent, osTicket's staff 1."""
OUTCOME_STATUSES = {"confirmed": "Confirmed", "not satisfied": "Not satisfied"}
"""``osticket.toml [statuses]``: what an agent sets to record the confirmation call's outcome."""
MAX_ATTACHMENT = 10 * 1024 * 1024


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
    """The worker installed on the real osTicket: its wiring, adapter, store, clock and every
    HTTP request the adapter sent (``METHOD path``)."""

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


def installed_on(osticket: RealOsTicket, tmp_path: Path, *, plugin: bool) -> Iterator[Installed]:
    """The installation on the real osTicket, the plugin enabled or (``plugin=False``)
    disabled in the admin panel for the test; enabled again afterwards."""
    osticket.set_plugin_enabled(plugin)
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


class OsTicketHelpdesk:
    name = "osticket"
    outcome_hint = f"set the status {OUTCOME_STATUSES['confirmed']}"
    """What the Parked note tells the agent to record a confirmation with."""

    def __init__(self, osticket: RealOsTicket, installed: Installed) -> None:
        self.osticket = osticket
        self.installed = installed
        self.adapter = installed.adapter
        self.since = datetime.now(UTC) - timedelta(seconds=5)
        self.mail_before = osticket.mail_files()

    @property
    def store(self) -> SqliteStore:
        return self.installed.store

    @property
    def installation(self) -> Installation:
        return self.installed.installation

    def run(self) -> None:
        self.installed.run()
        sent = len(self.installed.requests)
        self.installed.run()
        again = self.installed.requests[sent:]
        assert again == [], f"a repeated pass sent requests: {again}"

    def move_clock_to(self, instant: datetime) -> None:
        self.installed.clock.set(instant)

    def next_second(self) -> None:
        time.sleep(1.05 - datetime.now(UTC).microsecond / 1_000_000)

    def now(self) -> datetime:
        return self.installed.clock.now()

    # -- the customer --------------------------------------------------------------------
    def customer_opens(self, subject: str, body: str, *, attachments: Attachments = ()) -> Original:
        customer = unique_customer()
        number = self.osticket.customer_mail(customer, subject, body, attachments=attachments)
        ticket = self.adapter.ticket_by_number(number)
        assert ticket is not None
        return Original(ticket.id, number, customer, subject)

    def customer_writes(
        self, original: Original, body: str, *, attachments: Attachments = ()
    ) -> None:
        subject = f"Re: [#{original.number}] {original.subject}"
        self.osticket.customer_mail(original.customer, subject, body, attachments=attachments)

    # -- an agent ------------------------------------------------------------------------
    def flag(self, original: Original) -> None:
        self.osticket.agent_set_status(original.id, FLAG_STATUS)

    def set_level(self, ticket_id: int, level: int) -> None:
        self.osticket.agent_set_field(ticket_id, "escalation_level", str(level))

    def carrier_note(self, ticket_id: int, lines: Sequence[str]) -> None:
        self.osticket.agent_note(ticket_id, lines[0], "<br>".join(lines))

    def tick_route_failed(self, ticket_id: int) -> None:
        self.osticket.agent_set_field(ticket_id, "carrier_route_failed", True)

    def log_phone_call(self, ticket_id: int, text: str) -> None:
        # osTicket keeps no phone entries of an agent's: the call is an internal note so titled
        self.osticket.agent_note(ticket_id, "Phone call", text)

    def set_rfo(self, ticket_id: int, text: str) -> None:
        self.osticket.agent_set_field(ticket_id, "escalation_rfo", text)

    def resolve(self, ticket_id: int) -> None:
        self.osticket.agent_set_status(ticket_id, "Closed")

    def record_outcome(self, ticket_id: int, outcome: Outcome) -> None:
        self.osticket.agent_set_status(ticket_id, OUTCOME_STATUSES[outcome])

    # -- reads ---------------------------------------------------------------------------
    def escalation_tickets(self, original: Original) -> list[int]:
        return [
            t.id
            for t in self.adapter.changed_tickets(self.since)
            if t.fields.get("origin_ticket") == original.number and t.fields.get("escalation_key")
        ]

    def title(self, ticket_id: int) -> str:
        return self.adapter.get_ticket(ticket_id).title

    def level_field(self, ticket_id: int) -> str:
        return str(self.adapter.get_ticket(ticket_id).fields["escalation_level"])

    def owner(self, ticket_id: int) -> str | None:
        owner = self.adapter.get_ticket(ticket_id).owner_id
        if owner is None:
            return None
        (row,) = self.osticket.admin_sql(
            "SELECT email FROM ost_staff WHERE staff_id=%s", (-int(owner),)
        )
        return str(row["email"])

    def status(self, ticket_id: int) -> Status:
        return cast(Status, self.adapter.get_ticket(ticket_id).state.lower())

    def parents(self, ticket_id: int) -> list[int]:
        return [
            int(link.ticket_id)
            for link in self.adapter.list_links(ticket_id)
            if link.kind is LinkKind.PARENT
        ]

    def public_texts(self, ticket_id: int) -> list[str]:
        return [a.body for a in self.adapter.list_articles(ticket_id) if not a.internal]

    def copies(self, ticket_id: int, text: str) -> list[Copy]:
        return [
            Copy(
                a.body,
                {
                    ref.filename: self.adapter.fetch_attachment(ref, max_bytes=MAX_ATTACHMENT)
                    for ref in a.attachments
                },
            )
            for a in self.adapter.list_articles(ticket_id)
            if a.sender is Sender.CUSTOMER and text in a.body
        ]

    def worker_notes(self, ticket_id: int, subject: str) -> list[str]:
        return [
            a.body
            for a in self.adapter.list_articles(ticket_id)
            if a.kind is ArticleKind.NOTE
            and a.internal
            and a.created_by_id == BOT
            and (a.subject or "").startswith(subject)
        ]

    def mail_to_customers(self, original: Original) -> list[str]:
        """Mail to the customer, and any mail about one of their escalation tickets: the
        worker's writes (create, notes, assignment, status) send no alert; what osTicket
        mailed is about the customer's own tickets (new-ticket alerts to agents)."""
        to_customer = [
            f"to {address}"
            for address in self.osticket.recipients_since(self.mail_before)
            if address == original.customer.lower()
        ]
        numbers = [self.adapter.get_ticket(t).number for t in self.escalation_tickets(original)]
        about = [
            text.split("\n", 1)[0]
            for text in self.osticket.texts_since(self.mail_before)
            if any(number in text for number in numbers)
        ]
        return to_customer + about

    def helpdesk_invariants(self) -> None:
        """Nothing beyond ``assert_invariants``: the sandbox's §B4 check reads Zammad."""
