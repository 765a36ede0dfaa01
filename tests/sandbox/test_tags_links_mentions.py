"""Tags, links and mentions: idempotence, the bumps, and the direction quirks."""

from __future__ import annotations

from datetime import timedelta

from escalations.clock import FakeClock
from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client

TAG = {"object": "Ticket", "o_id": 1}


def _tick(clock: FakeClock) -> None:
    clock.advance(timedelta(seconds=1))


def test_tag_add_is_201_true_and_idempotent(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    _tick(clock)
    response = api("POST", "/tags/add", json={**TAG, "item": "escalation"})
    assert (response.status_code, response.json()) == (201, True)
    bumped = sandbox.ticket(1)["updated_at"]
    assert bumped == "2026-12-01T09:00:01.000Z"
    _tick(clock)
    again = api("POST", "/tags/add", json={**TAG, "item": "escalation"})
    assert (again.status_code, again.json()) == (201, True)
    assert sandbox.ticket(1)["updated_at"] == bumped  # a duplicate add does not touch
    api("POST", "/tags/add", json={**TAG, "item": "escalation-l1"})
    assert api("GET", "/tags", params=TAG).json() == {"tags": ["escalation", "escalation-l1"]}


def test_tag_remove_always_bumps(api: Client, sandbox: ZammadSandbox, clock: FakeClock) -> None:
    _tick(clock)
    response = api("DELETE", "/tags/remove", json={**TAG, "item": "never-there"})
    assert (response.status_code, response.json()) == (200, True)
    assert sandbox.ticket(1)["updated_at"] == "2026-12-01T09:00:01.000Z"
    assert "never-there" in sandbox.state.db.tag_items  # the tag item is created
    sandbox.add_tag(1, "escalate")
    by_query = api("DELETE", "/tags/remove", params={**TAG, "item": "escalate"})
    assert by_query.status_code == 200
    assert sandbox.tags_of(1) == []


def test_tag_search_is_a_substring_match_on_the_catalogue(
    api: Client, sandbox: ZammadSandbox
) -> None:
    sandbox.create_tag_item("De-Escalation")
    sandbox.create_tag_item("escalation-extra")
    found = api("GET", "/tag_search", params={"term": "ESCALATION-L"}).json()
    assert [t["value"] for t in found] == [f"escalation-l{n}" for n in range(1, 5)]
    assert all(isinstance(t["id"], int) for t in found)
    ten = api("GET", "/tag_search", params={"term": "escalat"}).json()
    assert len(ten) == 10  # Zammad's default limit
    assert ten[0]["value"] == "De-Escalation"  # ordered by name
    more = api("GET", "/tag_search", params={"term": "escalat", "limit": 50}).json()
    assert len(more) == 12  # the demo's ten, plus two
    assert api("GET", "/tag_search", params={"term": "no-such-tag"}).json() == []


def test_tags_case_sensitive_and_new_tag_policy(api: Client, sandbox: ZammadSandbox) -> None:
    api("POST", "/tags/add", json={**TAG, "item": "Escalation"})
    assert sandbox.tags_of(1) == ["Escalation"]
    sandbox.set_setting("tag_new", False)
    assert api("POST", "/tags/add", json={**TAG, "item": "made-up"}).status_code == 403
    assert api("POST", "/tags/add", json={**TAG, "item": "legal-hold"}).status_code == 201


def test_tags_need_change_access(sandbox: ZammadSandbox, api: Client) -> None:
    token = sandbox.issue_token("duty.manager@fused.example")  # read only on Support
    response = api("POST", "/tags/add", json={**TAG, "item": "x"}, token=token)
    assert response.status_code == 403


def test_link_add_source_by_number_target_by_id(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    _tick(clock)
    number_of_4 = sandbox.ticket(4)["number"]
    body = {
        "link_type": "child",
        "link_object_source": "Ticket",
        "link_object_source_number": number_of_4,
        "link_object_target": "Ticket",
        "link_object_target_value": 1,
    }
    response = api("POST", "/links/add", json=body)
    assert response.status_code == 201
    row = response.json()
    assert row["id"] is not None
    assert (row["link_object_source_value"], row["link_object_target_value"]) == (4, 1)
    # both tickets bumped
    assert (
        sandbox.ticket(1)["updated_at"]
        == sandbox.ticket(4)["updated_at"]
        == "2026-12-01T09:00:01.000Z"
    )
    # types from the queried ticket's point of view: 4 is a child of 1
    links_of_1 = api(
        "GET", "/links", params={"link_object": "Ticket", "link_object_value": 1}
    ).json()
    assert links_of_1["links"] == [
        {"link_type": "child", "link_object": "Ticket", "link_object_value": 4}
    ]
    assert "4" in links_of_1["assets"]["Ticket"]
    links_of_4 = api(
        "GET", "/links", params={"link_object": "Ticket", "link_object_value": 4}
    ).json()
    assert links_of_4["links"] == [
        {"link_type": "parent", "link_object": "Ticket", "link_object_value": 1}
    ]
    duplicate = api("POST", "/links/add", json=body)
    assert duplicate.status_code == 201
    assert duplicate.json()["id"] is None
    assert len(sandbox.links_of(1)) == 1


def test_link_add_unknown_number_is_404(api: Client) -> None:
    body = {
        "link_type": "normal",
        "link_object_source": "Ticket",
        "link_object_source_number": "99999",
        "link_object_target": "Ticket",
        "link_object_target_value": 1,
    }
    response = api("POST", "/links/add", json=body)
    assert response.status_code == 404
    # an ID where the number belongs is looked up as a number: not found either
    assert (
        api("POST", "/links/add", json={**body, "link_object_source_number": 4}).status_code == 404
    )


def test_link_remove_wants_source_id_number_silently_removes_nothing(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    sandbox.link(4, 1, "child")
    _tick(clock)
    before = sandbox.ticket(1)["updated_at"]
    wrong = {
        "link_type": "child",
        "link_object_source": "Ticket",
        "link_object_source_value": int(sandbox.ticket(4)["number"]),
        "link_object_target": "Ticket",
        "link_object_target_value": 1,
    }
    response = api("DELETE", "/links/remove", json=wrong)
    assert response.status_code == 201
    assert response.json() == []
    assert len(sandbox.links_of(1)) == 1
    assert sandbox.ticket(1)["updated_at"] == before
    right = {**wrong, "link_object_source_value": 4}
    assert api("DELETE", "/links/remove", json=right).status_code == 201
    assert sandbox.links_of(1) == []
    assert sandbox.links_of(4) == []
    assert sandbox.ticket(1)["updated_at"] > before
    assert sandbox.ticket(4)["updated_at"] > before


def test_link_remove_from_the_other_side(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.link(4, 1, "child")  # stored as 4 --child--> 1
    reverse = {
        "link_type": "parent",
        "link_object_source": "Ticket",
        "link_object_source_value": 1,
        "link_object_target": "Ticket",
        "link_object_target_value": 4,
    }
    removed = api("DELETE", "/links/remove", json=reverse).json()
    assert [r["link_object_source_value"] for r in removed] == [4]
    assert sandbox.links_of(1) == []


def test_misspelled_link_type_created_silently(api: Client, sandbox: ZammadSandbox) -> None:
    body = {
        "link_type": "Parent",
        "link_object_source": "Ticket",
        "link_object_source_number": sandbox.ticket(4)["number"],
        "link_object_target": "Ticket",
        "link_object_target_value": 1,
    }
    assert api("POST", "/links/add", json=body).status_code == 201
    assert sandbox.links_of(1) == [
        {"link_type": "Parent", "link_object": "Ticket", "link_object_value": 4}
    ]
    assert sandbox.links_of(4) == [
        {"link_type": None, "link_object": "Ticket", "link_object_value": 1}
    ]


def test_mentions_subscribe_the_caller_only(
    api: Client, admin_api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    _tick(clock)
    body = {"mentionable_type": "Ticket", "mentionable_id": 1}
    response = api("POST", "/mentions", json=body)
    assert (response.status_code, response.json()) == (201, True)
    assert sandbox.subscribers_of(1) == [sandbox.user_id("escalation-bot")]
    assert sandbox.ticket(1)["updated_at"] == "2026-12-01T09:00:01.000Z"
    _tick(clock)
    api("POST", "/mentions", json=body)  # already subscribed: no new row, no bump
    assert sandbox.ticket(1)["updated_at"] == "2026-12-01T09:00:01.000Z"
    listed = api(
        "GET", "/mentions", params={"mentionable_type": "Ticket", "mentionable_id": 1}
    ).json()
    assert [m["user_id"] for m in listed["mentions"]] == [sandbox.user_id("escalation-bot")]
    # subscribing somebody else needs From, which needs admin.user
    assert (
        api("POST", "/mentions", json=body, headers={"From": "bob.agent@fused.example"}).status_code
        == 403
    )
    assert (
        admin_api(
            "POST", "/mentions", json=body, headers={"From": "bob.agent@fused.example"}
        ).status_code
        == 201
    )
    assert sandbox.user_id("bob.agent@fused.example") in sandbox.subscribers_of(1)
    # a user without agent read access cannot be subscribed
    lloyd = admin_api("POST", "/mentions", json=body, headers={"From": "lloyd.foley@jt.example"})
    assert lloyd.status_code == 403


def test_change_without_create_cannot_add_article(sandbox: ZammadSandbox, api: Client) -> None:
    sandbox.add_user("changer@fused.example", groups={"Support": ["read", "change"]})
    token = sandbox.issue_token("changer@fused.example")
    article = api("POST", "/ticket_articles", json={"ticket_id": 1, "body": "x"}, token=token)
    assert article.status_code == 403
    tag = api("POST", "/tags/add", json={**TAG, "item": "escalate"}, token=token)
    assert tag.status_code == 201
