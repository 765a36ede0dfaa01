"""The report's check of customer emails on *other* tickets of an escalation's customer
(``jobs.reconcile.customers``, issue 16 #1): a new ticket the customer opened while the
escalation runs is found in the helpdesk, not only once a copy of it exists, so a ticket the
worker never saw is listed (one ``email_not_copied`` per email); one the worker copied is not;
and the tickets are found by a few searches for all the customers, not one per escalation."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import connector.zammad.adapter as zammad_adapter
from escalations.models import State
from escalations.reconcile.findings import FindingKind, RepairOutcome
from jobs import reconcile
from tests.jobs.conftest import World
from tests.jobs.test_reconcile import (
    TITLE,
    _escalated,
    _helpdesk_state,
    _kinds,
    _report,
    _settle,
)

K = FindingKind
CUSTOMER_SEARCH = "ticket.customer_id"
"""What tells the customers' search apart from the report's other searches."""


def _customer_of(world: World, ticket_id: int) -> str:
    with _helpdesk_state(world) as st:
        return str(st.db.users[st.ticket(ticket_id).customer_id].email)


def _new_ticket(world: World, original: int, *, emails: int = 2) -> int:
    """A new ticket of the original's customer: its first email and ``emails - 1`` more."""
    customer = _customer_of(world, original)
    ticket = world.sandbox.create_ticket_as_customer(
        customer, "Also the phone line", "The phone is dead too.", subject="Phone 0"
    )
    for n in range(1, emails):
        world.sandbox.seed_customer_email(ticket, f"Still no phone ({n}).", subject=f"Phone {n}")
    return ticket


def _unseen_ticket(world: World, original: int, *, emails: int = 2) -> int:
    """A new ticket of the customer that the worker's poll never saw: created (and last
    changed) in the helpdesk's database at a time the poll had already passed, as a ticket
    restored from a backup, an import or a poll that missed it would be."""
    esc = world.store.escalations_in(State.OPEN)[0]
    assert esc.flagged_at is not None
    ticket = _new_ticket(world, original, emails=emails)
    back = esc.flagged_at + timedelta(seconds=1)
    with _helpdesk_state(world) as st:
        row = st.ticket(ticket)
        row.created_at = row.updated_at = back
        for article in st.articles_of(ticket):
            article.created_at = article.updated_at = back
    return ticket


def _not_copied(world: World) -> list[Any]:
    return [f for f in _report(world).findings if f.kind is K.EMAIL_NOT_COPIED]


def _customer_searches(world: World, since: int = 0) -> list[dict[str, Any]]:
    bodies = []
    for call in world.rsps.calls[since:]:
        request = call.request
        if request.method == "POST" and (request.path_url or "").startswith(
            "/api/v1/tickets/search"
        ):
            body = json.loads(request.body or b"{}")
            if CUSTOMER_SEARCH in json.dumps(body.get("condition")):
                bodies.append(body)
    return bodies


def test_a_new_ticket_the_worker_never_saw_is_listed_once_per_email(world: World) -> None:
    original, esc = _escalated(world)
    _settle(world)
    unseen = _unseen_ticket(world, original, emails=2)
    _settle(world)
    assert all("Phone" not in c["body"] for c in world.copies_in(esc["id"]))  # never seen
    report = _report(world)
    assert _kinds(report) == {K.EMAIL_NOT_COPIED: 2}
    emails = {a["id"] for a in world.sandbox.articles_of(unseen) if a["sender"] == "Customer"}
    assert {f.subject for f in report.findings} == {f"article:{i}" for i in emails}
    for finding in report.findings:
        assert finding.ticket_id == unseen
        assert finding.other_ticket_id == esc["id"]
        assert "a ticket the customer opened while the escalation runs" in finding.detail


def test_a_new_ticket_the_worker_copied_is_not_listed(world: World) -> None:
    original, esc = _escalated(world)
    _new_ticket(world, original, emails=2)
    world.sync()
    world.sync()
    _settle(world)
    assert sum("Phone" in c["body"] for c in world.copies_in(esc["id"])) == 2
    assert _report(world).findings == ()


def test_a_deleted_copy_of_a_new_tickets_email_is_listed_once(world: World) -> None:
    original, esc = _escalated(world)
    other = _new_ticket(world, original, emails=2)
    world.sync()
    world.sync()
    (copy,) = [c for c in world.copies_in(esc["id"]) if "Phone 1" in c["body"]]
    with _helpdesk_state(world) as st:
        del st.db.articles[copy["id"]]
        st.touch_id(esc["id"])
    _settle(world)
    (finding,) = _not_copied(world)
    assert finding.ticket_id == other
    assert "Phone 1" in finding.detail


def test_a_new_email_within_the_grace_is_left_for_the_next_report(world: World) -> None:
    original, _esc = _escalated(world)
    _settle(world)
    ticket = _unseen_ticket(world, original, emails=1)
    with _helpdesk_state(world) as st:  # changed just now: the worker may not have seen it
        st.ticket(ticket).updated_at = world.clock.now()
    assert _not_copied(world) == []


def test_an_escalation_ticket_of_the_customer_is_not_checked_as_a_new_ticket(
    world: World,
) -> None:
    """An escalation ticket is newer than the flag; given the customer (by hand) and an email
    of theirs, it is still no source of copies, as for the worker's poll. The original's
    deleted copy is listed once, by the ticket checks."""
    original, esc = _escalated(world, emails=2)
    (first,) = [c for c in world.copies_in(esc["id"]) if "Down 0" in c["body"]]
    with _helpdesk_state(world) as st:
        st.ticket(esc["id"]).customer_id = st.ticket(original).customer_id
        del st.db.articles[first["id"]]
        st.touch_id(esc["id"])
    world.sandbox.seed_customer_email(esc["id"], "Replying here.", subject="Reply")
    _settle(world)
    (finding,) = _not_copied(world)
    assert finding.ticket_id == original
    assert "Down 0" in finding.detail


def test_repair_copies_the_unseen_tickets_emails_and_a_second_report_lists_none(
    world: World,
) -> None:
    original, esc = _escalated(world)
    _settle(world)
    unseen = _unseen_ticket(world, original, emails=2)
    _settle(world)
    repaired = reconcile.build_and_repair(
        world.ctx, world.installation.executor, world.clock.now(), dry_run=False
    )
    assert Counter((r.kind, r.outcome) for r in repaired.repairs or ()) == {
        (K.EMAIL_NOT_COPIED, RepairOutcome.DONE): 2
    }
    assert all(
        f"#{world.sandbox.tickets[unseen]['number']}" in r.action for r in repaired.repairs or ()
    )
    assert sum("Phone" in c["body"] for c in world.copies_in(esc["id"])) == 2
    _settle(world)
    assert _report(world).findings == ()
    again = reconcile.build_and_repair(
        world.ctx, world.installation.executor, world.clock.now(), dry_run=False
    )
    assert again.repairs == ()


@pytest.mark.parametrize(("per_search", "searches"), [(100, 1), (2, 2), (1, 3)])
def test_the_customers_tickets_are_a_search_per_chunk_of_customers(
    world: World, monkeypatch: pytest.MonkeyPatch, per_search: int, searches: int
) -> None:
    """Four escalations of three customers (two of the first customer's tickets escalated):
    one search per ``CUSTOMERS_PER_SEARCH`` customers, whatever the number of escalations;
    none of the other requests depends on it."""
    original = world.ticket_by_title(TITLE)
    second = _new_ticket(world, original, emails=1)
    titles = ("Leased line flapping - end users affected", "HQ VPN outage")
    for ticket in (original, second, *(world.ticket_by_title(t) for t in titles)):
        world.flag(ticket)
    world.sync()
    world.sync()
    _settle(world)
    opened = world.store.escalations_in(State.OPEN)
    assert len(opened) == 4
    assert len({e.customer_id for e in opened}) == 3
    monkeypatch.setattr(zammad_adapter, "CUSTOMERS_PER_SEARCH", per_search)
    before = len(world.rsps.calls)
    report = _report(world)
    assert report.findings == ()
    bodies = _customer_searches(world, before)
    assert len(bodies) == searches
    asked = [c for b in bodies for c in b["condition"][CUSTOMER_SEARCH]["value"]]
    assert sorted(asked) == sorted(
        str(e.customer_id) for e in {e.customer_id: e for e in opened}.values()
    )
    for body in bodies:
        assert "query" not in body  # the database, not the lagging search index
        assert body["condition"]["ticket.created_at"]["operator"] == "after (absolute)"


def test_no_running_escalation_makes_no_customer_search(world: World) -> None:
    before = len(world.rsps.calls)
    _report(world)
    assert _customer_searches(world, before) == []


def test_a_helpdesk_without_the_search_says_what_was_not_checked(world: World) -> None:
    _escalated(world)
    _settle(world)
    adapter = world.ctx.adapter
    adapter.capabilities = adapter.capabilities - {  # type: ignore[misc]
        zammad_adapter.Capability.CUSTOMER_TICKETS
    }
    report = _report(world)
    assert any("other tickets of the same customer" in n for n in report.not_checked)
