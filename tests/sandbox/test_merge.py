"""Merging (``ticket.rb#merge_to``): what moves to the target, the link that is added, the
history rows, and the controller's answers."""

from __future__ import annotations

from datetime import timedelta

from escalations.clock import FakeClock
from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client


def _merge(api: Client, source: int, target_number: str) -> dict[str, object]:
    response = api("PUT", f"/ticket_merge/{source}/{target_number}")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_a_merge_moves_articles_mentions_and_links_and_adds_the_parent_link(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    sandbox.link(1, 3, "normal")  # 1's own link, to a third ticket
    sandbox.subscribe(1, "alice.agent@fused.example")
    moved = [a["id"] for a in sandbox.articles_of(1)]
    assert moved
    clock.advance(timedelta(seconds=5))
    body = _merge(api, 1, sandbox.ticket(2)["number"])
    assert body["result"] == "success"
    # the articles are the target's now; the source keeps only its new "merged" note
    assert set(moved) <= {a["id"] for a in sandbox.articles_of(2)}
    left = sandbox.articles_of(1)
    assert [(a["body"], a["internal"]) for a in left] == [("merged", False)]
    # its mention and its link went with them; the merge link is target --parent--> source
    assert sandbox.subscribers_of(1) == []
    assert sandbox.user_id("alice.agent@fused.example") in sandbox.subscribers_of(2)
    assert sandbox.links_of(1) == [
        {"link_type": "parent", "link_object": "Ticket", "link_object_value": 2}
    ]
    assert {"link_type": "normal", "link_object": "Ticket", "link_object_value": 3} in (
        sandbox.links_of(2)
    )
    source = sandbox.ticket(1)
    assert (source["state"], source["owner_id"]) == ("merged", 1)
    assert source["updated_at"] == sandbox.ticket(2)["updated_at"] == "2026-12-01T09:00:05.000Z"


def test_a_merge_writes_merged_into_and_received_merge(api: Client, sandbox: ZammadSandbox) -> None:
    _merge(api, 1, sandbox.ticket(2)["number"])
    rows = {
        ticket: [
            (h["type"], h["id_from"], h["id_to"])
            for h in api("GET", f"/ticket_history/{ticket}").json()["history"]
            if h["type"] in ("merged_into", "received_merge")
        ]
        for ticket in (1, 2)
    }
    assert rows == {1: [("merged_into", 1, 2)], 2: [("received_merge", 1, 2)]}


def test_a_link_between_the_two_tickets_is_dropped_not_moved(
    api: Client, sandbox: ZammadSandbox
) -> None:
    sandbox.link(2, 1, "normal")
    _merge(api, 1, sandbox.ticket(2)["number"])
    assert sandbox.links_of(2) == [
        {"link_type": "child", "link_object": "Ticket", "link_object_value": 1}
    ]


def test_unknown_tickets_answer_200_failed(api: Client, sandbox: ZammadSandbox) -> None:
    assert _merge(api, 1, "999999") == {
        "result": "failed",
        "message": "The target ticket number could not be found.",
    }
    assert _merge(api, 99999, sandbox.ticket(2)["number"]) == {
        "result": "failed",
        "message": "The source ticket could not be found.",
    }
    assert sandbox.ticket(1)["state"] != "merged"


def test_into_itself_or_into_a_merged_ticket_is_422(api: Client, sandbox: ZammadSandbox) -> None:
    number_of_1 = sandbox.ticket(1)["number"]
    itself = api("PUT", f"/ticket_merge/1/{number_of_1}")
    assert itself.status_code == 422
    assert itself.json()["error"] == "A ticket cannot be merged into itself."
    _merge(api, 1, sandbox.ticket(2)["number"])
    into_merged = api("PUT", f"/ticket_merge/3/{number_of_1}")
    assert into_merged.status_code == 422
    assert into_merged.json()["error"] == (
        "It is not possible to merge into an already merged ticket."
    )
