"""The Zammad adapter: ``HelpdeskAdapter`` over Zammad's REST API (``/api/v1``).

Vendor JSON stays in this module; callers get the frozen types from ``connector/base.py``.
All HTTP goes through ``connector/http.py`` (timeouts, retries, error mapping, redaction).

The traps of ``reference/zammad-api.md`` §0 and its Corrections, and how each is handled
(``test:`` names the test in ``tests/connector/test_zammad.py`` where one is possible)::

    §0.1  type "email" mails whoever it names, internal or not
          → by design: every article we write is type "note", sender "Agent";
            ArticleDraft has no type field.                 test: test_create_ticket_payload,
                                                                  test_add_article_payload
    §0.2  a customer email/phone/web first article fires the auto-reply trigger
          → by design: the first article is always an internal note.
                                                            test: test_create_ticket_payload
    §0.3  API articles default to internal: false
          → by design: "internal": true on every article.  test: as §0.1
    §0.4  search answers a plain list (6.5+) or {"tickets","assets"} (≤6.4)
          → "expand": true on every search, and both shapes are read.
                                                            test: test_changed_tickets_legacy_shape
    §0.5  a "query" sends the search to Elasticsearch (lag, 10k window, silent [])
          → by design: condition-only body, never a "query" key. The search is a read, so
            its POST is retried like a GET (``idempotent=True``).
                                                            test: test_changed_tickets_idle_poll
    §0.6  "after (absolute)" is inclusive and compared to a UTC column
          → the cursor is sent as UTC with milliseconds ("…Z", truncated so the bound
            stays inclusive); rows are de-duplicated on (id, updated_at) and re-checked
            against ``since`` client-side.                 test: test_changed_tickets_utc_cursor
    §0.7  our own writes bump updated_at (tag remove always does)
          → set_tags reads first and never removes an absent tag or adds a present one;
            link_tickets and subscribe read first and skip what is there.
                                                            test: test_set_tags_noop_is_one_read
    §0.8  sort_by needs a matching order_by; page sizes are capped silently
          → both lists sent; the last page is detected against min(page_size, 200);
            keyset paging restarts at the newest updated_at seen (page=2.. only when a
            whole page shares one updated_at).              test: test_changed_tickets_keyset_*
    §0.9  an ineligible owner is reset to 1 silently on update (Corrections #1)
          → update_ticket reads the ticket back (the PUT answer) and raises Rejected
            "owner reset to unassigned: …".                test: test_update_owner_reset
    §0.10 links/add wants the source NUMBER and the target ID; type means "source is
          the <type> of target"
          → link_tickets sends link_type "child", source = child's number (read with
            get_ticket), target = parent's id.            test: test_link_tickets_payload
    §0.11 tags on create are a comma-separated string; ignored on update; "," and "*"
          are invalid
          → create sends a string; set_tags uses tags/add and tags/remove; names with
            "," or "*" (or blank) raise Rejected before anything is sent.
                                                            test: test_tag_names_validated
    §0.12 POST /mentions subscribes only the caller
          → subscribe sends "From: <user id>" for anyone else; a 403 becomes a Forbidden
            that says admin.user (or group read access) is missing; the subscription is
            read back, so an old server that ignores From is caught.
                                                            test: test_subscribe_*
    §0.13 unknown fields are dropped silently; attributes need a migration first
          → update_ticket checks every custom field it set is present in the answer
            (Rejected otherwise); list_fields leaves out attributes whose migration has
            not run; custom field names that clash with standard keys or end in _id(s)
            raise Rejected.                                 test: test_update_unknown_field
    §0.14 no credentials → 403, bad token → 401; opaque "Error ID" bodies
          → Unauthorized and Forbidden (http.py); the server message is kept, redacted;
            403 "Maintenance mode enabled!" is Maintenance, a transient error.
                                       test: test_http.py::test_raise_for_response_maps_statuses,
                         test_http_faults.py::test_witness_token_never_leaks
    §0.15 POST is not idempotent; Zammad has no idempotency keys
          → every create carries the marker (footer line of the first note / article);
            find_ticket_by_marker / find_article_by_marker use database-backed reads
            (links, articles by ticket), never search; an ambiguous POST raises
            AmbiguousWrite (http.py).                       test: test_find_*_by_marker
          A PUT /tickets/{id} carrying an "article" (§3.4: created in the update's row
          lock) is not idempotent either: the note carries the marker and the PUT is sent
          idempotent=False, so it is never retried blind (AmbiguousWrite instead).
                                                 test: test_update_with_note_*
          A 2xx to a marked write whose answer cannot be read (no id, not a ticket) is
          AmbiguousWrite too, never a TransientError: one without a status reads as
          "nothing applied" and was sent again without the look.
                                 test: tests/jobs/test_unreadable_answers.py
    Corr.#2  links/add with an unknown number → 404: the number comes from get_ticket.
    Corr.#3  create without a group → 403 (looks like an auth failure)
          → a blank group raises Rejected before sending. test: test_create_requires_group
    Corr.#4  an invalid selector returns everything unfiltered
          → rows older than the cursor mean the condition was dropped: Rejected, never
            "many changes".                                test: test_changed_tickets_unfiltered
    Corr.#5  "is set"/"not set" on plain columns → 500: never sent (a field criterion is
             sent as "is" with a value; an empty value would drop the whole selector,
             Corr.#4, and is caught as such).
    Corr.#7  creating an article needs Create access → the Forbidden names the access the
             worker lacks on the ticket's group (or that it can no longer read it).
    Corr.#9  duplicate links answer 201 with a null id → link_tickets reads first.
    Also     body > 1,500,000 chars → 422: raised as Rejected before sending;
             a pending state without pending_time → 422 (opaque "Error ID" for
             non-admins): raised as Rejected before sending;
             content_type ≤ 20 chars → only "text/html" or "text/plain" are sent;
             attachment data is strict base64 (no newlines);
             "?view=inline" may return a resized image → downloads never send view=;
             "From" is sent, never the deprecated X-On-Behalf-Of;
             updated_at is stamped by Zammad's clock, not ours → ``clock_offset`` (from
             the Date header of each answer) lets the poll take its signpost in Zammad's
             time.                      test: test_sync.py::test_a_helpdesk_clock_behind*
    CTI    GET /api/v1/cti/log answers {"list", "assets", "backends"}; "list" holds only the
           newest calls (``cti_config`` view_limit, 60 unless changed), newest first, and
           only the queues notify_map gives the token's user when one is set; it needs the
           cti.agent permission (403 without); a call's "start_at" is set when it is
           answered, never for one nobody took; the caller ids Zammad matched to users are
           in preferences "from"/"to" with level "known" or "maybe" (a number seen in some
           article) (app/models/cti/log.rb, cti_controller.rb)
          → recent_calls reads the list once, keeps "known" matches only, and says from
            when the list is complete (the oldest call when it holds view_limit or more).
                                                           test: test_recent_calls_*
    Hist.  a tag write does not change the ticket's updated_by_id (it only touches the
           ticket), so updated_by_id does not say who tagged; GET /ticket_history/{id}
           does, but mixes in the rows of the ticket's articles, mentions and checklists
           (related_o_id), leaves out value_from/value_to (and id_from/id_to) when both are
           null, and names a removed tag in value_to, not value_from
           (tag/writes_to_ticket_history.rb)
          → ticket_events keeps the "Ticket" rows of that ticket only and reads the tag
            of an added or removed row from value_to.     test: test_ticket_events_*

Markers: a marker is found only as the **last** marker in the body of an internal note. Our
footer is appended at the end, so a marker quoted inside a copied customer email (which an
attacker could pre-compute from a guessable natural key) cannot pass for ours.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.base import (
    MARKER_RE,
    Article,
    ArticleDraft,
    ArticleId,
    ArticleKind,
    AttachmentRef,
    AttachmentUpload,
    CallDirection,
    CallLog,
    CallRecord,
    Capability,
    CreatedTicket,
    Criterion,
    EventKind,
    FieldInfo,
    FieldValue,
    Group,
    Link,
    LinkKind,
    Marker,
    Sender,
    Ticket,
    TicketChanges,
    TicketDraft,
    TicketEvent,
    TicketId,
    TicketState,
    User,
    UserId,
)
from connector.clock import Clock
from connector.errors import (
    AmbiguousWrite,
    AppliedNotAsAsked,
    Forbidden,
    HelpdeskError,
    NotFound,
    Rejected,
    TransientError,
)
from connector.http import HttpClient

log = logging.getLogger(__name__)

SEARCH_PATH = "/api/v1/tickets/search"
SEARCH_PAGE_MAX = 200
CUSTOMERS_PER_SEARCH = 100
"""Customers per ``customer_tickets`` search: the ids go into one SQL ``IN (…)`` list, kept
to a request body of about a kilobyte."""
CALL_LOG_VIEW_LIMIT = 60
"""Calls ``GET /api/v1/cti/log`` returns unless ``cti_config`` sets another view_limit."""
"""Zammad clamps search pages to 200 rows without an error (reference §0.8, §3.6)."""
INDEX_PAGE_SIZE = 500
"""Generic index endpoints (groups, states): default and safe page size on 5.x–7.x."""
BODY_MAX_CHARS = 1_500_000
"""Zammad rejects article bodies longer than this with 422 (reference §5.3)."""
UNASSIGNED_USER_ID = 1
TAG_SEARCH_LIMIT = 200
"""Rows asked of ``tag_search`` (a substring match, 10 rows unless told)."""
ARTICLE_CONTENT_TYPES = frozenset({"text/html", "text/plain"})

# Ticket keys that are Zammad columns or response decorations, not custom attributes.
# Custom attribute names may not end in _id/_ids (reference §10), so such keys are never
# custom fields either.
STANDARD_TICKET_KEYS = frozenset(
    {
        "id", "number", "title", "note", "type", "preferences", "time_unit",
        "group", "group_id", "priority", "priority_id", "state", "state_id",
        "organization", "organization_id", "owner", "owner_id", "customer", "customer_id",
        "created_by", "created_by_id", "updated_by", "updated_by_id",
        "created_at", "updated_at", "pending_time", "escalation_at",
        "first_response_at", "first_response_escalation_at", "first_response_in_min",
        "first_response_diff_in_min", "close_at", "close_escalation_at", "close_in_min",
        "close_diff_in_min", "update_escalation_at", "update_in_min", "update_diff_in_min",
        "last_close_at", "last_contact_at", "last_contact_agent_at",
        "last_contact_customer_at", "last_owner_update_at",
        "create_article_type", "create_article_type_id", "create_article_sender",
        "create_article_sender_id", "article_count", "article_ids",
        "ticket_time_accounting", "ticket_time_accounting_ids", "time_units_per_type",
        "checklist", "checklist_id", "referencing_checklists", "referencing_checklist_ids",
        "ai_stored_results", "ai_stored_result_ids", "mentions", "mention_ids", "tags",
        "links", "article", "shared_draft_id", "shared_draft_ids",
    }
)  # fmt: skip
# Keys our create payload uses itself; a custom field may not shadow them.
_PAYLOAD_KEYS = frozenset({"article", "tags", "mentions", "links", "group", "state"})

_KINDS = {
    "email": ArticleKind.EMAIL,
    "web": ArticleKind.WEB,
    "phone": ArticleKind.PHONE,
    "note": ArticleKind.NOTE,
}
_SENDERS = {"Customer": Sender.CUSTOMER, "Agent": Sender.AGENT, "System": Sender.SYSTEM}
# Seeded ids (db/seeds/ticket_article_senders.rb), used only when a response has no names.
_SENDER_IDS = {1: Sender.AGENT, 2: Sender.CUSTOMER, 3: Sender.SYSTEM}
# Seeded state types (db/seeds/ticket_state_types.rb), used only when names are missing.
_STATE_TYPE_IDS = {
    1: "new",
    2: "open",
    3: "pending reminder",
    4: "pending action",
    5: "closed",
    6: "merged",
    7: "removed",
}


# -- small helpers --------------------------------------------------------------------------


def utc_ms(instant: datetime) -> str:
    """``2026-12-01T09:00:00.123Z``: UTC, milliseconds truncated (Zammad's precision)."""
    if instant.tzinfo is None:
        raise ValueError("a naive datetime is ambiguous; pass an aware one")
    value = instant.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _require_time(raw: Mapping[str, Any], key: str) -> datetime:
    parsed = _parse_time(raw.get(key))
    if parsed is None:
        raise TransientError(f"unexpected response from Zammad: no '{key}'")
    return parsed


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _person(value: Any) -> UserId | None:
    """A user id from Zammad, ``None`` for its user 1, "nobody" (the system)."""
    user_id = _int_or_none(value)
    return None if user_id == UNASSIGNED_USER_ID else user_id


def _call(raw: Any) -> CallRecord | None:
    """A ``CallRecord`` from one row of the caller log; ``None`` for a row it cannot read."""
    if not isinstance(raw, Mapping):
        return None
    try:
        direction = CallDirection(str(raw.get("direction")))
        created_at = _parse_time(raw.get("created_at"))
        if created_at is None:
            return None
        found = raw.get("preferences")
        preferences: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        return CallRecord(
            id=int(raw["id"]),
            direction=direction,
            from_number=str(raw.get("from") or ""),
            to_number=str(raw.get("to") or ""),
            created_at=created_at,
            answered_at=_parse_time(raw.get("start_at")),
            ended_at=_parse_time(raw.get("end_at")),
            from_user_ids=_known_callers(preferences.get("from")),
            to_user_ids=_known_callers(preferences.get("to")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _known_callers(entries: Any) -> frozenset[UserId]:
    """The users Zammad matched a number to with certainty (level "known"; "maybe" means the
    number only turned up in some article)."""
    if not isinstance(entries, list):
        return frozenset()
    return frozenset(
        int(e["user_id"])
        for e in entries
        if isinstance(e, Mapping) and e.get("level") == "known" and _int_or_none(e.get("user_id"))
    )


_TAG_EVENTS = {"added": EventKind.TAG_ADDED, "removed": EventKind.TAG_REMOVED}


def _event(raw: Any, ticket_id: int) -> TicketEvent | None:
    """A ``TicketEvent`` from one row of ``ticket_history``; ``None`` for a row about
    another object (an article, a mention) or of a kind the neutral type does not have."""
    if not isinstance(raw, Mapping) or raw.get("object") != "Ticket":
        return None
    try:
        if _int_or_none(raw.get("o_id")) != ticket_id:
            return None
        actor = _person(raw.get("created_by_id"))
    except (TypeError, ValueError):
        return None
    at = _parse_time(raw.get("created_at"))
    if at is None:
        return None
    kind, attribute = str(raw.get("type")), raw.get("attribute")
    value_from, value_to = _text_or_none(raw.get("value_from")), _text_or_none(raw.get("value_to"))
    if kind == "created":
        return TicketEvent(EventKind.CREATED, at, actor)
    if kind == "updated" and isinstance(attribute, str) and attribute:
        return TicketEvent(
            EventKind.FIELD_CHANGED, at, actor, attribute, value_from=value_from, value_to=value_to
        )
    if kind in _TAG_EVENTS and attribute == "tag" and value_to:
        return TicketEvent(_TAG_EVENTS[kind], at, actor, value_to=value_to)
    return None


def _article_ids(value: Any) -> frozenset[ArticleId] | None:
    """``article_ids`` of a ticket answer (an expanded search or GET lists them); ``None``
    when missing or not a list of whole numbers, so the caller lists the articles instead."""
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        return None
    return frozenset(value)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _condition_value(value: FieldValue) -> str:
    """A selector value as Zammad compares it (as text; booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _last_marker(text: str) -> str | None:
    found = MARKER_RE.findall(text or "")
    return found[-1] if found else None


def _with_footer(body: str, content_type: str, marker: Marker) -> str:
    if content_type == "text/html":
        return f"{body}<p>{html.escape(marker.footer)}</p>"
    return f"{body}\n\n{marker.footer}"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _options(data_option: Any) -> frozenset[str]:
    """Option keys of a select (``{key: label}``) or tree select (``[{value, children}]``)."""
    if not isinstance(data_option, Mapping):
        return frozenset()
    options = data_option.get("options")
    if isinstance(options, Mapping):
        return frozenset(str(k) for k in options)
    keys: set[str] = set()
    stack = list(options) if isinstance(options, list) else []
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if "value" in item:
                keys.add(str(item["value"]))
            stack.extend(item.get("children") or [])
    return frozenset(keys)


class ZammadAdapter:
    """``HelpdeskAdapter`` for Zammad 6.x/7.x (5.2+ for the atomic create).

    Args:
        client: an ``HttpClient`` bound to the Zammad base URL with token auth.
        clock: the time source (kept for jobs that ask the adapter about "now").
        page_size: rows per search page; Zammad caps it at 200.
    """

    name = "zammad"
    capabilities: frozenset[Capability] = frozenset(Capability)

    def __init__(self, client: HttpClient, *, clock: Clock, page_size: int = SEARCH_PAGE_MAX):
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._client = client
        self._clock = clock
        self._page_size = page_size
        self._groups: dict[int, Group] | None = None
        self._states: dict[int, TicketState] | None = None
        self._me_id: UserId | None = None
        self._role_groups: dict[int, Mapping[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"ZammadAdapter({self._client.base_url!r})"

    # -- reading: tickets -------------------------------------------------------------------

    def changed_tickets(
        self, since: datetime, *, matching: Criterion | None = None
    ) -> Iterator[Ticket]:
        """Tickets with ``updated_at >= since`` (and meeting ``matching``, if given), oldest
        first (``updated_at``, then id).

        One condition-only ``POST /api/v1/tickets/search`` per page; an idle poll is one
        request. Full pages are followed keyset-style (see the module docstring, §0.8).

        Raises:
            Rejected: Zammad ignored the ``updated_at`` condition (Corrections #4).
        """
        cap = min(self._page_size, SEARCH_PAGE_MAX)
        cursor = utc_ms(since)
        floor = _parse_time(cursor)
        assert floor is not None
        since_utc = since.astimezone(UTC)
        page = 1
        seen: set[tuple[int, datetime]] = set()
        while True:
            condition: dict[str, Any] = {
                "ticket.updated_at": {"operator": "after (absolute)", "value": cursor}
            }
            if matching is not None and matching.tag is not None:
                condition["ticket.tags"] = {"operator": "contains one", "value": matching.tag}
            elif matching is not None and matching.field is not None:
                self._check_fields({matching.field: matching.value}, "POST", SEARCH_PATH)
                condition[f"ticket.{matching.field}"] = {
                    "operator": "is",
                    "value": _condition_value(matching.value),
                }
            body = {
                "condition": condition,
                "sort_by": ["updated_at", "id"],
                "order_by": ["asc", "asc"],
                "per_page": cap,
                "page": page,
                "expand": True,
            }
            rows = self._search_rows(
                self._client.post_json("/api/v1/tickets/search", body, idempotent=True)
            )
            newest = floor
            # Zammad sorts as asked; sorting the page again costs nothing and keeps the
            # oldest-first promise for servers that ignore sort_by.
            tickets = sorted(
                (self._ticket(raw) for raw in rows), key=lambda t: (t.updated_at, t.id)
            )
            for ticket in tickets:
                if ticket.updated_at < floor:
                    raise Rejected(
                        f"Zammad returned ticket {ticket.id} updated {utc_ms(ticket.updated_at)}"
                        f", before the search condition {cursor}: the condition was dropped "
                        "(invalid selector?), so the result is not a list of changes",
                        method="POST",
                        path="/api/v1/tickets/search",
                    )
                newest = max(newest, ticket.updated_at)
                key = (ticket.id, ticket.updated_at)
                if key in seen or ticket.updated_at < since_utc:
                    continue
                seen.add(key)
                yield ticket
            if len(rows) < cap:
                return
            if newest > floor:
                cursor, floor, page = utc_ms(newest), newest, 1
            else:  # a whole page shares one updated_at: only now is offset paging safe
                page += 1
            log.debug("zammad.search_next cursor=%s page=%d", cursor, page)

    def _search_rows(self, data: Any) -> list[Mapping[str, Any]]:
        if isinstance(data, list):
            return [row for row in data if isinstance(row, Mapping)]
        if isinstance(data, Mapping):
            ids = data.get("tickets", data.get("record_ids"))
            assets = data.get("assets")
            assets = assets.get("Ticket") if isinstance(assets, Mapping) else None
            if isinstance(ids, list) and isinstance(assets, Mapping):
                rows = [assets.get(str(i)) for i in ids]
                return [row for row in rows if isinstance(row, Mapping)]
        raise TransientError(
            "unexpected ticket search response shape", method="POST", path="/api/v1/tickets/search"
        )

    def clock_offset(self) -> timedelta | None:
        return self._client.server_offset

    def get_ticket(self, ticket_id: TicketId) -> Ticket:
        data = self._client.get_json(f"/api/v1/tickets/{int(ticket_id)}", params={"expand": "true"})
        return self._ticket(data)

    def get_tags(self, ticket_id: TicketId) -> frozenset[str]:
        data = self._client.get_json(
            "/api/v1/tags", params={"object": "Ticket", "o_id": int(ticket_id)}
        )
        tags = data.get("tags") if isinstance(data, Mapping) else None
        return frozenset(str(t) for t in tags or ())

    def list_links(self, ticket_id: TicketId) -> list[Link]:
        """Links of a ticket; ``kind`` is the other ticket's role (Zammad's ``link_type`` is
        reported from the queried ticket's point of view: ``child`` = the other is its child).
        """
        data = self._client.get_json(
            "/api/v1/links", params={"link_object": "Ticket", "link_object_value": int(ticket_id)}
        )
        links: list[Link] = []
        for raw in data.get("links", []) if isinstance(data, Mapping) else []:
            if raw.get("link_object") != "Ticket":
                continue
            try:
                link = Link(int(raw["link_object_value"]), LinkKind(raw.get("link_type")))
            except (KeyError, TypeError, ValueError):
                log.debug("zammad.link_skipped ticket=%s type=%s", ticket_id, raw.get("link_type"))
                continue
            if link not in links:
                links.append(link)
        return links

    def list_subscribers(self, ticket_id: TicketId) -> frozenset[UserId]:
        data = self._client.get_json(
            "/api/v1/mentions",
            params={"mentionable_type": "Ticket", "mentionable_id": int(ticket_id)},
        )
        mentions = data.get("mentions", []) if isinstance(data, Mapping) else []
        return frozenset(
            int(m["user_id"])
            for m in mentions
            if m.get("mentionable_type", "Ticket") == "Ticket"
            and int(m.get("mentionable_id", ticket_id)) == int(ticket_id)
        )

    def ticket_events(self, ticket_id: TicketId) -> list[TicketEvent]:
        """The ticket's own history, oldest first (``GET /api/v1/ticket_history/{id}``, one
        request): creation, attribute changes and tag changes with who made them. Rows of
        the ticket's articles, mentions and the like, and kinds not listed in
        ``EventKind`` (notifications, emails, merges), are left out."""
        path = f"/api/v1/ticket_history/{int(ticket_id)}"
        data = self._client.get_json(path)
        rows = data.get("history") if isinstance(data, Mapping) else None
        if not isinstance(rows, list):
            raise TransientError(
                "unexpected ticket history response shape", method="GET", path=path
            )
        events = [e for e in (_event(raw, int(ticket_id)) for raw in rows) if e is not None]
        # Zammad orders by created_at, id; the sort is stable, so ties keep that order.
        return sorted(events, key=lambda e: e.at)

    def count_customer_tickets(self, customer_id: UserId, *, created_since: datetime) -> int:
        """One condition-only search with ``only_total_count`` (6.5+). A Zammad before 6.5
        ignores it and answers the first page: then the page's rows are counted, at most
        ``SEARCH_PAGE_MAX``, which is a lower bound."""
        body = {
            "condition": {
                "ticket.customer_id": {"operator": "is", "value": [str(int(customer_id))]},
                "ticket.created_at": {
                    "operator": "after (absolute)",
                    "value": utc_ms(created_since),
                },
            },
            "only_total_count": True,
            "per_page": SEARCH_PAGE_MAX,
            "expand": True,
        }
        data = self._client.post_json(SEARCH_PATH, body, idempotent=True)
        if isinstance(data, Mapping) and isinstance(data.get("total_count"), int):
            return int(data["total_count"])
        return len(self._search_rows(data))

    def customer_tickets(
        self, customer_ids: Collection[UserId], *, created_since: datetime
    ) -> Iterator[Ticket]:
        """One condition-only search per ``CUSTOMERS_PER_SEARCH`` customers
        (``ticket.customer_id`` "is" a list, which Zammad's selector makes ``IN (…)``, and
        ``ticket.created_at`` "after (absolute)", inclusive), oldest first; never a
        ``query`` (§0.5: the search index lags). Full pages are followed keyset-style on
        ``created_at`` (a ticket's creation time never changes), as ``changed_tickets`` does.

        Raises:
            Rejected: Zammad dropped the condition (Corrections #4): a row of another
                customer or created before the bound.
        """
        wanted = sorted({int(c) for c in customer_ids})
        cap = min(self._page_size, SEARCH_PAGE_MAX)
        seen: set[int] = set()
        for start in range(0, len(wanted), CUSTOMERS_PER_SEARCH):
            chunk = wanted[start : start + CUSTOMERS_PER_SEARCH]
            cursor = utc_ms(created_since)
            floor = _parse_time(cursor)
            assert floor is not None
            page = 1
            while True:
                body = {
                    "condition": {
                        "ticket.customer_id": {"operator": "is", "value": [str(c) for c in chunk]},
                        "ticket.created_at": {"operator": "after (absolute)", "value": cursor},
                    },
                    "sort_by": ["created_at", "id"],
                    "order_by": ["asc", "asc"],
                    "per_page": cap,
                    "page": page,
                    "expand": True,
                }
                rows = self._search_rows(self._client.post_json(SEARCH_PATH, body, idempotent=True))
                tickets = sorted(
                    (self._ticket(raw) for raw in rows), key=lambda t: (t.created_at, t.id)
                )
                newest = floor
                for ticket in tickets:
                    if ticket.created_at < floor or ticket.customer_id not in chunk:
                        raise Rejected(
                            f"Zammad returned ticket {ticket.id} of customer "
                            f"{ticket.customer_id} created {utc_ms(ticket.created_at)}, outside "
                            "the search condition: the condition was dropped (invalid selector?)",
                            method="POST",
                            path=SEARCH_PATH,
                        )
                    newest = max(newest, ticket.created_at)
                    if ticket.id in seen or ticket.created_at < created_since:
                        continue
                    seen.add(ticket.id)
                    yield ticket
                if len(rows) < cap:
                    break
                if newest > floor:
                    cursor, floor, page = utc_ms(newest), newest, 1
                else:  # a whole page created in one millisecond: offset paging is safe here
                    page += 1

    # -- reading: the caller log ------------------------------------------------------------

    def recent_calls(self) -> CallLog:
        """The newest calls of Zammad's caller log (``GET /api/v1/cti/log``, one request)."""
        path = "/api/v1/cti/log"
        data = self._client.get_json(path)
        rows = data.get("list") if isinstance(data, Mapping) else None
        if not isinstance(rows, list):
            raise TransientError("unexpected caller log response shape", method="GET", path=path)
        calls = sorted(
            (c for c in (_call(raw) for raw in rows) if c is not None),
            key=lambda c: (c.created_at, c.id),
            reverse=True,
        )
        complete_since = calls[-1].created_at if len(rows) >= CALL_LOG_VIEW_LIMIT else None
        return CallLog(calls=tuple(calls), complete_since=complete_since)

    # -- reading: articles ------------------------------------------------------------------

    def list_articles(self, ticket_id: TicketId) -> list[Article]:
        """Every article of a ticket, oldest first (one request; Zammad does not paginate)."""
        data = self._client.get_json(f"/api/v1/ticket_articles/by_ticket/{int(ticket_id)}")
        articles = [self._article(raw) for raw in data or []]
        return sorted(articles, key=lambda a: (a.created_at, a.id))

    def fetch_attachment(self, ref: AttachmentRef, *, max_bytes: int) -> bytes:
        """The original bytes (no ``view=``: that can return a resized image)."""
        return self._client.download(
            f"/api/v1/ticket_attachment/{int(ref.ticket_id)}/{int(ref.article_id)}/{int(ref.id)}",
            max_bytes=max_bytes,
        )

    def digest_attachment(self, ref: AttachmentRef) -> tuple[int, str]:
        return self._client.digest(
            f"/api/v1/ticket_attachment/{int(ref.ticket_id)}/{int(ref.article_id)}/{int(ref.id)}"
        )

    def find_article_by_marker(self, ticket_id: TicketId, marker: Marker) -> ArticleId | None:
        for article in self.list_articles(ticket_id):
            if self._carries(article, marker):
                return article.id
        return None

    def find_ticket_by_marker(
        self,
        marker: Marker,
        *,
        linked_to: TicketId,
        matching: Criterion | None = None,
        since: datetime | None = None,
    ) -> TicketId | None:
        """The ticket whose first note carries ``marker``, among those linked to
        ``linked_to`` (links, then articles by ticket: database reads) and, with
        ``matching``, among the tickets the condition search finds (a condition without a
        query is run by the database in Zammad, not the search index, so it does not lag)."""
        links = self.list_links(linked_to)
        ordered = [lk.ticket_id for lk in links if lk.kind is LinkKind.CHILD]
        ordered += [lk.ticket_id for lk in links if lk.kind is not LinkKind.CHILD]
        if matching is not None:
            start = since if since is not None else datetime(1970, 1, 1, tzinfo=UTC)
            ordered += [
                t.id for t in self.changed_tickets(start, matching=matching) if t.id not in ordered
            ]
        for ticket_id in ordered:
            try:
                articles = self.list_articles(ticket_id)
            except NotFound:
                continue
            first_note = next((a for a in articles if a.kind is ArticleKind.NOTE), None)
            if first_note is not None and self._carries(first_note, marker):
                return ticket_id
        return None

    @staticmethod
    def _carries(article: Article, marker: Marker) -> bool:
        return (
            article.kind is ArticleKind.NOTE
            and article.internal
            and _last_marker(article.body) == marker.value
        )

    # -- reading: users, groups, states, fields ---------------------------------------------

    def me(self) -> User:
        user = self._user(self._client.get_json("/api/v1/users/me"))
        self._me_id = user.id
        return user

    def get_user(self, user_id: UserId) -> User:
        return self._user(self._client.get_json(f"/api/v1/users/{int(user_id)}"))

    def find_user(self, login_or_email: str) -> User | None:
        """Exact, case-insensitive match on login or email (search is only a pre-filter)."""
        wanted = login_or_email.strip().lower()
        if not wanted:
            return None
        data = self._client.get_json(
            "/api/v1/users/search", params={"query": wanted, "limit": SEARCH_PAGE_MAX}
        )
        rows = [r for r in data or [] if isinstance(r, Mapping)]
        for key in ("login", "email"):
            for raw in rows:
                if str(raw.get(key) or "").lower() == wanted:
                    return self._user(raw)
        return None

    def list_groups(self) -> list[Group]:
        groups = [
            Group(id=int(r["id"]), name=str(r["name"]), active=bool(r.get("active", True)))
            for r in self._get_all("/api/v1/groups")
        ]
        self._groups = {g.id: g for g in groups}
        return groups

    def list_states(self) -> list[TicketState]:
        states = []
        for raw in self._get_all("/api/v1/ticket_states", {"expand": "true"}):
            state_type = raw.get("state_type")
            if not isinstance(state_type, str):
                state_type = _STATE_TYPE_IDS.get(_int_or_none(raw.get("state_type_id")) or 0, "")
            states.append(
                TicketState(
                    id=int(raw["id"]),
                    name=str(raw["name"]),
                    type=state_type,
                    active=bool(raw.get("active", True)),
                )
            )
        self._states = {s.id: s for s in states}
        return states

    def list_fields(self) -> list[FieldInfo] | None:
        """Custom ticket attributes whose migration has run.

        The object manager needs ``admin.object``, which the worker's agent token does not
        have (403). Then the names are learnt from one readable ticket instead: Zammad
        answers every column of the tickets table, custom attributes included, so the
        attributes are known by name (``data_type`` "unknown", no options). ``None`` when
        neither works (no readable ticket yet).
        """
        self._client.expect_forbidden("/api/v1/object_manager_attributes")  # agent tokens
        try:
            data = self._client.get_json("/api/v1/object_manager_attributes")
        except Forbidden:
            return self._fields_from_a_ticket()
        fields = []
        for raw in data or []:
            if not isinstance(raw, Mapping) or raw.get("object") != "Ticket":
                continue
            name = str(raw.get("name", ""))
            if name in STANDARD_TICKET_KEYS or name.endswith(("_id", "_ids")):
                continue
            if raw.get("to_create") or raw.get("to_delete"):
                continue  # not (or no longer) a column: writes would be dropped silently
            fields.append(
                FieldInfo(
                    name=name,
                    data_type=str(raw.get("data_type", "")),
                    options=_options(raw.get("data_option")),
                )
            )
        return fields

    def _fields_from_a_ticket(self) -> list[FieldInfo] | None:
        try:
            data = self._client.get_json(
                "/api/v1/tickets", params={"per_page": 1, "page": 1, "expand": "true"}
            )
        except Forbidden:
            return None
        rows = [r for r in data or [] if isinstance(r, Mapping)] if isinstance(data, list) else []
        if not rows:
            return None
        return [
            FieldInfo(name=str(key), data_type="unknown")
            for key in rows[0]
            if key not in STANDARD_TICKET_KEYS and not str(key).endswith(("_id", "_ids"))
        ]

    def tag_exists(self, name: str) -> bool:
        """Whether ``name`` is in the tag catalogue (exact match; the search is a substring
        pre-filter, ``limit`` raised from Zammad's default of 10)."""
        data = self._client.get_json(
            "/api/v1/tag_search", params={"term": name, "limit": TAG_SEARCH_LIMIT}
        )
        rows = data if isinstance(data, list) else []
        return any(isinstance(r, Mapping) and r.get("value") == name for r in rows)

    def _get_all(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> list[Mapping[str, Any]]:
        rows: dict[int, Mapping[str, Any]] = {}
        page = 1
        while True:
            data = self._client.get_json(
                path, params={**(params or {}), "page": page, "per_page": INDEX_PAGE_SIZE}
            )
            batch = [r for r in data or [] if isinstance(r, Mapping) and "id" in r]
            new = [r for r in batch if int(r["id"]) not in rows]
            rows.update((int(r["id"]), r) for r in new)
            if len(batch) < INDEX_PAGE_SIZE or not new:
                return list(rows.values())
            page += 1

    # -- writing ----------------------------------------------------------------------------

    def create_ticket(self, draft: TicketDraft, *, marker: Marker) -> CreatedTicket:
        """Create the ticket, its first internal note (carrying ``marker``), tags, mentions
        and the child link to ``draft.parent_id`` in ONE atomic request."""
        path = "/api/v1/tickets"
        if not draft.group.strip():
            raise Rejected(
                "a ticket needs a group (Zammad answers 403 without one)", method="POST", path=path
            )
        if not draft.title.strip():
            raise Rejected("a ticket needs a title", method="POST", path=path)
        self._check_fields(draft.fields, "POST", path)
        if draft.state is not None:
            self._check_not_pending(draft.state, "POST", path)
        body: dict[str, Any] = {
            "title": draft.title,
            "group": draft.group,
            "customer_id": int(draft.customer_id),
            "article": self._article_payload(draft.first_note, marker, "POST", path),
        }
        if draft.organization_id is not None:
            body["organization_id"] = int(draft.organization_id)
        if draft.state is not None:
            body["state"] = draft.state
        if draft.owner_id is not None:
            body["owner_id"] = int(draft.owner_id)
        body.update(draft.fields)
        if draft.tags:
            body["tags"] = ",".join(sorted(self._check_tags(draft.tags, "POST", path)))
        if draft.mention_user_ids:
            body["mentions"] = [int(u) for u in draft.mention_user_ids]
        if draft.parent_id is not None:
            # The new ticket is the link source: "child" makes it a child of parent_id.
            body["links"] = {"Ticket": {"child": [int(draft.parent_id)]}}
        data = self._client.post_json(path, body)
        try:
            created = CreatedTicket(
                id=int(data["id"]),
                number=str(data["number"]),
                article_ids=_article_ids(data.get("article_ids")) or frozenset(),
            )
        except (KeyError, TypeError, ValueError):
            # a 2xx: the ticket may well exist. Not a TransientError (status None reads as
            # "nothing applied" and the next attempt would create it again): ambiguous, so
            # the next attempt looks for the marker first
            raise AmbiguousWrite(
                "ticket created but the answer had no id/number", method="POST", path=path
            ) from None
        dropped = sorted(k for k in draft.fields if k not in data)
        if dropped:
            log.warning(
                "zammad.fields_dropped ticket=%s fields=%s (attribute missing or not migrated)",
                created.id, ",".join(dropped),
            )  # fmt: skip
        log.info("zammad.ticket_created ticket=%s marker=%s", created.id, marker)
        return created

    def add_article(self, ticket_id: TicketId, draft: ArticleDraft, *, marker: Marker) -> ArticleId:
        """Add an internal note (never an email) whose body ends with the marker footer."""
        path = "/api/v1/ticket_articles"
        body = {"ticket_id": int(ticket_id), **self._article_payload(draft, marker, "POST", path)}
        try:
            data = self._client.post_json(path, body)
        except Forbidden as exc:
            raise _explained(exc, self._note_refusal_cause(ticket_id)) from exc
        try:
            article_id = int(data["id"])
        except (KeyError, TypeError, ValueError):
            raise AmbiguousWrite(  # a 2xx: as for create_ticket, looked for by marker next
                "article created but the answer had no id", method="POST", path=path
            ) from None
        log.info(
            "zammad.article_added ticket=%s article=%s marker=%s", ticket_id, article_id, marker
        )
        return article_id

    def set_tags(
        self,
        ticket_id: TicketId,
        *,
        present: frozenset[str] = frozenset(),
        absent: frozenset[str] = frozenset(),
    ) -> frozenset[str] | None:
        """Make ``present`` tags be on the ticket and ``absent`` tags not. With tags to remove,
        one read first, then writes only for what differs (tag remove bumps ``updated_at``
        even for an absent tag), and the tags afterwards are returned; with tags to add only,
        no read: a duplicate add is a no-op that leaves ``updated_at`` alone, so each is
        added, and ``None`` is returned (the other tags were not read)."""
        present = self._check_tags(present, "POST", "/api/v1/tags/add")
        absent = self._check_tags(absent, "DELETE", "/api/v1/tags/remove")
        if present & absent:
            raise ValueError(f"tags both present and absent: {sorted(present & absent)}")
        current = self.get_tags(ticket_id) if absent else frozenset()
        for tag in sorted(present - current):
            # A duplicate add is a no-op on the server, so this POST may be retried.
            self._client.post_json(
                "/api/v1/tags/add",
                {"item": tag, "object": "Ticket", "o_id": int(ticket_id)},
                idempotent=True,
            )
        for tag in sorted(absent & current):
            self._client.delete_json(
                "/api/v1/tags/remove", {"item": tag, "object": "Ticket", "o_id": int(ticket_id)}
            )
        return (current | present) - absent if absent else None

    def update_ticket(
        self, ticket_id: TicketId, changes: TicketChanges, *, marker: Marker | None = None
    ) -> Ticket:
        """PUT a partial update and check the answer: an owner silently reset to unassigned
        or a custom field silently dropped raises ``Rejected``.

        With ``changes.note`` the PUT carries it as its ``article`` (an internal note whose
        body ends with the ``marker`` footer), which Zammad creates inside the update's row
        lock (``tickets_controller.rb#update``: ``ticket.with_lock`` around ``update!`` and
        ``article_create``): both are applied or neither. Such a PUT is not idempotent (a
        repeat would add the note twice), so it is never retried blind: a read timeout, a
        reset after sending or a 5xx raises ``AmbiguousWrite``, and the caller looks for the
        marker (``find_article_by_marker``) before writing again. The answer's
        ``article_ids`` include the new note."""
        path = f"/api/v1/tickets/{int(ticket_id)}"
        self._check_fields(changes.fields, "PUT", path)
        if changes.state is not None and changes.pending_until is None:
            self._check_not_pending(changes.state, "PUT", path)
        body: dict[str, Any] = {}
        if changes.note is not None:
            if marker is None:
                raise ValueError("a note carried by an update needs its marker")
            body["article"] = self._article_payload(changes.note, marker, "PUT", path)
        if changes.owner_id is not None:
            body["owner_id"] = int(changes.owner_id)
        if changes.group is not None:
            body["group"] = changes.group
        if changes.state is not None:
            body["state"] = changes.state
        if changes.pending_until is not None:
            body["pending_time"] = utc_ms(changes.pending_until)
        if changes.title is not None:
            body["title"] = changes.title
        body.update(changes.fields)
        if not body:
            return self.get_ticket(ticket_id)
        if changes.note is None:
            data = self._client.put_json(path, body, params={"expand": "true"})
        else:
            try:
                data = self._client.put_json(
                    path, body, params={"expand": "true"}, idempotent=False
                )
            except Forbidden as exc:
                raise _explained(exc, self._note_refusal_cause(ticket_id)) from exc
        try:
            ticket = self._ticket(data)
        except TransientError as exc:
            if changes.note is None:
                raise  # an idempotent PUT: sending it again is harmless
            # a 2xx whose answer is not a ticket: the update and its note were applied (or
            # not); as for create_ticket, the next attempt looks for the marker first
            raise AmbiguousWrite(f"{exc}: the update may have been applied", method="PUT",
                                 path=path) from None  # fmt: skip
        if changes.note is not None:
            log.info("zammad.ticket_updated_with_note ticket=%s marker=%s", ticket_id, marker)
        wanted = changes.owner_id
        if wanted is not None and wanted != UNASSIGNED_USER_ID and ticket.owner_id != wanted:
            if ticket.owner_id is None:
                raise AppliedNotAsAsked(
                    f"owner reset to unassigned: user {wanted} lacks full access to group "
                    f"{ticket.group} (or is not an active agent)",
                    method="PUT",
                    path=path,
                )
            raise AppliedNotAsAsked(
                f"owner is {ticket.owner_id}, not {wanted}", method="PUT", path=path
            )
        dropped = sorted(k for k in changes.fields if k not in data)
        if dropped:
            raise AppliedNotAsAsked(
                f"Zammad dropped field(s) {', '.join(dropped)}: the attribute does not exist or "
                "its migration has not run",
                method="PUT",
                path=path,
            )
        return ticket

    def link_tickets(self, parent_id: TicketId, child_id: TicketId) -> None:
        """Link ``child_id`` as a child of ``parent_id``; reads first and skips an existing
        link (a duplicate would answer 201 and bump both tickets)."""
        path = "/api/v1/links/add"
        if int(parent_id) == int(child_id):
            raise Rejected("a ticket cannot be linked to itself", method="POST", path=path)
        if Link(int(child_id), LinkKind.CHILD) in self.list_links(parent_id):
            return
        child = self.get_ticket(child_id)
        self._client.post_json(
            path,
            {
                "link_type": "child",  # "the source is the child of the target"
                "link_object_source": "Ticket",
                "link_object_source_number": child.number,  # source by NUMBER
                "link_object_target": "Ticket",
                "link_object_target_value": int(parent_id),  # target by ID
            },
        )
        log.info("zammad.linked parent=%s child=%s", parent_id, child_id)

    def subscribe(self, ticket_id: TicketId, user_id: UserId) -> None:
        """Subscribe a user (idempotent). Anyone but the token's own user needs the ``From``
        header, which needs ``admin.user``."""
        if int(user_id) in self.list_subscribers(ticket_id):
            return
        if self._me_id is None:
            self.me()
        on_behalf = int(user_id) != self._me_id
        headers = {"From": str(int(user_id))} if on_behalf else None
        try:
            self._client.post_json(
                "/api/v1/mentions",
                {"mentionable_type": "Ticket", "mentionable_id": int(ticket_id)},
                headers=headers,
            )
        except Forbidden as exc:
            if not on_behalf:
                raise
            raise _explained(
                exc,
                f"subscribing user {user_id} uses the From header, which needs the admin.user "
                "permission on the token's user; the user also needs agent read access to the "
                "ticket's group",
            ) from exc
        if on_behalf and int(user_id) not in self.list_subscribers(ticket_id):
            raise Rejected(
                f"user {user_id} is not subscribed after POST /mentions with From: the server "
                "ignored the header (Zammad older than 6.4?)",
                method="POST",
                path="/api/v1/mentions",
            )

    def _note_refusal_cause(self, ticket_id: TicketId) -> str:
        """Why Zammad refused a note on a ticket, found out by reading what the token may see:
        the ticket's group, and the worker's own access to it (reads only; a failure to read
        is itself the answer)."""
        try:
            ticket = self.get_ticket(ticket_id)
        except (Forbidden, NotFound):
            return (
                f"the worker may no longer read ticket {ticket_id}: it was moved to a group the "
                "worker's user has no access to, or deleted"
            )
        except HelpdeskError:
            return "the ticket could not be read back to find out why"
        try:
            access = self.me().group_access.get(ticket.group, frozenset())
        except HelpdeskError:
            access = frozenset()
        if "full" in access or {"create", "change"} <= access:
            return (
                f"the worker's user has {', '.join(sorted(access))} access to group "
                f"{ticket.group!r}; the refusal came from elsewhere (a core workflow, or the "
                "token's permissions)"
            )
        missing = sorted({"change", "create"} - access)
        return (
            f"the worker's user lacks {' and '.join(missing)} access to group {ticket.group!r} "
            "of ticket "
            f"{ticket_id} (adding a note needs change access, and Create on Zammad 6.5: "
            "zammad/zammad#5642)"
        )

    # -- validation and payloads ------------------------------------------------------------

    def _check_not_pending(self, state: str, method: str, path: str) -> None:
        """A pending state needs ``pending_time`` (Zammad: 422, opaque for non-admins)."""
        if self._states is None:
            self.list_states()
        assert self._states is not None
        state_type = next((s.type for s in self._states.values() if s.name == state), "")
        if state_type.startswith("pending"):
            raise Rejected(
                f"state {state!r} is a pending state and needs a pending time",
                method=method,
                path=path,
            )

    @staticmethod
    def _check_tags(tags: frozenset[str], method: str, path: str) -> frozenset[str]:
        for tag in tags:
            if not tag.strip() or tag != tag.strip() or "," in tag or "*" in tag:
                raise Rejected(
                    f"invalid tag name {tag!r}: Zammad tags may not be blank, padded, or "
                    "contain ',' or '*'",
                    method=method,
                    path=path,
                )
        return frozenset(tags)

    @staticmethod
    def _check_fields(fields: Mapping[str, FieldValue], method: str, path: str) -> None:
        for name, value in fields.items():
            if name in STANDARD_TICKET_KEYS or name in _PAYLOAD_KEYS:
                raise Rejected(
                    f"custom field {name!r} clashes with a standard Zammad key",
                    method=method,
                    path=path,
                )
            if name.endswith(("_id", "_ids")) or not name:
                raise Rejected(
                    f"custom field {name!r}: Zammad attribute names may not end in _id/_ids",
                    method=method,
                    path=path,
                )
            if not _scalar(value):
                raise Rejected(
                    f"custom field {name!r}: value must be a scalar", method=method, path=path
                )

    @staticmethod
    def _article_payload(
        draft: ArticleDraft, marker: Marker, method: str, path: str
    ) -> dict[str, Any]:
        if draft.content_type not in ARTICLE_CONTENT_TYPES:
            raise Rejected(
                f"content type {draft.content_type!r} not supported (text/html or text/plain)",
                method=method,
                path=path,
            )
        body = _with_footer(draft.body, draft.content_type, marker)
        if len(body) > BODY_MAX_CHARS:
            raise Rejected(
                f"article body of {len(body)} characters exceeds Zammad's {BODY_MAX_CHARS}",
                method=method,
                path=path,
            )
        payload: dict[str, Any] = {
            "type": "note",
            "internal": True,
            "sender": "Agent",
            "content_type": draft.content_type,
            "body": body,
        }
        if draft.subject is not None:
            payload["subject"] = draft.subject
        if draft.attachments:
            payload["attachments"] = [_attachment_payload(a) for a in draft.attachments]
        return payload

    # -- vendor JSON → domain ---------------------------------------------------------------

    def _ticket(self, raw: Any) -> Ticket:
        if not isinstance(raw, Mapping) or "id" not in raw:
            raise TransientError("unexpected response from Zammad: not a ticket")
        owner_id = _int_or_none(raw.get("owner_id"))
        if owner_id == UNASSIGNED_USER_ID:
            owner_id = None
        owner_login = raw.get("owner") if owner_id is not None else None
        group = raw.get("group")
        if not isinstance(group, str):
            group = self._group_name(_int_or_none(raw.get("group_id"))) or ""
        state = raw.get("state")
        if not isinstance(state, str):
            state = self._state_name(_int_or_none(raw.get("state_id")))
        fields: dict[str, FieldValue] = {
            key: value
            for key, value in raw.items()
            if key not in STANDARD_TICKET_KEYS
            and not key.endswith(("_id", "_ids"))
            and _scalar(value)
        }
        customer_login = raw.get("customer")
        return Ticket(
            id=int(raw["id"]),
            number=str(raw.get("number", "")),
            title=str(raw.get("title") or ""),
            group=group,
            state=state,
            customer_id=int(raw.get("customer_id") or 0),
            created_at=_require_time(raw, "created_at"),
            updated_at=_require_time(raw, "updated_at"),
            organization_id=_int_or_none(raw.get("organization_id")),
            owner_id=owner_id,
            updated_by_id=_person(raw.get("updated_by_id")),
            customer_login=customer_login if isinstance(customer_login, str) else None,
            owner_login=owner_login if isinstance(owner_login, str) else None,
            pending_until=_parse_time(raw.get("pending_time")),
            fields=fields,
            article_ids=_article_ids(raw.get("article_ids")),
        )

    def _article(self, raw: Any) -> Article:
        if not isinstance(raw, Mapping) or "id" not in raw:
            raise TransientError("unexpected response from Zammad: not an article")
        article_id = int(raw["id"])
        ticket_id = int(raw["ticket_id"])
        sender = _SENDERS.get(str(raw.get("sender")))
        if sender is None:
            sender = _SENDER_IDS.get(_int_or_none(raw.get("sender_id")) or 0, Sender.SYSTEM)
        attachments = []
        for att in raw.get("attachments") or []:
            prefs = att.get("preferences") or {}
            attachments.append(
                AttachmentRef(
                    ticket_id=ticket_id,
                    article_id=article_id,
                    id=int(att["id"]),
                    filename=str(att.get("filename") or ""),
                    size=int(att.get("size") or 0),
                    content_type=str(
                        prefs.get("Mime-Type")
                        or prefs.get("Content-Type")
                        or "application/octet-stream"
                    ),
                )
            )
        return Article(
            id=article_id,
            ticket_id=ticket_id,
            kind=_KINDS.get(str(raw.get("type")), ArticleKind.OTHER),
            sender=sender,
            internal=bool(raw.get("internal")),
            created_at=_require_time(raw, "created_at"),
            body=str(raw.get("body") or ""),
            content_type=str(raw.get("content_type") or "text/plain"),
            subject=raw.get("subject"),
            from_=raw.get("from"),
            to=raw.get("to"),
            cc=raw.get("cc"),
            created_by_id=_person(raw.get("created_by_id")),
            attachments=tuple(attachments),
        )

    def _user(self, raw: Any) -> User:
        if not isinstance(raw, Mapping) or "id" not in raw:
            raise TransientError("unexpected response from Zammad: not a user")
        access: dict[str, frozenset[str]] = {}
        # Group access is granted on the user and through the user's roles (reference §3.5):
        # the owner check and the subscription check need both.
        grants: list[Any] = [raw.get("group_ids") or {}]
        for role_id in raw.get("role_ids") or ():
            grants.append(self._role_group_ids().get(int(role_id), {}))
        group_ids: dict[Any, Any] = {}
        for grant in grants:
            if isinstance(grant, Mapping):
                for gid, levels in grant.items():
                    group_ids.setdefault(gid, set()).update(str(lv) for lv in levels or ())
        for gid, levels in group_ids.items():
            name = self._group_name(int(gid))
            if name is not None:
                access[name] = access.get(name, frozenset()) | frozenset(levels)
        return User(
            id=int(raw["id"]),
            login=str(raw.get("login") or ""),
            email=str(raw["email"]) if raw.get("email") else None,
            firstname=str(raw.get("firstname") or ""),
            lastname=str(raw.get("lastname") or ""),
            active=bool(raw.get("active", True)),
            # Only agents hold group access in Zammad.
            is_agent=bool(group_ids),
            group_access=access,
            phones=tuple(str(raw[k]) for k in ("phone", "mobile") if raw.get(k)),
        )

    def _role_group_ids(self) -> dict[int, Mapping[str, Any]]:
        """Each role's group access (``GET /api/v1/roles``, read once). Empty when the token
        may not list roles: then only access granted on the user itself is seen."""
        if self._role_groups is None:
            try:
                data = self._client.get_json("/api/v1/roles")
            except (Forbidden, NotFound):
                data = []
            self._role_groups = {
                int(r["id"]): r.get("group_ids") or {}
                for r in data or []
                if isinstance(r, Mapping) and "id" in r and r.get("active", True)
            }
        return self._role_groups

    def _group_name(self, group_id: int | None) -> str | None:
        """A group's name from the cached group list (read once, re-read on a miss)."""
        if group_id is None:
            return None
        if self._groups is None or group_id not in self._groups:
            self.list_groups()
        assert self._groups is not None
        group = self._groups.get(group_id)
        if group is None:
            log.warning("zammad.unknown_group group_id=%s", group_id)
            return None
        return group.name

    def _state_name(self, state_id: int | None) -> str:
        if state_id is None:
            return ""
        if self._states is None or state_id not in self._states:
            self.list_states()
        assert self._states is not None
        state = self._states.get(state_id)
        if state is None:
            log.warning("zammad.unknown_state state_id=%s", state_id)
            return ""
        return state.name


def _attachment_payload(upload: AttachmentUpload) -> dict[str, str]:
    return {
        "filename": upload.filename,
        # Strict base64, no line breaks (Zammad rejects anything else with 422).
        "data": base64.b64encode(upload.data).decode("ascii"),
        "mime-type": upload.content_type,
    }


def _explained(exc: HelpdeskError, hint: str) -> Forbidden:
    """The same refusal with a message that says what permission is missing."""
    return Forbidden(
        f"{exc.message} — {hint}",
        status=exc.status,
        method=exc.method,
        path=exc.path,
        request_id=exc.request_id,
        body_excerpt=exc.body_excerpt,
    )
