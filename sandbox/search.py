"""Ticket search as Zammad 6.5 runs it against the database: a selector (flat or nested
AND/OR ``condition``), an optional substring ``query``, ``sort_by``/``order_by`` pairing and
page clamping (``lib/selector/sql.rb``, ``lib/sql_helper.rb``, ``can_search.rb``).

The traps are kept on purpose: an invalid condition (an empty value, ``after (absolute)``
without a value) drops the *whole* selector and the search returns everything; an unknown
operator, ``is set``/``not set``, an unknown sort column or a bad order value answer 500; a
timestamp's UTC offset is ignored, as PostgreSQL ignores it against a ``timestamp`` column."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.actor import Actor
from sandbox.records import ApiError, Ticket
from sandbox.state import TICKET_COLUMNS, SandboxState, ruby_to_i

SEARCH_DEFAULT_LIMIT = 50
SEARCH_MAX_LIMIT = 200

VALID_OPERATORS = frozenset(
    {
        "is",
        "is not",
        "is any of",
        "is none of",
        "contains",
        "contains not",
        "contains one",
        "contains all",
        "contains one not",
        "contains all not",
        "starts with (one of)",
        "ends with (one of)",
        "matches regex",
        "does not match regex",
        "is set",
        "not set",
        "today",
        "before (absolute)",
        "after (absolute)",
        "before (relative)",
        "after (relative)",
        "within last (relative)",
        "within next (relative)",
        "till (relative)",
        "from (relative)",
        "has changed",
        "has reached",
        "has reached warning",
        "is in working time",
        "is not in working time",
    }
)
_RANGES = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
    "year": timedelta(days=365),
}
_TIMESTAMP_RE = re.compile(
    r"^\s*(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?))?"
)


class _Dropped(Exception):
    """An invalid condition: Zammad logs it and runs the search without any selector."""


@dataclass(frozen=True)
class Condition:
    name: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Junction:
    operator: str  # AND | OR | NOT
    items: tuple[Condition | Junction, ...]


Node = Condition | Junction


def parse_selector(raw: object, actor: Actor) -> Node | None:
    """The selector as a tree, or ``None`` when there is none or it was dropped."""
    if raw in (None, "", {}):
        return None
    if not isinstance(raw, dict):
        raise ApiError(500, "undefined method 'to_h' for condition", kind="detail")
    try:
        if "conditions" in raw:
            return _parse_nested(raw, actor)
        items = []
        for name, spec in raw.items():
            if not isinstance(spec, dict):
                raise _Dropped
            items.append(_parse_condition(name, spec, actor))
        return Junction("AND", tuple(items))
    except _Dropped:
        return None


def _parse_nested(raw: dict[str, Any], actor: Actor) -> Junction:
    operator = str(raw.get("operator") or "AND").upper()
    if operator not in ("AND", "OR", "NOT"):
        raise ApiError(500, f"Invalid operator '{operator}'", kind="detail")
    items: list[Node] = []
    for item in raw.get("conditions") or []:
        if not isinstance(item, dict):
            raise _Dropped
        if "conditions" in item:
            items.append(_parse_nested(item, actor))
        else:
            items.append(_parse_condition(str(item.get("name") or ""), item, actor))
    return Junction(operator, tuple(items))


def _blank(value: object) -> bool:
    if value is None or value == "":
        return True
    return isinstance(value, list) and all(v in (None, "") for v in value)


def _parse_condition(name: str, spec: dict[str, Any], actor: Actor) -> Condition:
    operator = spec.get("operator")
    if not isinstance(operator, str) or operator not in VALID_OPERATORS:
        raise ApiError(500, f"Invalid operator '{operator}' for '{name}'", kind="detail")
    if operator in ("is set", "not set"):
        raise ApiError(500, f"Invalid operator '{operator}' for '{name}'", kind="detail")
    value = spec.get("value")
    pre = spec.get("pre_condition") or "specific"
    if operator in ("is", "is not") and pre != "specific":
        if pre == "not_set":
            value = None
        elif pre == "current_user.id":
            value = [str(actor.user.id)]
        elif pre == "current_user.organization_id":
            value = [str(actor.user.organization_id or "")]
        else:
            raise _Dropped
        return Condition(name, operator + (" null" if pre == "not_set" else ""), value)
    if operator == "today":
        return Condition(name, operator, None)
    if _blank(value):
        raise _Dropped
    if operator.endswith("(relative)"):
        if str(spec.get("range") or "") not in _RANGES or ruby_to_i(value, 0) <= 0:
            raise _Dropped
        return Condition(name, operator, (ruby_to_i(value, 0), str(spec["range"])))
    return Condition(name, operator, value)


def _timestamp_literal(value: object) -> datetime:
    """The literal as PostgreSQL reads it for ``timestamp without time zone``: the wall-clock
    part counts, any offset is ignored."""
    raw = value[0] if isinstance(value, list) and value else value
    match = _TIMESTAMP_RE.match(str(raw))
    if not match:
        raise ApiError(
            422,
            f'PG::InvalidDatetimeFormat: ERROR:  invalid input syntax for type timestamp: "{raw}"',
            kind="detail",
        )
    text = match.group(1) + "T" + (match.group(2) or "00:00")
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class _Matcher:
    def __init__(self, state: SandboxState, now: datetime) -> None:
        self.state = state
        self.now = now

    def value(self, ticket: Ticket, name: str) -> Any:
        st = self.state
        obj, _, attr = name.partition(".")
        if obj == "ticket":
            if attr == "tags":
                return list(st.tags_of(ticket.id))
            if attr in TICKET_COLUMNS:
                return getattr(ticket, attr)
            if attr in st.ticket_attributes():
                return ticket.custom.get(attr)
        elif obj in ("customer", "owner", "organization"):
            ref: object
            if obj == "organization":
                ref = st.db.organizations.get(ticket.organization_id or 0)
            else:
                ref = st.db.users.get(getattr(ticket, f"{obj}_id"))
            if attr == "from_" or attr.startswith("_"):
                attr = "-"
            if ref is None:
                return None
            if hasattr(ref, attr):
                return getattr(ref, attr)
        elif obj == "article":
            raise ApiError(500, "sandbox: article.* conditions are not implemented", kind="detail")
        raise ApiError(
            422,
            f"PG::UndefinedColumn: ERROR:  column {name} does not exist",
            kind="detail",
        )

    def matches(self, node: Node, ticket: Ticket) -> bool:
        if isinstance(node, Junction):
            results = (self.matches(item, ticket) for item in node.items)
            if node.operator == "OR":
                return any(results) if node.items else True
            if node.operator == "NOT":
                return not all(results) if node.items else True
            return all(results)
        return self._condition(node, self.value(ticket, node.name))

    def _condition(self, cond: Condition, actual: Any) -> bool:
        op, wanted = cond.operator, cond.value
        if op == "is null":
            return actual in (None, "")
        if op == "is not null":
            return actual not in (None, "")
        if op in ("contains one", "contains all", "contains one not", "contains all not"):
            items = _split_list(wanted)
            have = set(actual) if isinstance(actual, list) else {_text(actual)}
            hits = [item in have for item in items]
            return {
                "contains one": any(hits),
                "contains all": all(hits),
                "contains one not": not any(hits),
                "contains all not": not all(hits),
            }[op]
        if op in ("after (absolute)", "before (absolute)"):
            if not isinstance(actual, datetime):
                return False
            bound = _timestamp_literal(wanted)
            return actual >= bound if op.startswith("after") else actual <= bound
        if op.endswith("(relative)") or op == "today":
            return self._relative(op, wanted, actual)
        text = _text(actual)
        values = [_text(v) for v in (wanted if isinstance(wanted, list) else [wanted])]
        if op in ("is", "is any of"):
            return actual is not None and text in values
        if op in ("is not", "is none of"):
            return actual is None or text not in values
        lowered = text.lower()
        if op == "contains":
            return values[0].lower() in lowered
        if op == "contains not":
            return values[0].lower() not in lowered
        if op == "starts with (one of)":
            return any(lowered.startswith(v.lower()) for v in values)
        if op == "ends with (one of)":
            return any(lowered.endswith(v.lower()) for v in values)
        if op == "matches regex":
            return re.search(values[0], text) is not None
        if op == "does not match regex":
            return re.search(values[0], text) is None
        raise ApiError(500, f"sandbox: operator '{op}' is not implemented", kind="detail")

    def _relative(self, op: str, wanted: Any, actual: Any) -> bool:
        if not isinstance(actual, datetime):
            return False
        if op == "today":
            zone = self.state.settings.timezone_default
            tz = ZoneInfo(zone) if zone else UTC
            return actual.astimezone(tz).date() == self.now.astimezone(tz).date()
        count, unit = wanted
        span = _RANGES[unit] * count
        now = self.now
        results: dict[str, bool] = {
            "within last (relative)": now - span <= actual <= now,
            "within next (relative)": now <= actual <= now + span,
            "before (relative)": actual <= now - span,
            "after (relative)": actual >= now + span,
            "till (relative)": actual <= now + span,
            "from (relative)": actual >= now - span,
        }
        return results[op]


def _split_list(value: object) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _param_list(value: object) -> list[str]:
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"\s*,\s*", value)]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def sort_spec(state: SandboxState, params: dict[str, Any]) -> list[tuple[str, bool]]:
    """``SqlHelper``: validated ``sort_by`` and ``order_by``; an entry without a partner at
    the same index is dropped; with nothing left, ``updated_at DESC``."""
    sortable = set(TICKET_COLUMNS) | set(state.ticket_attributes())
    sort_by = _param_list(params.get("sort_by"))
    order_by = _param_list(params.get("order_by"))
    for column in sort_by:
        if column not in sortable:
            raise ApiError(500, f"Found invalid column '{column}' for sorting.", kind="detail")
    for order in order_by:
        if order.lower() not in ("asc", "desc"):
            raise ApiError(
                500,
                f"Found invalid order by value {order}. Please use 'asc' or 'desc'.",
                kind="detail",
            )
    sort_by = sort_by or ["updated_at"]
    order_by = [o.lower() for o in order_by] or ["desc"]
    pairs = [
        (column, order_by[i] == "desc")
        for i, column in enumerate(sort_by)
        if column and i < len(order_by)
    ]
    return pairs or [("updated_at", True)]


def page_window(
    params: dict[str, Any], *, default: int = SEARCH_DEFAULT_LIMIT, maximum: int = SEARCH_MAX_LIMIT
) -> tuple[int, int]:
    """``CanPaginate::Pagination``: ``(offset, limit)``; ``per_page`` (alias ``limit``) is
    clamped to the maximum without any error."""
    raw = params.get("per_page")
    if raw is None:
        raw = params.get("limit")
    limit = min(ruby_to_i(raw, default), maximum)
    page = ruby_to_i(params.get("page"), 1)
    offset = (page - 1) * limit
    if limit < 0:
        raise ApiError(
            422, "PG::InvalidRowCountInLimitClause: LIMIT must not be negative", kind="detail"
        )
    if offset < 0:
        raise ApiError(
            422,
            "PG::InvalidRowCountInResultOffsetClause: OFFSET must not be negative",
            kind="detail",
        )
    return offset, limit


def _sort_key(state: SandboxState, ticket: Ticket, column: str) -> Any:
    if column in TICKET_COLUMNS:
        return getattr(ticket, column)
    return ticket.custom.get(column)


def order_tickets(
    state: SandboxState, tickets: list[Ticket], pairs: list[tuple[str, bool]]
) -> list[Ticket]:
    """PostgreSQL order: NULLs last ascending, first descending; ties by id."""
    ordered = sorted(tickets, key=lambda t: t.id)
    for column, desc in reversed(pairs):

        def key(ticket: Ticket, column: str = column) -> tuple[bool, Any]:
            value = _sort_key(state, ticket, column)
            return (value is None, value if value is not None else 0)

        ordered.sort(key=key, reverse=desc)
    return ordered


def search_tickets(
    state: SandboxState, actor: Actor, params: dict[str, Any]
) -> tuple[list[Ticket], int]:
    """The page of tickets and the total count for a ``/tickets/search`` request."""
    offset, limit = page_window(params)
    pairs = sort_spec(state, params)
    selector = parse_selector(params.get("condition"), actor)
    query = params.get("query", params.get("term"))
    query = query.replace("*", "").strip().lower() if isinstance(query, str) else ""
    matcher = _Matcher(state, state.now())
    found = [
        t
        for t in state.db.tickets.values()
        if actor.may(state, t, "read")
        and (selector is None or matcher.matches(selector, t))
        and (not query or _query_hit(state, t, query))
    ]
    ordered = order_tickets(state, found, pairs)
    return ordered[offset : offset + limit], len(found)


def _query_hit(state: SandboxState, ticket: Ticket, query: str) -> bool:
    if query in ticket.title.lower() or query in ticket.number.lower():
        return True
    for article in state.articles_of(ticket.id):
        for text in (article.body, article.from_, article.to, article.subject):
            if text and query in text.lower():
                return True
    return False
