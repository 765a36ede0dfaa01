"""Authentication, token permission subsets, impersonation and error bodies."""

from __future__ import annotations

import re

from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client


def test_no_credentials_is_403_authentication_required(api: Client) -> None:
    response = api("GET", "/users/me", token=None)
    assert response.status_code == 403
    assert response.json() == {"error": "Authentication required"}


def test_unknown_token_is_401(api: Client) -> None:
    response = api("GET", "/users/me", token="nope")
    assert response.status_code == 401
    assert response.json() == {
        "error": "Can't find User for Token",
        "error_human": "Can't find User for Token",
    }


def test_bearer_form_accepted(api: Client) -> None:
    response = api(
        "GET", "/users/me", token=None, headers={"Authorization": "Bearer sandbox-bot-token"}
    )
    assert response.status_code == 200
    assert response.json()["login"] == "escalation-bot"


def test_users_me_expand_has_roles_and_group_names(api: Client) -> None:
    me = api("GET", "/users/me", params={"expand": "true"}).json()
    assert me["roles"] == ["Agent"]
    assert me["groups"]["Escalations"] == ["read", "create", "change"]
    assert set(me["group_ids"]) == {"1", "2"}


def test_object_manager_needs_admin_object(api: Client, admin_api: Client) -> None:
    assert api("GET", "/object_manager_attributes").status_code == 403
    attrs = admin_api("GET", "/object_manager_attributes").json()
    level = next(a for a in attrs if a["name"] == "escalation_level")
    assert level["data_type"] == "select"
    assert set(level["data_option"]["options"]) == {"1", "2", "3", "4"}


def test_token_subset_is_respected(sandbox: ZammadSandbox, api: Client) -> None:
    token = sandbox.issue_token("admin@fused.example", ["admin.object"])
    assert api("GET", "/object_manager_attributes", token=token).status_code == 200
    assert api("GET", "/tickets/1", token=token).status_code == 403


def test_tokens_are_random_unless_seeded(sandbox: ZammadSandbox) -> None:
    first = sandbox.issue_token("alice.agent@fused.example")
    second = sandbox.issue_token("alice.agent@fused.example")
    assert first != second
    assert len(first) >= 32
    assert sandbox.token_of("escalation-bot") == "sandbox-bot-token"


def test_from_header_needs_admin_user(api: Client, admin_api: Client) -> None:
    denied = api("GET", "/users/me", headers={"From": "alice.agent@fused.example"})
    assert denied.status_code == 403
    assert "no permission to use 'From'" in denied.json()["error"]
    me = admin_api("GET", "/users/me", headers={"From": "alice.agent@fused.example"}).json()
    assert me["login"] == "alice.agent@fused.example"
    unknown = admin_api("GET", "/users/me", headers={"From": "nobody@x.example"})
    assert unknown.status_code == 403
    assert unknown.json()["error"] == "No such user 'nobody@x.example'"


def test_unknown_route_is_rails_404(api: Client) -> None:
    response = api("GET", "/nothing/here")
    assert response.status_code == 404
    assert response.json()["error"] == "No route matches [GET] /api/v1/nothing/here"
    assert api("PATCH", "/tickets/1", json={}).status_code == 404


def test_missing_ticket_404_body(api: Client) -> None:
    response = api("GET", "/tickets/9999")
    assert response.status_code == 404
    assert response.json() == {
        "error": "Couldn't find Ticket with 'id'=9999",
        "error_human": "Couldn't find Ticket with 'id'=9999",
    }


def test_non_admin_gets_opaque_error_id_admin_gets_detail(api: Client, admin_api: Client) -> None:
    body = {"condition": {}, "sort_by": "nonsense", "order_by": "asc"}
    opaque = api("POST", "/tickets/search", json=body)
    assert opaque.status_code == 500
    assert re.fullmatch(
        r"Error ID \S+: Please contact your administrator\.", opaque.json()["error"]
    )
    assert "error_human" not in opaque.json()
    detail = admin_api("POST", "/tickets/search", json=body)
    assert detail.json() == {"error": "Found invalid column 'nonsense' for sorting."}


def test_user_search_and_show(api: Client) -> None:
    found = api("GET", "/users/search", params={"query": "duty.manager@fused.example"}).json()
    assert [u["login"] for u in found] == ["duty.manager@fused.example"]
    owners = api(
        "GET",
        "/users/search",
        params={"query": "jt.example", "permissions[]": "ticket.agent", "group_ids[2]": "full"},
    ).json()
    assert {u["login"] for u in owners} == {"lloyd.foley@jt.example", "sara.mccarthy@jt.example"}
    assert all(u["id"] != 1 for u in api("GET", "/users/search", params={"query": "-"}).json())
    user = api("GET", f"/users/{found[0]['id']}").json()
    assert (user["firstname"], user["lastname"]) == ("Jane", "Doe")
    assert api("GET", "/users/999").status_code == 404


def test_groups_and_states(api: Client) -> None:
    groups = api("GET", "/groups").json()
    assert [g["name"] for g in groups] == ["Support", "Escalations"]
    states = api("GET", "/ticket_states", params={"expand": "true"}).json()
    by_name = {s["name"]: s for s in states}
    assert by_name["parked"]["state_type"] == "pending reminder"
    assert by_name["pending close"]["state_type"] == "pending action"
    assert by_name["pending close"]["next_state"] == "closed"
    assert by_name["new"]["default_create"] is True
