"""The sandbox's tables and what every rule needs from them: id counters, Zammad's seeded rows
(roles, state types, states, priorities, article types and senders, link types, the system
user 1), exact name look-ups, group access and permission checks, the ``updated_at`` touch,
and the ticket history ``HasHistory`` writes on every save.

Nothing here knows about HTTP; ``rules.py`` holds the write semantics, ``views.py`` the JSON."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sandbox.records import (
    AccessToken,
    ApiError,
    Article,
    CallLogRow,
    Group,
    HistoryEntry,
    Link,
    Mention,
    ObjectAttribute,
    Organization,
    Priority,
    Role,
    StateType,
    Ticket,
    TicketState,
    User,
    not_found,
    to_ms,
)

ACCESS_LEVELS = ("read", "create", "change", "overview", "full")

# Zammad's seeds (db/seeds/*.rb); ids as on a fresh install.
STATE_TYPES = ("new", "open", "pending reminder", "pending action", "closed", "merged")
ARTICLE_TYPES = (
    "email",
    "sms",
    "chat",
    "fax",
    "phone",
    "twitter status",
    "twitter direct-message",
    "facebook feed post",
    "facebook feed comment",
    "note",
    "web",
    "telegram personal-message",
    "whatsapp message",
)
ARTICLE_SENDERS = ("Agent", "Customer", "System")
LINK_TYPES = ("normal", "parent", "child")
LINK_TYPE_MAP = {"normal": "normal", "parent": "child", "child": "parent"}
ROLES = (
    ("Admin", ["admin", "user_preferences", "report", "knowledge_base.editor"]),
    ("Agent", ["ticket.agent", "chat.agent", "cti.agent", "user_preferences"]),
    ("Customer", ["user_preferences", "ticket.customer"]),
)

# Real columns of the tickets table (sortable, condition-able); custom attributes add more.
TICKET_COLUMNS = (
    "id",
    "group_id",
    "priority_id",
    "state_id",
    "organization_id",
    "number",
    "title",
    "owner_id",
    "customer_id",
    "note",
    "first_response_at",
    "close_at",
    "last_close_at",
    "last_contact_at",
    "last_contact_agent_at",
    "last_contact_customer_at",
    "last_owner_update_at",
    "create_article_type_id",
    "create_article_sender_id",
    "article_count",
    "pending_time",
    "updated_by_id",
    "created_by_id",
    "created_at",
    "updated_at",
)

# Ticket columns ``HasHistory#history_update`` writes a row for when they change: all but
# ``history_attributes_ignored`` (create_article_type_id, create_article_sender_id,
# article_count, preferences) and the timestamps and *_by_id columns; custom attributes too.
HISTORISED_COLUMNS = (
    "title",
    "group_id",
    "state_id",
    "priority_id",
    "owner_id",
    "customer_id",
    "organization_id",
    "pending_time",
    "note",
    "first_response_at",
    "close_at",
    "last_close_at",
    "last_contact_at",
    "last_contact_agent_at",
    "last_contact_customer_at",
    "last_owner_update_at",
)
# ``history_relation_object``: rows of these objects whose related_o_id is the ticket are
# part of its history (``Ticket.history_get``).
HISTORY_RELATED_OBJECTS = (
    "Ticket::Article",
    "Mention",
    "Ticket::SharedDraftZoom",
    "Checklist",
    "Checklist::Item",
)


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass
class TicketChange:
    """What one transaction did to a ticket, for the triggers (``Transaction::Trigger``):
    created or updated, the columns that changed (``tags`` for a tag added or removed) and
    the articles added."""

    created: bool = False
    attributes: set[str] = field(default_factory=set)
    article_ids: list[int] = field(default_factory=list)


@dataclass
class Settings:
    system_id: str = "31"
    ticket_number_min_size: int = 5
    tag_new: bool = True
    fqdn: str = "zammad.example.com"
    cti_view_limit: int = 60
    """``cti_config`` view_limit: how many calls ``GET /api/v1/cti/log`` lists."""
    timezone_default: str = "UTC"
    """The system time zone (Settings > System > Base; Zammad seeds ``UTC``): the day the
    ``today`` operator means (``lib/selector/sql.rb`` takes the day's start and end in it)."""


@dataclass
class Tables:
    """Every row, by id. Tags are kept per ticket in the order they were added."""

    roles: dict[int, Role] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    organizations: dict[int, Organization] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    state_types: dict[int, StateType] = field(default_factory=dict)
    states: dict[int, TicketState] = field(default_factory=dict)
    priorities: dict[int, Priority] = field(default_factory=dict)
    attributes: dict[int, ObjectAttribute] = field(default_factory=dict)
    tickets: dict[int, Ticket] = field(default_factory=dict)
    articles: dict[int, Article] = field(default_factory=dict)
    tag_items: dict[str, int] = field(default_factory=dict)
    ticket_tags: dict[int, list[str]] = field(default_factory=dict)
    link_types: dict[int, str | None] = field(default_factory=dict)
    links: dict[int, Link] = field(default_factory=dict)
    mentions: dict[int, Mention] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    histories: dict[int, HistoryEntry] = field(default_factory=dict)
    cti_logs: dict[int, CallLogRow] = field(default_factory=dict)
    admin: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    """The admin resources kept as plain rows (``sandbox/admin.py``): ``macros``,
    ``overviews``, ``triggers``, ``webhooks``, ``text_modules``, by id."""


class SandboxState:
    """The tables plus look-ups and checks. Not thread-safe: the owner holds the lock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.settings = Settings()
        self.db = Tables()
        self._ids: dict[str, itertools.count[int]] = {}
        self._ticket_counter = itertools.count(1)
        self._historised: dict[int, dict[str, Any]] = {}
        """Ticket id → the historised values as of its last save (``saved_changes``)."""
        self.journal: dict[int, TicketChange] = {}
        """Ticket id → what the current transaction did to it (``sandbox/admin.py`` runs the
        triggers from it)."""
        self.source: tuple[str, int, str] | None = None
        """``(type, id, name)`` of the macro or trigger being applied: stamped on the history
        rows written meanwhile (``sourceable_*``)."""
        self._seed_builtins()

    # -- ids and time --------------------------------------------------------------------------

    def next_id(self, table: str) -> int:
        return next(self._ids.setdefault(table, itertools.count(1)))

    def now(self) -> datetime:
        return to_ms(self.clock.now())

    def next_ticket_number(self) -> str:
        counter = str(next(self._ticket_counter))
        width = max(self.settings.ticket_number_min_size - len(self.settings.system_id), 0)
        return self.settings.system_id + counter.rjust(width, "0")

    # -- Zammad's seeded rows ------------------------------------------------------------------

    def _seed_builtins(self) -> None:
        now = self.now()
        for name, permissions in ROLES:
            rid = self.next_id("roles")
            self.db.roles[rid] = Role(rid, name, list(permissions))
        uid = self.next_id("users")
        self.db.users[uid] = User(uid, "-", now, now, firstname="-", active=False)
        for name in STATE_TYPES:
            tid = self.next_id("state_types")
            self.db.state_types[tid] = StateType(tid, name)
        for name, type_name, extra in (
            ("new", "new", {"default_create": True}),
            ("open", "open", {"default_follow_up": True}),
            ("pending reminder", "pending reminder", {"ignore_escalation": True}),
            ("closed", "closed", {"ignore_escalation": True}),
            ("merged", "merged", {"ignore_escalation": True}),
            ("pending close", "pending action", {"ignore_escalation": True}),
        ):
            self.add_state(name, type_name, **extra)
        self.state_by_name("pending close").next_state_id = self.state_by_name("closed").id
        for name, default in (("1 low", False), ("2 normal", True), ("3 high", False)):
            pid = self.next_id("priorities")
            self.db.priorities[pid] = Priority(pid, name, now, now, default_create=default)
        for name in LINK_TYPES:
            self.db.link_types[self.next_id("link_types")] = name
        for name, display, data_type in (
            ("number", "#", "input"),
            ("title", "Title", "input"),
            ("customer_id", "Customer", "user_autocompletion"),
            ("organization_id", "Organization", "autocompletion_ajax"),
            ("group_id", "Group", "tree_select"),
            ("owner_id", "Owner", "select"),
            ("state_id", "State", "select"),
            ("pending_time", "Pending till", "datetime"),
            ("priority_id", "Priority", "select"),
            ("tags", "Tags", "tag"),
        ):
            aid = self.next_id("attributes")
            self.db.attributes[aid] = ObjectAttribute(
                aid, "Ticket", name, display, data_type, {}, now, now, editable=False
            )

    def add_state(self, name: str, state_type: str, **extra: Any) -> TicketState:
        type_id = next(t.id for t in self.db.state_types.values() if t.name == state_type)
        now = self.now()
        sid = self.next_id("states")
        state = TicketState(sid, name, type_id, now, now, **extra)
        self.db.states[sid] = state
        return state

    # -- look-ups (exact, case-sensitive, as Zammad's find_by) ----------------------------------

    def state_by_name(self, name: str) -> TicketState:
        for state in self.db.states.values():
            if state.name == name:
                return state
        raise KeyError(name)

    def state_type_name(self, state_id: int) -> str:
        return self.db.state_types[self.db.states[state_id].state_type_id].name

    def default_state(self, flag: str) -> TicketState:
        return next(s for s in self.db.states.values() if getattr(s, flag))

    def default_priority_id(self) -> int:
        return next(p.id for p in self.db.priorities.values() if p.default_create)

    def is_pending_state(self, state_id: int) -> bool:
        return self.state_type_name(state_id).startswith("pending")

    def group_by_name(self, name: str) -> Group | None:
        return next((g for g in self.db.groups.values() if g.name == name), None)

    def user_by_login_or_email(self, value: str) -> User | None:
        value = value.strip().lower()
        for user in self.db.users.values():
            if user.login == value:
                return user
        for user in self.db.users.values():
            if user.email and user.email == value:
                return user
        return None

    def user_by_email(self, email: str) -> User | None:
        email = email.strip().lower()
        return next((u for u in self.db.users.values() if u.email == email), None)

    def article_type_id(self, name: str) -> int | None:
        return ARTICLE_TYPES.index(name) + 1 if name in ARTICLE_TYPES else None

    def article_type_name(self, type_id: int) -> str:
        return ARTICLE_TYPES[type_id - 1]

    def sender_id(self, name: str) -> int | None:
        return ARTICLE_SENDERS.index(name) + 1 if name in ARTICLE_SENDERS else None

    def sender_name(self, sender_id: int) -> str:
        return ARTICLE_SENDERS[sender_id - 1]

    def link_type_id(self, name: str | None, *, create: bool) -> int | None:
        for tid, tname in self.db.link_types.items():
            if tname == name:
                return tid
        if not create:
            return None
        tid = self.next_id("link_types")
        self.db.link_types[tid] = name
        return tid

    def ticket(self, ticket_id: object) -> Ticket:
        tid = as_int(ticket_id)
        ticket = self.db.tickets.get(tid) if tid is not None else None
        if ticket is None:
            raise not_found("Ticket", ticket_id)
        return ticket

    def ticket_by_number(self, number: object) -> Ticket | None:
        return next((t for t in self.db.tickets.values() if t.number == str(number)), None)

    def ticket_attributes(self) -> dict[str, ObjectAttribute]:
        """Active custom Ticket attributes that are real columns (an attribute created
        through the API is not one until the migrations run)."""
        return {
            a.name: a
            for a in self.db.attributes.values()
            if a.object == "Ticket" and a.editable and a.active and not a.to_create
        }

    def ensure_tag_item(self, name: str) -> int:
        """The tag catalogue's id for ``name``, creating the item if it is new."""
        items = self.db.tag_items
        if name not in items:
            items[name] = max(items.values(), default=0) + 1
        return items[name]

    def tags_of(self, ticket_id: int) -> list[str]:
        return self.db.ticket_tags.setdefault(ticket_id, [])

    def articles_of(self, ticket_id: int) -> list[Article]:
        found = [a for a in self.db.articles.values() if a.ticket_id == ticket_id]
        return sorted(found, key=lambda a: (a.created_at, a.id))

    def mentions_of(self, ticket_id: int) -> list[Mention]:
        return [m for m in self.db.mentions.values() if m.ticket_id == ticket_id]

    # -- permissions and group access ----------------------------------------------------------

    def user_permissions(self, user: User) -> list[str]:
        return [p for rid in user.role_ids for p in self.db.roles[rid].permissions]

    def user_has(self, user: User, permission: str) -> bool:
        return grants(self.user_permissions(user), permission)

    def group_access(self, user: User, group_id: int, access: str) -> bool:
        """Agent access: the user holds ``ticket.agent`` and the group grants ``access``."""
        if not user.active or not self.user_has(user, "ticket.agent"):
            return False
        levels = list(user.group_access.get(group_id, []))
        for role_id in user.role_ids:  # access granted through a role counts the same
            levels += self.db.roles[role_id].group_access.get(group_id, [])
        return access in levels or "full" in levels

    def owner_eligible(self, user_id: int, group_id: int) -> bool:
        """User 1, or an active agent with ``full`` access to the group (Core Workflow)."""
        if user_id == 1:
            return True
        user = self.db.users.get(user_id)
        return user is not None and self.group_access(user, group_id, "full")

    # -- updated_at ----------------------------------------------------------------------------

    def touch(self, ticket: Ticket) -> None:
        """Rails ``touch``: moves ``updated_at`` only; ``updated_by_id`` stays as it was."""
        ticket.updated_at = max(self.now(), ticket.updated_at)
        self.journal.setdefault(ticket.id, TicketChange())

    def touch_id(self, ticket_id: int) -> None:
        ticket = self.db.tickets.get(ticket_id)
        if ticket is not None:
            self.touch(ticket)

    def saved(self, ticket: Ticket, actor_id: int) -> None:
        """A real save with changes: ``updated_at`` and ``updated_by_id`` move, and each
        changed column gets an ``updated`` history row by the actor."""
        self.touch(ticket)
        ticket.updated_by_id = actor_id
        self._history_update(ticket, actor_id)

    # -- history (``has_history.rb``, ``history.rb``) -------------------------------------------

    def history_add(
        self,
        type_name: str,
        object_name: str,
        o_id: int,
        actor_id: int,
        *,
        attribute: str | None = None,
        value_from: str | None = None,
        value_to: str | None = None,
        id_from: int | None = None,
        id_to: int | None = None,
        related: tuple[str, int] | None = None,
        at: datetime | None = None,
    ) -> HistoryEntry:
        entry = HistoryEntry(
            id=self.next_id("histories"),
            o_id=o_id,
            object=object_name,
            type=type_name,
            created_by_id=actor_id,
            created_at=to_ms(at) if at is not None else self.now(),
            attribute=attribute,
            value_from=value_from,
            value_to=value_to,
            id_from=id_from,
            id_to=id_to,
            related_object=related[0] if related else None,
            related_o_id=related[1] if related else None,
        )
        if self.source is not None:
            entry.sourceable_type, entry.sourceable_id, entry.sourceable_name = self.source
        self.db.histories[entry.id] = entry
        self._journal_history(entry)
        return entry

    def _journal_history(self, entry: HistoryEntry) -> None:
        if entry.object == "Ticket":
            change = self.journal.setdefault(entry.o_id, TicketChange())
            if entry.type == "created":
                change.created = True
            elif entry.attribute == "tag":
                change.attributes.add("tags")
        elif entry.object == "Ticket::Article" and entry.related_o_id is not None:
            change = self.journal.setdefault(entry.related_o_id, TicketChange())
            if entry.type == "created":
                change.article_ids.append(entry.o_id)

    def history_created(self, ticket: Ticket) -> None:
        """``history_create``: the ``created`` row, by the creator, at ``updated_at``."""
        self.history_add("created", "Ticket", ticket.id, ticket.created_by_id, at=ticket.updated_at)
        self._historised[ticket.id] = self._historised_values(ticket)

    def history_of(self, ticket_id: int) -> list[HistoryEntry]:
        """``History.list`` for a ticket: its own rows and its related objects' rows,
        ordered by ``created_at, id``."""
        rows = [
            h
            for h in self.db.histories.values()
            if (h.object == "Ticket" and h.o_id == ticket_id)
            or (h.object in HISTORY_RELATED_OBJECTS and h.related_o_id == ticket_id)
        ]
        return sorted(rows, key=lambda h: (h.created_at, h.id))

    def _historised_values(self, ticket: Ticket) -> dict[str, Any]:
        values = {name: getattr(ticket, name) for name in HISTORISED_COLUMNS}
        values.update(ticket.custom)
        return values

    def _history_update(self, ticket: Ticket, actor_id: int) -> None:
        """``history_update``: one ``updated`` row per changed column. An ``*_id`` column
        is named without ``_id`` and carries the ids, and the names of the rows they point
        to as values, if the new one exists (otherwise the ids as text)."""
        before = self._historised.get(ticket.id, {})
        after = self._historised_values(ticket)
        self._historised[ticket.id] = after
        for key, new in after.items():
            old = before.get(key)
            if old == new:
                continue
            self.journal.setdefault(ticket.id, TicketChange()).attributes.add(key)
            row: dict[str, Any] = {
                "attribute": key,
                "value_from": ruby_text(old),
                "value_to": ruby_text(new),
            }
            if key.endswith("_id"):
                row.update(attribute=key.removesuffix("_id"), id_from=old, id_to=new)
                name = self._related_name(key, new)
                if name is not None:
                    row.update(value_from=self._related_name(key, old) or row["value_from"])
                    row.update(value_to=name)
            self.history_add("updated", "Ticket", ticket.id, actor_id, at=ticket.updated_at, **row)

    def _related_name(self, column: str, row_id: object) -> str | None:
        """What ``HasHistory`` shows for a related row: its ``name``, else its ``fullname``."""
        if not isinstance(row_id, int):
            return None
        tables: dict[str, dict[int, Any]] = {
            "group_id": self.db.groups,
            "state_id": self.db.states,
            "priority_id": self.db.priorities,
            "organization_id": self.db.organizations,
        }
        if column in ("owner_id", "customer_id"):
            user = self.db.users.get(row_id)
            return user.fullname if user else None
        row = tables.get(column, {}).get(row_id)
        return str(row.name) if row is not None else None


def ruby_text(value: object) -> str:
    """A value as ``HasHistory`` stores it (Ruby ``to_s``): ``nil`` is ``""``, booleans are
    ``true``/``false``, times are ``2026-12-01 15:00:00 UTC``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return f"{to_ms(value):%Y-%m-%d %H:%M:%S} UTC"
    return str(value)


def grants(granted: Iterable[str], permission: str) -> bool:
    """Zammad's permission check: a granted ``admin`` covers ``admin.object`` and so on."""
    return any(permission == g or permission.startswith(g + ".") for g in granted)


def as_int(value: object) -> int | None:
    """An id as Rails would cast it from JSON or a query string, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def ruby_to_i(value: object, default: int) -> int:
    """Ruby ``to_i``: leading digits, else 0; ``None`` gives the default."""
    if value is None:
        return default
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    text = str(value).strip()
    sign = -1 if text.startswith("-") else 1
    digits = ""
    for ch in text.lstrip("+-"):
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


def require_lookup(found: object, attribute: str, value: object) -> None:
    if found is None:
        raise ApiError(422, f"No lookup value found for '{attribute}': \"{value}\"")
