"""``ZammadAdapter.customer_tickets`` against the sandbox, which runs the search as Zammad's
``Selector::Sql`` does (``ticket.customer_id`` "is" a list: ``IN (…)``; ``after (absolute)``:
``>=``): the tickets of many customers created since an instant, each once, oldest first, a
search per ``CUSTOMERS_PER_SEARCH`` customers and its pages followed; condition-only, never a
``query`` (the search index lags, reference §0.5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import responses

import connector.zammad.adapter as zammad_adapter
from connector.zammad import ZammadAdapter
from escalations.clock import FakeClock
from sandbox import ZammadSandbox, mount
from tests.connector.conftest import BASE_URL, make_adapter

CUSTOMERS = (
    "sean.walsh@residential.example",
    "orla.byrne@netreseller.example",
    "noc@wholesale-carrier.example",
)


@pytest.fixture
def zammad(
    clock: FakeClock,
) -> Iterator[tuple[ZammadSandbox, ZammadAdapter, responses.RequestsMock]]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sandbox = ZammadSandbox.demo(clock=clock)
        mount(sandbox, rsps, BASE_URL)
        yield sandbox, make_adapter(clock, sandbox.token_of("escalation-bot")), rsps


def _searches(rsps: responses.RequestsMock) -> list[dict[str, object]]:
    return [
        json.loads(c.request.body or b"{}")
        for c in rsps.calls
        if c.request.method == "POST"
        and (c.request.path_url or "").startswith("/api/v1/tickets/search")
    ]


@pytest.mark.parametrize(("per_search", "page_size"), [(100, 200), (2, 200), (1, 2), (2, 1)])
def test_the_tickets_of_many_customers_created_since(
    zammad: tuple[ZammadSandbox, ZammadAdapter, responses.RequestsMock],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    per_search: int,
    page_size: int,
) -> None:
    sandbox, adapter, rsps = zammad
    monkeypatch.setattr(zammad_adapter, "CUSTOMERS_PER_SEARCH", per_search)
    adapter = ZammadAdapter(adapter._client, clock=clock, page_size=page_size)
    since = clock.now()
    clock.advance(timedelta(minutes=1))
    made = []
    for n in range(3):  # three new tickets of the first two customers, one of a stranger
        for customer in (*CUSTOMERS[:2], "someone.else@example.org"):
            made.append(sandbox.create_ticket_as_customer(customer, f"New {n}", "Hello."))
        clock.advance(timedelta(seconds=1))
    ids = [sandbox.user_id(c) for c in CUSTOMERS]
    found = list(adapter.customer_tickets(ids, created_since=since))
    wanted = [t for t in made if sandbox.tickets[t]["customer_id"] in ids]
    assert sorted(t.id for t in found) == sorted(wanted)  # no old ticket, none twice
    assert len({t.id for t in found}) == len(found)
    searches = _searches(rsps)
    chunks = -(-len(ids) // per_search)
    assert len(searches) >= chunks
    if page_size >= 200:
        assert len(searches) == chunks  # one search per chunk of customers
    else:
        assert len(searches) > chunks  # full pages followed
    for body in searches:
        assert "query" not in body
        condition = body["condition"]
        assert isinstance(condition, dict)
        assert condition["ticket.customer_id"]["operator"] == "is"
        assert len(condition["ticket.customer_id"]["value"]) <= per_search


def test_no_customer_is_no_request(
    zammad: tuple[ZammadSandbox, ZammadAdapter, responses.RequestsMock], clock: FakeClock
) -> None:
    _sandbox, adapter, rsps = zammad
    assert list(adapter.customer_tickets([], created_since=clock.now())) == []
    assert _searches(rsps) == []
