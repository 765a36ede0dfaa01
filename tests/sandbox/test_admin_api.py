"""The sandbox's admin API (``sandbox/admin.py``, ``object_manager.py``, ``perform.py``,
``webhooks.py``): status codes and bodies as ``reference/zammad-api.md`` §2, §6, §8–11 give
them, staged attributes, macro application, and triggers calling a webhook over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connector.http import HttpClient, HttpPolicy
from escalations.clock import FakeClock
from sandbox import ZammadSandbox, serve
from tests.sandbox.conftest import ADMIN, Client

NOT_AUTHORIZED = {"error": "Not authorized", "error_human": "Not authorized"}
SECRET = "s3cret-signing-token"


def human(message: str) -> dict[str, str]:
    return {"error": message, "error_human": message}


def select_attribute(name: str = "escalation_channel", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "Ticket",
        "name": name,
        "display": "Escalation channel",
        "data_type": "select",
        "data_option": {"options": {"phone": "Phone", "mail": "Mail"}, "default": "", "null": True},
        "screens": {"edit": {"ticket.agent": {"shown": True, "required": False}}},
        "position": 1700,
        "active": True,
    }
    body.update(overrides)
    return body


def macro(name: str = "Escalate: phone", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "perform": {
            "ticket.customer_segment": {"value": "enterprise"},
            "ticket.state_id": {"value": "2"},
            "ticket.tags": {"operator": "add", "value": "escalation, escalation-l1"},
            "article.note": {
                "subject": "Escalated",
                "body": "<p>Escalated #{ticket.number}</p>",
                "internal": "true",
            },
        },
        "ux_flow_next_up": "none",
        "active": True,
        "note": "managed by test",
    }
    body.update(overrides)
    return body


# -- permissions --------------------------------------------------------------------------------

ADMIN_WRITES = [
    ("POST", "/object_manager_attributes", select_attribute()),
    ("PUT", "/object_manager_attributes/13", select_attribute("escalation_level")),
    ("POST", "/object_manager_attributes_execute_migrations", {}),
    ("POST", "/object_manager_attributes_discard_changes", {}),
    ("POST", "/ticket_states", {"name": "x", "state_type": "open"}),
    ("PUT", "/ticket_states/7", {"note": "x"}),
    ("POST", "/groups", {"name": "Other"}),
    ("PUT", "/groups/2", {"note": "x"}),
    ("POST", "/tag_list", {"name": "new-tag"}),
    ("PUT", "/tag_list/1", {"name": "renamed"}),
    ("POST", "/users", {"email": "new@customer.example"}),
    ("POST", "/macros", macro()),
    ("POST", "/overviews", {"name": "o", "role_ids": [2], "condition": {}}),
    ("POST", "/triggers", {"name": "t", "condition": {}, "perform": {}}),
    ("POST", "/webhooks", {"name": "w", "endpoint": "https://hook.example/x"}),
    ("POST", "/text_modules", {"name": "t", "content": "<p>x</p>"}),
]
ADMIN_READS = [
    "/object_manager_attributes",
    "/object_manager_attributes/13",
    "/overviews",
    "/triggers",
    "/webhooks",
    "/tag_list",
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_WRITES)
def test_bot_may_not_write(api: Client, method: str, path: str, body: dict[str, Any]) -> None:
    response = api(method, path, json=body)
    assert response.status_code == 403
    assert response.json() == NOT_AUTHORIZED


@pytest.mark.parametrize("path", ADMIN_READS)
def test_bot_may_not_read_admin_lists(api: Client, admin_api: Client, path: str) -> None:
    assert api("GET", path).status_code == 403
    assert admin_api("GET", path).status_code == 200


@pytest.mark.parametrize(
    "path", ["/macros", "/text_modules", "/roles", "/ticket_states", "/groups"]
)
def test_agents_read_what_zammad_lets_them(api: Client, path: str) -> None:
    response = api("GET", path)
    assert response.status_code == 200
    assert isinstance(response.json(), list)


def test_agents_see_macros_of_their_groups_only(
    sandbox: ZammadSandbox, api: Client, admin_api: Client
) -> None:
    other = sandbox.add_group("Other")
    admin_api("POST", "/macros", json=macro("everywhere"))
    admin_api("POST", "/macros", json=macro("elsewhere", group_ids=[other]))
    assert [m["name"] for m in api("GET", "/macros").json()] == ["everywhere"]
    assert len(admin_api("GET", "/macros").json()) == 2


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/macros/999", "Macro"),
        ("/overviews/999", "Overview"),
        ("/triggers/999", "Trigger"),
        ("/webhooks/999", "Webhook"),
        ("/text_modules/999", "TextModule"),
        ("/object_manager_attributes/999", "ObjectManager::Attribute"),
        ("/ticket_states/999", "Ticket::State"),
        ("/groups/999", "Group"),
    ],
)
def test_unknown_id_is_404(admin_api: Client, path: str, model: str) -> None:
    response = admin_api("GET", path)
    assert response.status_code == 404
    assert response.json() == human(f"Couldn't find {model} with 'id'=999")


def test_put_unknown_id_is_404(admin_api: Client) -> None:
    assert admin_api("PUT", "/macros/999", json=macro()).status_code == 404
    assert admin_api("PUT", "/ticket_states/999", json={"note": "x"}).status_code == 404
    assert admin_api("PUT", "/tag_list/999", json={"name": "x"}).status_code == 404


# -- duplicates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "first", "second"),
    [
        ("/macros", macro("Escalate"), macro("escalate")),
        (
            "/triggers",
            {"name": "Notify", "condition": {}, "perform": {}},
            {"name": "NOTIFY", "condition": {}, "perform": {}},
        ),
        (
            "/webhooks",
            {"name": "hook", "endpoint": "https://a.example/x"},
            {"name": "Hook", "endpoint": "https://b.example/y"},
        ),
        ("/ticket_states", None, {"name": "Parked", "state_type": "pending reminder"}),
        ("/groups", None, {"name": "escalations"}),
    ],
)
def test_duplicate_name_is_422(
    admin_api: Client, path: str, first: dict[str, Any] | None, second: dict[str, Any]
) -> None:
    if first is not None:
        assert admin_api("POST", path, json=first).status_code == 201
    response = admin_api("POST", path, json=second)
    assert response.status_code == 422
    assert response.json() == human("Name has already been taken")


def test_duplicate_attribute_is_object_already_exists(admin_api: Client) -> None:
    response = admin_api(
        "POST", "/object_manager_attributes", json=select_attribute("Escalation_Level")
    )
    assert response.status_code == 422
    assert response.json() == human("Object already exists!")


def test_text_module_names_are_not_unique(admin_api: Client) -> None:
    for _ in range(2):
        assert (
            admin_api("POST", "/text_modules", json={"name": "t", "content": "x"}).status_code
            == 201
        )


# -- object manager -----------------------------------------------------------------------------


def test_staged_attribute_is_no_column_until_migrations(
    sandbox: ZammadSandbox, api: Client, admin_api: Client
) -> None:
    created = admin_api("POST", "/object_manager_attributes", json=select_attribute())
    assert created.status_code == 201
    attr = created.json()
    assert (attr["to_create"], attr["to_migrate"], attr["to_config"]) == (True, True, False)
    assert attr["data_option"]["relation"] == ""  # the controller fills data_option in
    assert attr["data_option"]["nulloption"] is True
    assert attr["data_option"]["maxlength"] == 255

    written = api("PUT", "/tickets/1", json={"escalation_channel": "phone", "title": "Renamed"})
    assert written.status_code == 200
    assert "escalation_channel" not in written.json()  # dropped silently
    assert written.json()["title"] == "Renamed"
    assert "escalation_channel" not in sandbox.ticket(1)

    assert admin_api("POST", "/object_manager_attributes_execute_migrations").json() == {}
    migrated = admin_api("GET", f"/object_manager_attributes/{attr['id']}").json()
    assert not any(migrated[f] for f in ("to_create", "to_migrate", "to_config", "to_delete"))
    assert migrated["data_option"]["historical_options"] == {"phone": "Phone", "mail": "Mail"}
    assert sandbox.ticket(2)["escalation_channel"] is None

    assert (
        api("PUT", "/tickets/1", json={"escalation_channel": "phone"}).json()["escalation_channel"]
        == "phone"
    )
    bad = api("PUT", "/tickets/1", json={"escalation_channel": "fax"})
    assert bad.status_code == 422  # a select takes option keys (opaque for the bot)
    assert bad.json()["error"].startswith("Error ID ")


def test_put_finds_the_attribute_by_body_and_stages_options(api: Client, admin_api: Client) -> None:
    admin_api("POST", "/object_manager_attributes", json=select_attribute())
    admin_api("POST", "/object_manager_attributes_execute_migrations")
    more = select_attribute(display="Channel")
    more["data_option"] = {
        "options": {"phone": "Phone", "mail": "Mail", "chat": "Chat"},
        "default": "",
    }
    updated = admin_api("PUT", "/object_manager_attributes/99999", json=more)  # URL id unread
    assert updated.status_code == 200
    body = updated.json()
    assert body["display"] == "Channel"  # at once
    assert body["to_config"] is True
    assert set(body["data_option"]["options"]) == {"phone", "mail"}  # staged
    assert set(body["data_option_new"]["options"]) == {"phone", "mail", "chat"}
    assert api("PUT", "/tickets/1", json={"escalation_channel": "chat"}).status_code == 422

    admin_api("POST", "/object_manager_attributes_execute_migrations")
    assert api("PUT", "/tickets/1", json={"escalation_channel": "chat"}).status_code == 200

    missing = admin_api("PUT", "/object_manager_attributes/1", json=select_attribute("nowhere"))
    assert missing.status_code == 422
    assert missing.json() == human("does not exist")


def test_data_type_changes_only_within_the_text_and_select_kinds(admin_api: Client) -> None:
    admin_api("POST", "/object_manager_attributes", json=select_attribute())
    to_boolean = select_attribute(
        data_type="boolean", data_option={"options": {"true": "y", "false": "n"}, "default": False}
    )
    refused = admin_api("PUT", "/object_manager_attributes/1", json=to_boolean)
    assert refused.status_code == 422
    assert refused.json()["error"].startswith("Data type can't be altered after creation")
    to_input = select_attribute(data_type="input", data_option={"type": "text", "maxlength": 40})
    assert admin_api("PUT", "/object_manager_attributes/1", json=to_input).status_code == 200


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("escalation_source_id", "Name can't get used because *_id and *_ids are not allowed"),
        ("has space", "Name spaces are not allowed"),
        ("1234", "Name At least one letters is needed"),
        ("destroy", "Name destroy is a reserved word"),
        ("article", "Name article is a reserved word"),
        ("note", "Name note already exists!"),
    ],
)
def test_attribute_name_rules(admin_api: Client, name: str, message: str) -> None:
    response = admin_api("POST", "/object_manager_attributes", json=select_attribute(name))
    assert response.status_code == 422
    assert response.json() == human(message)


def test_attribute_names_are_lowercased(admin_api: Client) -> None:
    created = admin_api(
        "POST", "/object_manager_attributes", json=select_attribute("Escalation_Channel")
    )
    assert created.json()["name"] == "escalation_channel"


def test_data_option_is_validated(admin_api: Client) -> None:
    body = select_attribute(
        "escalation_at", data_type="datetime", data_option={"past": True, "diff": None}
    )
    response = admin_api("POST", "/object_manager_attributes", json=body)
    assert response.status_code == 422
    assert response.json() == human("Data option must have boolean value for :future")
    no_type = select_attribute("escalation_note", data_type="input", data_option={"maxlength": 9})
    assert admin_api("POST", "/object_manager_attributes", json=no_type).status_code == 422


def test_discard_changes_drops_staged_attributes(admin_api: Client) -> None:
    created = admin_api("POST", "/object_manager_attributes", json=select_attribute()).json()
    assert admin_api("POST", "/object_manager_attributes_discard_changes").json() == {}
    assert admin_api("GET", f"/object_manager_attributes/{created['id']}").status_code == 404


def test_seeded_attributes_are_migrated(admin_api: Client) -> None:
    attrs = admin_api("GET", "/object_manager_attributes").json()
    level = next(a for a in attrs if a["name"] == "escalation_level")
    assert not level["to_create"]
    assert not level["to_config"]
    assert level["data_option"] == {
        "options": {
            "1": "Level 1 - recipient",
            "2": "Level 2 - owner",
            "3": "Level 3 - executive",
            "4": "Level 4 - executive",
        },
        "default": "",
        "nulloption": True,
    }


# -- ticket states, groups, tags, roles, users ----------------------------------------------------


def test_state_created_by_type_name_is_usable(admin_api: Client, api: Client) -> None:
    created = admin_api(
        "POST",
        "/ticket_states",
        json={
            "name": "waiting carrier",
            "state_type": "pending reminder",
            "ignore_escalation": True,
        },
    )
    assert created.status_code == 201
    state = created.json()
    assert state["state_type_id"] == 3
    assert state["ignore_escalation"] is True
    listed = {s["name"]: s for s in api("GET", "/ticket_states", params={"expand": "true"}).json()}
    assert listed["waiting carrier"]["state_type"] == "pending reminder"
    moved = api(
        "PUT",
        "/tickets/1",
        json={"state": "waiting carrier", "pending_time": "2026-12-09T09:00:00Z"},
    )
    assert moved.status_code == 200
    assert moved.json()["state_id"] == state["id"]
    unknown = admin_api("POST", "/ticket_states", json={"name": "x", "state_type": "nope"})
    assert unknown.status_code == 422
    assert unknown.json() == human("No lookup value found for 'state_type': \"nope\"")


def test_default_create_moves(admin_api: Client) -> None:
    created = admin_api(
        "POST",
        "/ticket_states",
        json={"name": "fresh", "state_type": "new", "default_create": True},
    ).json()
    states = {s["name"]: s for s in admin_api("GET", "/ticket_states").json()}
    assert states["fresh"]["default_create"] is True
    assert states["new"]["default_create"] is False
    renamed = admin_api("PUT", f"/ticket_states/{created['id']}", json={"name": "Fresh"})
    assert renamed.status_code == 200
    assert admin_api("PUT", "/ticket_states/5", json={"note": "x"}).status_code == 422  # merged


def test_groups_create_and_update(admin_api: Client, api: Client) -> None:
    created = admin_api("POST", "/groups", json={"name": "Escalations::Carrier", "note": "n"})
    assert created.status_code == 201
    group = created.json()
    assert (group["name_last"], group["parent_id"]) == ("Carrier", 2)
    updated = admin_api("PUT", f"/groups/{group['id']}", json={"active": False})
    assert updated.json()["active"] is False
    assert any(g["name"] == "Escalations::Carrier" for g in api("GET", "/groups").json())


def test_tag_list_create_and_rename_merge(sandbox: ZammadSandbox, admin_api: Client) -> None:
    sandbox.add_tag(1, "escalation")
    sandbox.add_tag(1, "vip-old")
    items = {t["name"]: t for t in admin_api("GET", "/tag_list").json()}
    assert items["escalation"]["count"] == 1
    assert [t["name"] for t in admin_api("GET", "/tag_list").json()] == sorted(items)
    created = admin_api("POST", "/tag_list", json={"name": " escalation-new "})
    assert (created.status_code, created.json()) == (200, {})
    assert "escalation-new" in {t["name"] for t in admin_api("GET", "/tag_list").json()}
    before = sandbox.ticket(1)["updated_at"]
    sandbox.clock.advance(timedelta(seconds=5))  # type: ignore[attr-defined]
    old = items["vip-old"]["id"]
    assert admin_api("PUT", f"/tag_list/{old}", json={"name": "escalation"}).json() == {}
    assert sandbox.tags_of(1) == ["escalation"]
    assert sandbox.ticket(1)["updated_at"] > before
    assert admin_api("POST", "/tag_list", json={"name": "a,b"}).status_code == 422


def test_roles_page_and_expand(api: Client) -> None:
    roles = api("GET", "/roles", params={"expand": "true"}).json()
    assert [r["name"] for r in roles] == ["Admin", "Agent", "Customer"]
    assert "ticket.agent" in roles[1]["permissions"]
    assert api("GET", "/roles", params={"page": 2}).json() == []


def test_users_create_customer_and_search(admin_api: Client, api: Client) -> None:
    created = admin_api(
        "POST",
        "/users",
        json={"login": "Placeholder@Example.invalid", "email": "Placeholder@Example.invalid",
              "firstname": "Escalations", "lastname": "(internal)"},
    )  # fmt: skip
    assert created.status_code == 201
    user = created.json()
    assert user["login"] == user["email"] == "placeholder@example.invalid"
    assert user["role_ids"] == [3]  # Customer
    found = api("GET", "/users/search", params={"query": "placeholder@example.invalid"}).json()
    assert [u["id"] for u in found] == [user["id"]]
    again = admin_api("POST", "/users", json={"email": "placeholder@example.invalid"})
    assert again.status_code == 422
    assert again.json() == human(
        "Email address 'placeholder@example.invalid' is already used for another user."
    )
    bad = admin_api("POST", "/users", json={"email": "not-an-address"})
    assert bad.json() == human("Invalid email 'not-an-address'")


# -- macros -------------------------------------------------------------------------------------


def test_macro_validation(admin_api: Client) -> None:
    flow = admin_api("POST", "/macros", json=macro(ux_flow_next_up="somewhere"))
    assert flow.json() == human("Ux flow next up is not included in the list")
    unknown = macro(perform={"ticket.no_such_column": {"value": "1"}})
    response = admin_api("POST", "/macros", json=unknown)
    assert response.status_code == 422
    assert "contains invalid attributes" in response.json()["error"]
    note = macro(perform={"article.note": {"subject": "s", "body": "b", "internal": False}})
    refused = admin_api("POST", "/macros", json=note)
    assert refused.status_code == 422  # a JSON false is blank; the message stops at the comma
    assert refused.json() == human("The required 'perform' value for article.note")
    pending = macro(perform={"ticket.state_id": {"value": "7"}})
    assert admin_api("POST", "/macros", json=pending).json() == human(
        'The "Pending till" attribute is required for the selected state action.'
    )
    long_note = admin_api("POST", "/macros", json=macro(note="x" * 251))
    assert long_note.status_code == 422


def test_staged_attribute_is_invalid_in_a_macro(admin_api: Client) -> None:
    admin_api("POST", "/object_manager_attributes", json=select_attribute())
    body = macro(perform={"ticket.escalation_channel": {"value": "phone"}})
    assert admin_api("POST", "/macros", json=body).status_code == 422
    admin_api("POST", "/object_manager_attributes_execute_migrations")
    assert admin_api("POST", "/macros", json=body).status_code == 201


def test_mass_macro_applies_as_the_agent(
    sandbox: ZammadSandbox, api: Client, admin_api: Client
) -> None:
    made = admin_api("POST", "/macros", json=macro()).json()
    assert made["created_at"]
    assert made["updated_at"]
    assert made["note"] == "managed by test"
    before = sandbox.ticket(3)
    sandbox.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    response = api("POST", "/tickets/mass_macro", json={"macro_id": made["id"], "ticket_ids": [3]})
    assert response.status_code == 200
    assert response.json()["ticket_ids"] == [3]
    assert "3" in response.json()["assets"]["Ticket"]
    after = sandbox.ticket(3)
    assert after["customer_segment"] == "enterprise"
    assert after["state"] == "open"
    assert before["state"] == "new"
    assert after["updated_at"] > before["updated_at"]
    assert after["updated_by"] == "escalation-bot"
    assert sandbox.tags_of(3) == ["escalation", "escalation-l1"]
    note = sandbox.articles_of(3)[-1]
    assert (note["type"], note["internal"], note["created_by"]) == ("note", True, "escalation-bot")
    assert note["body"] == f"<p>Escalated {after['number']}</p>"
    history = api("GET", "/ticket_history/3").json()["history"]
    from_macro = [h for h in history if h["sourceable_type"] == "Macro"]
    assert {h.get("attribute") for h in from_macro} >= {"state", "customer_segment", "tag"}
    assert {h["sourceable_name"] for h in from_macro} == {"Escalate: phone"}
    assert {h["created_by_id"] for h in from_macro} == {sandbox.user_id("escalation-bot")}


def test_mass_macro_refusals(sandbox: ZammadSandbox, api: Client, admin_api: Client) -> None:
    restricted = admin_api("POST", "/macros", json=macro("only escalations", group_ids=[2])).json()
    blocked = api(
        "POST", "/tickets/mass_macro", json={"macro_id": restricted["id"], "ticket_ids": [1, 2]}
    )
    assert blocked.status_code == 422
    assert blocked.json() == {
        "error": "Macro group restrictions do not cover all tickets",
        "blocking_tickets": [1, 2],
    }
    plain = admin_api("POST", "/macros", json=macro()).json()
    reader = sandbox.issue_token("duty.manager@fused.example")  # Support: read only
    denied = api(
        "POST",
        "/tickets/mass_macro",
        json={"macro_id": plain["id"], "ticket_ids": [1]},
        token=reader,
    )
    assert denied.status_code == 422
    assert denied.json() == {"error": True, "ticket_id": 1}
    missing = api("POST", "/tickets/mass_macro", json={"macro_id": 999, "ticket_ids": [1]})
    assert missing.status_code == 404
    no_ticket = api(
        "POST", "/tickets/mass_macro", json={"macro_id": plain["id"], "ticket_ids": [1, 99]}
    )
    assert no_ticket.status_code == 404


def test_mass_macro_is_all_or_nothing(
    sandbox: ZammadSandbox, api: Client, admin_api: Client
) -> None:
    sandbox.agent_update(2, "alice.agent@fused.example", state="closed")
    outsider = sandbox.user_id("duty.manager@fused.example")  # may not own Support tickets
    body = macro(
        perform={
            "ticket.owner_id": {"pre_condition": "specific", "value": str(outsider)},
            "ticket.tags": {"operator": "add", "value": "escalation"},
        }
    )
    made = admin_api("POST", "/macros", json=body).json()
    before = sandbox.ticket(1)
    response = api(
        "POST", "/tickets/mass_macro", json={"macro_id": made["id"], "ticket_ids": [1, 2]}
    )
    assert response.status_code == 422  # ticket 2 is closed: an ineligible owner is refused
    assert sandbox.tags_of(1) == []
    assert sandbox.tags_of(2) == []
    assert sandbox.ticket(1) == before  # ticket 1's changes were rolled back


# -- overviews, webhooks, text modules, triggers ---------------------------------------------------


def test_overview_links_are_slugged_and_deduplicated(admin_api: Client) -> None:
    body = {
        "name": "Escalations – parked!",
        "role_ids": [2],
        "condition": {"ticket.state_id": {"operator": "is", "value": ["7"]}},
    }
    links = [admin_api("POST", "/overviews", json=body).json()["link"] for _ in range(3)]
    assert links == ["escalations_parked", "escalations_parked_1", "escalations_parked_2"]
    explicit = admin_api("POST", "/overviews", json={**body, "link": "Escalations Parked"}).json()
    assert explicit["link"] == "escalations_parked_3"
    assert admin_api("GET", "/overviews").json()[0]["prio"] > 0


def test_overview_needs_roles_and_a_valid_condition(admin_api: Client) -> None:
    no_roles = admin_api("POST", "/overviews", json={"name": "o", "condition": {}})
    assert no_roles.json() == human("Roles can't be blank")
    for condition in (
        {"ticket.state_id": {"operator": "is", "value": []}},
        {"ticket.state_id": {"operator": "is like", "value": ["1"]}},
        {"ticket.pending_time": {"operator": "within next (relative)", "value": "1"}},
        {"ticket.action": {"operator": "is", "value": "create"}},
    ):
        response = admin_api(
            "POST", "/overviews", json={"name": "o", "role_ids": [2], "condition": condition}
        )
        assert response.status_code == 422, condition
        assert response.json() == human("Invalid object selector conditions")


def test_webhook_endpoint_rules(admin_api: Client) -> None:
    def create(endpoint: str) -> Any:
        return admin_api("POST", "/webhooks", json={"name": endpoint[:40], "endpoint": endpoint})

    assert create("ftp://hook.example/x").json() == human(
        "Endpoint Invalid endpoint (no http/https)!"
    )
    assert create("https://").json() == human("Endpoint Invalid endpoint (no hostname)!")
    too_long = create("https://hook.example/" + "a" * 2000)
    assert too_long.status_code == 422
    assert "character varying(2000)" in too_long.json()["error"]
    ok = create("https://hook.example/" + "a" * 1900)
    assert ok.status_code == 201
    assert ok.json()["ssl_verify"] is True


def test_text_module_needs_name_and_content_and_is_sanitised(admin_api: Client) -> None:
    assert admin_api("POST", "/text_modules", json={"name": "t"}).json() == human(
        "Content can't be blank"
    )
    created = admin_api(
        "POST",
        "/text_modules",
        json={"name": "t", "content": '<div>a</div><script>x()</script><div onclick="y()">b</div>'},
    )
    assert created.json()["content"] == "<div>a</div><div>b</div>"


def test_trigger_validation(admin_api: Client) -> None:
    base = {"name": "t", "condition": {}, "activator": "action"}
    hook = admin_api("POST", "/triggers", json={**base, "perform": {"notification.webhook": {}}})
    assert hook.json() == human("The required 'perform' value for notification.webhook")
    missing = {"notification.webhook": {"webhook_id": "42"}}
    assert (
        "missing webhook 42"
        in admin_api("POST", "/triggers", json={**base, "perform": missing}).json()["error"]
    )
    assert admin_api("POST", "/triggers", json={**base, "activator": "sometimes"}).json() == human(
        "Activator is not included in the list"
    )
    mode = {**base, "execution_condition_mode": "often"}
    assert admin_api("POST", "/triggers", json=mode).status_code == 422
    updated = admin_api("POST", "/triggers", json={**base, "perform": {}}).json()
    changed = admin_api("PUT", f"/triggers/{updated['id']}", json={"active": False})
    assert changed.json()["active"] is False
    assert changed.json()["updated_at"] >= updated["updated_at"]


# -- triggers and webhook delivery over real HTTP ------------------------------------------------


class Receiver:
    """A webhook endpoint on a loopback socket: records each call, answers from a script."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.calls.append(({k: v for k, v in self.headers.items()}, body))
                receiver.arrived.set()
                receiver.hold.wait(10)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/zammad/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live(sandbox: ZammadSandbox) -> Iterator[tuple[HttpClient, HttpClient]]:
    """``(admin client, bot client)`` on the sandbox served over a real socket."""
    sandbox.webhooks.retry_delays = (0.01, 0.01, 0.01, 0.01)
    with serve(sandbox) as server:
        policy = HttpPolicy(requests_per_minute=6000, burst=1000)
        clock = FakeClock()

        def client(token: str) -> HttpClient:
            return HttpClient(server.url, {"Authorization": f"Token token={token}"}, policy, clock)

        yield client(ADMIN), client("sandbox-bot-token")
        sandbox.webhooks.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _hook_and_trigger(admin: HttpClient, url: str, **trigger: Any) -> dict[str, Any]:
    hook = admin.post_json(
        "/api/v1/webhooks", {"name": "worker", "endpoint": url, "signature_token": SECRET}
    )
    body = {
        "name": "notify worker",
        "activator": "action",
        "execution_condition_mode": "always",
        "condition": {
            "ticket.tags": {"operator": "contains one", "value": "escalation, escalated"}
        },
        "perform": {"notification.webhook": {"webhook_id": str(hook["id"])}},
        "active": True,
    }
    body.update(trigger)
    return dict(admin.post_json("/api/v1/triggers", body))


def test_trigger_calls_the_webhook_signed(
    sandbox: ZammadSandbox, live: tuple[HttpClient, HttpClient], receiver: Receiver
) -> None:
    admin, bot = live
    _hook_and_trigger(admin, receiver.url)
    receiver.hold.clear()  # the endpoint stalls: the API answer must not wait for it
    bot.post_json("/api/v1/tags/add", {"object": "Ticket", "o_id": 1, "item": "escalation"})
    assert receiver.arrived.wait(5)
    assert sandbox.webhook_deliveries[0].state == "pending"
    receiver.hold.set()
    assert sandbox.webhooks.wait_idle(5)

    headers, body = receiver.calls[0]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert headers["X-Hub-Signature"] == f"sha1={expected}"
    assert headers["User-Agent"] == "Zammad User Agent"
    assert headers["X-Zammad-Trigger"] == "notify worker"
    payload = json.loads(body)
    assert payload["ticket"]["id"] == 1
    assert payload["ticket"]["tags"] == ["escalation"]
    assert payload["ticket"]["owner"]["login"] == "alice.agent@fused.example"
    assert payload["article"] is None
    delivery = sandbox.webhook_deliveries[0]
    assert (delivery.state, delivery.attempts) == ("delivered", [200])
    assert headers["X-Zammad-Delivery"] == delivery.delivery_id

    bot.put_json("/api/v1/tickets/1", {"title": "Changed again"})
    assert sandbox.webhooks.wait_idle(5)
    ids = [h["X-Zammad-Delivery"] for h, _ in receiver.calls]
    assert len(ids) == 2
    assert len(set(ids)) == 2


def test_trigger_payload_carries_the_new_article(
    sandbox: ZammadSandbox, live: tuple[HttpClient, HttpClient], receiver: Receiver
) -> None:
    admin, bot = live
    _hook_and_trigger(admin, receiver.url)
    sandbox.add_tag(2, "escalated")
    assert sandbox.webhooks.wait_idle(5)
    receiver.calls.clear()
    note = {"ticket_id": 2, "type": "note", "internal": True, "body": "worked on it"}
    article = bot.post_json("/api/v1/ticket_articles", note)
    assert sandbox.webhooks.wait_idle(5)
    payload = json.loads(receiver.calls[0][1])
    assert payload["article"]["id"] == article["id"]
    assert payload["article"]["accounted_time"] == 0.0


def test_webhook_retries_then_drops(
    sandbox: ZammadSandbox, live: tuple[HttpClient, HttpClient], receiver: Receiver
) -> None:
    admin, bot = live
    _hook_and_trigger(admin, receiver.url)
    receiver.statuses = [500, 503, 200]
    bot.post_json("/api/v1/tags/add", {"object": "Ticket", "o_id": 1, "item": "escalation"})
    assert sandbox.webhooks.wait_idle(5)
    first = sandbox.webhook_deliveries[0]
    assert (first.attempts, first.state) == ([500, 503, 200], "delivered")
    assert len({h["X-Zammad-Delivery"] for h, _ in receiver.calls}) == 1  # one delivery

    receiver.statuses = [302] * 5
    bot.put_json("/api/v1/tickets/1", {"title": "Again"})
    assert sandbox.webhooks.wait_idle(5)
    second = sandbox.webhook_deliveries[1]
    assert (second.attempts, second.state) == ([302] * 5, "dropped")  # redirects not followed


def test_trigger_conditions_action_and_selective_mode(
    sandbox: ZammadSandbox, live: tuple[HttpClient, HttpClient], receiver: Receiver
) -> None:
    admin, bot = live
    _hook_and_trigger(
        admin,
        receiver.url,
        name="parked changes",
        execution_condition_mode="selective",
        condition={
            "ticket.action": {"operator": "is", "value": "update"},
            "ticket.state_id": {"operator": "is", "value": ["2"]},
        },
    )
    bot.put_json("/api/v1/tickets/1", {"title": "Only the title"})  # state open, not changed
    bot.put_json("/api/v1/tickets/3", {"state": "open"})  # new → open: fires
    create = {
        "title": "fresh",
        "group": "Support",
        "customer_id": "guess:someone@customer.example",
        "state": "open",
        "article": {"type": "note", "internal": True, "body": "x"},
    }
    bot.post_json("/api/v1/tickets", create)  # a create, not an update
    assert sandbox.webhooks.wait_idle(5)
    assert [json.loads(b)["ticket"]["id"] for _, b in receiver.calls] == [3]


def test_macro_changes_fire_triggers(
    sandbox: ZammadSandbox, live: tuple[HttpClient, HttpClient], receiver: Receiver
) -> None:
    admin, bot = live
    _hook_and_trigger(admin, receiver.url)
    made = admin.post_json("/api/v1/macros", macro())
    bot.post_json("/api/v1/tickets/mass_macro", {"macro_id": made["id"], "ticket_ids": [4]})
    assert sandbox.webhooks.wait_idle(5)
    payload = json.loads(receiver.calls[0][1])
    assert payload["ticket"]["id"] == 4
    assert payload["article"]["subject"] == "Escalated"
    history = sandbox.handle(
        "GET", "/api/v1/ticket_history/4", headers={"Authorization": "Token token=" + ADMIN}
    )
    assert b'"sourceable_type":"Macro"' in history[2]


def test_inactive_trigger_or_webhook_sends_nothing(
    sandbox: ZammadSandbox, live: tuple[HttpClient, HttpClient], receiver: Receiver
) -> None:
    admin, bot = live
    trigger = _hook_and_trigger(admin, receiver.url)
    admin.put_json(f"/api/v1/triggers/{trigger['id']}", {"active": False})
    bot.post_json("/api/v1/tags/add", {"object": "Ticket", "o_id": 1, "item": "escalation"})
    assert sandbox.webhook_deliveries == []
