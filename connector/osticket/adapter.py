"""``HelpdeskAdapter`` for osTicket 1.18, with what core osTicket offers and nothing more.

- **Reads** go through a read-only database account (``_db.ReadOnlyDatabase``): tickets by
  the ``ost_ticket.updated`` watermark (one query when nothing changed; a ticket's
  ``updated_at`` is that second plus a change count as microseconds, see
  ``_change_count``), thread entries with
  their mail headers, attachments (bytes from ``ost_file_chunk`` for files stored in the
  database), users, agents, departments, statuses and form fields. An agent's internal note
  titled "Phone call…" is read as a ``PHONE`` article: osTicket has no phone entry of an
  agent's, so that note is how a call is logged.
- **Creating** a ticket is ``POST /api/tickets.json``: the customer by email and name (same
  email, same osTicket user, same organisation), the help topic (which sets department, team
  and SLA), custom fields by variable name, the first message as an HTML data URL with the
  marker's footer, attachments as data URLs, ``alert`` and ``autorespond`` off. The new ticket
  is read back by its number and its attachments counted: osTicket drops files over its size
  limit silently.
- **Adding to a ticket** is ``POST /api/tickets.email``: a message from the ticket's owner
  with the ``[#number]`` subject token and a ``Message-ID`` made from the marker, which
  osTicket will not store twice (``_mail``). It becomes a *message* of the thread, not an
  internal note, so ``ADD_NOTE`` is not declared.
- **With the escalation-api plugin** (``plugins/osticket/escalation-api/``, found in
  osTicket's plugin registry, ``_plugin``): internal notes (``add_note``, idempotent by the
  marker as request id), ticket updates (an agent as owner, a team as ``group``, the status,
  the subject and form fields) and the link to a parent, declared as ``ADD_NOTE``,
  ``UPDATE_TICKET`` and ``LINKS``. Without it those are not declared and the methods raise
  ``Unsupported`` naming the plugin.
- **Not possible on osTicket at all**: tags, subscriptions (osTicket's collaborators are end
  users, not agents: agents hear of a ticket through its department, team and assignment),
  the ticket history as events, a caller log.

Vocabulary: a draft's ``group`` names the **help topic** (osTicket routes a new ticket by
topic, not by department); a read ticket's ``group`` is its department and ``state`` its
status name. osTicket keeps agents and end users in separate tables: an end user's id is
``ost_user.id``, an agent's is ``-ost_staff.staff_id`` (negative), so one id names one person.

The API key is bound to one client IP, compared exactly: a client reaching osTicket over
``::1`` does not match a key bound to ``127.0.0.1``, so ``localhost`` is refused in the URL.
Redirects are never followed (``connector/http.py``), so ``X-API-Key`` never goes elsewhere.
Validation errors come back as HTTP 500 with a text body; they are raised as ``Rejected``
with osTicket's words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any
from urllib.parse import urlsplit

import requests

from connector.base import (
    Article,
    ArticleDraft,
    ArticleId,
    ArticleKind,
    AttachmentRef,
    CallLog,
    Capability,
    CreatedTicket,
    Criterion,
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
    HelpdeskError,
    NotFound,
    Rejected,
    SetupError,
    TooLarge,
)
from connector.http import HttpClient, HttpPolicy, build_session
from connector.osticket import _mail, _plugin
from connector.osticket._db import ReadOnlyDatabase
from connector.osticket._plugin import PluginClient

log = logging.getLogger(__name__)

CAPABILITIES = frozenset(
    {
        Capability.POLL_CHANGES,
        Capability.READ_ARTICLES,
        Capability.READ_ATTACHMENTS,
        Capability.CREATE_TICKET,
        Capability.FIND_BY_MARKER,
        Capability.USERS,
        Capability.COUNT_TICKETS,
    }
)
"""What core osTicket (API key + read-only database) lets the adapter do."""

PLUGIN_CAPABILITIES = frozenset({Capability.ADD_NOTE, Capability.UPDATE_TICKET, Capability.LINKS})
"""What the escalation-api plugin adds."""

MISSING_WITHOUT_PLUGIN = PLUGIN_CAPABILITIES
"""What the escalation process uses and core osTicket cannot do: the plugin's job."""

PAGE = 200
FLAG_LINKED = 0x8
FLAG_PARENT = 0x10
FLAG_SYSTEM_NOTE = 0x80
_KINDS = {"email": ArticleKind.EMAIL, "web": ArticleKind.WEB, "phone": ArticleKind.PHONE}
CALL_NOTE_TITLE = "phone call"
"""An agent's internal note whose title starts with this (any case) logs a phone call: osTicket
keeps no phone entries of an agent's (a reply's source is not recorded), so this note is how a
call shows, read as a ``PHONE`` article (internal)."""


def _is_call_title(title: Any) -> bool:
    return bool(title) and str(title).strip().lower().startswith(CALL_NOTE_TITLE)


_TICKET_SQL = """
SELECT t.ticket_id, t.number, t.user_id, t.staff_id, t.dept_id, t.created, t.updated,
       t.ticket_pid, t.flags, s.name AS status_name, d.name AS dept_name, u.org_id,
       ue.address AS user_email, st.username AS staff_username,
       (SELECT COALESCE(MAX(e.id), 0) FROM {t:thread} th
        JOIN {t:thread_entry} e ON e.thread_id = th.id
        WHERE th.object_type = 'T' AND th.object_id = t.ticket_id) AS last_entry,
       (SELECT COALESCE(MAX(v.id), 0) FROM {t:thread} th
        JOIN {t:thread_event} v ON v.thread_id = th.id
        WHERE th.object_type = 'T' AND th.object_id = t.ticket_id) AS last_event
FROM {t:ticket} t
LEFT JOIN {t:ticket_status} s ON s.id = t.status_id
LEFT JOIN {t:department} d ON d.id = t.dept_id
LEFT JOIN {t:user} u ON u.id = t.user_id
LEFT JOIN {t:user_email} ue ON ue.id = u.default_email_id
LEFT JOIN {t:staff} st ON st.staff_id = t.staff_id
"""


class Unsupported(Rejected):
    """The helpdesk cannot do this at all as installed (core osTicket without the plugin)."""


def _unsupported(what: str) -> Unsupported:
    return Unsupported(
        f"osTicket: {what} is not possible through core osTicket (API key and read-only "
        "database); it needs the escalation-api plugin (plugins/osticket/escalation-api, "
        "docs/osticket.md), which this osTicket does not have enabled"
    )


def _impossible(what: str) -> Unsupported:
    return Unsupported(f"osTicket: {what} is not possible on osTicket, with or without plugin")


def _field_value(raw: Any, value_id: Any) -> FieldValue:
    """A form value as osTicket stores it: choices are JSON ``{"key": "label"}`` (the key is
    the value), lists and priorities carry the id in ``value_id``."""
    if raw is None:
        return str(value_id) if value_id is not None else None
    text = str(raw)
    if text.startswith("{") and text.endswith("}"):
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        if isinstance(decoded, dict) and decoded:
            return ",".join(str(k) for k in decoded)
    return text


class OsTicketAdapter:
    """See the module docstring.

    Args:
        base_url: osTicket's URL (``http://`` only for loopback); the API is below ``/api``.
        api_key: the key, bound to this worker's IP, with "can create tickets".
        db: the read-only database connection.
        policy: HTTP timeouts, retries and budget.
        clock: time source.
        session: a ``requests`` session (tests count its requests); built from ``policy``
            when not given.
        plugin: whether the escalation-api plugin is there; ``None`` (the default) reads
            osTicket's plugin registry the first time ``capabilities`` is asked for.

    Raises:
        SetupError: the URL is refused (``localhost``, or what ``HttpClient`` refuses).
    """

    name = "osticket"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        db: ReadOnlyDatabase,
        policy: HttpPolicy,
        clock: Clock,
        *,
        session: requests.Session | None = None,
        plugin: bool | None = None,
    ) -> None:
        host = (urlsplit(base_url).hostname or "").lower()
        if host == "localhost":
            raise SetupError(
                "use the IP address the API key is bound to (e.g. http://127.0.0.1:…), not "
                "localhost: it may connect over ::1, which osTicket does not match to a key "
                "bound to 127.0.0.1"
            )
        self._session = session if session is not None else build_session(policy)
        self.http = HttpClient(
            base_url, {"X-API-Key": api_key}, policy, clock, session=self._session
        )
        self.db = db
        self._clock = clock
        self._plugin_present = plugin
        self.plugin = PluginClient(self.http)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Core osTicket's, plus the plugin's when osTicket has it enabled (read once).

        Raises:
            HelpdeskError: the plugin registry cannot be read (nothing is cached then).
        """
        if self._plugin_present is None:
            self._plugin_present = _plugin.installed(self.db)
            log.info("osticket.plugin escalation-api=%s", self._plugin_present)
        return CAPABILITIES | PLUGIN_CAPABILITIES if self._plugin_present else CAPABILITIES

    @capabilities.setter
    def capabilities(self, value: frozenset[Capability]) -> None:
        extra = value - CAPABILITIES - PLUGIN_CAPABILITIES
        if extra or not value >= CAPABILITIES:
            raise ValueError(f"osTicket cannot declare {sorted(c.value for c in extra)}")
        self._plugin_present = value >= PLUGIN_CAPABILITIES

    def _require_plugin(self, what: str) -> PluginClient:
        if not self.capabilities >= PLUGIN_CAPABILITIES:
            raise _unsupported(what)
        return self.plugin

    def __repr__(self) -> str:
        return f"OsTicketAdapter({self.http.base_url!r})"

    # -- reading tickets ----------------------------------------------------------------------
    def clock_offset(self) -> timedelta | None:
        return self.db.clock_offset

    def changed_tickets(
        self, since: datetime, *, matching: Criterion | None = None
    ) -> Iterator[Ticket]:
        if matching is not None and matching.tag is not None:
            return  # osTicket has no tags: no ticket carries one
        after: tuple[datetime, int] | None = None
        args: list[Any]
        floor = self.db.from_utc(since).replace(microsecond=0)  # the column counts seconds
        while True:
            if after is None:
                where, args = "WHERE t.updated >= %s", [floor]
            else:
                where = "WHERE t.updated >= %s AND (t.updated > %s OR t.ticket_id > %s)"
                args = [floor, after[0], after[1]]
            rows = self.db.select(
                f"{_TICKET_SQL} {where} ORDER BY t.updated, t.ticket_id LIMIT {PAGE}", args
            )
            for ticket in self._tickets(rows):
                if matching is None or _matches(ticket, matching):
                    yield ticket
            if len(rows) < PAGE:
                return
            after = (rows[-1]["updated"], rows[-1]["ticket_id"])

    def get_ticket(self, ticket_id: TicketId) -> Ticket:
        rows = self.db.select(f"{_TICKET_SQL} WHERE t.ticket_id = %s", [ticket_id])
        if not rows:
            raise NotFound(f"osTicket ticket {ticket_id} not found")
        return self._tickets(rows)[0]

    def ticket_by_number(self, number: str) -> Ticket | None:
        rows = self.db.select(f"{_TICKET_SQL} WHERE t.number = %s", [number])
        return self._tickets(rows)[0] if rows else None

    def _tickets(self, rows: Sequence[dict[str, Any]]) -> list[Ticket]:
        if not rows:
            return []
        fields = self._fields([int(r["ticket_id"]) for r in rows])
        tickets = []
        for r in rows:
            values = fields.get(int(r["ticket_id"]), {})
            created = self.db.to_utc(r["created"])
            updated = self.db.to_utc(r["updated"]) or created
            if updated is not None:
                updated = updated + timedelta(microseconds=_change_count(r))
            assert created is not None
            assert updated is not None
            staff = int(r["staff_id"] or 0)
            tickets.append(
                Ticket(
                    id=int(r["ticket_id"]),
                    number=str(r["number"]),
                    title=str(values.get("subject") or ""),
                    group=str(r["dept_name"] or ""),
                    state=str(r["status_name"] or ""),
                    customer_id=int(r["user_id"]),
                    created_at=created,
                    updated_at=updated,
                    organization_id=int(r["org_id"]) if r["org_id"] else None,
                    owner_id=-staff if staff else None,
                    customer_login=r["user_email"],
                    owner_login=r["staff_username"],
                    fields=values,
                )
            )
        return tickets

    def _fields(self, ticket_ids: Sequence[int]) -> dict[int, dict[str, FieldValue]]:
        marks = ",".join(["%s"] * len(ticket_ids))
        rows = self.db.select(
            "SELECT fe.object_id, ff.name, v.value, v.value_id "  # noqa: S608 - only %s marks
            "FROM {t:form_entry} fe "
            "JOIN {t:form_entry_values} v ON v.entry_id = fe.id "
            "JOIN {t:form_field} ff ON ff.id = v.field_id "
            f"WHERE fe.object_type = 'T' AND fe.object_id IN ({marks}) AND ff.name <> '' "
            "ORDER BY fe.object_id, fe.id",
            list(ticket_ids),
        )
        out: dict[int, dict[str, FieldValue]] = {}
        for r in rows:
            out.setdefault(int(r["object_id"]), {})[str(r["name"])] = _field_value(
                r["value"], r["value_id"]
            )
        return out

    def get_tags(self, ticket_id: TicketId) -> frozenset[str]:
        return frozenset()  # osTicket has no tags

    def count_customer_tickets(self, customer_id: UserId, *, created_since: datetime) -> int:
        rows = self.db.select(
            "SELECT COUNT(*) AS n FROM {t:ticket} WHERE user_id = %s AND created >= %s",
            [customer_id, self.db.from_utc(created_since)],
        )
        return int(rows[0]["n"])

    # -- articles and attachments ---------------------------------------------------------------
    def list_articles(self, ticket_id: TicketId) -> list[Article]:
        rows = self.db.select(
            "SELECT e.id, e.type, e.staff_id, e.user_id, e.poster, e.source, e.title, e.body, "
            "e.format, e.flags, e.created, m.headers "
            "FROM {t:thread} th "
            "JOIN {t:thread_entry} e ON e.thread_id = th.id "
            "LEFT JOIN {t:thread_entry_email} m ON m.thread_entry_id = e.id "
            "WHERE th.object_type = 'T' AND th.object_id = %s ORDER BY e.id",
            [ticket_id],
        )
        files = self._attachments(ticket_id, [int(r["id"]) for r in rows])
        return [self._article(ticket_id, r, files.get(int(r["id"]), ())) for r in rows]

    def _attachments(
        self, ticket_id: TicketId, entry_ids: Sequence[int]
    ) -> dict[int, tuple[AttachmentRef, ...]]:
        if not entry_ids:
            return {}
        marks = ",".join(["%s"] * len(entry_ids))
        rows = self.db.select(
            "SELECT a.object_id, f.id, COALESCE(a.name, f.name) AS name, f.type, f.size "  # noqa: S608
            "FROM {t:attachment} a JOIN {t:file} f ON f.id = a.file_id "
            f"WHERE a.type = 'H' AND a.object_id IN ({marks}) ORDER BY a.id",
            list(entry_ids),
        )
        out: dict[int, list[AttachmentRef]] = {}
        for r in rows:
            out.setdefault(int(r["object_id"]), []).append(
                AttachmentRef(
                    ticket_id=ticket_id,
                    article_id=int(r["object_id"]),
                    id=int(r["id"]),
                    filename=str(r["name"] or f"file-{r['id']}"),
                    size=int(r["size"] or 0),
                    content_type=str(r["type"] or "application/octet-stream"),
                )
            )
        return {k: tuple(v) for k, v in out.items()}

    def _article(
        self, ticket_id: TicketId, r: dict[str, Any], files: tuple[AttachmentRef, ...]
    ) -> Article:
        headers = (
            BytesHeaderParser(policy=default_policy).parsebytes(
                str(r["headers"]).encode("utf-8", "replace")
            )
            if r["headers"]
            else None
        )

        def header(name: str) -> str | None:
            value = headers.get(name) if headers is not None else None
            return str(value) if value else None

        kind_of_entry = str(r["type"])
        source = str(r["source"] or "").lower()
        if kind_of_entry == "M":
            sender, kind, internal = Sender.CUSTOMER, _KINDS.get(source, ArticleKind.OTHER), False
            author: int | None = int(r["user_id"]) if r["user_id"] else None
        elif kind_of_entry == "R":
            sender, kind, internal = Sender.AGENT, _KINDS.get(source, ArticleKind.EMAIL), False
            author = -int(r["staff_id"]) if r["staff_id"] else None
        else:
            system = bool(int(r["flags"] or 0) & FLAG_SYSTEM_NOTE) or not r["staff_id"]
            sender = Sender.SYSTEM if system else Sender.AGENT
            kind, internal = ArticleKind.NOTE, True
            if sender is Sender.AGENT and _is_call_title(r["title"]):
                kind = ArticleKind.PHONE  # how an agent logs a call on osTicket
            author = -int(r["staff_id"]) if r["staff_id"] else None
        created = self.db.to_utc(r["created"])
        assert created is not None
        return Article(
            id=int(r["id"]),
            ticket_id=ticket_id,
            kind=kind,
            sender=sender,
            internal=internal,
            created_at=created,
            body=str(r["body"] or ""),
            content_type="text/html" if r["format"] == "html" else "text/plain",
            subject=header("Subject") or (str(r["title"]) if r["title"] else None),
            from_=header("From") or (str(r["poster"]) if r["poster"] else None),
            to=header("To"),
            cc=header("Cc"),
            created_by_id=author,
            attachments=files,
        )

    def _file(self, ref: AttachmentRef) -> dict[str, Any]:
        rows = self.db.select(
            "SELECT f.id, f.bk, f.size FROM {t:file} f "
            "JOIN {t:attachment} a ON a.file_id = f.id AND a.type = 'H' AND a.object_id = %s "
            "WHERE f.id = %s",
            [ref.article_id, ref.id],
        )
        if not rows:
            raise NotFound(f"osTicket file {ref.id} of entry {ref.article_id} not found")
        if rows[0]["bk"] != "D":
            raise Rejected(
                f"osTicket file {ref.id} is kept by storage backend {rows[0]['bk']!r}, not in "
                "the database; the adapter reads files stored in the database only"
            )
        return rows[0]

    def _chunks(self, file_id: int) -> Iterator[bytes]:
        for row in self.db.stream(
            "SELECT filedata FROM {t:file_chunk} WHERE file_id = %s ORDER BY chunk_id", [file_id]
        ):
            yield bytes(row["filedata"] or b"")

    def fetch_attachment(self, ref: AttachmentRef, *, max_bytes: int) -> bytes:
        info = self._file(ref)
        if int(info["size"] or 0) > max_bytes:
            raise TooLarge(
                f"osTicket file {ref.id} is {info['size']} bytes, over the cap of {max_bytes}",
                size_seen=int(info["size"]),
            )
        buffer = bytearray()
        chunks = self._chunks(ref.id)
        for chunk in chunks:
            buffer += chunk
            if len(buffer) > max_bytes:
                for _ in chunks:  # drain: the unbuffered result must be read to the end
                    pass
                raise TooLarge(
                    f"osTicket file {ref.id} exceeds the cap of {max_bytes} bytes",
                    size_seen=len(buffer),
                )
        return bytes(buffer)

    def digest_attachment(self, ref: AttachmentRef) -> tuple[int, str]:
        self._file(ref)
        digest, size = hashlib.sha256(), 0
        for chunk in self._chunks(ref.id):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()

    def list_links(self, ticket_id: TicketId) -> list[Link]:
        rows = self.db.select(
            "SELECT ticket_id, ticket_pid, flags FROM {t:ticket} "
            "WHERE (ticket_pid = %s AND flags & %s) OR ticket_id = "
            "(SELECT ticket_pid FROM {t:ticket} WHERE ticket_id = %s AND flags & %s)",
            [ticket_id, FLAG_LINKED, ticket_id, FLAG_LINKED],
        )
        links = []
        for r in rows:
            if r["ticket_pid"] == ticket_id:
                links.append(Link(int(r["ticket_id"]), LinkKind.CHILD))
            elif int(r["ticket_id"]) != ticket_id:
                links.append(Link(int(r["ticket_id"]), LinkKind.PARENT))
        return links

    def list_subscribers(self, ticket_id: TicketId) -> frozenset[UserId]:
        return frozenset()  # SUBSCRIBE is not declared: nobody is subscribed by the worker

    def ticket_events(self, ticket_id: TicketId) -> list[TicketEvent]:
        raise _impossible("reading the ticket history as events (not built)")

    def recent_calls(self) -> CallLog:
        raise _impossible("a caller log")

    def customer_tickets(
        self, customer_ids: Collection[UserId], *, created_since: datetime
    ) -> Iterator[Ticket]:
        raise _impossible("the tickets of many customers in one search (not built)")

    # -- markers ---------------------------------------------------------------------------------
    def find_ticket_by_marker(
        self,
        marker: Marker,
        *,
        linked_to: TicketId,
        matching: Criterion | None = None,
        since: datetime | None = None,
    ) -> TicketId | None:
        """The ticket whose thread holds an entry with the marker (its first message carries
        the footer), looked for among entries created since ``since``."""
        args: list[Any] = [f"%{marker.value}%"]
        when = ""
        if since is not None:
            when = "AND e.created >= %s "
            args.append(self.db.from_utc(since))
        rows = self.db.select(
            "SELECT th.object_id FROM {t:thread_entry} e "  # noqa: S608 - only %s marks
            "JOIN {t:thread} th ON th.id = e.thread_id AND th.object_type = 'T' "
            f"WHERE e.body LIKE %s {when}ORDER BY e.id LIMIT 1",
            args,
        )
        return int(rows[0]["object_id"]) if rows else None

    def find_article_by_marker(self, ticket_id: TicketId, marker: Marker) -> ArticleId | None:
        rows = self.db.select(
            "SELECT e.id FROM {t:thread} th "
            "JOIN {t:thread_entry} e ON e.thread_id = th.id "
            "LEFT JOIN {t:thread_entry_email} m ON m.thread_entry_id = e.id "
            "WHERE th.object_type = 'T' AND th.object_id = %s "
            "AND (m.mid = %s OR e.body LIKE %s) ORDER BY e.id LIMIT 1",
            [ticket_id, _mail.message_id(marker), f"%{marker.value}%"],
        )
        return int(rows[0]["id"]) if rows else None

    # -- people and lists ------------------------------------------------------------------------
    def me(self) -> User:
        """The worker's identity: the API key, which belongs to no osTicket user or agent.
        Id 0 is neither (users count from 1, agents are negative), so nothing in osTicket is
        taken for the worker's own."""
        return User(id=0, login="api-key", email=None, is_agent=False)

    def get_user(self, user_id: UserId) -> User:
        if user_id < 0:
            rows = self.db.select(
                "SELECT staff_id, username, email, firstname, lastname, isactive, phone, mobile "
                "FROM {t:staff} WHERE staff_id = %s",
                [-user_id],
            )
            if not rows:
                raise NotFound(f"osTicket agent {-user_id} not found")
            return _agent(rows[0])
        rows = self.db.select(
            "SELECT u.id, u.name, u.status, ue.address FROM {t:user} u "
            "LEFT JOIN {t:user_email} ue ON ue.id = u.default_email_id WHERE u.id = %s",
            [user_id],
        )
        if not rows:
            raise NotFound(f"osTicket user {user_id} not found")
        return _end_user(rows[0])

    def find_user(self, login_or_email: str) -> User | None:
        ref = login_or_email.strip()
        rows = self.db.select(
            "SELECT staff_id, username, email, firstname, lastname, isactive, phone, mobile "
            "FROM {t:staff} WHERE username = %s OR email = %s ORDER BY staff_id LIMIT 1",
            [ref, ref],
        )
        if rows:
            return _agent(rows[0])
        rows = self.db.select(
            "SELECT u.id, u.name, u.status, ue.address FROM {t:user_email} ue "
            "JOIN {t:user} u ON u.id = ue.user_id WHERE ue.address = %s LIMIT 1",
            [ref],
        )
        return _end_user(rows[0]) if rows else None

    def list_groups(self) -> list[Group]:
        rows = self.db.select("SELECT id, name, flags FROM {t:department} ORDER BY id")
        return [Group(int(r["id"]), str(r["name"]), bool(int(r["flags"]) & 0x4)) for r in rows]

    def list_help_topics(self) -> dict[str, int]:
        rows = self.db.select("SELECT topic_id, topic FROM {t:help_topic} ORDER BY topic_id")
        return {str(r["topic"]): int(r["topic_id"]) for r in rows}

    def list_states(self) -> list[TicketState]:
        rows = self.db.select("SELECT id, name, state FROM {t:ticket_status} ORDER BY id")
        return [TicketState(int(r["id"]), str(r["name"]), str(r["state"])) for r in rows]

    def list_fields(self) -> list[FieldInfo] | None:
        rows = self.db.select(
            "SELECT ff.name, ff.type FROM {t:form_field} ff JOIN {t:form} f ON f.id = ff.form_id "
            "WHERE f.type IN ('T', 'G') AND ff.name <> '' ORDER BY ff.id"
        )
        return [FieldInfo(str(r["name"]), str(r["type"])) for r in rows]

    # -- writing ---------------------------------------------------------------------------------
    def create_ticket(self, draft: TicketDraft, *, marker: Marker) -> CreatedTicket:
        """``POST /api/tickets.json`` (see the module docstring), then the ticket read back.

        Raises:
            Unsupported: the draft asks for what the create cannot do (tags, an owner, a
                status, a link, subscriptions: the help topic decides routing).
            Rejected: osTicket refused it (its text), the help topic is unknown, or an
                attachment did not arrive (over osTicket's size limit).
            AmbiguousWrite: the answer was lost; look for the marker.
        """
        refused = [
            what
            for what, asked in (
                ("tags", bool(draft.tags)),
                ("an owner", draft.owner_id is not None),
                ("a status", draft.state is not None),
                ("a link", draft.parent_id is not None),
                ("subscriptions", bool(draft.mention_user_ids)),
                ("an organisation other than the customer's", draft.organization_id is not None),
            )
            if asked
        ]
        if refused:
            # the help topic assigns and routes; anything else would be dropped unsaid
            raise _unsupported(f"creating a ticket with {', '.join(refused)}")
        customer = self.get_user(draft.customer_id)
        if not customer.email:
            raise Rejected(f"osTicket user {draft.customer_id} has no email address")
        topics = self.list_help_topics()
        if draft.group not in topics:
            raise Rejected(f"osTicket has no help topic {draft.group!r}")
        note = draft.first_note
        body = f"{note.body}<p>{marker.footer}</p>"
        payload: dict[str, Any] = {
            **{k: v for k, v in draft.fields.items() if v is not None},
            "alert": False,
            "autorespond": False,
            "source": "API",
            "topicId": topics[draft.group],
            "name": customer.display_name,
            "email": customer.email,
            "subject": draft.title,
            "message": "data:text/html;charset=utf-8," + body,
        }
        if note.attachments:
            payload["attachments"] = [
                {
                    a.filename: f"data:{a.content_type};base64,"
                    + base64.b64encode(a.data).decode("ascii")
                }
                for a in note.attachments
            ]
        number = self._post_text("/api/tickets.json", json=payload)
        created = self.ticket_by_number(number)
        if created is None:
            raise AmbiguousWrite(f"osTicket answered ticket #{number} but it cannot be read")
        self._check_attachments(created.id, len(note.attachments))
        log.info("osticket.ticket.created id=%s number=%s", created.id, number)
        return CreatedTicket(id=created.id, number=number)

    def _check_attachments(self, ticket_id: TicketId, expected: int) -> None:
        if not expected:
            return
        first = self.list_articles(ticket_id)[0]
        if len(first.attachments) < expected:
            raise Rejected(
                f"osTicket ticket {ticket_id} was created but kept {len(first.attachments)} of "
                f"{expected} attachments (over its size limit: Admin → Manage → Forms → "
                "Ticket Details → Issue Details)"
            )

    def add_article(self, ticket_id: TicketId, draft: ArticleDraft, *, marker: Marker) -> ArticleId:
        """The draft mailed into the ticket as its owner (``POST /api/tickets.email``): a thread
        *message*, not an internal note. A replay of the same marker writes nothing.

        Raises:
            Rejected: osTicket filed it elsewhere (a new ticket: the ticket closed for good, or
                its owner changed), or refused it.
        """
        ticket = self.get_ticket(ticket_id)
        owner = self.get_user(ticket.customer_id)
        if not owner.email:
            raise Rejected(f"osTicket user {ticket.customer_id} has no email address")
        raw = _mail.copy_message(
            draft,
            marker=marker,
            number=ticket.number,
            owner_name=owner.display_name,
            owner_email=owner.email,
            at=self._clock.now(),
        )
        number = self._post_mail(raw)
        if number != ticket.number:
            raise Rejected(
                f"osTicket filed the copy for ticket #{ticket.number} as ticket #{number}"
            )
        entry = self.find_article_by_marker(ticket_id, marker)
        if entry is None:
            raise AmbiguousWrite(f"osTicket accepted the copy for #{number} but it is not there")
        return entry

    def set_tags(
        self,
        ticket_id: TicketId,
        *,
        present: frozenset[str] = frozenset(),
        absent: frozenset[str] = frozenset(),
    ) -> frozenset[str]:
        if present:
            raise _impossible("tags (osTicket has none)")
        return frozenset()

    def add_note(self, ticket_id: TicketId, draft: ArticleDraft, *, marker: Marker) -> ArticleId:
        """An internal note by the plugin's bot agent (no alert, no mail), the marker in its
        footer and as the request id: sent again, it writes nothing and answers the same entry.

        Raises:
            Unsupported: no plugin, or the draft has attachments (the plugin takes none).
            Rejected: osTicket or the plugin refused it (their text).
        """
        plugin = self._require_plugin("an internal note")
        if draft.attachments:
            raise _unsupported("an internal note with attachments")
        body = draft.body if draft.content_type == "text/html" else f"<pre>{draft.body}</pre>"
        entry = plugin.note(
            ticket_id,
            request_id=marker.value,
            title=draft.subject or "Escalation",
            html=f"{body}<p>{marker.footer}</p>",
        )
        log.info("osticket.note.added ticket=%s entry=%s", ticket_id, entry)
        return entry

    def update_ticket(
        self, ticket_id: TicketId, changes: TicketChanges, *, marker: Marker | None = None
    ) -> Ticket:
        """Through the plugin, in osTicket's safe order: assignment first (assigning a closed
        ticket reopens it), then the subject and fields, then the status. ``owner_id`` is an
        agent (negative id), ``group`` a **team** name, ``title`` the subject field.

        Raises:
            Unsupported: no plugin, a pending-until time (osTicket has none), or a note
                carried by the update (no ``NOTE_ON_UPDATE``: notes are ``add_article``).
            Rejected: an owner who is not an agent, or what osTicket refused (its text).
        """
        if changes.note is not None:
            raise _impossible("a note carried by a ticket update")
        plugin = self._require_plugin("changing a ticket (assignment, status, fields)")
        if changes.pending_until is not None:
            raise _impossible("a pending-until time (a parked status has no end time)")
        staff = None
        if changes.owner_id is not None:
            owner = self.get_user(changes.owner_id)
            if not owner.is_agent:
                raise Rejected(f"osTicket user {changes.owner_id} is not an agent")
            staff = owner.login
        if staff is not None or changes.group is not None:
            plugin.assign(ticket_id, staff=staff, team=changes.group)
        values = {k: "" if v is None else str(v) for k, v in changes.fields.items()}
        if changes.title is not None:
            values["subject"] = changes.title
        if values:
            plugin.fields(ticket_id, values)
        if changes.state is not None:
            plugin.status(ticket_id, changes.state)
        log.info("osticket.ticket.updated id=%s", ticket_id)
        return self.get_ticket(ticket_id)

    def link_tickets(self, parent_id: TicketId, child_id: TicketId) -> None:
        self._require_plugin("linking tickets").link(child_id, parent_id)

    def subscribe(self, ticket_id: TicketId, user_id: UserId) -> None:
        raise _impossible("subscribing an agent (collaborators are end users)")

    # -- HTTP ------------------------------------------------------------------------------------
    def _post_text(self, path: str, *, json: Any) -> str:
        """POST and return the text answer (osTicket answers the ticket number)."""
        try:
            resp = self.http.request("POST", path, json=json)
        except AmbiguousWrite as exc:
            raise _refusal(exc) or exc from None
        return resp.text.strip()

    def _post_mail(self, raw: bytes) -> str:
        """``POST /api/tickets.email`` through the adapter's ``HttpClient`` like every other
        call: the request budget, the ``http.response`` log line, the request id, timeouts, no
        redirect ever followed (the key must not follow one). A replay is harmless (the
        Message-ID is the write's marker: osTicket stores no second message with an id it has
        seen), so the call counts as idempotent: a lost answer is retried."""
        try:
            resp = self.http.request(
                "POST",
                "/api/tickets.email",
                data=raw,
                headers={"Content-Type": "message/rfc822"},
                idempotent=True,
            )
        except HelpdeskError as exc:
            raise _refusal(exc) or exc from None
        return resp.text.strip()


def _refusal(exc: HelpdeskError) -> Rejected | None:
    """osTicket's validation errors are HTTP 500 with a text body: a ``Rejected``."""
    text = (exc.body_excerpt or "").strip()
    if exc.status == 500 and text.startswith("Unable to create new ticket"):
        return Rejected(
            f"osTicket refused it: {' '.join(text.split())[:300]}",
            status=exc.status, method=exc.method, path=exc.path,
        )  # fmt: skip
    return None


def _change_count(row: dict[str, Any]) -> int:
    """The microseconds of a ticket's ``updated_at``: osTicket stamps ``ost_ticket.updated``
    in whole seconds, so two changes within one second would look like one version (and the
    second be skipped as seen). The latest thread entry and event ids grow with every message,
    note and logged change, so their sum, as the microseconds, tells the versions apart."""
    return (int(row["last_entry"] or 0) + int(row["last_event"] or 0)) % 1_000_000


def _matches(ticket: Ticket, criterion: Criterion) -> bool:
    assert criterion.field is not None
    return str(ticket.fields.get(criterion.field)) == str(criterion.value)


def _agent(r: dict[str, Any]) -> User:
    phones = tuple(str(p) for p in (r.get("phone"), r.get("mobile")) if p)
    return User(
        id=-int(r["staff_id"]),
        login=str(r["username"]),
        email=str(r["email"]) if r["email"] else None,
        firstname=str(r["firstname"] or ""),
        lastname=str(r["lastname"] or ""),
        active=bool(r["isactive"]),
        is_agent=True,
        phones=phones,
    )


def _end_user(r: dict[str, Any]) -> User:
    name = str(r["name"] or "")  # osTicket's user status bits say nothing of "active"
    first, _, last = name.partition(" ")
    address = str(r["address"]) if r["address"] else None
    return User(
        id=int(r["id"]),
        login=address or name,
        email=address,
        firstname=first,
        lastname=last,
    )
