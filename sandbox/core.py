"""``ZammadSandbox``: the in-memory helpdesk as one object. It answers HTTP requests (through
``mount`` or ``serve``), applies injected faults, records customer-facing mail in ``outbox``,
and offers helpers that build scenarios without HTTP, each with Zammad's side effects
(``updated_at`` bumps, auto-reply, follow-up reopen)."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from connector.clock import SystemClock
from sandbox import merge
from sandbox.actor import Actor
from sandbox.admin import AdminApi
from sandbox.api import Api, Response
from sandbox.calls import record_call
from sandbox.faults import Fault, FaultQueue, RateLimited, Refuse, ServerError, error_page
from sandbox.perform import Performer
from sandbox.records import (
    AccessToken,
    ApiError,
    Group,
    ObjectAttribute,
    Organization,
    Role,
    User,
)
from sandbox.rules import Rules
from sandbox.state import ACCESS_LEVELS, Clock, SandboxState
from sandbox.views import article_json, ticket_json
from sandbox.webhooks import WebhookDelivery, WebhookDispatcher

AttachmentSpec = tuple[str, str, bytes] | tuple[str, str, bytes, str]
"""``(filename, mime type, data)``, or with a fourth item, the ``Content-ID`` of an inline
image that an HTML body refers to as ``cid:<id>``."""

DEMO_SEED = Path(__file__).with_name("demo.json")


@dataclass(frozen=True)
class Exchange:
    """What a transport should do with one request: answer with ``status``/``headers``/
    ``body``, unless ``fault`` says to refuse, lose, truncate or delay the answer."""

    status: int
    headers: dict[str, str]
    body: bytes
    fault: Fault | None = None


class ZammadSandbox:
    """An in-memory Zammad (6.5 semantics) for tests and the demo. Thread-safe: one lock
    guards every request and helper.

    Each request, and each scenario helper that changes tickets, is a transaction: when it
    ends, the action triggers run (``sandbox/perform.py``) and their webhook calls go out
    from background threads (``webhooks``: set ``webhooks.retry_delays`` to shorten
    Zammad's retry schedule, ``performer.macro_webhooks`` to let macros call webhooks)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.lock = threading.RLock()
        self.outbox: list[dict[str, Any]] = []
        """Customer-facing mail Zammad would send: ``{to, subject, ticket_id, article_id,
        reason}``; reason is ``email_article`` or ``auto_reply``."""
        self.faults = FaultQueue()
        self.state = SandboxState(self.clock)
        self.rules = Rules(self.state, self.outbox)
        self.api = Api(self.state, self.rules)
        self.webhooks = WebhookDispatcher()
        self.performer = Performer(self.state, self.rules, self.webhooks)
        self.admin = AdminApi(self.state, self.rules, self.performer)
        self.api.add_routes(self.admin.routes())
        self._depth = 0

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_seed(cls, path: str | Path, *, clock: Clock | None = None) -> ZammadSandbox:
        """A sandbox loaded from a seed JSON file (format: ``sandbox/seed.py``)."""
        from sandbox.seed import load_seed_file

        sandbox = cls(clock)
        load_seed_file(sandbox, Path(path))
        return sandbox

    @classmethod
    def demo(cls, *, clock: Clock | None = None) -> ZammadSandbox:
        """The demo data (``sandbox/demo.json``), with its fixed, well-known tokens."""
        return cls.from_seed(DEMO_SEED, clock=clock)

    # -- HTTP ---------------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Answer one API request (no faults): ``(status, headers, body)``."""
        with self._transaction():
            return self.api.handle(method, path, query or {}, headers or {}, body)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock; when the outermost transaction ends well, run the triggers for
        what it did to tickets (``SandboxState.journal``)."""
        with self.lock:
            outermost = self._depth == 0
            if outermost:
                self.state.journal.clear()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            if outermost:
                journal = dict(self.state.journal)
                self.state.journal.clear()
                self.performer.run_triggers(journal)
                self.state.journal.clear()

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery so far (``WebhookDelivery``: headers, body, attempts)."""
        return self.webhooks.deliveries

    def process(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Exchange:
        """Answer one request through the fault queue (used by ``mount`` and ``serve``).
        Every answer carries a ``Date`` header in the sandbox's own time, as the web server
        in front of Zammad sends one (a clock of its own is how a test skews it)."""
        fault = self.faults.take(method, path.split("?", 1)[0])
        if isinstance(fault, Refuse):
            return Exchange(0, {}, b"", fault)
        date = {"Date": format_datetime(self.clock.now().astimezone(UTC), usegmt=True)}
        if isinstance(fault, RateLimited):
            headers_out = {"Content-Type": "text/plain", **date}
            if fault.header() is not None:
                headers_out["Retry-After"] = str(fault.header())
            return Exchange(429, headers_out, b"Retry later\n", fault)
        if isinstance(fault, ServerError) and not fault.apply:
            status, headers_out, body_out = _server_error(fault)
            return Exchange(status, {**headers_out, **date}, body_out, fault)
        status, headers_out, body_out = self.handle(method, path, query, headers, body)
        if isinstance(fault, ServerError):
            status, headers_out, body_out = _server_error(fault)
        return Exchange(status, {**headers_out, **date}, body_out, fault)

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every request the API answered."""
        with self.lock:
            return list(self.api.requests)

    def clear_requests(self) -> None:
        with self.lock:
            self.api.requests.clear()

    # -- directory ----------------------------------------------------------------------------

    def add_group(self, name: str, *, email_address: str = "", email_name: str = "") -> int:
        """A group; ``name`` is the full path (``Parent::Child``)."""
        with self.lock:
            st = self.state
            parent = st.group_by_name(name.rsplit("::", 1)[0]) if "::" in name else None
            now = st.now()
            group = Group(
                st.next_id("groups"),
                name,
                now,
                now,
                parent_id=parent.id if parent else None,
                email_address=email_address,
                email_name=email_name or name.rsplit("::", 1)[-1],
            )
            st.db.groups[group.id] = group
            return group.id

    def add_organization(self, name: str, *, note: str = "", vip: bool = False) -> int:
        with self.lock:
            st = self.state
            now = st.now()
            org = Organization(st.next_id("organizations"), name, now, now, note=note, vip=vip)
            st.db.organizations[org.id] = org
            return org.id

    def add_user(
        self,
        login: str,
        *,
        firstname: str = "",
        lastname: str = "",
        email: str | None = None,
        roles: Sequence[str] = ("Agent",),
        groups: Mapping[str, Sequence[str]] | None = None,
        organization: str | None = None,
        active: bool = True,
        phone: str = "",
    ) -> int:
        """A user; ``groups`` maps group names to access levels (``read``, ``create``,
        ``change``, ``overview``, ``full``). Logins and emails are stored lowercase."""
        with self.lock:
            st = self.state
            login = login.strip().lower()
            if st.user_by_login_or_email(login) is not None:
                raise ValueError(f"user {login!r} exists")
            role_ids = []
            for role in roles:
                role_ids.append(next(r.id for r in st.db.roles.values() if r.name == role))
            access: dict[int, list[str]] = {}
            for group_name, levels in (groups or {}).items():
                group = st.group_by_name(group_name)
                if group is None:
                    raise ValueError(f"no group {group_name!r}")
                bad = set(levels) - set(ACCESS_LEVELS)
                if bad:
                    raise ValueError(f"unknown access levels {sorted(bad)}")
                access[group.id] = list(levels)
            org_id = None
            if organization is not None:
                org_id = next(o.id for o in st.db.organizations.values() if o.name == organization)
            now = st.now()
            user = User(
                st.next_id("users"),
                login,
                now,
                now,
                firstname=firstname,
                lastname=lastname,
                email=(email if email is not None else (login if "@" in login else "")).lower(),
                organization_id=org_id,
                role_ids=role_ids,
                group_access=access,
                active=active,
                phone=phone,
            )
            st.db.users[user.id] = user
            return user.id

    def add_role(
        self,
        name: str,
        permissions: Sequence[str] = ("ticket.agent",),
        *,
        groups: Mapping[str, Sequence[str]] | None = None,
        members: Sequence[str] = (),
    ) -> int:
        """A role, optionally granting group access (``{"Escalations": ["full"]}``) to the
        users (logins) given as ``members``."""
        with self.lock:
            st = self.state
            rid = st.next_id("roles")
            access = {self.group_id(g): list(levels) for g, levels in (groups or {}).items()}
            st.db.roles[rid] = Role(rid, name, list(permissions), access)
            for login in members:
                self.user_record(login).role_ids.append(rid)
            return rid

    def issue_token(
        self,
        login: str,
        permissions: Iterable[str] = ("ticket.agent",),
        *,
        value: str | None = None,
        name: str = "api",
        expires_at: datetime | None = None,
    ) -> str:
        """A personal access token with a permission subset; random unless ``value``."""
        with self.lock:
            user = self.user_record(login)
            token = value or secrets.token_urlsafe(32)
            self.state.db.tokens[token] = AccessToken(
                token, user.id, list(permissions), name=name, expires_at=expires_at
            )
            return token

    def token_of(self, login: str) -> str:
        """The first token issued to ``login``."""
        with self.lock:
            user = self.user_record(login)
            for token in self.state.db.tokens.values():
                if token.user_id == user.id:
                    return token.token
            raise KeyError(login)

    def add_state(
        self,
        name: str,
        state_type: str,
        *,
        next_state: str | None = None,
        ignore_escalation: bool = False,
    ) -> int:
        """A ticket state, e.g. ``add_state("parked", "pending reminder")``."""
        with self.lock:
            st = self.state
            state = st.add_state(name, state_type, ignore_escalation=ignore_escalation)
            if next_state is not None:
                state.next_state_id = st.state_by_name(next_state).id
            return state.id

    def add_attribute(
        self,
        name: str,
        data_type: str,
        *,
        display: str | None = None,
        data_option: Mapping[str, Any] | None = None,
        active: bool = True,
    ) -> int:
        """A custom Ticket attribute, already migrated (a real column)."""
        with self.lock:
            st = self.state
            now = st.now()
            attr = ObjectAttribute(
                st.next_id("attributes"),
                "Ticket",
                name,
                display or name,
                data_type,
                dict(data_option or {}),
                now,
                now,
                active=active,
            )
            st.db.attributes[attr.id] = attr
            for ticket in st.db.tickets.values():
                ticket.custom.setdefault(name, None)
            return attr.id

    def create_tag_item(self, name: str) -> None:
        """Pre-create a tag in the catalogue (``POST /api/v1/tag_list``)."""
        with self.lock:
            self.state.ensure_tag_item(name)

    def set_setting(self, name: str, value: Any) -> None:
        """``tag_new``, ``system_id``, ``ticket_number_min_size``, ``fqdn``; and
        ``auto_reply`` for the seeded trigger's ``active`` flag."""
        with self.lock:
            if name == "auto_reply":
                self.rules.auto_reply_active = bool(value)
                return
            if not hasattr(self.state.settings, name):
                raise KeyError(name)
            setattr(self.state.settings, name, value)

    def user_id(self, login_or_email: str) -> int:
        with self.lock:
            return self.user_record(login_or_email).id

    def group_id(self, name: str) -> int:
        with self.lock:
            group = self.state.group_by_name(name)
            if group is None:
                raise KeyError(name)
            return group.id

    def state_id(self, name: str) -> int:
        with self.lock:
            return self.state.state_by_name(name).id

    def user_record(self, login_or_email: str) -> User:
        """The user row (login or email, case-insensitive); ``KeyError`` if unknown."""
        user = self.state.user_by_login_or_email(login_or_email)
        if user is None:
            raise KeyError(login_or_email)
        return user

    # -- scenario helpers (no HTTP) -----------------------------------------------------------

    def create_ticket_as_customer(
        self,
        customer: str,
        title: str,
        body: str,
        *,
        group: str = "Support",
        type: str = "email",  # Zammad's name for it
        subject: str | None = None,
        content_type: str = "text/plain",
        attachments: Sequence[AttachmentSpec] = (),
        **attributes: Any,
    ) -> int:
        """A ticket as inbound mail (or a web form) creates it: first article from sender
        Customer, created by the customer, and the auto-reply trigger fires. An unknown
        ``customer`` address becomes a new customer, as the postmaster does."""
        with self._transaction():
            user = self.state.user_by_login_or_email(customer)
            if user is None:
                user = self.rules.create_customer(email=customer)
            article = self._inbound_article(user, group, body, subject or title, type)
            article.update(content_type=content_type, attachments=_encode(attachments))
            params = {
                "title": title,
                "group": group,
                "customer_id": user.id,
                "article": article,
                **attributes,
            }
            ticket = self.rules.create_ticket(Actor(user, postmaster=True), params)
            return ticket.id

    def seed_customer_email(
        self,
        ticket_id: int,
        body: str,
        *,
        subject: str | None = None,
        from_: str | None = None,
        content_type: str = "text/plain",
        attachments: Sequence[AttachmentSpec] = (),
        message_id: str | None = None,
    ) -> int:
        """An inbound follow-up email from the ticket's customer: an article of type email,
        sender Customer, not internal. A pending or closed ticket reopens (follow-up)."""
        with self._transaction():
            st = self.state
            ticket = st.ticket(ticket_id)
            customer = st.db.users[ticket.customer_id]
            group = st.db.groups[ticket.group_id]
            params = self._inbound_article(customer, group.name, body, subject, "email")
            if from_ is not None:
                params["from"] = from_
            params.update(
                content_type=content_type,
                attachments=_encode(attachments),
                message_id=message_id or f"<{secrets.token_hex(8)}@mail.customer.example>",
            )
            actor = Actor(customer, postmaster=True)
            plan = self.rules.prepare_article(actor, ticket.group_id, params)
            article = self.rules.apply_article(actor, ticket, plan)
            if st.state_type_name(ticket.state_id) in (
                "pending reminder",
                "pending action",
                "closed",
            ):
                ticket.state_id = st.default_state("default_follow_up").id
                ticket.pending_time = None
                st.saved(ticket, customer.id)
            return article.id

    def _inbound_article(
        self, customer: User, group_name: str, body: str, subject: str | None, kind: str
    ) -> dict[str, Any]:
        group = self.state.group_by_name(group_name)
        to = (
            f"{group.email_name} <{group.email_address}>" if group and group.email_address else None
        )
        return {
            "type": kind,
            "sender": "Customer",
            "internal": False,
            "from": f"{customer.fullname} <{customer.email}>" if customer.email else customer.login,
            "to": to,
            "subject": subject,
            "body": body,
        }

    def agent_update(self, ticket_id: int, login: str, **attrs: Any) -> dict[str, Any]:
        """An agent edits the ticket in the UI (same rules as ``PUT /tickets/{id}``); returns
        the expanded ticket. Raises ``ApiError`` where Zammad would refuse."""
        with self._transaction():
            actor = Actor(self.user_record(login))
            ticket = self.state.ticket(ticket_id)
            self.rules.update_ticket(actor, ticket, dict(attrs))
            return ticket_json(self.state, ticket, mode="names")

    def agent_article(
        self,
        ticket_id: int,
        login: str,
        body: str,
        *,
        type: str = "note",  # Zammad's name for it
        internal: bool = True,
        sender: str = "Agent",
        subject: str | None = None,
        to: str | None = None,
        content_type: str = "text/plain",
        attachments: Sequence[AttachmentSpec] = (),
    ) -> int:
        """An agent adds an article (a note, a logged phone call, an email reply)."""
        with self._transaction():
            params: dict[str, Any] = {
                "ticket_id": ticket_id,
                "type": type,
                "sender": sender,
                "internal": internal,
                "subject": subject,
                "to": to,
                "body": body,
                "content_type": content_type,
                "attachments": _encode(attachments),
            }
            params = {k: v for k, v in params.items() if v is not None}
            return self.rules.create_article(Actor(self.user_record(login)), params).id

    def phone_call(
        self,
        to: str,
        *,
        agent: str,
        direction: str = "out",
        line: str = "+353 1 555 9000",
        answered_after: timedelta | None = timedelta(seconds=12),
        talk: timedelta = timedelta(minutes=4),
    ) -> int:
        """The phone system reports a whole call, ringing from now, to the caller log: by
        default the agent ``agent`` (a login) calls ``to`` from the provider's ``line`` and
        the customer answers. ``answered_after=None``: nobody took it. Returns its id."""
        with self.lock:
            name = self.user_record(agent).fullname
            caller, callee = (line, to) if direction == "out" else (to, line)
            row = record_call(
                self.state,
                direction=direction,
                from_=caller,
                to=callee,
                agent=name,
                answered_after=answered_after,
                talk=talk,
            )
            return row.id

    def grant_token(self, token: str, permission: str) -> None:
        """Add a permission to an issued token (as an admin editing it would)."""
        with self.lock:
            self.state.db.tokens[token].permissions.append(permission)

    def add_tag(self, ticket_id: int, tag: str, *, login: str | None = None) -> None:
        """Add a tag (a duplicate is a no-op); as ``login`` with Zammad's checks, or else
        unchecked, as a trigger or macro would."""
        with self._transaction():
            ticket = self.state.ticket(ticket_id)
            if login is None:
                self.rules.tag_add_unchecked(ticket, tag.strip())
            else:
                self.rules.tag_add(Actor(self.user_record(login)), ticket, tag)

    def remove_tag(self, ticket_id: int, tag: str, *, login: str | None = None) -> None:
        """Remove a tag; ``updated_at`` moves even when the tag was not there."""
        with self._transaction():
            ticket = self.state.ticket(ticket_id)
            if login:
                actor = Actor(self.user_record(login))
            else:
                actor = Actor(self.state.db.users[1], postmaster=True)
            self.rules.tag_remove(actor, ticket, tag)

    def link(self, source_id: int, target_id: int, link_type: str = "normal") -> None:
        """Link two tickets: ``source`` is the ``link_type`` of ``target`` (both bumped)."""
        with self._transaction():
            self.state.ticket(source_id)
            self.state.ticket(target_id)
            self.rules.link_unchecked(link_type, source_id, target_id)

    def merge(
        self, source_id: int, target_id: int, *, login: str = "alice.agent@fused.example"
    ) -> None:
        """An agent merges ``source`` into ``target`` (``sandbox.merge``), as the UI does."""
        with self._transaction():
            st = self.state
            actor = Actor(self.user_record(login))
            merge.merge(st, self.rules, actor, source_id, st.ticket(target_id).number)

    def subscribe(self, ticket_id: int, login: str) -> None:
        """Subscribe (mention) a user; they need agent read access to the group."""
        with self._transaction():
            ticket = self.state.ticket(ticket_id)
            user = self.user_record(login)
            if not self.state.group_access(user, ticket.group_id, "read"):
                raise ApiError(422, "A mentioned user has no agent access to this ticket")
            self.rules.mention_unchecked(ticket, user.id, user.id)

    def delete_ticket(self, ticket_id: int) -> None:
        """Hard delete: the ticket vanishes (no tombstone); linked tickets are bumped."""
        with self.lock:
            st = self.state
            st.ticket(ticket_id)
            del st.db.tickets[ticket_id]
            st.db.ticket_tags.pop(ticket_id, None)
            for article in st.articles_of(ticket_id):
                del st.db.articles[article.id]
            for mention in st.mentions_of(ticket_id):
                del st.db.mentions[mention.id]
            for link in list(st.db.links.values()):
                if ticket_id in (link.source_value, link.target_value):
                    del st.db.links[link.id]
                    st.touch_id(link.source_value)
                    st.touch_id(link.target_value)

    def process_pending(self) -> list[int]:
        """Run Zammad's pending job once: pending *action* states whose time has come move
        on (bumped); pending *reminders* change nothing. Returns the ids moved."""
        with self._transaction():
            return self.rules.process_pending()

    # -- inspection ---------------------------------------------------------------------------

    @property
    def tickets(self) -> dict[int, dict[str, Any]]:
        """Every ticket, expanded (``expand=true`` shape), by id."""
        with self.lock:
            st = self.state
            return {tid: ticket_json(st, t, mode="names") for tid, t in st.db.tickets.items()}

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        with self.lock:
            return ticket_json(self.state, self.state.ticket(ticket_id), mode="names")

    def articles_of(self, ticket_id: int) -> list[dict[str, Any]]:
        """Every article of a ticket (internal ones too), as the API renders them."""
        with self.lock:
            st = self.state
            return [article_json(st, a) for a in st.articles_of(ticket_id)]

    def tags_of(self, ticket_id: int) -> list[str]:
        with self.lock:
            return list(self.state.tags_of(ticket_id))

    def links_of(self, ticket_id: int) -> list[dict[str, Any]]:
        """``GET /links`` items: ``{link_type, link_object, link_object_value}``, types from
        this ticket's point of view."""
        with self.lock:
            return self.rules.links_of(ticket_id)

    def subscribers_of(self, ticket_id: int) -> list[int]:
        with self.lock:
            return [m.user_id for m in self.state.mentions_of(ticket_id)]

    def attachment_data(self, article_id: int, attachment_id: int) -> bytes:
        with self.lock:
            article = self.state.db.articles[article_id]
            return next(a.data for a in article.attachments if a.id == attachment_id)


def _encode(attachments: Sequence[AttachmentSpec]) -> list[dict[str, str]]:
    out = []
    for spec in attachments:
        item = {
            "filename": spec[0],
            "mime-type": spec[1],
            "data": base64.b64encode(spec[2]).decode("ascii"),
        }
        if len(spec) > 3:
            item["content-id"] = str(spec[3])
        out.append(item)
    return out


def _server_error(fault: ServerError) -> tuple[int, dict[str, str], bytes]:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.status == 500:
        body = b'{"error":"Error ID sbx500: Please contact your administrator."}'
        return 500, {"Content-Type": "application/json; charset=utf-8", **headers}, body
    return fault.status, {"Content-Type": "text/html", **headers}, error_page(fault.status)
