"""Scenario helpers and seed data: each helper has Zammad's side effects."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from escalations.clock import FakeClock
from sandbox import ApiError, ZammadSandbox


def test_demo_seed_contents(sandbox: ZammadSandbox) -> None:
    assert sandbox.user_id("escalation-bot") == 3
    assert [t["number"] for t in sandbox.tickets.values()] == ["31001", "31002", "31003", "31004"]
    assert all(t["group"] == "Support" for t in sandbox.tickets.values())
    segments = {t["customer_segment"] for t in sandbox.tickets.values()}
    assert segments == {"residential", "reseller", "wholesale", "enterprise"}
    assert "escalation-l4" in sandbox.state.db.tag_items
    assert sandbox.state.settings.tag_new is True
    first = sandbox.articles_of(1)[0]
    assert (first["type"], first["sender"], first["created_by"]) == (
        "phone",
        "Customer",
        "alice.agent@fused.example",
    )


def test_seed_times_are_before_now(sandbox: ZammadSandbox) -> None:
    assert sandbox.ticket(1)["created_at"] == "2026-12-01T04:00:00.000Z"
    assert sandbox.ticket(1)["updated_at"] == "2026-12-01T07:00:00.000Z"


def test_from_seed_random_tokens(tmp_path: Path, clock: FakeClock) -> None:
    seed = {
        "groups": [{"name": "Support"}],
        "users": [{"login": "a@x.example", "groups": {"Support": ["full"]}, "tokens": [{}]}],
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    one = ZammadSandbox.from_seed(path, clock=clock).token_of("a@x.example")
    two = ZammadSandbox.from_seed(path, clock=clock).token_of("a@x.example")
    assert one != two


def test_seed_customer_email_bumps_and_reopens(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    sandbox.agent_update(
        1, "alice.agent@fused.example", state="parked", pending_time="2026-12-04T09:00:00Z"
    )
    clock.advance(timedelta(minutes=10))
    article_id = sandbox.seed_customer_email(
        1,
        '<p>see picture</p><img src="cid:pic1@mail">',
        subject="Re: broadband",
        content_type="text/html",
        attachments=[
            ("log.txt", "text/plain", b"log"),
            ("pic.png", "image/png", b"\x89PNG", "pic1@mail"),
        ],
    )
    ticket = sandbox.ticket(1)
    assert ticket["state"] == "open"
    assert ticket["pending_time"] is None
    assert ticket["updated_at"] == "2026-12-01T09:10:00.000Z"
    article = sandbox.articles_of(1)[-1]
    assert article["id"] == article_id
    assert (article["type"], article["sender"], article["internal"]) == ("email", "Customer", False)
    assert article["from"] == "Sean Walsh <sean.walsh@residential.example>"
    assert [a["filename"] for a in article["attachments"]] == ["log.txt"]
    assert "/api/v1/ticket_attachment/1/" in article["body"]


def test_agent_update_enforces_rules(sandbox: ZammadSandbox) -> None:
    with pytest.raises(ApiError) as err:
        sandbox.agent_update(1, "alice.agent@fused.example", state="parked")
    assert err.value.status == 422
    result = sandbox.agent_update(1, "alice.agent@fused.example", escalation_level="3")
    assert result["escalation_level"] == "3"


def test_agent_article_phone_call(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=1))
    sandbox.agent_article(1, "alice.agent@fused.example", "called customer", type="phone")
    article = sandbox.articles_of(1)[-1]
    assert (article["type"], article["internal"], article["created_by"]) == (
        "phone",
        True,
        "alice.agent@fused.example",
    )
    assert sandbox.ticket(1)["updated_at"] == "2026-12-01T09:01:00.000Z"


def test_remove_tag_helper_always_bumps(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=1))
    sandbox.remove_tag(2, "absent")
    assert sandbox.ticket(2)["updated_at"] == "2026-12-01T09:01:00.000Z"


def test_process_pending_action_bumps_reminder_does_not(
    sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    sandbox.agent_update(
        1, "alice.agent@fused.example", state="parked", pending_time="2026-12-01T10:00:00Z"
    )
    sandbox.agent_update(
        2, "bob.agent@fused.example", state="pending close", pending_time="2026-12-01T10:00:00Z"
    )
    before_1 = sandbox.ticket(1)["updated_at"]
    clock.advance(timedelta(hours=2))
    assert sandbox.process_pending() == [2]
    assert sandbox.ticket(1)["updated_at"] == before_1
    assert sandbox.ticket(1)["state"] == "parked"
    assert sandbox.ticket(2)["state"] == "closed"
    assert sandbox.ticket(2)["updated_at"] == "2026-12-01T11:00:00.000Z"
    assert sandbox.ticket(2)["updated_by_id"] == 1


def test_delete_ticket_vanishes_and_bumps_linked(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    sandbox.link(4, 1, "child")
    clock.advance(timedelta(minutes=1))
    sandbox.delete_ticket(4)
    assert 4 not in sandbox.tickets
    assert sandbox.links_of(1) == []
    assert sandbox.ticket(1)["updated_at"] == "2026-12-01T09:01:00.000Z"


def test_subscribe_helper_checks_access(sandbox: ZammadSandbox) -> None:
    with pytest.raises(ApiError):
        sandbox.subscribe(1, "lloyd.foley@jt.example")
    sandbox.subscribe(1, "duty.manager@fused.example")
    assert sandbox.subscribers_of(1) == [sandbox.user_id("duty.manager@fused.example")]


def test_handle_without_transport(sandbox: ZammadSandbox) -> None:
    status, headers, body = sandbox.handle(
        "GET",
        "/api/v1/tickets/1",
        {"expand": ["true"]},
        {"Authorization": "Bearer sandbox-bot-token"},
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["group"] == "Support"
    assert sandbox.requests[-1] == ("GET", "/api/v1/tickets/1", 200)
