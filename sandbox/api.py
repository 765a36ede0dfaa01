"""HTTP request handling: routing like Rails (an unknown route is a 404), parameters like Rails
(query string, then the JSON body, merged), token authentication, ``From`` impersonation,
permission gates and Zammad's error bodies. The write semantics live in ``rules.py``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox import merge
from sandbox.actor import Actor
from sandbox.calls import call_json, newest_calls
from sandbox.records import ApiError, forbidden, not_found
from sandbox.rules import Rules
from sandbox.search import page_window, search_tickets
from sandbox.state import SandboxState, as_int, grants, ruby_to_i
from sandbox.views import (
    article_json,
    attribute_json,
    group_json,
    mention_json,
    priority_json,
    state_json,
    ticket_history_json,
    ticket_json,
    user_json,
)

Response = tuple[int, dict[str, str], bytes]
JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, Any]
    headers: Mapping[str, str]  # lower-case names


def rails_params(query: Mapping[str, list[str]]) -> dict[str, Any]:
    """Rack's nested query parsing: ``a[b][c]=v``, ``a[]=v``; a plain key takes the last."""
    out: dict[str, Any] = {}
    for key, values in query.items():
        match = re.match(r"^([^\[\]]+)((?:\[[^\]]*\])*)$", key)
        if not match:
            continue
        parts = [match.group(1), *re.findall(r"\[([^\]]*)\]", match.group(2))]
        for value in values:
            node: Any = out
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if part == "":
                    if not isinstance(node, list):
                        break
                    node.append(value)
                    break
                if last:
                    node[part] = value
                elif i + 1 < len(parts) and parts[i + 1] == "":
                    if not isinstance(node.get(part), list):
                        node[part] = []
                    node = node[part]
                else:
                    if not isinstance(node.get(part), dict):
                        node[part] = {}
                    node = node[part]
    return out


def truthy(value: object) -> bool:
    """Zammad's ``response_expand?`` and friends: ``true`` as a bool or a string."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return status, {"Content-Type": JSON_TYPE, **(headers or {})}, body


json_response = _json
"""A JSON answer (for the route modules beside this one, ``sandbox/admin.py``)."""

Handler = Callable[..., Response]
Route = tuple[str, str, Handler]
"""``(method, path pattern below /api/v1, handler(actor, request, *groups))``."""


class Api:
    """Routes a request to a handler, with authentication and error rendering."""

    def __init__(self, state: SandboxState, rules: Rules) -> None:
        self.state = state
        self.rules = rules
        self.requests: list[tuple[str, str, int]] = []
        """``(method, path, status)`` of every request handled, oldest first."""
        v1 = "/api/v1"
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (m, re.compile(f"^{v1}{p}$"), h)
            for m, p, h in (
                ("GET", "/users/me", self.users_me),
                ("GET", "/users/search", self.users_search),
                ("GET", r"/users/(\d+)", self.users_show),
                ("GET", "/roles", self.roles_index),
                ("GET", "/groups", self.groups_index),
                ("GET", r"/groups/(\d+)", self.groups_show),
                ("GET", "/ticket_states", self.states_index),
                ("GET", "/ticket_priorities", self.priorities_index),
                ("GET", "/object_manager_attributes", self.attributes_index),
                ("GET", "/version", self.version),
                ("GET", "/tickets", self.tickets_index),
                ("GET", "/tickets/search", self.tickets_search),
                ("POST", "/tickets/search", self.tickets_search),
                ("GET", r"/tickets/(\d+)", self.tickets_show),
                ("POST", "/tickets", self.tickets_create),
                ("PUT", r"/tickets/(\d+)", self.tickets_update),
                ("GET", r"/ticket_history/(\d+)", self.ticket_history),
                ("GET", r"/ticket_articles/by_ticket/(\d+)", self.articles_by_ticket),
                ("GET", r"/ticket_articles/(\d+)", self.articles_show),
                ("POST", "/ticket_articles", self.articles_create),
                ("GET", r"/ticket_attachment/(\d+)/(\d+)/(\d+)", self.attachment),
                ("GET", "/tags", self.tags_index),
                ("GET", "/tag_search", self.tags_search),
                ("POST", "/tags/add", self.tags_add),
                ("DELETE", "/tags/remove", self.tags_remove),
                ("GET", "/links", self.links_index),
                ("POST", "/links/add", self.links_add),
                ("DELETE", "/links/remove", self.links_remove),
                ("PUT", r"/ticket_merge/(\d+)/([^/]+)", self.ticket_merge),
                ("GET", "/cti/log", self.cti_log),
                ("GET", "/mentions", self.mentions_index),
                ("POST", "/mentions", self.mentions_create),
            )
        ]

    def add_routes(self, routes: list[Route]) -> None:
        """More routes (checked after the ones above; the first match wins)."""
        for method, path, handler in routes:
            self._routes.append((method, re.compile(f"^/api/v1{path}$"), handler))

    # -- entry --------------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        """Answer one request. The caller holds the sandbox lock."""
        method = method.upper()
        path = path.split("?", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        lower = {k.lower(): v for k, v in headers.items()}
        actor: Actor | None = None
        try:
            handler, args = self._route(method, path)
            params = rails_params(query)
            params.update(self._body_params(body))
            request = Request(method, path, params, lower)
            actor = self._authenticate(lower)
            response = handler(actor, request, *args)
        except ApiError as exc:
            admin = actor is not None and actor.is_admin(self.state)
            response = _json(exc.status, exc.body(admin=admin))
        self.requests.append((method, path, response[0]))
        return response

    def _route(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                return handler, match.groups()
        raise ApiError(404, f"No route matches [{method}] {path}")

    @staticmethod
    def _body_params(body: bytes) -> dict[str, Any]:
        if not body or not body.strip():
            return {}
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, f"Error occurred while parsing request parameters: {exc}") from None
        return parsed if isinstance(parsed, dict) else {"_json": parsed}

    # -- authentication -----------------------------------------------------------------------

    def _authenticate(self, headers: Mapping[str, str]) -> Actor:
        st = self.state
        auth = headers.get("authorization", "").strip()
        token_value: str | None = None
        match = re.match(r"^(Token|Bearer)\s+(.+)$", auth, re.IGNORECASE)
        if match:
            raw = match.group(2).strip()
            if match.group(1).lower() == "token":
                found = re.match(r"""^token\s*=\s*"?([^",\s]+)"?""", raw)
                token_value = found.group(1) if found else raw
            else:
                token_value = raw
        elif auth.lower().startswith("basic "):
            raise ApiError(401, "Invalid BasicAuth credentials")
        if not token_value:
            raise ApiError(403, "Authentication required", kind="plain")
        token = st.db.tokens.get(token_value)
        if token is None:
            raise ApiError(401, "Can't find User for Token")
        if token.expires_at is not None and token.expires_at <= st.now():
            raise ApiError(401, "Not authorized (token expired)!")
        user = st.db.users.get(token.user_id)
        if user is None or not user.active:
            raise ApiError(401, "User is inactive.")
        token.last_used_at = st.now()
        actor = Actor(user, tuple(token.permissions))
        on_behalf = headers.get("from") or headers.get("x-on-behalf-of")
        if on_behalf:
            if not actor.has(st, "admin.user"):
                raise forbidden("Current user has no permission to use 'From'/'X-On-Behalf-Of'!")
            actor = Actor(self._impersonated(on_behalf), actor.token_permissions)
        return actor

    def _impersonated(self, value: str) -> Any:
        st = self.state
        key = value.strip().lower()
        if key.isdigit() and int(key) in st.db.users:
            return st.db.users[int(key)]
        user = st.user_by_login_or_email(key)
        if user is None:
            raise forbidden(f"No such user '{value.strip()}'")
        return user

    # -- gates --------------------------------------------------------------------------------

    def _need(self, actor: Actor, *permissions: str) -> None:
        if not any(actor.has(self.state, p) for p in permissions):
            raise forbidden()

    def _ticket_for(self, actor: Actor, ticket_id: object, level: str = "read") -> Any:
        self._need(actor, "ticket.agent", "ticket.customer")
        ticket = self.state.ticket(ticket_id)
        if not actor.may(self.state, ticket, level):
            raise forbidden()
        return ticket

    # -- users, groups, states, attributes ----------------------------------------------------

    def users_me(self, actor: Actor, req: Request) -> Response:
        return _json(
            200, user_json(self.state, actor.user, expand=truthy(req.params.get("expand")))
        )

    def users_show(self, actor: Actor, req: Request, user_id: str) -> Response:
        user = self.state.db.users.get(int(user_id))
        if user is None:
            raise not_found("User", user_id)
        if user.id != actor.user.id:
            self._need(actor, "ticket.agent", "admin.user")
        return _json(200, user_json(self.state, user, expand=truthy(req.params.get("expand"))))

    def users_search(self, actor: Actor, req: Request) -> Response:
        st = self.state
        self._need(actor, "ticket.agent", "admin.user")
        params = req.params
        offset, limit = page_window(params)
        query = str(params.get("query") or params.get("term") or "").replace("*", "").lower()
        permissions = params.get("permissions") or []
        permissions = permissions if isinstance(permissions, list) else [permissions]
        role_ids = params.get("role_ids") or []
        role_ids = role_ids if isinstance(role_ids, list) else [role_ids]
        group_filter = params.get("group_ids") if isinstance(params.get("group_ids"), dict) else {}
        found = []
        for user in st.db.users.values():
            if user.id == 1:
                continue
            texts = (user.login, user.firstname, user.lastname, user.email, user.phone, user.note)
            if query and not any(query in (t or "").lower() for t in texts):
                continue
            if permissions and not all(grants(st.user_permissions(user), p) for p in permissions):
                continue
            if role_ids and not {as_int(r) for r in role_ids} & set(user.role_ids):
                continue
            if group_filter and not all(
                as_int(g) is not None and st.group_access(user, as_int(g) or 0, str(level))
                for g, level in group_filter.items()
            ):
                continue
            found.append(user)
        found.sort(key=lambda u: u.id)
        found.sort(key=lambda u: (u.active, u.updated_at), reverse=True)
        expand = truthy(params.get("expand"))
        page = found[offset : offset + limit]
        return _json(200, [user_json(st, u, expand=expand) for u in page])

    def roles_index(self, actor: Actor, req: Request) -> Response:
        """Agents may read roles (reference §8); each carries its group access like a user."""
        self._need(actor, "ticket.agent", "admin.role")
        offset, limit = page_window(req.params, default=500, maximum=1000)
        roles = sorted(self.state.db.roles.values(), key=lambda r: r.id)[offset : offset + limit]
        return _json(
            200,
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "active": True,
                    "default_at_signup": r.name == "Customer",
                    "note": "",
                    "group_ids": {str(g): list(levels) for g, levels in r.group_access.items()},
                    **(
                        {"permissions": list(r.permissions)}
                        if truthy(req.params.get("expand"))
                        else {}
                    ),
                }
                for r in roles
            ],
        )

    def groups_index(self, actor: Actor, req: Request) -> Response:
        offset, limit = page_window(req.params, default=500, maximum=1000)
        groups = sorted(self.state.db.groups.values(), key=lambda g: g.id)[offset : offset + limit]
        expand = truthy(req.params.get("expand"))
        return _json(200, [group_json(g, expand=expand) for g in groups])

    def groups_show(self, actor: Actor, req: Request, group_id: str) -> Response:
        group = self.state.db.groups.get(int(group_id))
        if group is None:
            raise not_found("Group", group_id)
        return _json(200, group_json(group, expand=truthy(req.params.get("expand"))))

    def states_index(self, actor: Actor, req: Request) -> Response:
        offset, limit = page_window(req.params, default=500, maximum=1000)
        states = sorted(self.state.db.states.values(), key=lambda s: s.id)[offset : offset + limit]
        expand = truthy(req.params.get("expand"))
        return _json(200, [state_json(self.state, s, expand=expand) for s in states])

    def priorities_index(self, actor: Actor, req: Request) -> Response:
        return _json(200, [priority_json(p) for p in self.state.db.priorities.values()])

    def attributes_index(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "admin.object")
        attrs = sorted(self.state.db.attributes.values(), key=lambda a: (a.position, a.name))
        return _json(200, [attribute_json(a) for a in attrs])

    def version(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "admin")
        return _json(200, {"version": "6.5.0-sandbox"})

    # -- tickets ------------------------------------------------------------------------------

    def _render_ticket(self, ticket: Any, params: dict[str, Any], default: str) -> Any:
        if truthy(params.get("expand")):
            return ticket_json(self.state, ticket, mode="names")
        if truthy(params.get("all")):
            return self._ticket_all(ticket)
        return ticket_json(self.state, ticket, mode=default)

    def _ticket_all(self, ticket: Any) -> dict[str, Any]:
        st = self.state
        articles = st.articles_of(ticket.id)
        users = {ticket.customer_id, ticket.owner_id} | {a.created_by_id for a in articles}
        return {
            "ticket_id": ticket.id,
            "ticket_article_ids": [a.id for a in articles],
            "assets": {
                "Ticket": {str(ticket.id): ticket_json(st, ticket, mode="ids")},
                "TicketArticle": {str(a.id): article_json(st, a) for a in articles},
                "User": {str(u): user_json(st, st.db.users[u]) for u in sorted(users)},
            },
            "links": self.rules.links_of(ticket.id),
            "tags": list(st.tags_of(ticket.id)),
            "mentions": [mention_json(m) for m in st.mentions_of(ticket.id)],
            "time_accountings": [],
            "form_meta": {},
        }

    def tickets_index(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "ticket.agent", "ticket.customer")
        offset, limit = page_window(req.params, default=100, maximum=100)
        st = self.state
        ordered = sorted(st.db.tickets.values(), key=lambda t: t.id)
        readable = [t for t in ordered if actor.may(st, t, "read")]
        mode = "names" if truthy(req.params.get("expand")) else "plain"
        return _json(
            200, [ticket_json(st, t, mode=mode) for t in readable[offset : offset + limit]]
        )

    def tickets_show(self, actor: Actor, req: Request, ticket_id: str) -> Response:
        ticket = self._ticket_for(actor, ticket_id)
        return _json(200, self._render_ticket(ticket, req.params, "plain"))

    def tickets_search(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "ticket.agent", "ticket.customer")
        st = self.state
        tickets, total = search_tickets(st, actor, req.params)
        params = req.params
        if truthy(params.get("only_total_count")):
            return _json(200, {"total_count": total})
        if truthy(params.get("expand")):
            return _json(200, [ticket_json(st, t, mode="names") for t in tickets])
        if truthy(params.get("full")):
            return _json(
                200,
                {
                    "record_ids": [t.id for t in tickets],
                    "assets": {"Ticket": {str(t.id): ticket_json(st, t) for t in tickets}},
                    "total_count": total,
                },
            )
        return _json(200, [ticket_json(st, t) for t in tickets])

    def tickets_create(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "ticket.agent", "ticket.customer")
        params = {k: v for k, v in req.params.items() if k not in ("expand", "all", "full")}
        ticket = self.rules.create_ticket(actor, params)
        return _json(201, self._render_ticket(ticket, req.params, "ids"))

    def tickets_update(self, actor: Actor, req: Request, ticket_id: str) -> Response:
        ticket = self._ticket_for(actor, ticket_id)
        params = {k: v for k, v in req.params.items() if k not in ("id", "expand", "all", "full")}
        self.rules.update_ticket(actor, ticket, params)
        return _json(200, self._render_ticket(ticket, req.params, "ids"))

    def ticket_history(self, actor: Actor, req: Request, ticket_id: str) -> Response:
        """``tickets_controller.rb#ticket_history``: the controller policy wants
        ``ticket.agent`` (403), then ``Ticket.find`` (404), then ``show?`` (403)."""
        self._need(actor, "ticket.agent")
        ticket = self.state.ticket(ticket_id)
        if not actor.may(self.state, ticket, "read"):
            raise forbidden()
        return _json(200, ticket_history_json(self.state, ticket))

    # -- articles and attachments -------------------------------------------------------------

    def _visible_articles(self, actor: Actor, ticket: Any) -> list[Any]:
        articles = self.state.articles_of(ticket.id)
        if actor.group_access(self.state, ticket.group_id, "read"):
            return articles
        return [a for a in articles if not a.internal]

    def articles_by_ticket(self, actor: Actor, req: Request, ticket_id: str) -> Response:
        ticket = self._ticket_for(actor, ticket_id)
        articles = self._visible_articles(actor, ticket)
        return _json(200, [article_json(self.state, a) for a in articles])

    def articles_show(self, actor: Actor, req: Request, article_id: str) -> Response:
        article = self.state.db.articles.get(int(article_id))
        if article is None:
            raise not_found("Ticket::Article", article_id)
        ticket = self._ticket_for(actor, article.ticket_id)
        if article not in self._visible_articles(actor, ticket):
            raise forbidden()
        return _json(200, article_json(self.state, article))

    def articles_create(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "ticket.agent", "ticket.customer")
        article = self.rules.create_article(actor, req.params)
        return _json(201, article_json(self.state, article))

    def attachment(self, actor: Actor, req: Request, tid: str, aid: str, att_id: str) -> Response:
        ticket = self._ticket_for(actor, tid)
        article = self.state.db.articles.get(int(aid))
        if article is None or article.ticket_id != ticket.id:
            raise not_found("Ticket::Article", aid)
        if article not in self._visible_articles(actor, ticket):
            raise forbidden()
        found = next((a for a in article.attachments if a.id == int(att_id)), None)
        if found is None:
            raise not_found("Store", att_id)
        disposition = "attachment" if req.params.get("disposition") == "attachment" else "inline"
        filename = found.filename.replace('"', "")
        headers = {
            "Content-Type": found.preferences.get("Mime-Type", "application/octet-stream"),
            "Content-Disposition": f'{disposition}; filename="{filename}"',
        }
        return 200, headers, found.data

    # -- tags ---------------------------------------------------------------------------------

    def _tag_ticket(self, actor: Actor, params: dict[str, Any], level: str) -> Any:
        self._need(actor, "ticket.agent")
        if params.get("object") != "Ticket":
            raise ApiError(422, f"Unknown object '{params.get('object')}'")
        return self._ticket_for(actor, params.get("o_id"), level)

    def tags_index(self, actor: Actor, req: Request) -> Response:
        ticket = self._tag_ticket(actor, req.params, "read")
        return _json(200, {"tags": list(self.state.tags_of(ticket.id))})

    def tags_search(self, actor: Actor, req: Request) -> Response:
        """The tag catalogue (``Tag::Item``): any signed-in user; a case-insensitive
        substring match ordered by name, ``limit`` rows (10 unless told). A blank term
        answers the most used tags."""
        st = self.state
        limit = max(ruby_to_i(req.params.get("limit"), 10), 0)
        term = str(req.params.get("term") or "").strip().lower()
        if term:
            names = sorted(n for n in st.db.tag_items if term in n.lower())
        else:
            used: dict[str, int] = dict.fromkeys(st.db.tag_items, 0)
            for tags in st.db.ticket_tags.values():
                for name in tags:
                    used[name] = used.get(name, 0) + 1
            names = sorted(used, key=lambda n: (-used[n], n))
        items = st.db.tag_items
        return _json(200, [{"id": items.get(n), "value": n} for n in names[:limit]])

    def tags_add(self, actor: Actor, req: Request) -> Response:
        ticket = self._tag_ticket(actor, req.params, "read")
        return _json(201, self.rules.tag_add(actor, ticket, req.params.get("item")))

    def tags_remove(self, actor: Actor, req: Request) -> Response:
        ticket = self._tag_ticket(actor, req.params, "read")
        return _json(200, self.rules.tag_remove(actor, ticket, req.params.get("item")))

    # -- links --------------------------------------------------------------------------------

    def links_index(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "ticket.agent")
        params = req.params
        if params.get("link_object") != "Ticket":
            raise ApiError(422, "The object could not be found.")
        ticket = self._ticket_for(actor, params.get("link_object_value"))
        st = self.state
        links, assets = [], {}
        for item in self.rules.links_of(ticket.id):
            other = st.db.tickets.get(item["link_object_value"])
            if other is None or not actor.may(st, other, "read"):
                continue
            links.append(item)
            assets[str(other.id)] = ticket_json(st, other)
        return _json(200, {"links": links, "assets": {"Ticket": assets} if assets else {}})

    def links_add(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "ticket.agent")
        return _json(201, self.rules.link_add(actor, req.params))

    def links_remove(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "ticket.agent")
        return _json(201, self.rules.link_remove(actor, req.params))

    def ticket_merge(self, actor: Actor, req: Request, source_id: str, number: str) -> Response:
        """``tickets_controller.rb#ticket_merge`` (``sandbox.merge``)."""
        self._need(actor, "ticket.agent")
        return _json(200, merge.merge(self.state, self.rules, actor, source_id, number))

    # -- mentions -----------------------------------------------------------------------------

    def _mention_ticket(self, actor: Actor, params: dict[str, Any]) -> Any:
        self._need(actor, "ticket.agent")
        if params.get("mentionable_type") != "Ticket":
            raise ApiError(500, "Invalid mentionable_type!", kind="detail")
        return self._ticket_for(actor, params.get("mentionable_id"))

    def mentions_index(self, actor: Actor, req: Request) -> Response:
        ticket = self._mention_ticket(actor, req.params)
        st = self.state
        mentions = st.mentions_of(ticket.id)
        users = {str(m.user_id): user_json(st, st.db.users[m.user_id]) for m in mentions}
        return _json(
            200,
            {
                "mentions": [mention_json(m) for m in mentions],
                "assets": {"User": users} if users else {},
            },
        )

    def mentions_create(self, actor: Actor, req: Request) -> Response:
        ticket = self._mention_ticket(actor, req.params)
        return _json(201, self.rules.mention_add(actor, ticket))

    # -- the caller log -----------------------------------------------------------------------

    def cti_log(self, actor: Actor, req: Request) -> Response:
        self._need(actor, "cti.agent")
        rows = newest_calls(self.state)
        users: dict[str, Any] = {}
        for row in rows:
            for side in ("from", "to"):
                for match in row.preferences.get(side) or ():
                    user = self.state.db.users.get(int(match["user_id"]))
                    if user is not None:
                        users[str(user.id)] = user_json(self.state, user)
        backends = [
            {"name": "CTI (generic)", "enabled": True, "url": "#system/integration/cti"},
            {"name": "sipgate.io", "enabled": False, "url": "#system/integration/sipgate"},
            {"name": "Placetel", "enabled": False, "url": "#system/integration/placetel"},
        ]
        return _json(
            200,
            {
                "list": [call_json(r) for r in rows],
                "assets": {"User": users} if users else {},
                "backends": backends,
            },
        )
