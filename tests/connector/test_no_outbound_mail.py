"""No adapter method can make Zammad email anybody, or show anything to the customer: every
write goes to the sandbox, whose outbox records what Zammad would send (reference §5.4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from connector.base import (
    ArticleDraft,
    AttachmentUpload,
    HelpdeskAdapter,
    TicketChanges,
    TicketDraft,
)
from connector.zammad import ZammadAdapter
from escalations.clock import FakeClock
from escalations.markers import marker_for
from sandbox import ZammadSandbox, mount
from tests.connector.conftest import BASE_URL, make_adapter

CUSTOMER = "sean.walsh@residential.example"


@pytest.fixture
def sandbox_and_adapter(clock: FakeClock) -> Iterator[tuple[ZammadSandbox, ZammadAdapter]]:
    sandbox = ZammadSandbox.demo(clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mount(sandbox, rsps, BASE_URL)
        yield sandbox, make_adapter(clock, sandbox.token_of("escalation-bot"))


def _every_write(adapter: HelpdeskAdapter, sandbox: ZammadSandbox) -> list[int]:
    """Call every write method of the protocol once; return the tickets touched."""
    original = next(t["id"] for t in sandbox.tickets.values() if t["customer"] == CUSTOMER)
    customer_id = sandbox.user_id(CUSTOMER)  # the real customer, not the placeholder
    created = adapter.create_ticket(
        TicketDraft(
            title="[ESC L1] mail test",
            group="Escalations",
            customer_id=customer_id,
            first_note=ArticleDraft(body="<p>first note</p>", subject="Escalation"),
            tags=frozenset({"escalation"}),
            parent_id=original,
            fields={"escalation_level": "1"},
        ),
        marker=marker_for("create_escalation", "mail-test"),
    )
    adapter.add_article(
        created.id,
        ArticleDraft(
            body="<p>a copy</p>",
            subject="Customer email",
            attachments=(AttachmentUpload("a.txt", "text/plain", b"hello"),),
        ),
        marker=marker_for("copy_article", "mail-test"),
    )
    adapter.add_article(
        original, ArticleDraft(body="<p>escalated</p>"), marker=marker_for("note", "mail-test")
    )
    adapter.set_tags(original, present=frozenset({"escalated"}), absent=frozenset({"escalate"}))
    adapter.update_ticket(
        created.id,
        TicketChanges(owner_id=sandbox.user_id("duty.manager@fused.example"), state="open"),
    )
    adapter.link_tickets(original, created.id)
    adapter.subscribe(created.id, adapter.me().id)
    return [original, created.id]


def test_no_adapter_write_reaches_the_outbox(
    sandbox_and_adapter: tuple[ZammadSandbox, ZammadAdapter],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    before = list(sandbox.outbox)
    _every_write(adapter, sandbox)
    assert sandbox.outbox == before


def test_every_article_the_adapter_writes_is_an_internal_note(
    sandbox_and_adapter: tuple[ZammadSandbox, ZammadAdapter],
) -> None:
    sandbox, adapter = sandbox_and_adapter
    bot = sandbox.user_id("escalation-bot")
    touched = _every_write(adapter, sandbox)
    written = [a for t in touched for a in sandbox.articles_of(t) if a.get("created_by_id") == bot]
    assert len(written) == 3
    for article in written:
        assert (article["type"], article["internal"], article["sender"]) == ("note", True, "Agent")


def test_the_outbox_does_record_what_zammad_would_send(
    sandbox_and_adapter: tuple[ZammadSandbox, ZammadAdapter],
) -> None:
    """The check above can fail: an agent email article does reach the outbox."""
    sandbox, _ = sandbox_and_adapter
    original = next(t["id"] for t in sandbox.tickets.values() if t["customer"] == CUSTOMER)
    before = len(sandbox.outbox)
    sandbox.agent_article(
        original, "alice.agent@fused.example", "hello", type="email", internal=True, to=CUSTOMER
    )
    assert len(sandbox.outbox) == before + 1
