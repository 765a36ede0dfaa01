"""The behaviour suite's driver over Zammad: the in-process sandbox and the real Zammad adapter
(``tests/jobs/conftest.py``'s ``World``), a fake clock. Agents act as Alice; the worker's
passes run twice at the same instant, and the second must write nothing (``World.sync``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from escalations.app.wiring import Installation
from escalations.store.sqlite import SqliteStore
from tests.behaviour.driver import Attachments, Copy, Original, Outcome, Status
from tests.jobs.conftest import ALICE, BOT, World
from tests.reliability.invariants import check_invariants

ROUTE_FAILED_TAG = "carrier-route-failed"
OUTCOME_TAGS = {"confirmed": "escalation-confirmed", "not satisfied": "escalation-not-satisfied"}
"""``zammad.toml [tags]``: what an agent adds to record the confirmation call's outcome."""
MIME = "application/octet-stream"


class ZammadHelpdesk:
    name = "zammad"
    outcome_hint = OUTCOME_TAGS["confirmed"]
    """What the Parked note tells the agent to record a confirmation with."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sandbox = world.sandbox
        self.worker_mail: list[dict[str, Any]] = []
        """What the sandbox mailed out during the worker's passes."""

    @property
    def store(self) -> SqliteStore:
        return self.world.store

    @property
    def installation(self) -> Installation:
        return self.world.installation

    def run(self) -> None:
        before = len(self.sandbox.outbox)
        self.world.sync()
        self.worker_mail += self.sandbox.outbox[before:]

    def move_clock_to(self, instant: datetime) -> None:
        assert instant >= self.world.clock.now(), "the worker's clock only moves forward"
        self.world.clock.set(instant)

    def next_second(self) -> None:
        self.world.clock.advance(timedelta(seconds=1))

    def now(self) -> datetime:
        return self.world.clock.now()

    # -- the customer --------------------------------------------------------------------
    def customer_opens(self, subject: str, body: str, *, attachments: Attachments = ()) -> Original:
        customer = f"cust.{uuid.uuid4().hex[:12]}@customer.example.org"
        ticket_id = self.sandbox.create_ticket_as_customer(
            customer, subject, body, attachments=[(n, MIME, d) for n, d in attachments]
        )
        number = self.sandbox.ticket(ticket_id)["number"]
        return Original(ticket_id, number, customer, subject)

    def customer_writes(
        self, original: Original, body: str, *, attachments: Attachments = ()
    ) -> None:
        self.sandbox.seed_customer_email(
            original.id,
            body,
            subject=f"Re: {original.subject}",
            attachments=[(n, MIME, d) for n, d in attachments],
        )

    # -- an agent ------------------------------------------------------------------------
    def flag(self, original: Original) -> None:
        self.world.flag(original.id)

    def set_level(self, ticket_id: int, level: int) -> None:
        self.sandbox.agent_update(ticket_id, ALICE, escalation_level=str(level))

    def carrier_note(self, ticket_id: int, lines: Sequence[str]) -> None:
        self.sandbox.agent_article(ticket_id, ALICE, "\n".join(lines))

    def tick_route_failed(self, ticket_id: int) -> None:
        self.sandbox.add_tag(ticket_id, ROUTE_FAILED_TAG, login=ALICE)

    def log_phone_call(self, ticket_id: int, text: str) -> None:
        self.sandbox.agent_article(ticket_id, ALICE, text, type="phone", internal=False)

    def set_rfo(self, ticket_id: int, text: str) -> None:
        self.sandbox.agent_update(ticket_id, ALICE, escalation_rfo=text)

    def resolve(self, ticket_id: int) -> None:
        self.sandbox.agent_update(ticket_id, ALICE, state="closed")

    def record_outcome(self, ticket_id: int, outcome: Outcome) -> None:
        self.sandbox.add_tag(ticket_id, OUTCOME_TAGS[outcome], login=ALICE)

    # -- reads ---------------------------------------------------------------------------
    def escalation_tickets(self, original: Original) -> list[int]:
        return [
            ticket_id
            for ticket_id, t in self.sandbox.tickets.items()
            if t.get("escalation_key") and t.get("escalation_original") == original.number
        ]

    def title(self, ticket_id: int) -> str:
        return str(self.sandbox.ticket(ticket_id)["title"])

    def level_field(self, ticket_id: int) -> str:
        return str(self.sandbox.ticket(ticket_id)["escalation_level"])

    def owner(self, ticket_id: int) -> str | None:
        owner = self.sandbox.ticket(ticket_id)["owner"]
        return None if owner in (None, "-") else str(owner)

    def status(self, ticket_id: int) -> Status:
        return cast(Status, self.sandbox.ticket(ticket_id)["state"])

    def parents(self, ticket_id: int) -> list[int]:
        return [
            int(link["link_object_value"])
            for link in self.sandbox.links_of(ticket_id)
            if link["link_type"] == "parent" and link["link_object"] == "Ticket"
        ]

    def public_texts(self, ticket_id: int) -> list[str]:
        return [a["body"] for a in self.sandbox.articles_of(ticket_id) if not a["internal"]]

    def copies(self, ticket_id: int, text: str) -> list[Copy]:
        return [
            Copy(
                a["body"],
                {
                    att["filename"]: self.sandbox.attachment_data(a["id"], att["id"])
                    for att in a["attachments"]
                },
            )
            for a in self.world.copies_in(ticket_id)
            if text in a["body"]
        ]

    def worker_notes(self, ticket_id: int, subject: str) -> list[str]:
        bot = self.sandbox.user_id(BOT)
        return [
            a["body"]
            for a in self.sandbox.articles_of(ticket_id)
            if a["internal"]
            and a["created_by_id"] == bot
            and (a["subject"] or "").startswith(subject)
        ]

    def mail_to_customers(self, original: Original) -> list[str]:
        return [f"{m['to']}: {m['subject']}" for m in self.worker_mail]

    def helpdesk_invariants(self) -> None:
        check_invariants(self.sandbox, self.store.path)
