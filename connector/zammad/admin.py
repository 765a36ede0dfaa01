"""Zammad's admin API, for ``escalations provision``: list, create and update the objects
agents click and the worker relies on (custom attributes, states, groups, roles, tags,
macros, overviews, triggers, webhooks, text modules), run the object manager's migrations,
find or create a user, and run a macro.

Unlike ``ZammadAdapter`` this client answers Zammad's own JSON as plain dicts: its caller is
the Zammad binding's provisioning, which plans in Zammad's terms. It is built over an
``HttpClient`` holding an *admin* token (the worker's own token stays an agent's); every
call goes through that client's policy (timeouts, retries by phase, error mapping).

The traps of ``reference/zammad-api.md`` that concern these calls, and how each is
handled::

    §10   PUT /object_manager_attributes/{id} finds the attribute by "object" and "name"
          in the body; the id in the URL is not read
          → update() refuses such a body without both before sending (Rejected).
    §10   a new attribute is no column until the migrations run; writes to it are
          dropped silently
          → execute_migrations() POSTs, then polls the list until no attribute is
            to_create, to_migrate, to_config or to_delete; a TransientError after the
            timeout names the attributes still pending.
    §10   the migrations restart Zammad: expect a short outage (502/503, refused)
          → within the timeout a TransientError (the client has retried already) counts
            as "restarting": the POST is repeated (running migrations twice is harmless,
            so it is sent as idempotent) and the poll goes on.
    §3.6  generic index pages are capped silently (500 by default, at most 1000 on 6.5,
          500 on 5.x) and carry no total
          → pages of 500 (never clamped on 5.x–7.x) until a short page; a page with no id
            not seen before also ends the walk (a server that ignores "page").
          The object manager's list is not paged: one GET.
    §9    GET /ticket_states answers state_type_id only; the name comes with expand
          → generic lists are read with expand=true (names added, nothing removed).
    §6    GET /tag_list is not paged (limit, 1000 unless told); POST and PUT answer {}
          → the list asks for limit=10000; create() and update() of a tag read the
            catalogue back and answer the item ({id, name, count}). Creating a tag is
            idempotent in Zammad (lookup_by_name_and_create), so its POST is retried like
            a read.
    §8    users/search is a substring match with no exact-email filter; user 1 is never
          answered
          → find_user() matches email or login exactly (lowercased) on every page.
    §11.2 mass_macro answers 422 {"error", "blocking_tickets"} when the macro's groups do
          not cover a ticket, and 422 {"error": true, "ticket_id"} when a ticket may not
          be updated
          → run_macro() raises Rejected naming the tickets.
    §2.3  a 403 is "Not authorized" and rarely says which permission is missing
          → Forbidden names the permission the call needs (Zammad's own, when its message
            names one).
    §15   POST is not idempotent → creates are never retried blind (AmbiguousWrite from
          the client); the caller re-reads the lists before trying again.

Errors are ``connector.errors``' (``Forbidden``, ``NotFound``, ``Rejected``,
``TransientError``, ``AmbiguousWrite``…). An answer of the wrong shape is a
``TransientError``, as in the adapter.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from connector.clock import Clock, SystemClock
from connector.errors import Forbidden, HelpdeskError, Rejected, TransientError
from connector.http import HttpClient

log = logging.getLogger(__name__)

T = TypeVar("T")
Json = dict[str, Any]
Rows = list[Json]

API = "/api/v1"
KIND_PERMISSIONS: Mapping[str, str] = {
    "object_manager_attributes": "admin.object",
    "ticket_states": "admin.ticket_state",
    "groups": "admin.group",
    "roles": "admin.role",
    "macros": "admin.macro",
    "overviews": "admin.overview",
    "triggers": "admin.trigger",
    "webhooks": "admin.webhook",
    "text_modules": "admin.text_module",
    "tag_list": "admin.tag",
}
"""The admin lists, and the permission Zammad wants for writing each (reading some needs
less: agents read roles, macros, states, groups and text modules)."""
ADMIN_KINDS = tuple(KIND_PERMISSIONS)
PAGE_SIZE = 500
"""Generic index page: Zammad's default, and within the cap on every version (§3.6)."""
TAG_LIST_LIMIT = 10_000
USER_SEARCH_PAGE = 200
"""Zammad's cap for search pages (§3.6)."""
PENDING_FLAGS = ("to_create", "to_migrate", "to_config", "to_delete")
MIGRATIONS_PATH = f"{API}/object_manager_attributes_execute_migrations"
MASS_MACRO_PATH = f"{API}/tickets/mass_macro"
_PERMISSION_RE = re.compile(r"\b(?:admin(?:\.[a-z_]+)?|ticket\.agent)\b")
_BLOCKING_RE = re.compile(r'"blocking_tickets"\s*:\s*\[([\d,\s]*)')
_TICKET_ID_RE = re.compile(r'"ticket_id"\s*:\s*(\d+)')


class ZammadAdmin:
    """Zammad's admin API over one ``HttpClient`` built with an admin token.

    Args:
        client: the HTTP client (its token needs the ``admin.*`` permissions of the kinds
            used; see ``KIND_PERMISSIONS``, plus ``admin.user`` for users).
        clock: what ``execute_migrations`` sleeps and measures its timeout with.
        poll_interval_s: the pause between two looks at the migrations.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        clock: Clock | None = None,
        poll_interval_s: float = 2.0,
    ) -> None:
        self._client = client
        self._clock: Clock = clock or SystemClock()
        self.poll_interval_s = poll_interval_s

    def __repr__(self) -> str:
        return f"ZammadAdmin({self._client!r})"

    # -- the admin lists ----------------------------------------------------------------------

    def expect_forbidden(self, kind: str) -> None:
        """The caller handles a 403 on this list itself: no ``http.forbidden`` WARNING."""
        self._client.expect_forbidden(_path(kind))

    def list(self, kind: str) -> Rows:
        """Every object of one admin list, as Zammad answers them.

        Args:
            kind: one of ``ADMIN_KINDS``.

        Returns:
            The objects (generic lists with association names, ``expand=true``); for
            ``tag_list``, ``{id, name, count}`` items.

        Raises:
            Forbidden: the token may not read this list (the message names the permission).
            HelpdeskError: as ``HttpClient`` raises it.
        """
        path = _path(kind)
        if kind == "object_manager_attributes":
            return self._guard(kind, "list", lambda: _rows(self._client.get_json(path), path))
        if kind == "tag_list":
            return self._guard(
                kind,
                "list",
                lambda: _rows(self._client.get_json(path, params={"limit": TAG_LIST_LIMIT}), path),
            )
        return self._guard(kind, "list", lambda: self._pages(path))

    def get(self, kind: str, object_id: int) -> Json:
        """One object by id (``NotFound`` when there is none). Not for ``tag_list``, which
        has no such route."""
        if kind == "tag_list":
            raise ValueError("Zammad has no GET /tag_list/{id}; use list('tag_list')")
        path = f"{_path(kind)}/{int(object_id)}"
        return self._guard(kind, "read", lambda: _object(self._client.get_json(path), path))

    def create(self, kind: str, body: Mapping[str, Any]) -> Json:
        """Create one object; returns it as Zammad answers (a tag: its catalogue item).

        A POST that may have been applied raises ``AmbiguousWrite``: read the list again
        before another try (Zammad has no idempotency keys).
        """
        path = _path(kind)
        if kind == "tag_list":

            def create_tag() -> Json:
                self._client.post_json(path, dict(body), idempotent=True)
                return self._tag_item(str(body.get("name", "")))

            return self._guard(kind, "create", create_tag)
        return self._guard(
            kind, "create", lambda: _object(self._client.post_json(path, dict(body)), path)
        )

    def update(self, kind: str, object_id: int, body: Mapping[str, Any]) -> Json:
        """Update one object (``PUT``, retried like any idempotent call); returns it.

        Raises:
            Rejected: for ``object_manager_attributes``, a body without ``object`` and
                ``name`` (Zammad finds the attribute by those, not by ``object_id``).
        """
        path = f"{_path(kind)}/{int(object_id)}"
        if kind == "object_manager_attributes" and not (body.get("object") and body.get("name")):
            raise Rejected(
                "an object manager attribute is updated by the 'object' and 'name' in the "
                "body (Zammad ignores the id in the URL): send both",
                method="PUT",
                path=path,
            )
        if kind == "tag_list":

            def rename_tag() -> Json:
                self._client.put_json(path, dict(body))
                return self._tag_item(str(body.get("name", "")))

            return self._guard(kind, "update", rename_tag)
        return self._guard(
            kind, "update", lambda: _object(self._client.put_json(path, dict(body)), path)
        )

    # -- the object manager's migrations ------------------------------------------------------

    def pending_attributes(self) -> Rows:
        """The attributes whose migration has not run (any of ``PENDING_FLAGS`` set)."""
        return [a for a in self.list("object_manager_attributes") if _pending_flags(a)]

    def execute_migrations(self, *, timeout_s: float = 120.0) -> None:
        """Run the object manager's migrations and wait until they are done.

        Zammad creates the columns, applies staged options and restarts; until then a new
        attribute's writes are dropped. This POSTs the migrations step, then polls the
        attribute list until no attribute is pending. A ``TransientError`` meanwhile (a
        502/503 or a refused connection while Zammad restarts) is waited out within
        ``timeout_s``; a POST that never got through is sent again.

        Raises:
            TransientError: not done within ``timeout_s``; the message names the
                attributes still pending (or the last error, if Zammad never answered).
            Forbidden: the token lacks ``admin.object``.
        """
        clock = self._clock
        deadline = clock.monotonic() + timeout_s
        while True:
            try:
                self._guard(
                    "object_manager_attributes",
                    "run the migrations of",
                    lambda: self._client.post_json(MIGRATIONS_PATH, {}, idempotent=True),
                )
                break
            except TransientError as exc:
                if clock.monotonic() >= deadline:
                    raise TransientError(
                        f"Zammad's migrations could not be started within {timeout_s:g} s: "
                        f"{exc.message}",
                        status=exc.status, method="POST", path=MIGRATIONS_PATH,
                    ) from exc  # fmt: skip
                log.info("zammad.migrations.retry reason=%s", type(exc).__name__)
                clock.sleep(self.poll_interval_s)
        pending: Rows | None = None
        last_error: HelpdeskError | None = None
        while True:
            try:
                pending = self.pending_attributes()
                last_error = None
            except TransientError as exc:  # restarting
                last_error = exc
                log.info("zammad.migrations.restarting reason=%s", type(exc).__name__)
            if pending is not None and not pending and last_error is None:
                log.info("zammad.migrations.done")
                return
            if clock.monotonic() >= deadline:
                raise TransientError(
                    _pending_message(pending, last_error, timeout_s),
                    method="GET", path=_path("object_manager_attributes"),
                )  # fmt: skip
            clock.sleep(self.poll_interval_s)

    # -- users --------------------------------------------------------------------------------

    def find_user(self, query: str) -> Json | None:
        """The user whose email or login is exactly ``query`` (case-insensitively), or
        ``None``. Zammad's user search is a substring match, so every page of answers is
        checked; it needs ``ticket.agent`` or ``admin.user``."""
        wanted = query.strip().lower()
        if not wanted:
            return None
        page = 1
        while True:
            rows = self._guard("users", "search", partial(self._search, wanted, page))
            for row in rows:
                if wanted in (
                    str(row.get("email") or "").lower(),
                    str(row.get("login") or "").lower(),
                ):
                    return row
            if len(rows) < USER_SEARCH_PAGE:
                return None
            page += 1

    def create_user(self, body: Mapping[str, Any]) -> Json:
        """Create a user (``admin.user``). Without ``roles``/``role_ids`` Zammad gives the
        signup role, Customer. Not idempotent: ``find_user`` first."""
        path = f"{API}/users"
        return self._guard(
            "users", "create", lambda: _object(self._client.post_json(path, dict(body)), path)
        )

    # -- macros -------------------------------------------------------------------------------

    def run_macro(self, macro_id: int, ticket_ids: Sequence[int]) -> Json:
        """Apply a macro to tickets as the token's user (``POST /tickets/mass_macro``);
        returns ``{ticket_ids, assets}``.

        Raises:
            Rejected: the macro's group restriction does not cover some tickets (named), a
                ticket may not be updated (named), or Zammad refused a change.
            NotFound: no such macro or ticket.
        """
        body = {"macro_id": int(macro_id), "ticket_ids": [int(t) for t in ticket_ids]}
        try:
            data = self._guard(
                "macros", "run", lambda: self._client.post_json(MASS_MACRO_PATH, body)
            )
        except Rejected as exc:
            raise _macro_rejection(exc, int(macro_id)) from exc
        return _object(data, MASS_MACRO_PATH)

    # -- internals ----------------------------------------------------------------------------

    def _pages(self, path: str) -> Rows:
        rows: Rows = []
        seen: set[object] = set()
        page = 1
        while True:
            params = {"expand": "true", "page": page, "per_page": PAGE_SIZE}
            batch = _rows(self._client.get_json(path, params=params), path)
            fresh = [r for r in batch if r.get("id") not in seen]
            rows.extend(fresh)
            seen.update(r.get("id") for r in fresh)
            if len(batch) < PAGE_SIZE or not fresh:
                return rows
            page += 1

    def _search(self, query: str, page: int) -> Rows:
        path = f"{API}/users/search"
        params = {"query": query, "per_page": USER_SEARCH_PAGE, "page": page}
        return _rows(self._client.get_json(path, params=params), path)

    def _tag_item(self, name: str) -> Json:
        wanted = name.strip()
        path = _path("tag_list")
        items = _rows(self._client.get_json(path, params={"limit": TAG_LIST_LIMIT}), path)
        for item in items:
            if item.get("name") == wanted:
                return item
        raise TransientError(
            f"the tag {wanted!r} is not in Zammad's tag list after writing it",
            method="GET", path=path,
        )  # fmt: skip

    @staticmethod
    def _guard(kind: str, verb: str, call: Callable[[], T]) -> T:
        """Run ``call``; a ``Forbidden`` says which permission the call needs."""
        try:
            return call()
        except Forbidden as exc:
            said = _PERMISSION_RE.search(exc.message)
            needed = said.group(0) if said else KIND_PERMISSIONS.get(kind, "admin.user")
            raise type(exc)(
                f"{exc.message}; to {verb} {kind} the token needs the {needed} permission",
                status=exc.status,
                method=exc.method,
                path=exc.path,
                request_id=exc.request_id,
                body_excerpt=exc.body_excerpt,
            ) from exc


def _path(kind: str) -> str:
    if kind not in KIND_PERMISSIONS:
        raise ValueError(f"unknown admin list {kind!r}; one of {', '.join(ADMIN_KINDS)}")
    return f"{API}/{kind}"


def _rows(data: Any, path: str) -> Rows:
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise TransientError("unexpected response from Zammad: not a list", method="GET", path=path)
    return [dict(r) for r in data]


def _object(data: Any, path: str) -> Json:
    if not isinstance(data, Mapping):
        raise TransientError("unexpected response from Zammad: not an object", path=path)
    return dict(data)


def _pending_flags(attribute: Mapping[str, Any]) -> list[str]:
    return [flag for flag in PENDING_FLAGS if attribute.get(flag)]


def _pending_message(pending: Rows | None, error: HelpdeskError | None, timeout_s: float) -> str:
    head = f"Zammad's migrations did not finish within {timeout_s:g} s"
    if pending:
        names = ", ".join(
            f"{a.get('object')}.{a.get('name')} ({'/'.join(_pending_flags(a))})" for a in pending
        )
        head += f"; still pending: {names}"
    if error is not None:
        head += f"; Zammad is not answering ({error.message})"
    return head


def _ids(text: str) -> list[int]:
    return [int(part) for part in re.findall(r"\d+", text)]


def _macro_rejection(exc: Rejected, macro_id: int) -> Rejected:
    excerpt = exc.body_excerpt or ""
    detail: Any = None
    try:
        detail = json.loads(excerpt)
    except ValueError:
        detail = None
    blocking: Iterable[Any] = ()
    ticket_id: Any = None
    if isinstance(detail, Mapping):
        blocking = detail.get("blocking_tickets") or ()
        ticket_id = detail.get("ticket_id") if detail.get("error") is True else None
    else:  # cut at 1 KiB: read what is there
        found = _BLOCKING_RE.search(excerpt)
        blocking = _ids(found.group(1)) if found else ()
        one = _TICKET_ID_RE.search(excerpt)
        ticket_id = int(one.group(1)) if one else None
    where: dict[str, Any] = {
        "status": exc.status, "method": exc.method, "path": exc.path,
        "request_id": exc.request_id, "body_excerpt": exc.body_excerpt,
    }  # fmt: skip
    tickets = [int(t) for t in blocking if isinstance(t, int | str) and str(t).isdigit()]
    if tickets:
        listed = ", ".join(str(t) for t in tickets)
        return Rejected(
            f"macro {macro_id} was not run: its group restriction does not cover "
            f"ticket(s) {listed} (blocking_tickets)",
            **where,
        )
    if ticket_id is not None:
        return Rejected(
            f"macro {macro_id} was not run: ticket {ticket_id} may not be updated with this "
            "token, or Zammad refused one of the macro's changes to it",
            **where,
        )
    return exc
