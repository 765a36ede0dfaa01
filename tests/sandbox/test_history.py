"""``GET /api/v1/ticket_history/{id}``: the rows ``HasHistory`` and the tag concern write, in
``History.list``'s shape (``app/models/history.rb``), with who made each change, and the
controller's gates (``tickets_controller.rb#ticket_history``: ``ticket.agent``, then
``Ticket.find``, then ``show?``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from escalations.clock import FakeClock
from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client, new_ticket_payload

BOB = "bob.agent@fused.example"
ALICE = "alice.agent@fused.example"


def _ticket_rows(api: Client, ticket_id: int) -> list[dict[str, Any]]:
    response = api("GET", f"/ticket_history/{ticket_id}")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"history", "assets"}
    return [row for row in data["history"] if row["object"] == "Ticket"]


def test_create_update_and_tags_are_recorded_with_who_did_them(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    created = api("POST", "/tickets", json=new_ticket_payload(escalation_level="1")).json()
    ticket_id = created["id"]
    bot = sandbox.user_id("escalation-bot")
    clock.advance(timedelta(seconds=1))
    api("PUT", f"/tickets/{ticket_id}", json={"escalation_level": "2"})
    clock.advance(timedelta(seconds=1))
    sandbox.add_tag(ticket_id, "carrier-route-failed", login=BOB)
    sandbox.remove_tag(ticket_id, "carrier-route-failed", login=ALICE)

    rows = _ticket_rows(api, ticket_id)
    assert [(r["type"], r.get("attribute")) for r in rows] == [
        ("created", None),
        ("updated", "escalation_level"),
        ("added", "tag"),
        ("removed", "tag"),
    ]
    created_row, level, added, removed = rows
    assert created_row["created_by_id"] == bot
    assert "value_to" not in created_row  # both values null: the pair is left out
    assert "id_to" not in created_row
    assert (level["value_from"], level["value_to"], level["created_by_id"]) == ("1", "2", bot)
    assert "id_from" not in level
    assert level["created_at"] == "2026-12-01T09:00:01.000Z"
    # the tag concern names the tag in value_to, for a removal too
    assert (added["value_from"], added["value_to"]) == (None, "carrier-route-failed")
    assert added["created_by_id"] == sandbox.user_id(BOB)
    assert (removed["value_from"], removed["value_to"]) == (None, "carrier-route-failed")
    assert removed["created_by_id"] == sandbox.user_id(ALICE)
    assert all(r["sourceable_type"] is None for r in rows)
    # the trap the history is read for: a tag write leaves updated_by_id alone
    assert sandbox.ticket(ticket_id)["updated_by_id"] == bot


def test_an_association_change_carries_ids_and_names(api: Client, sandbox: ZammadSandbox) -> None:
    ticket_id = api("POST", "/tickets", json=new_ticket_payload()).json()["id"]
    alice = sandbox.user_id(ALICE)
    api("PUT", f"/tickets/{ticket_id}", json={"owner_id": alice})
    owner = next(r for r in _ticket_rows(api, ticket_id) if r.get("attribute") == "owner")
    assert (owner["id_from"], owner["id_to"]) == (1, alice)
    assert (owner["value_from"], owner["value_to"]) == ("-", "Alice Agent")


def test_values_are_written_as_ruby_text(sandbox: ZammadSandbox, api: Client) -> None:
    sandbox.agent_update(
        1, ALICE, escalation_requested=True, escalation_callback_at="2026-12-01T15:00:00Z"
    )
    rows = {r.get("attribute"): r for r in _ticket_rows(api, 1)}
    assert (
        rows["escalation_requested"]["value_from"],
        rows["escalation_requested"]["value_to"],
    ) == (
        "false",
        "true",
    )
    assert rows["escalation_callback_at"]["value_from"] == ""
    assert rows["escalation_callback_at"]["value_to"] == "2026-12-01 15:00:00 UTC"
    assert rows["escalation_requested"]["created_by_id"] == sandbox.user_id(ALICE)


def test_an_unchanged_save_and_a_duplicate_tag_write_no_row(
    sandbox: ZammadSandbox, api: Client
) -> None:
    before = len(_ticket_rows(api, 1))
    sandbox.agent_update(1, ALICE, title=sandbox.ticket(1)["title"])
    sandbox.add_tag(1, "escalate", login=BOB)
    sandbox.add_tag(1, "escalate", login=BOB)
    sandbox.remove_tag(1, "never-there", login=BOB)
    assert len(_ticket_rows(api, 1)) == before + 1


def test_the_ticket_s_articles_are_part_of_its_history(sandbox: ZammadSandbox, api: Client) -> None:
    article_id = sandbox.agent_article(1, BOB, "A note")
    data = api("GET", "/ticket_history/1").json()
    (row,) = [
        r for r in data["history"] if r["object"] == "Ticket::Article" and r["o_id"] == article_id
    ]
    assert (row["type"], row["related_object"], row["related_o_id"]) == ("created", "Ticket", 1)
    assert row["created_by_id"] == sandbox.user_id(BOB)
    created_at = [r["created_at"] for r in data["history"]]
    assert created_at == sorted(created_at)
    assert str(sandbox.user_id(BOB)) in data["assets"]["User"]
    assert "1" in data["assets"]["Ticket"]


def test_an_unknown_ticket_is_404(api: Client) -> None:
    response = api("GET", "/ticket_history/999")
    assert response.status_code == 404
    assert response.json()["error"] == "Couldn't find Ticket with 'id'=999"


def test_a_token_without_ticket_agent_is_403(api: Client, sandbox: ZammadSandbox) -> None:
    customer = sandbox.ticket(1)["customer"]
    token = sandbox.issue_token(customer, ["ticket.customer"])
    assert api("GET", "/tickets/1", token=token).status_code == 200  # the customer's own ticket
    assert api("GET", "/ticket_history/1", token=token).status_code == 403


def test_a_ticket_in_a_group_the_user_cannot_read_is_403(
    api: Client, sandbox: ZammadSandbox
) -> None:
    sandbox.add_group("Finance")
    ticket_id = sandbox.create_ticket_as_customer(
        "payer@elsewhere.example", "Invoice", "hello", group="Finance"
    )
    assert api("GET", f"/ticket_history/{ticket_id}").status_code == 403
