"""connector/zammad.py against recorded documentation payloads: the exact request of every
adapter call (``json_params_matcher``/``query_param_matcher``), the translation of vendor JSON
into domain types, and one test per trap of reference §0 that can be tested."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
import responses
from responses import matchers

from connector.base import (
    ArticleDraft,
    ArticleKind,
    AttachmentRef,
    AttachmentUpload,
    CallDirection,
    EventKind,
    FieldInfo,
    Link,
    LinkKind,
    Marker,
    Sender,
    TicketChanges,
    TicketDraft,
    TicketEvent,
)
from connector.errors import (
    AmbiguousWrite,
    AuthError,
    Forbidden,
    NotFound,
    Rejected,
    TransientError,
)
from connector.http import HttpClient, HttpPolicy
from connector.zammad import ZammadAdapter, utc_ms
from escalations.clock import FakeClock
from tests.conftest import load_fixture

BASE = "https://zammad.example"
API = f"{BASE}/api/v1"
TOKEN = "zammad-unit-token-0001"
MARKER = Marker("hde1-00112233445566ff")
FOOTER_HTML = f"<p>{MARKER.footer}</p>"
SEARCH = f"{API}/tickets/search"


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def adapter(clock: FakeClock) -> ZammadAdapter:
    client = HttpClient(
        BASE,
        {"Authorization": f"Token token={TOKEN}"},
        HttpPolicy(requests_per_minute=6000, burst=1000),
        clock,
    )
    return ZammadAdapter(client, clock=clock)


def q(**params: object) -> list:
    return [matchers.query_param_matcher({k: str(v) for k, v in params.items()})]


def body(payload: object) -> list:
    return [matchers.json_params_matcher(payload)]


@pytest.fixture
def resp_groups(rsps):
    rsps.add(
        "GET",
        f"{API}/groups",
        json=load_fixture("zammad/groups.json"),
        match=q(page=1, per_page=500),
    )


# Roles as GET /api/v1/roles answers them (constructed, not from the docs: the shape follows
# Role's HasGroups concern, the same ``group_ids`` map a user has). Admin (1) and Agent (2)
# grant no group access of their own here; 7 grants full access to "2nd Level" (id 2).
ROLES = [
    {"id": 1, "name": "Admin", "active": True, "group_ids": {}},
    {"id": 2, "name": "Agent", "active": True, "group_ids": {}},
    {"id": 7, "name": "Escalation owners", "active": True, "group_ids": {"2": ["full"]}},
]


@pytest.fixture
def resp_roles(rsps):
    rsps.add("GET", f"{API}/roles", json=ROLES)


@pytest.fixture
def resp_states(rsps):
    rsps.add(
        "GET",
        f"{API}/ticket_states",
        json=load_fixture("zammad/ticket_states.json"),
        match=q(expand="true", page=1, per_page=500),
    )


def search_body(value: str, page: int = 1, per_page: int = 200) -> dict:
    return {
        "condition": {"ticket.updated_at": {"operator": "after (absolute)", "value": value}},
        "sort_by": ["updated_at", "id"],
        "order_by": ["asc", "asc"],
        "per_page": per_page,
        "page": page,
        "expand": True,
    }


# -- construction ---------------------------------------------------------------------------


# -- changed_tickets ------------------------------------------------------------------------


def test_changed_tickets_idle_poll(rsps, adapter):
    """§0.5: condition only, never a query; an idle poll is exactly one request."""
    since = datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=UTC)
    rsps.add("POST", SEARCH, json=[], match=body(search_body("2026-11-30T08:00:00.123Z")))
    assert list(adapter.changed_tickets(since)) == []
    assert len(rsps.calls) == 1
    assert "query" not in rsps.calls[0].request.body.decode()


def test_changed_tickets_reads_the_expanded_list(rsps, adapter):
    rsps.add(
        "POST",
        SEARCH,
        json=load_fixture("zammad/tickets_search_expand.json"),
        match=body(search_body("2025-01-14T07:00:00.000Z")),
    )
    (ticket,) = adapter.changed_tickets(datetime(2025, 1, 14, 7, tzinfo=UTC))
    assert ticket.id == 1
    assert ticket.number == "20001"
    assert ticket.title == "Welcome to Zammad!"
    assert ticket.group == "Users"
    assert ticket.state == "new"
    assert ticket.owner_id is None  # owner 1 is "unassigned"
    assert ticket.owner_login is None
    assert ticket.customer_id == 2
    assert ticket.customer_login == "nicole.braun@zammad.org"
    assert ticket.organization_id == 1
    assert ticket.updated_at == datetime(2025, 1, 14, 7, 45, 8, 790000, tzinfo=UTC)
    assert ticket.created_at.tzinfo is UTC
    assert ticket.updated_by_id == 2
    assert ticket.fields == {}  # no custom attributes in the example


def test_changed_tickets_utc_cursor(rsps, adapter):
    """§0.6: the value is sent in UTC whatever the caller's zone."""
    since = datetime(2026, 12, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    rsps.add("POST", SEARCH, json=[], match=body(search_body("2026-12-01T08:30:00.000Z")))
    assert list(adapter.changed_tickets(since)) == []


def test_changed_tickets_rejects_a_naive_since(adapter):
    with pytest.raises(ValueError, match="naive"):
        list(adapter.changed_tickets(datetime(2026, 12, 1)))  # noqa: DTZ001


@pytest.mark.parametrize("name", ["tickets_search_legacy.json", "tickets_search_full.json"])
def test_changed_tickets_legacy_shape(rsps, adapter, resp_groups, resp_states, name):
    """§0.4: the ≤6.4 {"tickets","assets"} shape (and full=true) are read too; names missing
    from them come from the group and state lists."""
    rsps.add("POST", SEARCH, json=load_fixture(f"zammad/{name}"))
    tickets = list(adapter.changed_tickets(datetime(2021, 1, 1, tzinfo=UTC)))
    assert tickets
    assert [t.updated_at for t in tickets] == sorted(t.updated_at for t in tickets)
    by_id = {t.id: t for t in tickets}
    first = by_id[min(by_id)]
    assert first.group == "Sales"  # group_id 1 in groups.json
    assert first.state in {"new", "open"}


def test_changed_tickets_unfiltered(rsps, adapter):
    """Corrections #4: rows older than the cursor mean the selector was dropped."""
    rsps.add("POST", SEARCH, json=load_fixture("zammad/tickets_search_expand.json"))
    with pytest.raises(Rejected, match="condition was dropped"):
        list(adapter.changed_tickets(datetime(2026, 1, 1, tzinfo=UTC)))


def _ticket_row(ticket_id: int, updated_at: str) -> dict:
    row = load_fixture("zammad/tickets_search_expand.json")[0]
    return {**row, "id": ticket_id, "number": str(20000 + ticket_id), "updated_at": updated_at}


def test_changed_tickets_keyset_restarts_at_the_newest_row(rsps, clock):
    """§0.8: a full page restarts at its newest updated_at (page 1), duplicates dropped; the
    last page is detected against the effective cap, not the requested size."""
    client = HttpClient(
        BASE, {"Authorization": "Token token=x-y-z-1"}, HttpPolicy(burst=100), clock
    )
    adapter = ZammadAdapter(client, clock=clock, page_size=2)
    t0, t1, t2 = "2026-12-01T08:00:00.000Z", "2026-12-01T08:00:01.000Z", "2026-12-01T08:00:02.500Z"
    rsps.add(
        "POST", SEARCH, json=[_ticket_row(1, t0), _ticket_row(2, t1)],
        match=body(search_body(t0, per_page=2)),
    )  # fmt: skip
    rsps.add(
        "POST", SEARCH, json=[_ticket_row(2, t1), _ticket_row(3, t2)],
        match=body(search_body(t1, per_page=2)),
    )  # fmt: skip
    rsps.add("POST", SEARCH, json=[_ticket_row(3, t2)], match=body(search_body(t2, per_page=2)))
    ids = [t.id for t in adapter.changed_tickets(datetime(2026, 12, 1, 8, tzinfo=UTC))]
    assert ids == [1, 2, 3]


def test_changed_tickets_keyset_pages_only_within_one_timestamp(rsps, clock):
    client = HttpClient(
        BASE, {"Authorization": "Token token=x-y-z-1"}, HttpPolicy(burst=100), clock
    )
    adapter = ZammadAdapter(client, clock=clock, page_size=2)
    t0 = "2026-12-01T08:00:00.000Z"
    rsps.add(
        "POST", SEARCH, json=[_ticket_row(1, t0), _ticket_row(2, t0)],
        match=body(search_body(t0, page=1, per_page=2)),
    )  # fmt: skip
    rsps.add(
        "POST", SEARCH, json=[_ticket_row(3, t0)], match=body(search_body(t0, page=2, per_page=2))
    )
    ids = [t.id for t in adapter.changed_tickets(datetime(2026, 12, 1, 8, tzinfo=UTC))]
    assert ids == [1, 2, 3]


def test_changed_tickets_page_size_is_capped_at_200(rsps, clock):
    client = HttpClient(BASE, {"Authorization": "Token token=x-y-z-1"}, HttpPolicy(), clock)
    adapter = ZammadAdapter(client, clock=clock, page_size=500)
    rsps.add("POST", SEARCH, json=[], match=body(search_body("2026-12-01T08:00:00.000Z")))
    assert list(adapter.changed_tickets(datetime(2026, 12, 1, 8, tzinfo=UTC))) == []


def test_changed_tickets_keeps_custom_fields(rsps, adapter):
    row = {**_ticket_row(7, "2026-12-01T08:00:00.000Z"), "escalation_level": "p1", "vip": True}
    rsps.add("POST", SEARCH, json=[row])
    (ticket,) = adapter.changed_tickets(datetime(2026, 12, 1, 8, tzinfo=UTC))
    assert ticket.fields == {"escalation_level": "p1", "vip": True}


def test_search_post_is_retried_as_a_read(rsps, adapter):
    rsps.add("POST", SEARCH, status=503)
    rsps.add("POST", SEARCH, json=[])
    assert list(adapter.changed_tickets(datetime(2026, 12, 1, tzinfo=UTC))) == []
    assert len(rsps.calls) == 2


# -- single reads ---------------------------------------------------------------------------


def test_get_ticket_expanded(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/tickets/3",
        json=load_fixture("zammad/ticket_3_expand.json"),
        match=q(expand="true"),
    )
    ticket = adapter.get_ticket(3)
    assert (ticket.id, ticket.number, ticket.group, ticket.state) == (3, "53003", "Sales", "closed")
    assert ticket.owner_id == 3
    assert ticket.owner_login == "chris@chrispresso.com"
    assert ticket.customer_login == "samuel@example.com"
    assert ticket.fields == {}


def test_get_ticket_without_names_uses_the_lists(rsps, adapter, resp_groups, resp_states):
    rsps.add("GET", f"{API}/tickets/3", json=load_fixture("zammad/ticket_3.json"))
    ticket = adapter.get_ticket(3)
    assert (ticket.group, ticket.state) == ("Sales", "closed")  # group 1, state 4


def test_get_ticket_404(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/tickets/99999",
        status=404,
        json={"error": "Couldn't find Ticket with 'id'=99999"},
    )
    with pytest.raises(NotFound, match="Couldn't find Ticket"):
        adapter.get_ticket(99999)


def test_get_tags(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/tags",
        json=load_fixture("zammad/tags_ticket.json"),
        match=q(object="Ticket", o_id=5),
    )
    assert adapter.get_tags(5) == {"americano", "complaint"}


def test_list_links(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/links",
        json=load_fixture("zammad/links_ticket_5.json"),
        match=q(link_object="Ticket", link_object_value=5),
    )
    assert adapter.list_links(5) == [Link(41, LinkKind.NORMAL)]


def test_list_subscribers(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/mentions",
        json=load_fixture("zammad/mentions.json"),
        match=q(mentionable_type="Ticket", mentionable_id=1),
    )
    assert adapter.list_subscribers(1) == {3, 4}


# A ticket history as GET /api/v1/ticket_history/{id} answers it (constructed, not from the
# docs, which have no example): the rows in History.list's shape (app/models/history.rb: the
# type/object/attribute lookups as names, updated_at dropped, value_* and id_* pairs left out
# when both are null, related_* only when set), as HasHistory (has_history.rb) and
# Tag::WritesToTicketHistory write them for ticket 5.
HISTORY_5 = {
    "history": [
        {"id": 1, "o_id": 5, "object": "Ticket", "type": "created", "created_by_id": 2,
         "created_at": "2026-12-01T09:00:00.120Z"},
        {"id": 2, "o_id": 35, "object": "Ticket::Article", "type": "created", "created_by_id": 2,
         "related_o_id": 5, "related_object": "Ticket", "created_at": "2026-12-01T09:00:00.120Z"},
        {"id": 3, "o_id": 5, "object": "Ticket", "type": "updated", "attribute": "owner",
         "id_from": 1, "id_to": 3, "value_from": "-", "value_to": "Chris Lee",
         "created_by_id": 3, "created_at": "2026-12-01T09:10:00.000Z", "sourceable_type": None},
        {"id": 4, "o_id": 5, "object": "Ticket", "type": "updated",
         "attribute": "escalation_level", "value_from": "1", "value_to": "2",
         "created_by_id": 3, "created_at": "2026-12-01T09:20:00.000Z"},
        {"id": 5, "o_id": 5, "object": "Ticket", "type": "added", "attribute": "tag",
         "value_from": None, "value_to": "carrier-route-failed", "created_by_id": 4,
         "created_at": "2026-12-01T09:30:00.000Z"},
        {"id": 6, "o_id": 5, "object": "Ticket", "type": "removed", "attribute": "tag",
         "value_from": None, "value_to": "escalate", "created_by_id": 1,
         "created_at": "2026-12-01T09:30:00.000Z", "sourceable_type": "Trigger",
         "sourceable_id": 7, "sourceable_name": "tidy"},
        {"id": 7, "o_id": 5, "object": "Ticket", "type": "notification",
         "value_to": "chris@example.com(update:online)", "created_by_id": 3,
         "created_at": "2026-12-01T09:31:00.000Z"},
        {"id": 8, "o_id": 9, "object": "Ticket", "type": "updated", "attribute": "title",
         "value_from": "a", "value_to": "b", "created_by_id": 3,
         "created_at": "2026-12-01T09:32:00.000Z"},
    ],
    "assets": {},
}  # fmt: skip


def test_ticket_events_reads_the_ticket_s_own_rows(rsps, adapter):
    rsps.add("GET", f"{API}/ticket_history/5", json=HISTORY_5)
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert adapter.ticket_events(5) == [
        TicketEvent(EventKind.CREATED, at + timedelta(milliseconds=120), 2),
        TicketEvent(
            EventKind.FIELD_CHANGED, at + timedelta(minutes=10), 3, "owner", "-", "Chris Lee"
        ),
        TicketEvent(
            EventKind.FIELD_CHANGED, at + timedelta(minutes=20), 3, "escalation_level", "1", "2"
        ),
        TicketEvent(
            EventKind.TAG_ADDED, at + timedelta(minutes=30), 4, value_to="carrier-route-failed"
        ),
        # a removed tag is named in value_to too; user 1 is the system, nobody
        TicketEvent(EventKind.TAG_REMOVED, at + timedelta(minutes=30), None, value_to="escalate"),
    ]


def test_ticket_events_of_a_ticket_not_readable(rsps, adapter):
    rsps.add("GET", f"{API}/ticket_history/5", status=403, json={"error": "Not authorized"})
    rsps.add(
        "GET",
        f"{API}/ticket_history/6",
        status=404,
        json={"error": "Couldn't find Ticket with 'id'=6"},
    )
    with pytest.raises(Forbidden):
        adapter.ticket_events(5)
    with pytest.raises(NotFound):
        adapter.ticket_events(6)


def test_ticket_events_unexpected_shape(rsps, adapter):
    rsps.add("GET", f"{API}/ticket_history/5", json=[])
    with pytest.raises(TransientError, match="history response shape"):
        adapter.ticket_events(5)


def test_list_articles(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/ticket_articles/by_ticket/5",
        json=load_fixture("zammad/articles_by_ticket_5.json"),
    )
    first, second = adapter.list_articles(5)
    assert (first.id, first.kind, first.sender, first.internal) == (
        9,
        ArticleKind.EMAIL,
        Sender.CUSTOMER,
        False,
    )
    assert first.is_customer_message
    assert first.from_ == "David Bell <david@example.com>"
    assert first.to == "order@chrispresso.com"
    assert first.content_type == "text/html"
    assert first.created_by_id == 10
    assert first.created_at == datetime(2021, 8, 2, 11, 57, 18, 68000, tzinfo=UTC)
    assert (second.id, second.sender) == (10, Sender.AGENT)
    assert not second.is_customer_message


def test_article_attachments_and_kinds(rsps, adapter):
    note = load_fixture("zammad/article_35.json")
    inline = load_fixture("zammad/article_37.json")
    unnamed = {**note, "id": 36, "type": None, "sender": None, "type_id": 99, "sender_id": 2}
    rsps.add("GET", f"{API}/ticket_articles/by_ticket/5", json=[inline, note, unnamed])
    articles = {a.id: a for a in adapter.list_articles(5)}
    assert articles[35].kind is ArticleKind.NOTE
    assert articles[35].internal
    assert articles[35].attachments == (
        AttachmentRef(
            ticket_id=5,
            article_id=35,
            id=17,
            filename="portal.txt",
            size=19,
            content_type="text/plain",
        ),
    )
    assert articles[37].attachments[0].content_type == "image/png"
    # a response without names falls back to the seeded sender ids
    assert (articles[36].kind, articles[36].sender) == (ArticleKind.OTHER, Sender.CUSTOMER)
    assert [a.id for a in adapter.list_articles(5)] == [35, 36, 37]  # oldest first


def test_fetch_attachment_never_asks_for_a_view(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/ticket_attachment/5/37/19",
        body=b"\x89PNG...",
        match=[matchers.query_string_matcher("")],
    )
    ref = AttachmentRef(5, 37, 19, "image1.png", 3735, "image/png")
    assert adapter.fetch_attachment(ref, max_bytes=10_000) == b"\x89PNG..."
    assert rsps.calls[0].request.req_kwargs["stream"] is True


def test_me_get_user_and_group_access(rsps, adapter, resp_groups, resp_roles):
    rsps.add("GET", f"{API}/users/me", json=load_fixture("zammad/user_me.json"))
    rsps.add("GET", f"{API}/users/11", json=load_fixture("zammad/user_11.json"))
    me = adapter.me()
    assert (me.id, me.login, me.email, me.display_name) == (
        3,
        "chris@chrispresso.com",
        "chris@chrispresso.com",
        "Christopher Miller",
    )
    assert me.is_agent
    assert me.active
    assert me.group_access == {
        "Sales": frozenset({"full"}),
        "2nd Level": frozenset({"full"}),
        "Service Desk": frozenset({"full"}),
    }
    customer = adapter.get_user(11)
    assert (customer.is_agent, customer.group_access) == (False, {})
    assert (
        len([c for c in rsps.calls if c.request.path_url.startswith("/api/v1/groups")]) == 1
    )  # cached


def test_find_user_matches_exactly(rsps, adapter, resp_roles):
    rows = load_fixture("zammad/users_search.json")
    rsps.add("GET", f"{API}/users/search", json=rows, match=q(query="emily@example.com", limit=200))
    rsps.add("GET", f"{API}/users/search", json=rows, match=q(query="mily", limit=200))
    user = adapter.find_user(" Emily@Example.com ")
    assert user is not None
    assert user.id == 8
    assert adapter.find_user("mily") is None  # substring hits are not matches


def test_group_access_granted_through_a_role_counts(rsps, adapter, resp_groups, resp_roles):
    """Zammad grants group access on the user and through roles (reference §3.5): an owner
    whose full access comes from a role must not be judged unable to own."""
    raw = {**load_fixture("zammad/user_11.json"), "role_ids": [2, 7], "group_ids": {}}
    rsps.add("GET", f"{API}/users/11", json=raw)
    user = adapter.get_user(11)
    assert user.is_agent
    assert user.group_access == {"2nd Level": frozenset({"full"})}


def test_roles_the_token_may_not_list_leave_user_access_as_it_is(rsps, adapter, resp_groups):
    rsps.add("GET", f"{API}/roles", json={"error": "Not authorized"}, status=403)
    rsps.add("GET", f"{API}/users/me", json=load_fixture("zammad/user_me.json"))
    assert adapter.me().group_access["Sales"] == frozenset({"full"})


def test_list_groups_and_states(rsps, adapter, resp_groups, resp_states):
    assert [g.name for g in adapter.list_groups()] == ["Sales", "2nd Level", "Service Desk"]
    states = {s.name: (s.type, s.active) for s in adapter.list_states()}
    assert states["new"] == ("new", True)
    assert states["closed"] == ("closed", True)
    assert states["pending reminder"] == ("pending reminder", True)
    assert states["removed"] == ("removed", False)
    assert states["pending close"][0] == "pending action"


def test_list_fields(rsps, adapter):
    listed = load_fixture("zammad/object_manager_attributes.json")
    # A migrated custom select, derived from the docs' "sample_select" create response:
    sample = {
        **load_fixture("zammad/object_manager_attributes.json")[2],
        "name": "escalation_level",
        "data_type": "select",
        "editable": True,
        "data_option": {"options": {"p1": "P1", "p2": "P2"}, "default": ""},
    }
    pending = {**sample, "name": "escalation_key", "to_create": True}
    rsps.add("GET", f"{API}/object_manager_attributes", json=[*listed, sample, pending])
    (field,) = adapter.list_fields()
    assert (field.name, field.data_type, field.options) == (
        "escalation_level",
        "select",
        {"p1", "p2"},
    )


def test_list_fields_without_admin_object_reads_one_ticket(rsps, adapter):
    """An agent token may not list object attributes; the columns of one readable ticket
    name the attributes instead (custom attributes are columns of the tickets table)."""
    rsps.add(
        "GET", f"{API}/object_manager_attributes", status=403, json={"error": "Not authorized"}
    )
    ticket = {
        **load_fixture("zammad/ticket_3_expand.json"),
        "escalation_level": "2",
        "escalation_key": None,
    }
    rsps.add(
        "GET",
        f"{API}/tickets",
        match=q(per_page=1, page=1, expand="true"),
        json=[ticket],
    )
    fields = adapter.list_fields()
    assert fields == [
        FieldInfo(name="escalation_level", data_type="unknown"),
        FieldInfo(name="escalation_key", data_type="unknown"),
    ]


def test_list_fields_without_admin_object_or_a_readable_ticket_is_none(rsps, adapter):
    rsps.add(
        "GET", f"{API}/object_manager_attributes", status=403, json={"error": "Not authorized"}
    )
    rsps.add("GET", f"{API}/tickets", json=[])
    assert adapter.list_fields() is None


def test_list_fields_for_a_token_without_ticket_agent_is_none(rsps, adapter):
    for path in ("object_manager_attributes", "tickets"):
        rsps.add("GET", f"{API}/{path}", status=403, json={"error": "Not authorized"})
    assert adapter.list_fields() is None


def test_list_fields_with_a_bad_token_raises(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/object_manager_attributes",
        status=401,
        json={"error": "Can't find User for Token"},
    )
    with pytest.raises(AuthError):
        adapter.list_fields()


def test_tag_exists_is_an_exact_match(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/tag_search",
        match=q(term="escalation", limit=200),
        json=[{"id": 4, "value": "de-escalation"}, {"id": 2, "value": "escalation"}],
    )
    rsps.add(
        "GET",
        f"{API}/tag_search",
        match=q(term="escalation-l", limit=200),
        json=[{"id": 5, "value": "escalation-l1"}],
    )
    assert adapter.tag_exists("escalation") is True
    assert adapter.tag_exists("escalation-l") is False


# -- create_ticket --------------------------------------------------------------------------


def test_create_ticket_payload(rsps, adapter, resp_states):
    """§0.1–0.3, §0.10–0.12: one atomic POST; first article an internal note from Agent with
    the marker footer; tags as a string; mentions as ids; the new ticket is parent's child."""
    draft = TicketDraft(
        title="ESC: Order 787556 – payment stuck",
        group="2nd Level::Escalations",
        customer_id=42,
        organization_id=7,
        state="open",
        owner_id=12,
        tags=frozenset({"sync-managed", "escalation"}),
        fields={"escalation_key": "53003", "escalation_level": "p1"},
        parent_id=3,
        mention_user_ids=(17, 23),
        first_note=ArticleDraft(
            body="<p>Escalated from #53003.</p>", subject="Escalated from #53003"
        ),
    )
    rsps.add(
        "POST",
        f"{API}/tickets",
        status=201,
        json={
            **load_fixture("zammad/ticket_created_19.json"),
            "escalation_key": "53003",
            "escalation_level": "p1",
        },
        match=body(
            {
                "title": "ESC: Order 787556 – payment stuck",
                "group": "2nd Level::Escalations",
                "customer_id": 42,
                "organization_id": 7,
                "state": "open",
                "owner_id": 12,
                "escalation_key": "53003",
                "escalation_level": "p1",
                "tags": "escalation,sync-managed",
                "mentions": [17, 23],
                "links": {"Ticket": {"child": [3]}},
                "article": {
                    "type": "note",
                    "internal": True,
                    "sender": "Agent",
                    "content_type": "text/html",
                    "subject": "Escalated from #53003",
                    "body": "<p>Escalated from #53003.</p>" + FOOTER_HTML,
                },
            }
        ),
    )
    created = adapter.create_ticket(draft, marker=MARKER)
    assert (created.id, created.number) == (19, "22019")
    assert [c.request.method for c in rsps.calls].count("POST") == 1


def test_create_ticket_minimal_payload(rsps, adapter):
    draft = TicketDraft(
        title="t",
        group="Sales",
        customer_id=2,
        first_note=ArticleDraft(body="b", content_type="text/plain"),
    )
    rsps.add(
        "POST",
        f"{API}/tickets",
        status=201,
        json=load_fixture("zammad/ticket_created_19.json"),
        match=body(
            {
                "title": "t",
                "group": "Sales",
                "customer_id": 2,
                "article": {
                    "type": "note",
                    "internal": True,
                    "sender": "Agent",
                    "content_type": "text/plain",
                    "body": f"b\n\n{MARKER.footer}",
                },
            }
        ),
    )
    adapter.create_ticket(draft, marker=MARKER)


def test_create_requires_group(rsps, adapter):
    """Corrections #3: Zammad answers 403 (an 'auth' error) without a group."""
    draft = TicketDraft(title="t", group=" ", customer_id=2, first_note=ArticleDraft(body="b"))
    with pytest.raises(Rejected, match="needs a group"):
        adapter.create_ticket(draft, marker=MARKER)


@pytest.mark.parametrize("tag", ["a,b", "wild*", " padded", ""])
def test_tag_names_validated(rsps, adapter, tag):
    """§0.11: ',' and '*' are invalid; nothing is sent."""
    draft = TicketDraft(
        title="t",
        group="Sales",
        customer_id=2,
        first_note=ArticleDraft(body="b"),
        tags=frozenset({tag}),
    )
    with pytest.raises(Rejected, match="invalid tag"):
        adapter.create_ticket(draft, marker=MARKER)
    with pytest.raises(Rejected, match="invalid tag"):
        adapter.set_tags(3, present=frozenset({tag}))


@pytest.mark.parametrize("name", ["title", "article", "owner_id", "customer_ids", "tags"])
def test_custom_fields_may_not_shadow_standard_keys(adapter, name):
    draft = TicketDraft(
        title="t",
        group="Sales",
        customer_id=2,
        first_note=ArticleDraft(body="b"),
        fields={name: "x"},
    )
    with pytest.raises(Rejected):
        adapter.create_ticket(draft, marker=MARKER)


def test_create_ticket_owner_ineligible_is_rejected(rsps, adapter):
    """§0.9: on create an ineligible owner is a 422."""
    rsps.add(
        "POST",
        f"{API}/tickets",
        status=422,
        json={"error": "Invalid value '12' for field 'owner_id'!"},
    )
    draft = TicketDraft(
        title="t", group="Sales", customer_id=2, owner_id=12, first_note=ArticleDraft(body="b")
    )
    with pytest.raises(Rejected, match="owner_id"):
        adapter.create_ticket(draft, marker=MARKER)


def test_create_ticket_warns_about_dropped_fields(rsps, adapter, caplog):
    """§0.13: the ticket exists, so create warns rather than failing."""
    rsps.add(
        "POST", f"{API}/tickets", status=201, json=load_fixture("zammad/ticket_created_19.json")
    )
    draft = TicketDraft(
        title="t",
        group="Sales",
        customer_id=2,
        first_note=ArticleDraft(body="b"),
        fields={"escalation_key": "1"},
    )
    adapter.create_ticket(draft, marker=MARKER)
    assert "zammad.fields_dropped ticket=19 fields=escalation_key" in caplog.text


# -- add_article ----------------------------------------------------------------------------


def test_add_article_payload(rsps, adapter):
    data = b"The cake is a lie!\n" * 80  # long enough that base64.encodebytes would wrap it
    draft = ArticleDraft(
        body="<p>Customer wrote</p>",
        subject="Customer email (copied from #53003)",
        attachments=(AttachmentUpload("portal.txt", "text/plain", data),),
    )
    encoded = base64.b64encode(data).decode()
    assert "\n" not in encoded
    rsps.add(
        "POST",
        f"{API}/ticket_articles",
        status=201,
        json=load_fixture("zammad/article_35.json"),
        match=body(
            {
                "ticket_id": 5,
                "type": "note",
                "internal": True,
                "sender": "Agent",
                "content_type": "text/html",
                "subject": "Customer email (copied from #53003)",
                "body": "<p>Customer wrote</p>" + FOOTER_HTML,
                "attachments": [
                    {"filename": "portal.txt", "data": encoded, "mime-type": "text/plain"}
                ],
            }
        ),
    )
    assert adapter.add_article(5, draft, marker=MARKER) == 35


def test_add_article_body_too_large(rsps, adapter):
    with pytest.raises(Rejected, match="exceeds"):
        adapter.add_article(5, ArticleDraft(body="x" * 1_500_000), marker=MARKER)


def test_add_article_odd_content_type(adapter):
    """content_type is limited to 20 characters by Zammad."""
    with pytest.raises(Rejected, match="content type"):
        adapter.add_article(
            5, ArticleDraft(body="x", content_type="text/html; charset=utf-8"), marker=MARKER
        )


def test_add_article_forbidden_names_the_missing_group_access(rsps, adapter):
    """Corrections #7 and issue 10 item 5: the refusal says which access the worker's user
    lacks on the ticket's group, found by reading the ticket and the user."""
    rsps.add("POST", f"{API}/ticket_articles", status=403, json={"error": "Not authorized"})
    rsps.add("GET", f"{API}/tickets/3", json=load_fixture("zammad/ticket_3_expand.json"))
    me = {**load_fixture("zammad/user_me.json"), "group_ids": {"1": ["read"]}, "role_ids": []}
    rsps.add("GET", f"{API}/users/me", json=me)
    rsps.add("GET", f"{API}/groups", json=load_fixture("zammad/groups.json"))
    with pytest.raises(Forbidden, match="lacks change and create access to group 'Sales'"):
        adapter.add_article(3, ArticleDraft(body="x"), marker=MARKER)


def test_add_article_forbidden_on_a_ticket_it_can_no_longer_read(rsps, adapter):
    rsps.add("POST", f"{API}/ticket_articles", status=403, json={"error": "Not authorized"})
    rsps.add("GET", f"{API}/tickets/3", status=403, json={"error": "Not authorized"})
    with pytest.raises(Forbidden, match="may no longer read ticket 3"):
        adapter.add_article(3, ArticleDraft(body="x"), marker=MARKER)


# -- markers --------------------------------------------------------------------------------


def _note(article_id: int, ticket_id: int, text: str, internal: bool = True) -> dict:
    return {
        **load_fixture("zammad/article_35.json"),
        "id": article_id,
        "ticket_id": ticket_id,
        "body": text,
        "internal": internal,
    }


def test_find_article_by_marker(rsps, adapter):
    """§0.15: by_ticket, a database read; only an internal note whose LAST marker is ours."""
    other = Marker("hde1-ffffffffffffffff")
    rows = [
        *load_fixture("zammad/articles_by_ticket_5.json"),
        _note(40, 5, f"<p>quoted {MARKER.footer}</p><p>then {other.footer}</p>"),
        _note(41, 5, f"<p>public</p><p>{MARKER.footer}</p>", internal=False),
        _note(42, 5, f"<p>copy</p><p>{MARKER.footer}</p>"),
    ]
    rsps.add("GET", f"{API}/ticket_articles/by_ticket/5", json=rows)
    assert adapter.find_article_by_marker(5, MARKER) == 42
    assert adapter.find_article_by_marker(5, other) == 40
    assert adapter.find_article_by_marker(5, Marker("hde1-0000000000000000")) is None


def test_find_ticket_by_marker(rsps, adapter):
    links = {"links": [
        {"link_type": "normal", "link_object": "Ticket", "link_object_value": 41},
        {"link_type": "child", "link_object": "Ticket", "link_object_value": 19},
        {"link_type": "child", "link_object": "Ticket", "link_object_value": 20},
    ], "assets": {}}  # fmt: skip
    rsps.add("GET", f"{API}/links", json=links, match=q(link_object="Ticket", link_object_value=3))
    rsps.add("GET", f"{API}/ticket_articles/by_ticket/19", json=[_note(50, 19, "<p>other</p>")])
    rsps.add("GET", f"{API}/ticket_articles/by_ticket/20", status=404, json={"error": "gone"})
    rsps.add(
        "GET", f"{API}/ticket_articles/by_ticket/41", json=[_note(51, 41, f"<p>x</p>{FOOTER_HTML}")]
    )
    assert adapter.find_ticket_by_marker(MARKER, linked_to=3) == 41
    assert [c.request.method for c in rsps.calls] == ["GET"] * 4  # no search, no writes


# -- set_tags -------------------------------------------------------------------------------


def test_set_tags_writes_only_the_difference(rsps, adapter):
    rsps.add(
        "GET",
        f"{API}/tags",
        json={"tags": ["americano", "complaint"]},
        match=q(object="Ticket", o_id=5),
    )
    rsps.add(
        "POST",
        f"{API}/tags/add",
        status=201,
        json=True,
        match=body({"item": "escalation", "object": "Ticket", "o_id": 5}),
    )
    rsps.add(
        "DELETE",
        f"{API}/tags/remove",
        json=True,
        match=body({"item": "complaint", "object": "Ticket", "o_id": 5}),
    )
    result = adapter.set_tags(
        5,
        present=frozenset({"escalation", "americano"}),
        absent=frozenset({"complaint", "absent-one"}),
    )
    assert result == {"americano", "escalation"}
    assert len(rsps.calls) == 3


def test_set_tags_noop_is_one_read(rsps, adapter):
    """§0.7: tag remove bumps updated_at even for an absent tag, so it is never sent."""
    rsps.add("GET", f"{API}/tags", json=load_fixture("zammad/tags_ticket.json"))
    assert adapter.set_tags(5, present=frozenset({"americano"}), absent=frozenset({"vip"})) == {
        "americano",
        "complaint",
    }
    assert len(rsps.calls) == 1


def test_set_tags_conflict_is_a_programming_error(adapter):
    with pytest.raises(ValueError, match="both"):
        adapter.set_tags(5, present=frozenset({"a"}), absent=frozenset({"a"}))


def test_tag_add_is_retried_because_it_is_idempotent(rsps, adapter):
    """Adding only: no read first (a duplicate add is a no-op), so nothing is returned."""
    rsps.add("POST", f"{API}/tags/add", status=502)
    rsps.add("POST", f"{API}/tags/add", status=201, json=True)
    assert adapter.set_tags(5, present=frozenset({"x"})) is None
    assert [c.request.method for c in rsps.calls] == ["POST", "POST"]


# -- update_ticket --------------------------------------------------------------------------


def test_update_ticket_payload(rsps, adapter):
    updated = {
        **load_fixture("zammad/ticket_updated_19.json"),
        "owner_id": 4,
        "escalation_level": "p2",
        "group": "Sales",
        "state": "pending reminder",
        "pending_time": "2026-12-04T08:00:00.000Z",
    }
    rsps.add(
        "PUT",
        f"{API}/tickets/19",
        json=updated,
        match=[
            *q(expand="true"),
            matchers.json_params_matcher(
                {
                    "owner_id": 4,
                    "group": "Sales",
                    "state": "pending reminder",
                    "pending_time": "2026-12-04T08:00:00.000Z",
                    "escalation_level": "p2",
                }
            ),
        ],
    )
    ticket = adapter.update_ticket(
        19,
        TicketChanges(
            owner_id=4,
            group="Sales",
            state="pending reminder",
            pending_until=datetime(2026, 12, 4, 9, tzinfo=timezone(timedelta(hours=1))),
            fields={"escalation_level": "p2"},
        ),
    )
    assert ticket.owner_id == 4
    assert ticket.pending_until == datetime(2026, 12, 4, 8, tzinfo=UTC)
    assert ticket.fields == {"escalation_level": "p2"}


def test_update_owner_reset(rsps, adapter):
    """Corrections #1: the PUT answers 200 with owner 1; that is a failed assignment."""
    answer = {**load_fixture("zammad/ticket_updated_19.json"), "group": "Sales", "state": "open"}
    rsps.add("PUT", f"{API}/tickets/19", json=answer, match=body({"owner_id": 12}))
    with pytest.raises(
        Rejected, match="owner reset to unassigned: user 12 lacks full access to group Sales"
    ):
        adapter.update_ticket(19, TicketChanges(owner_id=12))


def test_update_with_note_payload(rsps, adapter):
    """§3.4: the note rides on the PUT as its ``article`` (an internal note, marker footer
    last), and the answer's ``article_ids`` hold it."""
    answer = {
        **load_fixture("zammad/ticket_updated_19.json"),
        "group": "Sales",
        "state": "open",
        "escalation_requested": False,
        "article_ids": [30, 31, 32],
    }
    rsps.add(
        "PUT",
        f"{API}/tickets/19",
        json=answer,
        match=[
            *body(
                {
                    "escalation_requested": False,
                    "article": {
                        "type": "note",
                        "internal": True,
                        "sender": "Agent",
                        "content_type": "text/html",
                        "subject": "Escalated",
                        "body": "<p>Escalated as #53004</p>" + FOOTER_HTML,
                    },
                }
            ),
            *q(expand="true"),
        ],
    )
    changes = TicketChanges(
        fields={"escalation_requested": False},
        note=ArticleDraft(body="<p>Escalated as #53004</p>", subject="Escalated"),
    )
    ticket = adapter.update_ticket(19, changes, marker=MARKER)
    assert ticket.article_ids == frozenset({30, 31, 32})


def test_update_with_note_needs_its_marker(adapter):
    changes = TicketChanges(fields={"escalation_requested": False}, note=ArticleDraft("<p>n</p>"))
    with pytest.raises(ValueError, match="marker"):
        adapter.update_ticket(19, changes)


def test_update_with_note_is_never_retried_blind(rsps, adapter):
    """A PUT with an article is not idempotent: a 502 after it may have been applied is an
    AmbiguousWrite, and the PUT is sent once (a plain PUT is retried on a 502)."""
    rsps.add("PUT", f"{API}/tickets/19", status=502)
    changes = TicketChanges(fields={"escalation_requested": False}, note=ArticleDraft("<p>n</p>"))
    with pytest.raises(AmbiguousWrite):
        adapter.update_ticket(19, changes, marker=MARKER)
    assert len(rsps.calls) == 1


def test_update_unknown_field(rsps, adapter):
    """§0.13: Zammad drops an unknown attribute silently; the answer shows it is missing."""
    answer = {**load_fixture("zammad/ticket_updated_19.json"), "group": "Sales", "state": "open"}
    rsps.add("PUT", f"{API}/tickets/19", json=answer, match=body({"escalation_levle": "p1"}))
    with pytest.raises(Rejected, match="dropped field.*escalation_levle"):
        adapter.update_ticket(19, TicketChanges(fields={"escalation_levle": "p1"}))


def test_pending_state_needs_a_pending_time(rsps, adapter, resp_states):
    """Zammad answers 422 (an opaque "Error ID" for non-admins); say it clearly instead."""
    with pytest.raises(Rejected, match="needs a pending time"):
        adapter.update_ticket(19, TicketChanges(state="pending reminder"))
    draft = TicketDraft(
        title="t", group="Sales", customer_id=2, state="pending close", first_note=ArticleDraft("b")
    )
    with pytest.raises(Rejected, match="needs a pending time"):
        adapter.create_ticket(draft, marker=MARKER)
    assert [c.request.method for c in rsps.calls] == ["GET"]  # the state list, once


def test_update_with_nothing_to_change_only_reads(rsps, adapter):
    rsps.add("GET", f"{API}/tickets/3", json=load_fixture("zammad/ticket_3_expand.json"))
    assert adapter.update_ticket(3, TicketChanges()).id == 3


# -- link_tickets ---------------------------------------------------------------------------


def test_link_tickets_payload(rsps, adapter):
    """§0.10: type "child" = the source is the child of the target; source by NUMBER,
    target by ID; links read first."""
    rsps.add(
        "GET",
        f"{API}/links",
        json={"links": [], "assets": {}},
        match=q(link_object="Ticket", link_object_value=3),
    )
    rsps.add(
        "GET",
        f"{API}/tickets/19",
        json={**load_fixture("zammad/ticket_created_19.json"), "group": "Sales", "state": "new"},
    )
    rsps.add(
        "POST",
        f"{API}/links/add",
        status=201,
        json=load_fixture("zammad/link_added.json"),
        match=body(
            {
                "link_type": "child",
                "link_object_source": "Ticket",
                "link_object_source_number": "22019",
                "link_object_target": "Ticket",
                "link_object_target_value": 3,
            }
        ),
    )
    adapter.link_tickets(3, 19)


def test_link_tickets_skips_an_existing_link(rsps, adapter):
    links = {
        "links": [{"link_type": "child", "link_object": "Ticket", "link_object_value": 19}],
        "assets": {},
    }
    rsps.add("GET", f"{API}/links", json=links)
    adapter.link_tickets(3, 19)
    assert len(rsps.calls) == 1


# -- subscribe ------------------------------------------------------------------------------

MENTIONS_URL = f"{API}/mentions"


def test_subscribe_self_without_from(rsps, adapter):
    rsps.add(
        "GET",
        MENTIONS_URL,
        json={"mentions": []},
        match=q(mentionable_type="Ticket", mentionable_id=12),
    )
    rsps.add("GET", f"{API}/users/me", json={"id": 3, "login": "bot"})
    rsps.add(
        "POST",
        MENTIONS_URL,
        status=201,
        json=True,
        match=body({"mentionable_type": "Ticket", "mentionable_id": 12}),
    )
    adapter.subscribe(12, 3)
    assert "From" not in rsps.calls[2].request.headers


def test_subscribe_other_user_sends_from(rsps, adapter):
    """§0.12: POST /mentions subscribes the caller; anyone else needs From."""
    rsps.add("GET", MENTIONS_URL, json={"mentions": []})
    rsps.add("GET", f"{API}/users/me", json={"id": 3, "login": "bot"})
    rsps.add(
        "POST",
        MENTIONS_URL,
        status=201,
        json=True,
        match=[
            *body({"mentionable_type": "Ticket", "mentionable_id": 12}),
            matchers.header_matcher({"From": "4"}),
        ],
    )
    rsps.add(
        "GET",
        MENTIONS_URL,
        json={"mentions": [{"mentionable_type": "Ticket", "mentionable_id": 12, "user_id": 4}]},
    )
    adapter.subscribe(12, 4)


def test_subscribe_skips_an_existing_subscription(rsps, adapter):
    rsps.add("GET", MENTIONS_URL, json=load_fixture("zammad/mentions.json"))
    adapter.subscribe(1, 4)
    assert len(rsps.calls) == 1


def test_subscribe_without_admin_user_says_so(rsps, adapter):
    rsps.add("GET", MENTIONS_URL, json={"mentions": []})
    rsps.add("GET", f"{API}/users/me", json={"id": 3, "login": "bot"})
    rsps.add(
        "POST",
        MENTIONS_URL,
        status=403,
        json={"error": "Current user has no permission to use 'From'/'X-On-Behalf-Of'!"},
    )
    with pytest.raises(AuthError, match="admin.user") as info:
        adapter.subscribe(12, 4)
    assert info.value.status == 403


def test_subscribe_from_ignored_by_an_old_server(rsps, adapter):
    rsps.add("GET", MENTIONS_URL, json={"mentions": []})
    rsps.add("GET", f"{API}/users/me", json={"id": 3, "login": "bot"})
    rsps.add("POST", MENTIONS_URL, status=201, json=True)
    rsps.add(
        "GET",
        MENTIONS_URL,
        json={"mentions": [{"mentionable_type": "Ticket", "mentionable_id": 12, "user_id": 3}]},
    )
    with pytest.raises(Rejected, match="ignored the header"):
        adapter.subscribe(12, 4)


# -- misc -----------------------------------------------------------------------------------


def test_utc_ms():
    assert utc_ms(datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"


def test_writes_log_ids_not_content(rsps, adapter, caplog):
    caplog.set_level(logging.INFO)
    rsps.add(
        "POST", f"{API}/ticket_articles", status=201, json=load_fixture("zammad/article_35.json")
    )
    adapter.add_article(
        5,
        ArticleDraft(body="<p>Secret customer text</p>", subject="Private subject"),
        marker=MARKER,
    )
    assert "zammad.article_added ticket=5 article=35 marker=hde1-00112233445566ff" in caplog.text
    assert "Secret customer text" not in caplog.text
    assert "Private subject" not in caplog.text


def _call_row(call_id: int, created: str, **extra: object) -> dict[str, object]:
    """A caller-log row in ``Cti::Log#attributes`` shape (app/models/cti/log.rb)."""
    return {
        "id": call_id,
        "direction": "out",
        "state": "hangup",
        "from": "35315559000",
        "from_comment": "Alice Agent",
        "to": "35315550101",
        "to_comment": "Sean Walsh",
        "queue": "35315559000",
        "call_id": f"{call_id}-1",
        "comment": "normalClearing",
        "initialized_at": created,
        "start_at": None,
        "end_at": None,
        "duration_waiting_time": None,
        "duration_talking_time": None,
        "done": True,
        "preferences": {"from_pretty": "+353 1 555 9000", "to_pretty": "+353 1 555 0101"},
        "created_at": created,
        "updated_at": created,
        "from_pretty": "+353 1 555 9000",
        "to_pretty": "+353 1 555 0101",
        **extra,
    }


def test_recent_calls_reads_answered_calls_and_known_callers(rsps, adapter):
    known = [
        {"caller_id": "35315550101", "level": "known", "object": "User", "o_id": 7, "user_id": 7},
        {"caller_id": "35315550101", "level": "maybe", "object": "User", "o_id": 9, "user_id": 9},
    ]
    rows = [
        _call_row(12, "2026-12-01T09:10:00.000Z"),  # nobody answered
        _call_row(
            11,
            "2026-12-01T09:00:00.000Z",
            start_at="2026-12-01T09:00:12.000Z",
            end_at="2026-12-01T09:04:12.000Z",
            preferences={"to": known},
        ),
        {"id": "x", "direction": "sideways"},  # unreadable: left out
    ]
    rsps.add("GET", f"{API}/cti/log", json={"list": rows, "assets": {}, "backends": []})
    log = adapter.recent_calls()
    assert [c.id for c in log.calls] == [12, 11]
    assert log.complete_since is None  # fewer rows than the view limit: the whole log
    unanswered, answered = log.calls
    assert unanswered.answered_at is None
    assert answered.direction is CallDirection.OUTBOUND
    assert answered.answered_at == datetime(2026, 12, 1, 9, 0, 12, tzinfo=UTC)
    assert answered.to_user_ids == frozenset({7})  # "maybe" is only a number seen somewhere
    assert answered.to_number == "35315550101"


def test_recent_calls_says_from_when_a_cut_list_is_complete(rsps, adapter):
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    rows = [_call_row(100 - n, utc_ms(start + timedelta(minutes=60 - n))) for n in range(60)]
    rsps.add("GET", f"{API}/cti/log", json={"list": rows, "assets": {}, "backends": []})
    log = adapter.recent_calls()
    assert len(log.calls) == 60
    assert log.complete_since == start + timedelta(minutes=1)


def test_recent_calls_needs_cti_agent(rsps, adapter):
    rsps.add("GET", f"{API}/cti/log", status=403, json={"error": "Not authorized"})
    with pytest.raises(Forbidden):
        adapter.recent_calls()
    rsps.add("GET", f"{API}/cti/log", json=[])
    with pytest.raises(TransientError, match="caller log response shape"):
        adapter.recent_calls()


def test_count_customer_tickets_is_one_condition_only_search(rsps, adapter):
    since = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    body = {
        "condition": {
            "ticket.customer_id": {"operator": "is", "value": ["7"]},
            "ticket.created_at": {
                "operator": "after (absolute)",
                "value": "2026-11-01T09:30:00.000Z",
            },
        },
        "only_total_count": True,
        "per_page": 200,
        "expand": True,
    }
    rsps.add("POST", SEARCH, json={"total_count": 4}, match=[matchers.json_params_matcher(body)])
    assert adapter.count_customer_tickets(7, created_since=since) == 4


def test_count_customer_tickets_before_6_5_counts_the_page(rsps, adapter):
    since = datetime(2026, 11, 1, tzinfo=UTC)
    rsps.add("POST", SEARCH, json=[{"id": 3}, {"id": 9}])  # only_total_count ignored, expanded
    assert adapter.count_customer_tickets(7, created_since=since) == 2
    rsps.add("POST", SEARCH, json={"oops": 1})
    with pytest.raises(TransientError, match="search response shape"):
        adapter.count_customer_tickets(7, created_since=since)
