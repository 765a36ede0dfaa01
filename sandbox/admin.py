"""The admin API ``escalations provision`` uses (``reference/zammad-api.md`` §6, §8–11):
macros, overviews, triggers, webhooks and text modules (the generic CRUD routes), ticket
states, groups, the tag catalogue, user creation and ``tickets/mass_macro``. The object
manager is ``object_manager.py``; perform, conditions and triggers are ``perform.py``.

==================  ============================  =================================  ========
route               read                          write                              unique
==================  ============================  =================================  ========
macros              ticket.agent (their groups)   admin.macro                        name
overviews           admin.overview                admin.overview                     link
triggers            admin.trigger                 admin.trigger                      name
webhooks            admin.webhook                 admin.webhook                      name
text_modules        ticket.agent (their groups)   admin.text_module                  -
ticket_states       any user                      admin.ticket_state                 name
groups              any user                      admin.group                        name
tag_list            admin.tag                     admin.tag                          name
users (POST)        -                             admin.user                         email
==================  ============================  =================================  ========

Names are unique case-insensitively (422 "Name has already been taken"). Validation errors
render as ``humanize_error`` does: "Validation failed: …" cut at its first comma. Unknown
keys in a body are dropped, as Rails drops them. Lists page like Zammad's generic index
(``page``/``per_page``, 500 by default, at most 1000), in id order; ``tag_list`` answers up
to ``limit`` (1000) items by name, and its POST and PUT answer ``{}``.

Deviation: Zammad lets a ``ticket.agent`` create customers through ``POST /users``; the
sandbox asks for ``admin.user``, as provisioning does."""

from __future__ import annotations

import copy
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nh3

from sandbox.actor import Actor
from sandbox.api import Request, Response, Route, json_response, truthy
from sandbox.object_manager import ObjectManager
from sandbox.perform import Performer, check_perform, check_selector, validation_failed
from sandbox.records import (
    ApiError,
    Group,
    TicketState,
    User,
    cast_bool,
    forbidden,
    iso,
    not_found,
)
from sandbox.rules import Rules
from sandbox.search import page_window
from sandbox.state import SandboxState, as_int, ruby_to_i
from sandbox.values import too_long, valid_email
from sandbox.views import group_json, state_json, ticket_json, user_json

Row = dict[str, Any]
NOTE_LIMIT = 250
ENDPOINT_LIMIT = 2000
UX_FLOW_NEXT_UP = ("none", "next_task", "next_task_on_close", "next_from_overview")
ACTIVATORS = ("action", "time")
EXECUTION_CONDITION_MODES = ("selective", "always")


@dataclass(frozen=True)
class Resource:
    """One generic CRUD resource: its route, Zammad model name, permissions and columns
    (with their defaults: the only keys a body may set)."""

    kind: str
    model: str
    write: str
    read: tuple[str, ...]
    columns: dict[str, Any]
    by_group: bool = False
    """Agents without the write permission see only rows for their groups (or none)."""
    validate: Callable[[AdminApi, Row, int | None], None] = field(
        default=lambda api, row, own: None, compare=False
    )


# -- validation per resource --------------------------------------------------------------------


def _require(row: Row, *keys: str) -> None:
    for key in keys:
        if row.get(key) is None or (isinstance(row[key], str) and not row[key].strip()):
            raise validation_failed(f"{key.replace('_', ' ').capitalize()} can't be blank")


def _note(row: Row, *, sanitize: bool) -> None:
    note = row.get("note")
    if note is None:
        return
    text = str(note)
    if len(text) > NOTE_LIMIT:
        raise validation_failed(f"Note is too long (maximum is {NOTE_LIMIT} characters)")
    row["note"] = sanitize_html(text) if sanitize else text


def sanitize_html(text: str) -> str:
    """A light ``HtmlSanitizer``: nh3's allow-list (scripts, handlers and ``javascript:``
    URLs go; ``&``, ``<`` and ``>`` in text are escaped)."""
    return nh3.clean(text)


def _id_list(value: object, table: dict[int, Any], label: str) -> list[int]:
    items = value if isinstance(value, list) else ([] if value in (None, "") else [value])
    ids: list[int] = []
    for item in items:
        ident = as_int(item)
        if ident is None or ident not in table:
            raise ApiError(422, f"Invalid value for param '{label}': {item}")
        if ident not in ids:
            ids.append(ident)
    return ids


def _validate_macro(api: AdminApi, row: Row, own: int | None) -> None:
    _require(row, "name")
    api.unique_name("macros", row, own)
    if row.get("ux_flow_next_up") not in UX_FLOW_NEXT_UP:
        raise validation_failed("Ux flow next up is not included in the list")
    _note(row, sanitize=True)
    row["group_ids"] = _id_list(row.get("group_ids"), api.state.db.groups, "group_ids")
    row["perform"] = row.get("perform") or {}
    check_perform(api.state, row["perform"], origin="macro")


def _validate_overview(api: AdminApi, row: Row, own: int | None) -> None:
    _require(row, "name")
    row["role_ids"] = _id_list(row.get("role_ids"), api.state.db.roles, "role_ids")
    if not row["role_ids"]:
        raise validation_failed("Roles can't be blank")
    row["user_ids"] = _id_list(row.get("user_ids"), api.state.db.users, "user_ids")
    row["condition"] = row.get("condition") or {}
    check_selector(row["condition"], trigger=False)
    if row.get("prio") in (None, ""):
        prios = [ruby_to_i(o.get("prio"), 0) for o in api.table("overviews").values()]
        row["prio"] = max(prios, default=1000) + 1
    row["prio"] = ruby_to_i(row["prio"], 0)


def _validate_trigger(api: AdminApi, row: Row, own: int | None) -> None:
    _require(row, "name")
    api.unique_name("triggers", row, own)
    if row.get("activator") not in ACTIVATORS:
        raise validation_failed("Activator is not included in the list")
    if row.get("execution_condition_mode") not in EXECUTION_CONDITION_MODES:
        raise validation_failed("Execution condition mode is not included in the list")
    _note(row, sanitize=False)
    row["condition"] = row.get("condition") or {}
    check_selector(row["condition"], trigger=True)
    row["perform"] = row.get("perform") or {}
    check_perform(api.state, row["perform"], origin="trigger")


def _validate_webhook(api: AdminApi, row: Row, own: int | None) -> None:
    _require(row, "name")
    api.unique_name("webhooks", row, own)
    endpoint = row.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise validation_failed("Endpoint can't be blank")
    try:
        parts = urlsplit(endpoint.strip())
        host = parts.hostname
    except ValueError:
        raise validation_failed("Endpoint Invalid endpoint!") from None
    problems = []
    if parts.scheme not in ("http", "https"):
        problems.append("Endpoint Invalid endpoint (no http/https)!")
    if not host:
        problems.append("Endpoint Invalid endpoint (no hostname)!")
    if problems:
        raise validation_failed(*problems)
    if len(endpoint) > ENDPOINT_LIMIT:
        raise too_long("endpoint", ENDPOINT_LIMIT)
    row["endpoint"] = endpoint.strip()
    row["ssl_verify"] = cast_bool(row.get("ssl_verify")) is not False
    _note(row, sanitize=True)


def _validate_text_module(api: AdminApi, row: Row, own: int | None) -> None:
    _require(row, "name", "content")
    row["content"] = sanitize_html(str(row["content"]))
    _note(row, sanitize=False)
    row["group_ids"] = _id_list(row.get("group_ids"), api.state.db.groups, "group_ids")


RESOURCES: dict[str, Resource] = {
    r.kind: r
    for r in (
        Resource(
            "macros",
            "Macro",
            "admin.macro",
            ("admin.macro", "ticket.agent"),
            {
                "name": None,
                "perform": {},
                "ux_flow_next_up": "none",
                "note": "",
                "active": True,
                "group_ids": [],
            },  # fmt: skip
            by_group=True,
            validate=_validate_macro,
        ),
        Resource(
            "overviews",
            "Overview",
            "admin.overview",
            ("admin.overview",),
            {
                "name": None,
                "link": "",
                "prio": None,
                "condition": {},
                "order": {"by": "created_at", "direction": "ASC"},
                "group_by": None,
                "group_direction": None,
                "organization_shared": False,
                "out_of_office": False,
                "view": {},
                "active": True,
                "role_ids": [],
                "user_ids": [],
            },  # fmt: skip
            validate=_validate_overview,
        ),
        Resource(
            "triggers",
            "Trigger",
            "admin.trigger",
            ("admin.trigger",),
            {
                "name": None,
                "condition": {},
                "perform": {},
                "activator": "action",
                "execution_condition_mode": "selective",
                "disable_notification": True,
                "localization": None,
                "timezone": None,
                "note": "",
                "active": True,
            },  # fmt: skip
            validate=_validate_trigger,
        ),
        Resource(
            "webhooks",
            "Webhook",
            "admin.webhook",
            ("admin.webhook",),
            {
                "name": None,
                "endpoint": None,
                "signature_token": "",
                "ssl_verify": True,
                "basic_auth_username": "",
                "basic_auth_password": "",
                "customized_payload": False,
                "custom_payload": None,
                "pre_defined_webhook_type": None,
                "preferences": {},
                "note": "",
                "active": True,
            },  # fmt: skip
            validate=_validate_webhook,
        ),
        Resource(
            "text_modules",
            "TextModule",
            "admin.text_module",
            ("admin.text_module", "ticket.agent"),
            {
                "name": None,
                "keywords": "",
                "content": None,
                "note": "",
                "active": True,
                "foreign_id": None,
                "group_ids": [],
                "user_id": None,
            },  # fmt: skip
            by_group=True,
            validate=_validate_text_module,
        ),
    )
}


def link_name(text: str) -> str:
    """``Overview#link_name`` before de-duplication: ``parameterize(separator: '_')``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9\-_]+", "_", ascii_text.lower())
    return re.sub(r"_+", "_", slug).strip("_")


class AdminApi:
    """The admin routes over one ``SandboxState``."""

    def __init__(self, state: SandboxState, rules: Rules, performer: Performer) -> None:
        self.state = state
        self.rules = rules
        self.performer = performer
        self.object_manager = ObjectManager(state)

    def routes(self) -> list[Route]:
        routes: list[Route] = [
            ("GET", r"/ticket_states/(\d+)", self.states_show),
            ("POST", "/ticket_states", self.states_create),
            ("PUT", r"/ticket_states/(\d+)", self.states_update),
            ("POST", "/groups", self.groups_create),
            ("PUT", r"/groups/(\d+)", self.groups_update),
            ("GET", "/tag_list", self.tags_index),
            ("POST", "/tag_list", self.tags_create),
            ("PUT", r"/tag_list/(\d+)", self.tags_rename),
            ("POST", "/users", self.users_create),
            ("POST", "/tickets/mass_macro", self.mass_macro),
            *self.object_manager.routes(),
        ]
        for kind in RESOURCES:
            routes += [
                ("GET", f"/{kind}", self._bind(self.index, kind)),
                ("GET", rf"/{kind}/(\d+)", self._bind(self.show, kind)),
                ("POST", f"/{kind}", self._bind(self.create, kind)),
                ("PUT", rf"/{kind}/(\d+)", self._bind(self.update, kind)),
            ]
        return routes

    @staticmethod
    def _bind(handler: Callable[..., Response], kind: str) -> Callable[..., Response]:
        def bound(actor: Actor, req: Request, *args: str) -> Response:
            return handler(kind, actor, req, *args)

        return bound

    # -- shared -------------------------------------------------------------------------------

    def _need(self, actor: Actor, *permissions: str) -> None:
        if not any(actor.has(self.state, p) for p in permissions):
            raise forbidden()

    def table(self, kind: str) -> dict[int, Row]:
        return self.state.db.admin.setdefault(kind, {})

    def unique_name(self, kind: str, row: Row, own: int | None) -> None:
        name = str(row.get("name") or "").strip().lower()
        for other in self.table(kind).values():
            if other["id"] != own and str(other.get("name") or "").strip().lower() == name:
                raise validation_failed("Name has already been taken")

    def _render(self, row: Row, *, expand: bool = False) -> Row:
        out = copy.deepcopy(row)
        for key in ("created_at", "updated_at"):
            out[key] = iso(row[key])
        if expand:
            users = self.state.db.users
            for key in ("created_by", "updated_by"):
                user = users.get(row[f"{key}_id"])
                out[key] = user.login if user is not None else None
        return out

    def _visible(self, resource: Resource, actor: Actor, row: Row) -> bool:
        if not resource.by_group or actor.has(self.state, resource.write):
            return True
        groups = row.get("group_ids") or []
        return not groups or any(actor.group_access(self.state, g, "read") for g in groups)

    def _row(self, resource: Resource, row_id: str) -> Row:
        row = self.table(resource.kind).get(int(row_id))
        if row is None:
            raise not_found(resource.model, row_id)
        return row

    # -- generic CRUD -------------------------------------------------------------------------

    def index(self, kind: str, actor: Actor, req: Request) -> Response:
        resource = RESOURCES[kind]
        self._need(actor, *resource.read)
        offset, limit = page_window(req.params, default=500, maximum=1000)
        rows = [r for _, r in sorted(self.table(kind).items()) if self._visible(resource, actor, r)]
        expand = truthy(req.params.get("expand"))
        return json_response(
            200, [self._render(r, expand=expand) for r in rows[offset : offset + limit]]
        )

    def show(self, kind: str, actor: Actor, req: Request, row_id: str) -> Response:
        resource = RESOURCES[kind]
        self._need(actor, *resource.read)
        row = self._row(resource, row_id)
        if not self._visible(resource, actor, row):
            raise forbidden()
        return json_response(200, self._render(row, expand=truthy(req.params.get("expand"))))

    def create(self, kind: str, actor: Actor, req: Request) -> Response:
        resource = RESOURCES[kind]
        self._need(actor, resource.write)
        row = copy.deepcopy(resource.columns)
        for key in resource.columns:
            if key in req.params:
                row[key] = copy.deepcopy(req.params[key])
        resource.validate(self, row, None)
        st = self.state
        row_id = st.next_id(f"admin_{kind}")
        if kind == "overviews":
            row["link"] = self._overview_link(str(row.get("link") or row["name"]), row_id)
        now = st.now()
        row.update(
            id=row_id,
            active=cast_bool(row.get("active")) is not False,
            created_by_id=actor.user.id,
            updated_by_id=actor.user.id,
            created_at=now,
            updated_at=now,
        )
        self.table(kind)[row_id] = row
        return json_response(201, self._render(row))

    def update(self, kind: str, actor: Actor, req: Request, row_id: str) -> Response:
        resource = RESOURCES[kind]
        self._need(actor, resource.write)
        current = self._row(resource, row_id)
        row = copy.deepcopy(current)
        for key in resource.columns:
            if key in req.params:
                row[key] = copy.deepcopy(req.params[key])
        resource.validate(self, row, current["id"])
        if kind == "overviews" and (
            row.get("name") != current.get("name") or row.get("link") != current.get("link")
        ):
            row["link"] = self._overview_link(str(row.get("link") or row["name"]), current["id"])
        row.update(
            active=cast_bool(row.get("active")) is not False,
            updated_by_id=actor.user.id,
            updated_at=self.state.now(),
        )
        self.table(kind)[current["id"]] = row
        return json_response(200, self._render(row))

    def _overview_link(self, text: str, own: int) -> str:
        """Slugified; ``_1``, ``_2``… appended while another overview has the link."""
        base = link_name(text) or str(own) or str(uuid.uuid4())
        taken = {o.get("link") for o in self.table("overviews").values() if o["id"] != own}
        candidate, count = base, 0
        while candidate in taken:
            count += 1
            candidate = f"{base}_{count}"
        return candidate

    # -- ticket states ------------------------------------------------------------------------

    def states_show(self, actor: Actor, req: Request, state_id: str) -> Response:
        found = self.state.db.states.get(int(state_id))
        if found is None:
            raise not_found("Ticket::State", state_id)
        return json_response(
            200, state_json(self.state, found, expand=truthy(req.params.get("expand")))
        )

    def states_create(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "admin.ticket_state")
        st = self.state
        now = st.now()
        draft = TicketState(0, "", 0, now, now)
        self._state_fields(draft, req.params, own=None)
        draft.id = st.next_id("states")
        st.db.states[draft.id] = draft
        self._state_flags(draft)
        return json_response(201, state_json(st, draft))

    def states_update(self, actor: Actor, req: Request, state_id: str) -> Response:
        self._need(actor, "admin.ticket_state")
        st = self.state
        current = st.db.states.get(int(state_id))
        if current is None:
            raise not_found("Ticket::State", state_id)
        if st.state_type_name(current.id) == "merged":
            raise validation_failed("Merged states cannot be edited")
        draft = copy.deepcopy(current)
        self._state_fields(draft, req.params, own=current.id)
        draft.updated_at = st.now()
        st.db.states[current.id] = draft
        self._state_flags(draft)
        return json_response(200, state_json(st, draft))

    def _state_fields(self, draft: TicketState, params: dict[str, Any], *, own: int | None) -> None:
        st = self.state
        if "name" in params or own is None:
            draft.name = str(params.get("name") or "").strip()
        if not draft.name:
            raise validation_failed("Name can't be blank")
        if any(s.id != own and s.name.lower() == draft.name.lower() for s in st.db.states.values()):
            raise validation_failed("Name has already been taken")
        types = {t.name: t.id for t in st.db.state_types.values()}
        if params.get("state_type_id") not in (None, ""):
            type_id = as_int(params["state_type_id"])
            if type_id not in st.db.state_types:
                raise ApiError(
                    422, f"Invalid value for param 'state_type_id': {params['state_type_id']}"
                )
            draft.state_type_id = type_id or 0
        elif isinstance(params.get("state_type"), str):
            if params["state_type"] not in types:
                raise ApiError(
                    422, f"No lookup value found for 'state_type': \"{params['state_type']}\""
                )
            draft.state_type_id = types[params["state_type"]]
        if draft.state_type_id not in st.db.state_types:
            raise validation_failed("State type must exist")
        if params.get("next_state_id") not in (None, ""):
            next_id = as_int(params["next_state_id"])
            if next_id not in st.db.states:
                raise ApiError(
                    422, f"Invalid value for param 'next_state_id': {params['next_state_id']}"
                )
            draft.next_state_id = next_id
        elif isinstance(params.get("next_state"), str):
            found = next((s for s in st.db.states.values() if s.name == params["next_state"]), None)
            if found is None:
                raise ApiError(
                    422, f"No lookup value found for 'next_state': \"{params['next_state']}\""
                )
            draft.next_state_id = found.id
        for flag in ("ignore_escalation", "default_create", "default_follow_up", "active"):
            if flag in params:
                setattr(draft, flag, bool(cast_bool(params[flag])))
        if "note" in params:
            draft.note = str(params.get("note") or "")

    def _state_flags(self, saved: TicketState) -> None:
        """Only one state is ``default_create``, one ``default_follow_up``."""
        for flag in ("default_create", "default_follow_up"):
            if getattr(saved, flag):
                for other in self.state.db.states.values():
                    if other.id != saved.id:
                        setattr(other, flag, False)

    # -- groups -------------------------------------------------------------------------------

    def groups_create(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "admin.group")
        st = self.state
        now = st.now()
        draft = Group(0, "", now, now)
        self._group_fields(draft, req.params, own=None)
        draft.id = st.next_id("groups")
        st.db.groups[draft.id] = draft
        return json_response(201, group_json(draft))

    def groups_update(self, actor: Actor, req: Request, group_id: str) -> Response:
        self._need(actor, "admin.group")
        st = self.state
        current = st.db.groups.get(int(group_id))
        if current is None:
            raise not_found("Group", group_id)
        draft = copy.deepcopy(current)
        self._group_fields(draft, req.params, own=current.id)
        draft.updated_at = st.now()
        st.db.groups[current.id] = draft
        return json_response(200, group_json(draft))

    def _group_fields(self, draft: Group, params: dict[str, Any], *, own: int | None) -> None:
        """``name`` is the full path (``Parent::Child``), or the leaf with ``parent_id``."""
        st = self.state
        if "name" in params or "name_last" in params or own is None:
            raw = str(params.get("name") or params.get("name_last") or "").strip()
            if not raw:
                raise validation_failed("Name can't be blank")
            parent_id = as_int(params.get("parent_id"))
            if parent_id is not None:
                parent = st.db.groups.get(parent_id)
                if parent is None:
                    raise ApiError(422, f"Invalid value for param 'parent_id': {parent_id}")
                draft.name, draft.parent_id = f"{parent.name}::{raw.rsplit('::', 1)[-1]}", parent.id
            elif "::" in raw:
                parent = st.group_by_name(raw.rsplit("::", 1)[0])
                if parent is None:
                    raise validation_failed("Parent must exist")
                draft.name, draft.parent_id = raw, parent.id
            else:
                draft.name, draft.parent_id = raw, None
        if any(g.id != own and g.name.lower() == draft.name.lower() for g in st.db.groups.values()):
            raise validation_failed("Name has already been taken")
        if "active" in params:
            draft.active = bool(cast_bool(params["active"]))
        for key in ("note", "follow_up_possible"):
            if key in params:
                setattr(draft, key, str(params.get(key) or ""))
        if not draft.email_name:
            draft.email_name = draft.name_last

    # -- tag catalogue ------------------------------------------------------------------------

    def tags_index(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "admin.tag")
        st = self.state
        limit = max(ruby_to_i(req.params.get("limit"), 1000), 0)
        counts = dict.fromkeys(st.db.tag_items, 0)
        for tags in st.db.ticket_tags.values():
            for name in tags:
                counts[name] = counts.get(name, 0) + 1
        names = sorted(st.db.tag_items)[:limit]
        return json_response(
            200, [{"id": st.db.tag_items[n], "name": n, "count": counts.get(n, 0)} for n in names]
        )

    def tags_create(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "admin.tag")
        self.state.ensure_tag_item(_tag_item_name(req.params.get("name")))
        return json_response(200, {})

    def tags_rename(self, actor: Actor, req: Request, item_id: str) -> Response:
        """``Tag::Item.rename``: to a name that exists, the two merge; tagged tickets are
        touched."""
        self._need(actor, "admin.tag")
        st = self.state
        old = next((n for n, i in st.db.tag_items.items() if i == int(item_id)), None)
        if old is None:
            raise not_found("Tag::Item", item_id)
        new = _tag_item_name(req.params.get("name"))
        if new == old:
            return json_response(200, {})
        merge = new in st.db.tag_items
        if not merge:
            st.db.tag_items[new] = st.db.tag_items[old]
        del st.db.tag_items[old]
        for ticket_id, tags in st.db.ticket_tags.items():
            if old not in tags:
                continue
            if new in tags:
                tags.remove(old)
            else:
                tags[tags.index(old)] = new
            st.touch_id(ticket_id)
        return json_response(200, {})

    # -- users --------------------------------------------------------------------------------

    def users_create(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "admin.user")
        st = self.state
        params = req.params
        email = str(params.get("email") or "").strip().lower()
        if email and not valid_email(email):
            raise ApiError(422, f"Invalid email '{email}'")
        if email and st.user_by_email(email) is not None:
            raise ApiError(422, f"Email address '{email}' is already used for another user.")
        names = {k: str(params.get(k) or "").strip() for k in ("firstname", "lastname", "phone")}
        login = str(params.get("login") or "").strip().lower() or email
        if not (login or any(names.values())):
            raise ApiError(
                422,
                "Minimum one identifier (login, firstname, lastname, phone or email) for user "
                "is required.",
            )
        role_ids = self._role_ids(params)
        org_id = None
        if params.get("organization_id") not in (None, ""):
            org_id = as_int(params["organization_id"])
            if org_id not in st.db.organizations:
                raise ApiError(422, f"Invalid value for param 'organization_id': {org_id}")
        elif isinstance(params.get("organization"), str):
            found = next(
                (o for o in st.db.organizations.values() if o.name == params["organization"]), None
            )
            if found is None:
                raise ApiError(
                    422, f"No lookup value found for 'organization': \"{params['organization']}\""
                )
            org_id = found.id
        login = login or f"user-{uuid.uuid4().hex[:8]}"
        unique, count = login, 0
        while any(u.login == unique for u in st.db.users.values()):
            count += 1
            unique = f"{login}{count}"  # Zammad appends a random number
        now = st.now()
        user = User(
            st.next_id("users"),
            unique,
            now,
            now,
            firstname=names["firstname"],
            lastname=names["lastname"],
            phone=names["phone"],
            email=email,
            organization_id=org_id,
            role_ids=role_ids,
            active=cast_bool(params.get("active")) is not False,
            note=str(params.get("note") or ""),
            created_by_id=actor.user.id,
            updated_by_id=actor.user.id,
        )
        st.db.users[user.id] = user
        return json_response(201, user_json(st, user, expand=truthy(params.get("expand"))))

    def _role_ids(self, params: dict[str, Any]) -> list[int]:
        """``role_ids``, or ``roles`` by name; neither: the signup role (Customer)."""
        st = self.state
        if params.get("role_ids") not in (None, "", []):
            return _id_list(params["role_ids"], st.db.roles, "role_ids")
        names = params.get("roles")
        if names in (None, "", []):
            names = ["Customer"]
        ids = []
        for name in names if isinstance(names, list) else [names]:
            found = next((r.id for r in st.db.roles.values() if r.name == name), None)
            if found is None:
                raise ApiError(422, f"No lookup value found for 'roles': \"{name}\"")
            ids.append(found)
        return ids

    # -- mass macro ---------------------------------------------------------------------------

    def mass_macro(self, actor: Actor, req: Request) -> Response:
        """``tickets_mass_controller.rb#macro``: the tickets are found and authorised first
        (422 ``{"error": true, "ticket_id"}`` for one the caller may not update), then the
        macro (404), its group restriction (422 with ``blocking_tickets``), then it is applied
        to every ticket in one transaction as the calling agent."""
        self._need(actor, "ticket.agent")
        st = self.state
        raw = req.params.get("ticket_ids")
        ids = raw if isinstance(raw, list) else ([] if raw in (None, "") else [raw])
        if not ids:
            raise ApiError(404, "Couldn't find Ticket without an ID")
        tickets = [st.db.tickets.get(as_int(i) or 0) for i in ids]
        found = [t for t in tickets if t is not None]
        if len(found) != len(ids):
            listed = ", ".join(str(i) for i in ids)
            raise ApiError(
                404,
                f"Couldn't find all Tickets with 'id': ({listed}) (found {len(found)} results, "
                f"but was looking for {len(ids)}).",
            )
        for ticket in found:
            if not actor.may(st, ticket, "change"):
                return json_response(422, {"error": True, "ticket_id": ticket.id})
        macro_id = req.params.get("macro_id")
        if macro_id in (None, ""):
            raise ApiError(404, "Couldn't find Macro without an ID")
        macro = self.table("macros").get(as_int(macro_id) or 0)
        if macro is None:
            raise not_found("Macro", macro_id)
        groups = macro.get("group_ids") or []
        blocking = [t.id for t in found if groups and t.group_id not in groups]
        if blocking:
            return json_response(
                422,
                {
                    "error": "Macro group restrictions do not cover all tickets",
                    "blocking_tickets": blocking,
                },
            )
        saved = copy.deepcopy((st.db, st._historised, st.journal))
        hooks: list[tuple[int, Any]] = []
        try:
            for ticket in found:
                for hook in self.performer.apply(
                    actor,
                    ticket,
                    dict(macro.get("perform") or {}),
                    source=("Macro", int(macro["id"]), str(macro["name"])),
                ):
                    hooks.append((hook, ticket))
        except ApiError:
            st.db, st._historised, st.journal = saved  # the transaction rolls back
            raise
        if self.performer.macro_webhooks:
            for hook, ticket in hooks:
                self.performer.deliver(hook, str(macro["name"]), ticket, None)
        tickets_json = {str(t.id): ticket_json(st, t, mode="ids") for t in found}
        users = {u for t in found for u in (t.customer_id, t.owner_id)}
        return json_response(
            200,
            {
                "ticket_ids": [t.id for t in found],
                "assets": {
                    "Ticket": tickets_json,
                    "User": {str(u): user_json(st, st.db.users[u]) for u in sorted(users)},
                },
            },
        )


def _tag_item_name(raw: object) -> str:
    name = str(raw or "").strip()
    if not name:
        raise validation_failed("Name can't be blank")
    if "," in name or "*" in name:
        raise ApiError(422, f"Invalid tag name '{name}'")
    return name
