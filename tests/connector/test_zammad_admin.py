"""connector/zammad/admin.py: the exact requests (``responses`` matchers) where Zammad's shapes
matter (pages, the tag list, the migrations poll), and the whole client against the sandbox
(``sandbox.mount``) for the semantics: staged attributes, waiting out a restart, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from responses import matchers

from connector.errors import Forbidden, NotFound, Rejected, TransientError
from connector.http import HttpClient, HttpPolicy
from connector.zammad import ADMIN_KINDS, ZammadAdmin
from escalations.clock import FakeClock
from sandbox import Refuse, ServerError, ZammadSandbox, mount

BASE = "https://zammad.example"
API = f"{BASE}/api/v1"
ADMIN_TOKEN = "sandbox-admin-token"
BOT_TOKEN = "sandbox-bot-token"


def make_admin(clock: FakeClock, token: str = "admin-unit-token-0001", **kw: Any) -> ZammadAdmin:
    policy = HttpPolicy(requests_per_minute=6000, burst=1000)
    client = HttpClient(BASE, {"Authorization": f"Token token={token}"}, policy, clock)
    return ZammadAdmin(client, clock=clock, **kw)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[ZammadSandbox]:
    found = ZammadSandbox.demo(clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mount(found, mock, BASE)
        yield found


def select_attribute(name: str = "escalation_channel") -> dict[str, Any]:
    return {
        "object": "Ticket",
        "name": name,
        "display": "Escalation channel",
        "data_type": "select",
        "data_option": {"options": {"phone": "Phone"}, "default": "", "null": True},
        "position": 1700,
        "active": True,
    }


# -- exact requests ---------------------------------------------------------------------------


def test_list_follows_pages_until_a_short_one(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    first = [{"id": i, "name": f"m{i}"} for i in range(1, 501)]
    second = [{"id": i, "name": f"m{i}"} for i in range(501, 504)]
    for page, body in ((1, first), (2, second)):
        rsps.add(
            "GET",
            f"{API}/macros",
            json=body,
            match=[
                matchers.query_param_matcher(
                    {"expand": "true", "page": str(page), "per_page": "500"}
                )
            ],
        )
    found = make_admin(clock).list("macros")
    assert [m["id"] for m in found] == list(range(1, 504))


def test_list_stops_when_a_page_brings_nothing_new(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    same = [{"id": i} for i in range(1, 501)]  # a server that ignores "page"
    rsps.add("GET", f"{API}/groups", json=same)
    rsps.add("GET", f"{API}/groups", json=same)
    assert len(make_admin(clock).list("groups")) == 500
    assert len(rsps.calls) == 2


def test_object_manager_and_tag_list_are_one_request(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.add(
        "GET",
        f"{API}/object_manager_attributes",
        json=[{"id": 1}],
        match=[matchers.query_string_matcher("")],
    )
    rsps.add(
        "GET",
        f"{API}/tag_list",
        json=[{"id": 3, "name": "escalation", "count": 0}],
        match=[matchers.query_param_matcher({"limit": "10000"})],
    )
    admin = make_admin(clock)
    assert admin.list("object_manager_attributes") == [{"id": 1}]
    assert admin.list("tag_list") == [{"id": 3, "name": "escalation", "count": 0}]


def test_tag_create_reads_the_item_back(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.add(
        "POST",
        f"{API}/tag_list",
        json={},
        match=[matchers.json_params_matcher({"name": "escalation"})],
    )
    rsps.add("GET", f"{API}/tag_list", json=[{"id": 9, "name": "escalation", "count": 0}])
    assert make_admin(clock).create("tag_list", {"name": "escalation"}) == {
        "id": 9,
        "name": "escalation",
        "count": 0,
    }


def test_attribute_update_needs_object_and_name(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    with pytest.raises(Rejected, match="'object' and 'name'"):
        make_admin(clock).update("object_manager_attributes", 5, {"display": "x"})
    assert len(rsps.calls) == 0


def test_unknown_kind_and_wrong_shape(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    admin = make_admin(clock)
    with pytest.raises(ValueError, match="unknown admin list"):
        admin.list("tickets")
    rsps.add("GET", f"{API}/webhooks", json={"error": "?"})
    with pytest.raises(TransientError, match="not a list"):
        admin.list("webhooks")


def test_migrations_time_out_naming_what_is_pending(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.add(
        "POST",
        f"{API}/object_manager_attributes_execute_migrations",
        json={},
        match=[matchers.json_params_matcher({})],
    )
    stuck = [
        {
            "id": 20,
            "object": "Ticket",
            "name": "escalation_channel",
            "to_create": True,
            "to_migrate": True,
        },
        {"id": 21, "object": "Ticket", "name": "escalation_level", "to_config": True},
        {"id": 2, "object": "Ticket", "name": "title"},
    ]
    rsps.add("GET", f"{API}/object_manager_attributes", json=stuck)
    start = clock.monotonic()
    with pytest.raises(TransientError) as caught:
        make_admin(clock, poll_interval_s=5).execute_migrations(timeout_s=30)
    message = str(caught.value)
    assert "did not finish within 30 s" in message
    assert "Ticket.escalation_channel (to_create/to_migrate)" in message
    assert "Ticket.escalation_level (to_config)" in message
    assert "title" not in message
    assert 30 <= clock.monotonic() - start <= 35  # slept on the clock


def test_migrations_wait_out_a_restart_longer_than_one_call(
    rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.add("POST", f"{API}/object_manager_attributes_execute_migrations", json={})
    answers = iter([503] * 7 + [200])

    def listing(request: Any) -> tuple[int, dict[str, str], str]:
        status = next(answers)
        if status == 503:
            return 503, {"Content-Type": "text/html"}, "<html>503</html>"
        return 200, {"Content-Type": "application/json"}, '[{"id": 1, "name": "title"}]'

    rsps.add_callback("GET", f"{API}/object_manager_attributes", callback=listing)
    make_admin(clock).execute_migrations(timeout_s=300)  # the client gives up after 5 tries
    assert sum(1 for c in rsps.calls if c.request.method == "GET") == 8


def test_run_macro_names_blocking_tickets(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    body = {
        "error": "Macro group restrictions do not cover all tickets",
        "blocking_tickets": [4, 7],
    }
    rsps.add(
        "POST",
        f"{API}/tickets/mass_macro",
        status=422,
        json=body,
        match=[matchers.json_params_matcher({"macro_id": 3, "ticket_ids": [4, 7, 9]})],
    )
    with pytest.raises(Rejected, match=r"does not cover ticket\(s\) 4, 7") as caught:
        make_admin(clock).run_macro(3, [4, 7, 9])
    assert caught.value.status == 422


def test_run_macro_reads_a_cut_body(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    ids = list(range(1000, 1400))  # longer than the 1 KiB excerpt
    rsps.add(
        "POST",
        f"{API}/tickets/mass_macro",
        status=422,
        json={"error": "x", "blocking_tickets": ids},
    )
    with pytest.raises(Rejected, match="does not cover ticket\\(s\\) 1000, 1001"):
        make_admin(clock).run_macro(3, ids)


# -- against the sandbox ------------------------------------------------------------------------


def test_every_kind_lists(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    admin = make_admin(clock, ADMIN_TOKEN)
    lists = {kind: admin.list(kind) for kind in ADMIN_KINDS}
    assert {s["name"]: s["state_type"] for s in lists["ticket_states"]}[
        "parked"
    ] == "pending reminder"
    assert "escalation" in {t["name"] for t in lists["tag_list"]}
    assert {r["name"] for r in lists["roles"]} == {"Admin", "Agent", "Customer"}
    assert lists["macros"] == []


def test_create_update_get(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    admin = make_admin(clock, ADMIN_TOKEN)
    hook = admin.create("webhooks", {"name": "worker", "endpoint": "https://w.example/h"})
    changed = admin.update("webhooks", hook["id"], {"note": "managed"})
    assert changed["note"] == "managed"
    assert admin.get("webhooks", hook["id"])["endpoint"] == "https://w.example/h"
    with pytest.raises(NotFound):
        admin.get("webhooks", 999)
    with pytest.raises(Rejected, match="Name has already been taken"):
        admin.create("webhooks", {"name": "Worker", "endpoint": "https://w.example/h"})
    renamed = admin.update(
        "tag_list", admin.create("tag_list", {"name": "old"})["id"], {"name": "new"}
    )
    assert renamed["name"] == "new"


def test_execute_migrations_makes_the_column(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    admin = make_admin(clock, ADMIN_TOKEN)
    created = admin.create("object_manager_attributes", select_attribute())
    assert created["to_create"] is True
    assert [a["name"] for a in admin.pending_attributes()] == ["escalation_channel"]
    sandbox.faults.add(Refuse("POST", "execute_migrations"))
    sandbox.faults.add(ServerError("GET", "object_manager_attributes$", status=502, times=3))
    admin.execute_migrations(timeout_s=120)
    assert admin.pending_attributes() == []
    assert "escalation_channel" in sandbox.ticket(1)
    fired = [f[0] for f in sandbox.faults.fired]
    assert fired == ["Refuse", "ServerError", "ServerError", "ServerError"]


def test_forbidden_names_the_permission(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    bot = make_admin(clock, BOT_TOKEN)
    with pytest.raises(Forbidden, match="to list overviews the token needs the admin.overview"):
        bot.list("overviews")
    with pytest.raises(Forbidden, match="admin.object"):
        bot.execute_migrations(timeout_s=10)
    with pytest.raises(Forbidden, match="admin.macro"):
        bot.create("macros", {"name": "m", "perform": {}})
    assert bot.list("macros") == []  # agents read macros


def test_users(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    admin = make_admin(clock, ADMIN_TOKEN)
    assert admin.find_user("alice") is None  # a substring match is not the user
    found = admin.find_user("Escalations-Internal@example.invalid")
    assert found is not None
    assert found["id"] == sandbox.user_id("escalations-internal@example.invalid")
    made = admin.create_user({"login": "ph@example.invalid", "email": "ph@example.invalid"})
    assert made["role_ids"] == [3]
    again = admin.find_user("ph@example.invalid")
    assert again is not None
    assert again["id"] == made["id"]
    with pytest.raises(Forbidden, match="admin.user"):
        make_admin(clock, BOT_TOKEN).create_user({"email": "x@example.invalid"})


def test_find_user_walks_pages(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    page = [
        {"id": i, "login": f"user{i}@x.example", "email": f"user{i}@x.example"} for i in range(200)
    ]
    rsps.add(
        "GET",
        f"{API}/users/search",
        json=page,
        match=[
            matchers.query_param_matcher({"query": "x.example", "per_page": "200", "page": "1"})
        ],
    )
    rsps.add("GET", f"{API}/users/search", json=[{"id": 999, "login": "x.example", "email": ""}])
    assert make_admin(clock).find_user("X.example") == {
        "id": 999,
        "login": "x.example",
        "email": "",
    }


def test_run_macro_against_the_sandbox(sandbox: ZammadSandbox, clock: FakeClock) -> None:
    admin = make_admin(clock, ADMIN_TOKEN)
    made = admin.create(
        "macros",
        {"name": "Escalate", "perform": {"ticket.tags": {"operator": "add", "value": "escalation"}},
         "ux_flow_next_up": "none", "group_ids": [2]},
    )  # fmt: skip
    with pytest.raises(Rejected, match=r"does not cover ticket\(s\) 1"):
        admin.run_macro(made["id"], [1])
    admin.update("macros", made["id"], {"group_ids": []})
    assert admin.run_macro(made["id"], [1])["ticket_ids"] == [1]
    assert sandbox.tags_of(1) == ["escalation"]
    with pytest.raises(NotFound):
        admin.run_macro(999, [1])
