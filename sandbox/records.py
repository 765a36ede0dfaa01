"""The sandbox's rows: plain mutable dataclasses, one per Zammad table the API subset touches,
plus the error type every rule raises and the time helpers (millisecond UTC, like Zammad's
``timestamp(3)`` columns)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# --- time ------------------------------------------------------------------------------------


def to_ms(instant: datetime) -> datetime:
    """Truncate to milliseconds, in UTC (Zammad stores ``timestamp(3)``)."""
    if instant.tzinfo is None:
        raise ValueError("the sandbox needs aware datetimes")
    instant = instant.astimezone(UTC)
    return instant.replace(microsecond=(instant.microsecond // 1000) * 1000)


def iso(instant: datetime | None) -> str | None:
    """``2025-06-24T10:46:58.554Z``, or ``None``."""
    if instant is None:
        return None
    instant = to_ms(instant)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


# --- errors ----------------------------------------------------------------------------------

ErrorKind = Literal["human", "detail", "plain"]


class ApiError(Exception):
    """A Zammad error response.

    ``kind`` says how Zammad's error handler renders it (``handles_errors.rb``):

    - ``human``: a known error class or a validation error: ``{"error": m, "error_human": m}``;
    - ``detail``: anything else (Core Workflow 422s, database errors, 500s): ``{"error": m}``
      for callers with the ``admin`` permission, ``"Error ID …: Please contact your
      administrator."`` for everybody else;
    - ``plain``: endpoints that render their own ``{"error": m}``.
    """

    def __init__(self, status: int, message: str, *, kind: ErrorKind = "human") -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.kind = kind

    def body(self, *, admin: bool) -> dict[str, str]:
        if self.kind == "human":
            return {"error": self.message, "error_human": self.message}
        if self.kind == "plain" or admin:
            return {"error": self.message}
        return {"error": f"Error ID {secrets.token_urlsafe(6)}: Please contact your administrator."}


def not_found(model: str, record_id: object) -> ApiError:
    return ApiError(404, f"Couldn't find {model} with 'id'={record_id}")


def forbidden(message: str = "Not authorized") -> ApiError:
    return ApiError(403, message)


def invalid_value(value: object, field_name: str) -> ApiError:
    """Core Workflow's rejection (opaque for non-admin callers)."""
    return ApiError(422, f"Invalid value '{value}' for field '{field_name}'!", kind="detail")


def missing_value(field_name: str) -> ApiError:
    return ApiError(422, f"Missing required value for field '{field_name}'!", kind="detail")


# --- rows ------------------------------------------------------------------------------------


@dataclass
class Role:
    id: int
    name: str
    permissions: list[str]
    group_access: dict[int, list[str]] = field(default_factory=dict)
    """Group id → access levels every user with this role has (Zammad's role groups)."""


@dataclass
class Organization:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    active: bool = True
    shared: bool = True
    domain: str = ""
    note: str = ""
    vip: bool = False


@dataclass
class User:
    id: int
    login: str
    created_at: datetime
    updated_at: datetime
    firstname: str = ""
    lastname: str = ""
    email: str = ""
    organization_id: int | None = None
    role_ids: list[int] = field(default_factory=list)
    group_access: dict[int, list[str]] = field(default_factory=dict)
    """Group id → access levels (``read``, ``create``, ``change``, ``overview``, ``full``)."""
    active: bool = True
    phone: str = ""
    note: str = ""
    vip: bool = False
    created_by_id: int = 1
    updated_by_id: int = 1

    @property
    def fullname(self) -> str:
        name = f"{self.firstname} {self.lastname}".strip()
        return name or self.email or self.login


@dataclass
class Group:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    parent_id: int | None = None
    email_address: str = ""
    email_name: str = ""
    active: bool = True
    follow_up_possible: str = "yes"
    note: str = ""

    @property
    def name_last(self) -> str:
        return self.name.rsplit("::", 1)[-1]


@dataclass
class StateType:
    id: int
    name: str


@dataclass
class TicketState:
    id: int
    name: str
    state_type_id: int
    created_at: datetime
    updated_at: datetime
    next_state_id: int | None = None
    ignore_escalation: bool = False
    default_create: bool = False
    default_follow_up: bool = False
    active: bool = True
    note: str = ""


@dataclass
class Priority:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    default_create: bool = False
    ui_icon: str = ""
    ui_color: str = ""
    active: bool = True


@dataclass
class ObjectAttribute:
    id: int
    object: str
    name: str
    display: str
    data_type: str
    data_option: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    editable: bool = True
    active: bool = True
    position: int = 1500
    screens: dict[str, Any] = field(default_factory=dict)
    to_create: bool = False
    """Created through the API and not migrated yet: the column does not exist."""
    to_migrate: bool = False
    to_delete: bool = False
    to_config: bool = False
    """A change staged in ``data_option_new`` until migrations run."""
    data_option_new: dict[str, Any] = field(default_factory=dict)
    created_by_id: int = 1
    updated_by_id: int = 1


@dataclass
class Attachment:
    id: int
    store_file_id: int
    filename: str
    data: bytes
    preferences: dict[str, str]
    content_id: str | None = None
    """Set for inline images: the body refers to it as ``cid:<content_id>``."""


@dataclass
class Ticket:
    id: int
    number: str
    title: str
    group_id: int
    state_id: int
    priority_id: int
    customer_id: int
    created_at: datetime
    updated_at: datetime
    created_by_id: int
    updated_by_id: int
    owner_id: int = 1
    organization_id: int | None = None
    pending_time: datetime | None = None
    note: str | None = None
    article_count: int = 0
    create_article_type_id: int | None = None
    create_article_sender_id: int | None = None
    first_response_at: datetime | None = None
    close_at: datetime | None = None
    last_close_at: datetime | None = None
    last_contact_at: datetime | None = None
    last_contact_agent_at: datetime | None = None
    last_contact_customer_at: datetime | None = None
    last_owner_update_at: datetime | None = None
    preferences: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    """Custom object attributes by name (datetimes kept as aware ``datetime``)."""


@dataclass
class Article:
    id: int
    ticket_id: int
    type_id: int
    sender_id: int
    body: str
    content_type: str
    internal: bool
    created_at: datetime
    updated_at: datetime
    created_by_id: int
    updated_by_id: int
    from_: str | None = None
    to: str | None = None
    cc: str | None = None
    reply_to: str | None = None
    subject: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    origin_by_id: int | None = None
    time_unit: str | None = None
    preferences: dict[str, Any] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Link:
    id: int
    link_type_id: int
    source_value: int
    target_value: int
    created_at: datetime
    updated_at: datetime


@dataclass
class Mention:
    id: int
    ticket_id: int
    user_id: int
    created_by_id: int
    created_at: datetime
    updated_at: datetime


@dataclass
class HistoryEntry:
    """A row of Zammad's ``histories`` table (``app/models/history.rb``), its lookups (type,
    object, attribute) kept as names. ``value_*`` are text, as ``HasHistory`` writes them
    (``to_s``); ``id_*`` are set for ``*_id`` columns. The ``sourceable_*`` columns (6.0+)
    name the macro or trigger behind a change, and are empty otherwise."""

    id: int
    o_id: int
    object: str
    type: str
    created_by_id: int
    created_at: datetime
    attribute: str | None = None
    value_from: str | None = None
    value_to: str | None = None
    id_from: int | None = None
    id_to: int | None = None
    related_object: str | None = None
    related_o_id: int | None = None
    sourceable_type: str | None = None
    sourceable_id: int | None = None
    sourceable_name: str | None = None


@dataclass
class CallLogRow:
    """A row of Zammad's ``cti_logs`` table (``app/models/cti/log.rb``): one call as the
    phone system reported it. ``start_at`` is set when the call was answered; ``preferences``
    holds the users each number was matched to (``{"from": [...], "to": [...]}``)."""

    id: int
    direction: str  # "in" or "out"
    from_: str
    to: str
    call_id: str
    state: str  # "newCall", "answer" or "hangup"
    created_at: datetime
    updated_at: datetime
    initialized_at: datetime
    from_comment: str | None = None
    to_comment: str | None = None
    queue: str | None = None
    comment: str | None = None
    done: bool = True
    start_at: datetime | None = None
    end_at: datetime | None = None
    duration_waiting_time: int | None = None
    duration_talking_time: int | None = None
    preferences: dict[str, Any] = field(default_factory=dict)


@dataclass
class AccessToken:
    token: str
    user_id: int
    permissions: list[str]
    name: str = "api"
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 instant as Rails casts it for a datetime attribute: an offset is honoured,
    a value without one is UTC, anything unparseable is ``None``."""
    if isinstance(value, datetime):
        return to_ms(value if value.tzinfo else value.replace(tzinfo=UTC))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return to_ms(parsed)


_FALSE_VALUES = {"0", "f", "F", "false", "FALSE", "off", "OFF"}


def cast_bool(value: object) -> bool | None:
    """``ActiveModel::Type::Boolean#cast``: blank is ``None``; a short list is false."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return str(value) not in _FALSE_VALUES
