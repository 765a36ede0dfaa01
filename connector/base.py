"""The neutral helpdesk interface: one Protocol, the frozen types it takes and returns, and the
capabilities an adapter declares. Vendor JSON never crosses this boundary."""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

TicketId = int
ArticleId = int
UserId = int

FieldValue = str | int | float | bool | None


class Capability(enum.Enum):
    """What an adapter can do; jobs check membership, never ``isinstance``."""

    POLL_CHANGES = "poll_changes"  # changed_tickets since a cursor
    READ_ARTICLES = "read_articles"
    READ_ATTACHMENTS = "read_attachments"
    CREATE_TICKET = "create_ticket"
    ATOMIC_CREATE = "atomic_create"  # first note, tags, link, mentions in one request
    ADD_NOTE = "add_note"
    TAGS = "tags"
    UPDATE_TICKET = "update_ticket"  # owner, group, state, custom fields
    NOTE_ON_UPDATE = "note_on_update"  # update_ticket may carry an internal note, atomically
    LINKS = "links"
    SUBSCRIBE = "subscribe"
    FIND_BY_MARKER = "find_by_marker"
    USERS = "users"
    HISTORY = "history"  # ticket_events: who changed a field or a tag, and when
    CALL_LOG = "call_log"  # recent_calls: the phone system's record of calls
    COUNT_TICKETS = "count_tickets"  # count_customer_tickets in one request
    CUSTOMER_TICKETS = "customer_tickets"  # customer_tickets: many customers per search
    SHARED_READS = "shared_reads"  # reads may run on another thread while the loop reads too


class ArticleKind(enum.Enum):
    EMAIL = "email"
    WEB = "web"
    PHONE = "phone"
    NOTE = "note"
    OTHER = "other"


class Sender(enum.Enum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"


MARKER_RE = re.compile(r"\bhde1-[0-9a-f]{16}\b")


@dataclass(frozen=True)
class Marker:
    """A deterministic reference written into the helpdesk with a write, found again after a
    crash. Computed from the effect's natural key (``escalations.markers.marker_for``)."""

    value: str

    def __post_init__(self) -> None:
        if not MARKER_RE.fullmatch(self.value):
            raise ValueError(f"not a marker: {self.value!r}")

    @property
    def footer(self) -> str:
        return f"— escalation worker · ref {self.value}"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class AttachmentRef:
    ticket_id: TicketId
    article_id: ArticleId
    id: int
    filename: str
    size: int
    content_type: str


@dataclass(frozen=True)
class AttachmentUpload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Article:
    id: ArticleId
    ticket_id: TicketId
    kind: ArticleKind
    sender: Sender
    internal: bool
    created_at: datetime
    body: str
    content_type: str = "text/plain"
    subject: str | None = None
    from_: str | None = None
    to: str | None = None
    cc: str | None = None
    created_by_id: UserId | None = None
    """Who wrote it; ``None`` for the helpdesk itself (the system user) or unknown."""
    attachments: tuple[AttachmentRef, ...] = ()

    @property
    def is_customer_message(self) -> bool:
        """An inbound message from the customer (email, web form, or phone logged as them)."""
        return self.sender is Sender.CUSTOMER and self.kind in (ArticleKind.EMAIL, ArticleKind.WEB)


@dataclass(frozen=True)
class Ticket:
    id: TicketId
    number: str
    title: str
    group: str
    state: str
    customer_id: UserId
    created_at: datetime
    updated_at: datetime
    organization_id: int | None = None
    owner_id: UserId | None = None  # None means unassigned
    updated_by_id: UserId | None = None
    """Who changed it last; ``None`` for the helpdesk itself (the system user) or unknown."""
    customer_login: str | None = None
    owner_login: str | None = None
    pending_until: datetime | None = None
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    """Custom attributes by their helpdesk name (names come from ``mappings/``)."""
    article_ids: frozenset[ArticleId] | None = None
    """Every article's id, where the helpdesk's ticket answer lists them; ``None`` when it
    does not (the articles must then be listed to know what is new)."""


@dataclass(frozen=True)
class ArticleDraft:
    """An internal note. Adapters only ever write internal notes that email nobody."""

    body: str
    subject: str | None = None
    content_type: str = "text/html"
    attachments: tuple[AttachmentUpload, ...] = ()


@dataclass(frozen=True)
class TicketDraft:
    title: str
    group: str
    customer_id: UserId
    first_note: ArticleDraft
    organization_id: int | None = None
    state: str | None = None
    owner_id: UserId | None = None
    tags: frozenset[str] = frozenset()
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    parent_id: TicketId | None = None
    """The ticket this one is linked to as a child (the original ticket of an escalation)."""
    mention_user_ids: tuple[UserId, ...] = ()


@dataclass(frozen=True)
class TicketChanges:
    """A partial update; ``None`` leaves a value alone."""

    owner_id: UserId | None = None
    group: str | None = None
    state: str | None = None
    pending_until: datetime | None = None
    title: str | None = None
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    note: ArticleDraft | None = None
    """An internal note created by the update itself, in the same transaction (only with
    ``Capability.NOTE_ON_UPDATE``; ``update_ticket`` then needs its ``marker``)."""


@dataclass(frozen=True)
class CreatedTicket:
    id: TicketId
    number: str
    article_ids: frozenset[ArticleId] = frozenset()
    """The new ticket's articles (its first note), where the create's answer lists them."""


class LinkKind(enum.Enum):
    PARENT = "parent"  # the other ticket is this one's parent
    CHILD = "child"  # the other ticket is this one's child
    NORMAL = "normal"


@dataclass(frozen=True)
class Link:
    ticket_id: TicketId
    kind: LinkKind


@dataclass(frozen=True)
class User:
    id: UserId
    login: str
    email: str | None
    firstname: str = ""
    lastname: str = ""
    active: bool = True
    is_agent: bool = False
    group_access: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Group name → access levels (``read``, ``create``, ``change``, ``overview``, ``full``)."""
    phones: tuple[str, ...] = ()
    """Phone numbers as the helpdesk holds them (landline, mobile), empty ones left out."""

    @property
    def display_name(self) -> str:
        name = f"{self.firstname} {self.lastname}".strip()
        return name or self.login


@dataclass(frozen=True)
class Group:
    id: int
    name: str
    active: bool = True


@dataclass(frozen=True)
class TicketState:
    id: int
    name: str
    type: str  # new, open, pending reminder, pending action, closed, merged
    active: bool = True


@dataclass(frozen=True)
class FieldInfo:
    """A custom attribute the helpdesk knows."""

    name: str
    data_type: str
    options: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Criterion:
    """A condition a ticket search can filter on: the ticket carries a tag, or a custom field
    has a value. Bindings say which one finds what they look for; jobs pass it on unread."""

    tag: str | None = None
    field: str | None = None
    value: FieldValue = None

    def __post_init__(self) -> None:
        if (self.tag is None) == (self.field is None):
            raise ValueError("a criterion is a tag or a field, not both or neither")


class EventKind(enum.Enum):
    CREATED = "created"  # the ticket was created
    FIELD_CHANGED = "field_changed"  # an attribute, standard or custom, changed
    TAG_ADDED = "tag_added"
    TAG_REMOVED = "tag_removed"


@dataclass(frozen=True)
class TicketEvent:
    """One entry of a ticket's history: what changed, who changed it, when."""

    kind: EventKind
    at: datetime
    """Aware, UTC."""
    actor_id: UserId | None
    """Who did it; ``None`` for the helpdesk itself (the system user) or unknown."""
    field: str | None = None
    """``FIELD_CHANGED``: the attribute's helpdesk name (names come from ``mappings/``)."""
    value_from: str | None = None
    """``FIELD_CHANGED``: the value before, as text."""
    value_to: str | None = None
    """``FIELD_CHANGED``: the value after, as text; ``TAG_ADDED``/``TAG_REMOVED``: the tag."""


class CallDirection(enum.Enum):
    INBOUND = "in"
    OUTBOUND = "out"


@dataclass(frozen=True)
class CallRecord:
    """One call in the helpdesk's caller log, as the provider's phone system reported it."""

    id: int
    direction: CallDirection
    from_number: str
    to_number: str
    created_at: datetime
    """When the call began ringing; aware, UTC."""
    answered_at: datetime | None = None
    """When it was answered; ``None`` for a call nobody took."""
    ended_at: datetime | None = None
    from_user_ids: frozenset[UserId] = frozenset()
    """The helpdesk users the calling number is known to belong to."""
    to_user_ids: frozenset[UserId] = frozenset()
    """The helpdesk users the called number is known to belong to."""


@dataclass(frozen=True)
class CallLog:
    """The newest calls of the caller log, newest first. ``complete_since`` is the instant from
    which no call is missing: the start of time when the helpdesk returned its whole log, or
    the oldest call returned when it cut the list at its limit."""

    calls: tuple[CallRecord, ...]
    complete_since: datetime | None
    """``None``: the whole log was returned."""


@runtime_checkable
class HelpdeskAdapter(Protocol):
    name: str
    capabilities: frozenset[Capability]

    # -- reading -----------------------------------------------------------------------
    def changed_tickets(
        self, since: datetime, *, matching: Criterion | None = None
    ) -> Iterator[Ticket]:
        """Tickets with ``updated_at >= since`` (and meeting ``matching``, if given), oldest
        first (``updated_at``, then id)."""
        ...

    def clock_offset(self) -> timedelta | None:
        """How far the helpdesk's clock is ahead of this machine's (negative: behind), as of
        its latest answer; ``None`` while unknown. The poll's signpost is taken in the
        helpdesk's time, since its ``updated_at`` stamps are."""
        ...

    def get_ticket(self, ticket_id: TicketId) -> Ticket: ...

    def get_tags(self, ticket_id: TicketId) -> frozenset[str]: ...

    def list_articles(self, ticket_id: TicketId) -> list[Article]:
        """Every article of a ticket, oldest first."""
        ...

    def fetch_attachment(self, ref: AttachmentRef, *, max_bytes: int) -> bytes:
        """The attachment's bytes, streamed; raises ``TooLarge`` past ``max_bytes``."""
        ...

    def digest_attachment(self, ref: AttachmentRef) -> tuple[int, str]:
        """Size and sha256 of an attachment, streamed without keeping it in memory (for one
        too large to copy)."""
        ...

    def list_links(self, ticket_id: TicketId) -> list[Link]: ...

    def list_subscribers(self, ticket_id: TicketId) -> frozenset[UserId]: ...

    def ticket_events(self, ticket_id: TicketId) -> list[TicketEvent]:
        """The ticket's own history, oldest first: its creation, field changes and tag
        changes, each with who made it (``Capability.HISTORY``). Raises like any read."""
        ...

    def count_customer_tickets(self, customer_id: UserId, *, created_since: datetime) -> int:
        """How many tickets of the customer created at or after ``created_since`` the token
        may see, in one request (``Capability.COUNT_TICKETS``)."""
        ...

    def customer_tickets(
        self, customer_ids: Collection[UserId], *, created_since: datetime
    ) -> Iterator[Ticket]:
        """The tickets of any of ``customer_ids`` created at or after ``created_since`` that
        the token may see, each once, in bulk: a few paged searches for all the customers,
        not one per customer (``Capability.CUSTOMER_TICKETS``)."""
        ...

    def recent_calls(self) -> CallLog:
        """The newest calls of the helpdesk's caller log (``Capability.CALL_LOG``). Raises
        ``Forbidden`` when the token may not read it."""
        ...

    def find_ticket_by_marker(
        self,
        marker: Marker,
        *,
        linked_to: TicketId,
        matching: Criterion | None = None,
        since: datetime | None = None,
    ) -> TicketId | None:
        """Look for a ticket created with ``marker`` among those linked to ``linked_to`` and,
        when ``matching`` is given, among the tickets changed since ``since`` that meet it
        (for a create whose link is a separate, later write), using database-backed reads
        only."""
        ...

    def find_article_by_marker(self, ticket_id: TicketId, marker: Marker) -> ArticleId | None: ...

    def me(self) -> User: ...

    def get_user(self, user_id: UserId) -> User: ...

    def find_user(self, login_or_email: str) -> User | None: ...

    def list_groups(self) -> list[Group]: ...

    def list_states(self) -> list[TicketState]: ...

    def list_fields(self) -> list[FieldInfo] | None:
        """Custom ticket attributes, or ``None`` when the token may not read them."""
        ...

    # -- writing -----------------------------------------------------------------------
    def create_ticket(self, draft: TicketDraft, *, marker: Marker) -> CreatedTicket: ...

    def add_article(self, ticket_id: TicketId, draft: ArticleDraft, *, marker: Marker) -> ArticleId:
        """Add an internal note carrying ``marker``; never emails anybody."""
        ...

    def set_tags(
        self,
        ticket_id: TicketId,
        *,
        present: frozenset[str] = frozenset(),
        absent: frozenset[str] = frozenset(),
    ) -> frozenset[str] | None:
        """Make ``present`` tags be on the ticket and ``absent`` tags not be; writes only
        what differs. Returns the tags as they are afterwards, or ``None`` when the adapter
        did not read them (adding a tag already there is a no-op where it needs no read)."""
        ...

    def update_ticket(
        self, ticket_id: TicketId, changes: TicketChanges, *, marker: Marker | None = None
    ) -> Ticket:
        """Apply a partial update and return the ticket as read back afterwards. With
        ``changes.note`` the note carries ``marker`` and the update is not idempotent: an
        unknown outcome raises ``AmbiguousWrite`` (look for the marker before writing
        again)."""
        ...

    def link_tickets(self, parent_id: TicketId, child_id: TicketId) -> None:
        """Link ``child_id`` as a child of ``parent_id`` (idempotent)."""
        ...

    def subscribe(self, ticket_id: TicketId, user_id: UserId) -> None:
        """Subscribe a user to a ticket (idempotent)."""
        ...
