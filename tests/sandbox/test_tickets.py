"""Ticket create (atomic), update, show: Zammad 6.5's rules and quirks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from escalations.clock import FakeClock
from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client, new_ticket_payload


def test_create_returns_201_with_article_ids_and_string_number(
    api: Client, sandbox: ZammadSandbox
) -> None:
    response = api("POST", "/tickets", json=new_ticket_payload())
    assert response.status_code == 201
    body = response.json()
    assert body["number"] == "31005"
    assert isinstance(body["number"], str)
    assert len(body["article_ids"]) == 1
    assert body["ticket_time_accounting_ids"] == []
    assert body["state_id"] == sandbox.state_id("new")
    assert body["priority_id"] == 2
    assert body["owner_id"] == 1
    assert body["created_at"] == "2026-12-01T09:00:00.000Z"
    assert "group" not in body  # names only with expand=true


def test_create_with_everything_in_one_request(api: Client, sandbox: ZammadSandbox) -> None:
    jane = sandbox.user_id("duty.manager@fused.example")
    lloyd = sandbox.user_id("lloyd.foley@jt.example")
    payload = new_ticket_payload(
        owner="duty.manager@fused.example",
        state="open",
        escalation_level="2",
        escalation_key="esc-41",
        tags="escalation, escalation-l2",
        mentions=[lloyd],
        links={"Ticket": {"child": [4]}},
    )
    ticket = api("POST", "/tickets", json=payload, params={"expand": "true"}).json()
    assert ticket["owner"] == "duty.manager@fused.example"
    assert ticket["owner_id"] == jane
    assert ticket["group"] == "Escalations"
    assert ticket["customer"] == "escalations-internal@example.invalid"
    assert ticket["escalation_level"] == "2"
    assert ticket["escalation_key"] == "esc-41"
    assert sandbox.tags_of(ticket["id"]) == ["escalation", "escalation-l2"]
    assert sandbox.subscribers_of(ticket["id"]) == [lloyd]
    # the new ticket is the child of ticket 4
    assert sandbox.links_of(ticket["id"]) == [
        {"link_type": "parent", "link_object": "Ticket", "link_object_value": 4}
    ]
    assert sandbox.links_of(4) == [
        {"link_type": "child", "link_object": "Ticket", "link_object_value": ticket["id"]}
    ]


def test_create_links_bump_the_original(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    before = sandbox.ticket(4)["updated_at"]
    clock.advance(timedelta(seconds=5))
    api("POST", "/tickets", json=new_ticket_payload(links={"Ticket": {"child": [4]}}))
    assert sandbox.ticket(4)["updated_at"] > before


def test_create_without_group_is_403(api: Client, sandbox: ZammadSandbox) -> None:
    payload = new_ticket_payload()
    del payload["group"]
    response = api("POST", "/tickets", json=payload)
    assert response.status_code == 403
    assert response.json()["error"] == "The required value 'group_id' is missing."
    assert len(sandbox.tickets) == 4


def test_create_unknown_group_name_is_422(api: Client) -> None:
    response = api("POST", "/tickets", json=new_ticket_payload(group="Sales"))
    assert response.status_code == 422
    assert response.json()["error"] == "No lookup value found for 'group': \"Sales\""


def test_create_unknown_group_id_is_500(api: Client) -> None:
    payload = new_ticket_payload(group_id=999)
    del payload["group"]
    assert api("POST", "/tickets", json=payload).status_code == 500


def test_create_ineligible_owner_is_422(api: Client, admin_api: Client) -> None:
    # Jane has only read on Support; the owner needs full access
    payload = new_ticket_payload(group="Support", owner="duty.manager@fused.example")
    response = api("POST", "/tickets", json=payload)
    assert response.status_code == 422
    assert response.json()["error"].startswith("Error ID ")
    detail = admin_api("POST", "/tickets", json=payload).json()
    assert detail["error"].startswith("Invalid value '")
    assert "'owner_id'" in detail["error"]


def test_mention_without_access_rolls_back_whole_create(
    api: Client, sandbox: ZammadSandbox
) -> None:
    customer = sandbox.user_id("sean.walsh@residential.example")
    tags_before = dict(sandbox.state.db.tag_items)
    payload = new_ticket_payload(
        customer_id="guess:new.person@elsewhere.example",
        tags="brand-new-tag",
        mentions=[customer],
        links={"Ticket": {"child": [1]}},
    )
    before = sandbox.ticket(1)["updated_at"]
    response = api("POST", "/tickets", json=payload)
    assert response.status_code == 422
    assert response.json()["error"] == "A mentioned user has no agent access to this ticket"
    assert len(sandbox.tickets) == 4
    assert sandbox.state.db.tag_items == tags_before
    assert sandbox.state.user_by_email("new.person@elsewhere.example") is None
    assert sandbox.ticket(1)["updated_at"] == before
    assert sandbox.links_of(1) == []


def test_bad_article_rolls_back(api: Client, sandbox: ZammadSandbox) -> None:
    articles_before = len(sandbox.state.db.articles)
    payload = new_ticket_payload()
    payload["article"]["attachments"] = [
        {"filename": "a.txt", "mime-type": "text/plain", "data": "not base64!"}
    ]
    response = api("POST", "/tickets", json=payload)
    assert response.status_code == 422
    assert response.json()["error"] == "Invalid base64 for attachment with index '0'"
    assert len(sandbox.tickets) == 4
    assert len(sandbox.state.db.articles) == articles_before


def test_tags_must_be_a_string(api: Client, sandbox: ZammadSandbox) -> None:
    response = api("POST", "/tickets", json=new_ticket_payload(tags=["escalation"]))
    assert response.status_code == 500
    assert len(sandbox.tickets) == 4


def test_new_tags_skipped_silently_when_not_allowed(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.set_setting("tag_new", False)
    ticket = api("POST", "/tickets", json=new_ticket_payload(tags="escalation, invented")).json()
    assert sandbox.tags_of(ticket["id"]) == ["escalation"]


def test_unknown_keys_dropped_silently(api: Client) -> None:
    payload = new_ticket_payload(escalation_levle="2", not_a_column=True)
    ticket = api("POST", "/tickets", json=payload).json()
    assert "escalation_levle" not in ticket
    assert "not_a_column" not in ticket
    assert ticket["escalation_level"] is None


def test_select_value_must_be_an_option_key(api: Client, sandbox: ZammadSandbox) -> None:
    response = api("POST", "/tickets", json=new_ticket_payload(escalation_level="p1"))
    assert response.status_code == 422
    assert len(sandbox.tickets) == 4


def test_guess_customer_created_or_found(api: Client, sandbox: ZammadSandbox) -> None:
    known = api(
        "POST",
        "/tickets",
        json=new_ticket_payload(customer_id="guess:Sean.Walsh@residential.example"),
    ).json()
    assert known["customer_id"] == sandbox.user_id("sean.walsh@residential.example")
    assert known["organization_id"] is not None  # filled in from the customer
    new = api(
        "POST", "/tickets", json=new_ticket_payload(customer_id="guess:fresh@new.example")
    ).json()
    assert new["customer_id"] == sandbox.user_id("fresh@new.example")
    invalid = api("POST", "/tickets", json=new_ticket_payload(customer_id="guess:not-an-email"))
    assert invalid.status_code == 422
    assert invalid.json() == {"error": "Invalid email 'not-an-email' of customer"}


def test_create_needs_create_access_on_group(sandbox: ZammadSandbox, api: Client) -> None:
    token = sandbox.issue_token("duty.manager@fused.example")
    response = api("POST", "/tickets", json=new_ticket_payload(group="Support"), token=token)
    assert response.status_code == 403


def test_pending_state_requires_pending_time(api: Client) -> None:
    assert api("POST", "/tickets", json=new_ticket_payload(state="parked")).status_code == 422
    ticket = api(
        "POST",
        "/tickets",
        json=new_ticket_payload(state="parked", pending_time="2026-12-04T09:00:00Z"),
    ).json()
    assert ticket["pending_time"] == "2026-12-04T09:00:00.000Z"


def test_get_ticket_expand_names(api: Client) -> None:
    plain = api("GET", "/tickets/1").json()
    assert "group" not in plain
    assert plain["group_id"] == 1
    expanded = api("GET", "/tickets/1", params={"expand": "true"}).json()
    assert expanded["group"] == "Support"
    assert expanded["state"] == "open"
    assert expanded["priority"] == "3 high"
    assert expanded["owner"] == "alice.agent@fused.example"
    assert expanded["customer"] == "sean.walsh@residential.example"
    assert expanded["organization"] == "Walsh Household"
    assert expanded["customer_segment"] == "residential"


def test_get_ticket_all(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.add_tag(1, "escalate")
    everything = api("GET", "/tickets/1", params={"all": "true"}).json()
    assert everything["ticket_id"] == 1
    assert everything["tags"] == ["escalate"]
    assert everything["ticket_article_ids"] == [1, 2]


def test_update_partial_and_bumps(api: Client, sandbox: ZammadSandbox, clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=1))
    response = api("PUT", "/tickets/1", json={"escalation_requested": True, "tags": "ignored"})
    assert response.status_code == 200
    body = response.json()
    assert body["escalation_requested"] is True
    assert body["updated_at"] == "2026-12-01T09:01:00.000Z"
    assert body["updated_by_id"] == sandbox.user_id("escalation-bot")
    assert sandbox.tags_of(1) == []
    assert body["title"] == "Broadband down since Monday"


def test_update_with_no_change_does_not_bump(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    before = sandbox.ticket(1)["updated_at"]
    clock.advance(timedelta(minutes=1))
    api("PUT", "/tickets/1", json={"state": "open", "unknown": 1})
    assert sandbox.ticket(1)["updated_at"] == before


def test_update_ineligible_owner_silently_unassigned(api: Client, sandbox: ZammadSandbox) -> None:
    jane = sandbox.user_id("duty.manager@fused.example")
    response = api("PUT", "/tickets/1", json={"owner_id": jane})
    assert response.status_code == 200
    assert response.json()["owner_id"] == 1


def test_update_ineligible_owner_on_closed_ticket_is_422(
    api: Client, sandbox: ZammadSandbox
) -> None:
    jane = sandbox.user_id("duty.manager@fused.example")
    response = api("PUT", "/tickets/1", json={"owner_id": jane, "state": "closed"})
    assert response.status_code == 422


def test_group_change_resets_owner_without_full_access(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.agent_update(1, "alice.agent@fused.example", owner="bob.agent@fused.example")
    sandbox.add_user("carol@fused.example", groups={"Support": ["full"]})
    sandbox.agent_update(1, "alice.agent@fused.example", owner="carol@fused.example")
    moved = api("PUT", "/tickets/1", json={"group": "Escalations"}, params={"expand": "true"})
    assert moved.json()["owner_id"] == 1


def test_pending_time_rules_on_update(api: Client) -> None:
    assert api("PUT", "/tickets/1", json={"state": "parked"}).status_code == 422
    parked = api(
        "PUT", "/tickets/1", json={"state": "parked", "pending_time": "2026-12-04T09:00:00Z"}
    ).json()
    assert parked["pending_time"] == "2026-12-04T09:00:00.000Z"
    reopened = api("PUT", "/tickets/1", json={"state": "open"}).json()
    assert reopened["pending_time"] is None


def test_update_with_article_is_atomic(api: Client, sandbox: ZammadSandbox) -> None:
    payload = {
        "state": "closed",
        "article": {"type": "email", "body": "x", "to": "a@b.example, c@d.example"},
    }
    assert api("PUT", "/tickets/1", json=payload).status_code == 422
    assert sandbox.ticket(1)["state"] == "open"
    assert len(sandbox.articles_of(1)) == 2


def test_update_with_an_internal_note(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    """§3.4: the article of a PUT is created with the update (``ticket.with_lock``): its
    fields as sent, sender Agent by default for an agent, the answer's ``article_ids``
    holding it, and the history showing the attribute change and the article's creation."""
    clock.advance(timedelta(minutes=1))
    sandbox.agent_update(1, "alice.agent@fused.example", escalation_requested=True)
    clock.advance(timedelta(minutes=1))
    before = [a["id"] for a in sandbox.articles_of(1)]
    payload = {
        "escalation_requested": False,
        "article": {
            "type": "note",
            "internal": True,
            "content_type": "text/html",
            "subject": "Escalated",
            "body": "<p>Escalated as #53004</p>",
        },
    }
    response = api("PUT", "/tickets/1", json=payload, params={"expand": "true"})
    assert response.status_code == 200
    body = response.json()
    assert body["escalation_requested"] is False
    (note,) = [a for a in sandbox.articles_of(1) if a["id"] not in before]
    assert body["article_ids"] == [*before, note["id"]]
    assert (note["type"], note["sender"], note["internal"]) == ("note", "Agent", True)
    assert (note["subject"], note["content_type"]) == ("Escalated", "text/html")
    assert note["body"] == "<p>Escalated as #53004</p>"
    assert note["created_by_id"] == sandbox.user_id("escalation-bot")
    assert body["updated_at"] == "2026-12-01T09:02:00.000Z"
    history = api("GET", "/ticket_history/1").json()["history"]
    latest = [h for h in history if h["created_at"] == "2026-12-01T09:02:00.000Z"]
    assert {(h["object"], h["type"], h.get("attribute")) for h in latest} >= {
        ("Ticket", "updated", "escalation_requested"),
        ("Ticket::Article", "created", None),
    }


def test_an_article_on_update_defaults_to_public(api: Client, sandbox: ZammadSandbox) -> None:
    """§0.3 holds for the article of an update too: ``internal`` defaults to false."""
    api("PUT", "/tickets/1", json={"article": {"body": "visible"}})
    last = sandbox.articles_of(1)[-1]
    assert (last["body"], last["internal"], last["type"]) == ("visible", False, "note")


def test_merged_state_not_allowed(api: Client) -> None:
    assert api("PUT", "/tickets/1", json={"state": "merged"}).status_code == 422


def test_unreadable_ticket_is_403(sandbox: ZammadSandbox, api: Client) -> None:
    token = sandbox.issue_token("lloyd.foley@jt.example")
    response = api("GET", "/tickets/1", token=token)
    assert response.status_code == 403
    assert response.json()["error"] == "Not authorized"


def test_tickets_index_caps_at_100(api: Client) -> None:
    listed = api("GET", "/tickets", params={"per_page": 500}).json()
    assert [t["id"] for t in listed] == [1, 2, 3, 4]


@pytest.mark.parametrize("field", ["escalation_callback_at"])
def test_datetime_attribute_normalised(api: Client, field: str) -> None:
    body = api("PUT", "/tickets/1", json={field: "2026-12-01T11:30:00+01:00"}).json()
    assert body[field] == "2026-12-01T10:30:00.000Z"


def test_close_and_customer_change(api: Client, sandbox: ZammadSandbox, clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=2))
    closed = api("PUT", "/tickets/1", json={"state": "closed"}, params={"expand": "true"}).json()
    assert closed["state"] == "closed"
    assert closed["close_at"] == "2026-12-01T09:02:00.000Z"
    moved = api(
        "PUT",
        "/tickets/1",
        json={"customer": "orla.byrne@netreseller.example"},
        params={"expand": "true"},
    ).json()
    assert moved["customer"] == "orla.byrne@netreseller.example"
    assert moved["organization"] == "NetReseller Ltd"
    assert api("PUT", "/tickets/1", json={"customer_id": "guess:x@y.example"}).status_code == 422
