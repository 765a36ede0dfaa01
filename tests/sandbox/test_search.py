"""Condition-only ticket search: operators, the dropped-selector trap, sorting, page caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from escalations.clock import FakeClock
from sandbox import ZammadSandbox
from tests.sandbox.conftest import Client


def _search(api: Client, condition: Any, **extra: Any) -> list[dict[str, Any]]:
    response = api(
        "POST", "/tickets/search", json={"condition": condition, "expand": True, **extra}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert isinstance(result, list)
    return result


def _after(value: str) -> dict[str, Any]:
    return {"ticket.updated_at": {"operator": "after (absolute)", "value": value}}


def test_after_absolute_is_inclusive(api: Client, sandbox: ZammadSandbox) -> None:
    at = sandbox.ticket(3)["updated_at"]  # 07:30:00.000Z
    ids = [t["id"] for t in _search(api, _after(at), sort_by="updated_at", order_by="asc")]
    assert ids == [3, 4]
    assert [t["id"] for t in _search(api, _after("2026-12-01T07:30:00.001Z"))] == [4]


def test_before_absolute_and_nested_and(api: Client) -> None:
    condition = {
        "operator": "AND",
        "conditions": [
            {
                "name": "ticket.updated_at",
                "operator": "after (absolute)",
                "value": "2026-12-01T05:00:00Z",
            },
            {
                "name": "ticket.updated_at",
                "operator": "before (absolute)",
                "value": "2026-12-01T07:30:00Z",
            },
        ],
    }
    found = _search(api, condition, sort_by=["updated_at", "id"], order_by=["asc", "asc"])
    assert [t["id"] for t in found] == [2, 1, 3]


def test_nested_or(api: Client, sandbox: ZammadSandbox) -> None:
    sandbox.add_tag(2, "escalation")
    condition = {
        "operator": "OR",
        "conditions": [
            {"name": "ticket.tags", "operator": "contains one", "value": "escalation"},
            {
                "name": "ticket.customer_id",
                "operator": "is",
                "value": [str(sandbox.user_id("it.lead@megacorp.example"))],
            },
        ],
    }
    assert sorted(t["id"] for t in _search(api, condition)) == [2, 4]


def test_offset_in_timestamp_is_ignored_like_postgres(api: Client) -> None:
    # 09:30+02:00 is 07:30Z, but PostgreSQL reads the wall clock of the literal: 09:30
    assert _search(api, _after("2026-12-01T09:30:00+02:00")) == []


def test_today_is_the_day_in_zammads_time_zone(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    """``today`` is from the start to the end of the day in ``timezone_default``
    (``lib/selector/sql.rb``), not the UTC day."""
    today = {"ticket.updated_at": {"operator": "today"}}
    clock.set(datetime(2026, 12, 1, 23, 30, tzinfo=UTC))
    assert sorted(t["id"] for t in _search(api, today)) == [1, 2, 3, 4]  # all of 1 Dec UTC
    sandbox.set_setting("timezone_default", "Pacific/Auckland")  # already 2 Dec there
    assert _search(api, today) == []
    sandbox.set_setting("timezone_default", "America/New_York")  # still 1 Dec there
    assert sorted(t["id"] for t in _search(api, today)) == [1, 2, 3, 4]


def test_customer_is_and_tags_contains_one(api: Client, sandbox: ZammadSandbox) -> None:
    sean = sandbox.user_id("sean.walsh@residential.example")
    condition = {
        "ticket.customer_id": {"operator": "is", "pre_condition": "specific", "value": [str(sean)]}
    }
    assert [t["id"] for t in _search(api, condition)] == [1]
    sandbox.add_tag(1, "escalate")
    sandbox.add_tag(3, "vip")
    tags = {"ticket.tags": {"operator": "contains one", "value": "escalate, vip"}}
    assert sorted(t["id"] for t in _search(api, tags)) == [1, 3]
    assert _search(api, {"ticket.tags": {"operator": "contains one", "value": "Escalate"}}) == []


def test_invalid_condition_drops_whole_selector(api: Client, sandbox: ZammadSandbox) -> None:
    sean = sandbox.user_id("sean.walsh@residential.example")
    condition = {
        "ticket.customer_id": {"operator": "is", "value": [str(sean)]},
        "ticket.updated_at": {"operator": "after (absolute)", "value": ""},
    }
    assert len(_search(api, condition)) == 4  # everything, unfiltered
    empty_list = {"ticket.customer_id": {"operator": "is", "value": []}}
    assert len(_search(api, empty_list)) == 4


def test_invalid_operator_and_is_set_are_500(admin_api: Client) -> None:
    for operator in ("newer than", "is set"):
        body = {"condition": {"ticket.owner_id": {"operator": operator, "value": "1"}}}
        assert admin_api("POST", "/tickets/search", json=body).status_code == 500


def test_unpaired_sort_by_dropped(api: Client) -> None:
    # sort_by updated_at,id with one order -> only updated_at asc
    found = _search(api, {}, sort_by="updated_at,id", order_by="asc")
    assert [t["id"] for t in found] == [2, 1, 3, 4]
    # no order_by at all: the default order 'desc' pairs with the first column
    assert [t["id"] for t in _search(api, {}, sort_by="updated_at")] == [4, 3, 1, 2]


def test_default_order_is_updated_at_desc(api: Client) -> None:
    assert [t["id"] for t in _search(api, {})] == [4, 3, 1, 2]


def test_unknown_sort_column_and_bad_order_are_500(api: Client) -> None:
    assert (
        api("POST", "/tickets/search", json={"sort_by": "foo", "order_by": "asc"}).status_code
        == 500
    )
    assert (
        api("POST", "/tickets/search", json={"sort_by": "id", "order_by": "up"}).status_code == 500
    )


def test_per_page_clamped_to_200_and_default_50(
    api: Client, sandbox: ZammadSandbox, clock: FakeClock
) -> None:
    for n in range(246):
        clock.advance(timedelta(milliseconds=1))
        sandbox.create_ticket_as_customer(
            "sean.walsh@residential.example", f"t{n}", "x", type="web"
        )
    assert len(_search(api, {}, per_page=500)) == 200
    assert len(_search(api, {})) == 50
    page2 = _search(api, {}, per_page=500, page=2)
    assert len(page2) == 50  # 250 tickets in all: the second page of 200 holds the rest
    total = api("POST", "/tickets/search", json={"only_total_count": True}).json()
    assert total == {"total_count": 250}


def test_search_without_expand_is_plain_array(api: Client) -> None:
    result = api("POST", "/tickets/search", json={"condition": {}}).json()
    assert isinstance(result, list)
    assert "group" not in result[0]
    assert "group_id" in result[0]


def test_get_search_with_rails_nested_params(api: Client) -> None:
    params = {
        "condition[ticket.updated_at][operator]": "after (absolute)",
        "condition[ticket.updated_at][value]": "2026-12-01T07:30:00Z",
        "sort_by[]": ["updated_at", "id"],
        "order_by[]": ["asc", "asc"],
        "expand": "true",
    }
    found = api("GET", "/tickets/search", params=params).json()
    assert [t["id"] for t in found] == [3, 4]


def test_search_sees_only_readable_groups(sandbox: ZammadSandbox, api: Client) -> None:
    token = sandbox.issue_token("lloyd.foley@jt.example")
    assert api("POST", "/tickets/search", json={"expand": True}, token=token).json() == []


def test_query_substring_applies_with_condition(api: Client) -> None:
    found = api("POST", "/tickets/search", json={"query": "vpn", "expand": True}).json()
    assert [t["id"] for t in found] == [4]
