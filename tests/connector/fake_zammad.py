"""A small stateful Zammad fake for the adapter's behavioural tests, mounted into a
``responses`` mock. It is seeded from the documentation fixtures in
``tests/fixtures/zammad/`` and copies the behaviour of ``reference/zammad-api.md`` that the
adapter depends on (not more): condition search with inclusive ``after (absolute)`` and page
caps, atomic create with tags/mentions/links/article, tag add/remove and their
``updated_at`` bumps, link direction and number/id rules, mentions with ``From``, silent owner
reset on update, dropped unknown fields, error bodies.

The full-fidelity fake is ``sandbox/``; the same behavioural tests run against both.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses

from escalations.clock import FakeClock
from tests.conftest import load_fixture

Answer = tuple[int, dict[str, str], str]

ARTICLE_TYPES = {1: "email", 5: "phone", 10: "note", 11: "web"}
SENDERS = {1: "Agent", 2: "Customer", 3: "System"}
CUSTOM_FIELDS = {"escalation_key", "escalation_level"}  # migrated custom attributes


def _ms(instant: datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{instant.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _json(status: int, data: Any) -> Answer:
    return (status, {"Content-Type": "application/json"}, json.dumps(data))


def _error(status: int, message: str) -> Answer:
    return _json(status, {"error": message, "error_human": message})


@dataclass
class FakeZammad:
    clock: FakeClock
    me_id: int = 3
    admin_user: bool = True  # may the token's user send From (admin.user)?
    admin_object: bool = False
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    articles: dict[int, dict[str, Any]] = field(default_factory=dict)
    tags: dict[int, list[str]] = field(default_factory=dict)
    links: list[tuple[str, int, int]] = field(default_factory=list)  # (type, source, target)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[int, bytes] = field(default_factory=dict)

    # -- seeding ----------------------------------------------------------------------------

    @classmethod
    def seeded(cls, clock: FakeClock) -> FakeZammad:
        """Groups, states, users and tickets 3 and 5 from the documentation examples.

        Ticket 5 (whose articles the docs list) has no example of its own: it is ticket 3's
        example with id/number changed. Users 4 (Jacob, agent) and 2 (Nicole, customer) come
        from the links example's assets.
        """
        fake = cls(clock)
        for group in load_fixture("zammad/groups.json"):
            fake.groups[group["id"]] = group
        for state in load_fixture("zammad/ticket_states.json"):
            fake.states[state["id"]] = state
        fake.users[3] = load_fixture("zammad/user_me.json")
        assets = load_fixture("zammad/links_ticket_5.json")["assets"]["User"]
        for raw in [*assets.values(), *load_fixture("zammad/users_search.json")]:
            fake.users.setdefault(raw["id"], raw)
        ticket = load_fixture("zammad/ticket_3.json")
        fake.tickets[3] = ticket
        fake.tickets[5] = {**ticket, "id": 5, "number": "22005"}
        for raw in load_fixture("zammad/articles_by_ticket_5.json"):
            fake.articles[raw["id"]] = {**raw, "attachments": []}
        return fake

    # -- mounting ---------------------------------------------------------------------------

    def mount(self, rsps: responses.RequestsMock, base_url: str) -> None:
        pattern = re.compile(re.escape(base_url.rstrip("/")) + r"(/api/v1/[^?]*)(\?.*)?$")
        for verb in ("GET", "POST", "PUT", "DELETE"):
            rsps.add_callback(verb, pattern, self._dispatch)

    def _dispatch(self, request: requests.PreparedRequest) -> Answer:
        parts = urlsplit(request.url or "")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = json.loads(request.body) if request.body else {}
        path = parts.path.split("/api/v1", 1)[-1]
        method = request.method or "GET"
        for route_method, route, handler in self._routes():
            match = re.fullmatch(route, path)
            if route_method == method and match:
                return handler(request, query, body, *match.groups())
        return _error(404, f"No route matches [{method}] {path}")

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/tickets/search", self._search),
            ("POST", r"/tickets", self._create_ticket),
            ("GET", r"/tickets/(\d+)", self._get_ticket),
            ("PUT", r"/tickets/(\d+)", self._update_ticket),
            ("GET", r"/tags", self._get_tags),
            ("POST", r"/tags/add", self._tag_add),
            ("DELETE", r"/tags/remove", self._tag_remove),
            ("GET", r"/links", self._get_links),
            ("POST", r"/links/add", self._link_add),
            ("GET", r"/mentions", self._get_mentions),
            ("POST", r"/mentions", self._mention_add),
            ("GET", r"/ticket_articles/by_ticket/(\d+)", self._by_ticket),
            ("POST", r"/ticket_articles", self._article_add),
            ("GET", r"/ticket_attachment/(\d+)/(\d+)/(\d+)", self._attachment),
            ("GET", r"/users/me", lambda *a: _json(200, self.users[self.me_id])),
            ("GET", r"/users/search", self._user_search),
            ("GET", r"/users/(\d+)", self._get_user),
            ("GET", r"/groups", lambda *a: _json(200, list(self.groups.values()))),
            ("GET", r"/ticket_states", lambda *a: _json(200, list(self.states.values()))),
            ("GET", r"/object_manager_attributes", self._attributes),
        ]

    # -- helpers ----------------------------------------------------------------------------

    def _touch(self, ticket_id: int) -> None:
        self.clock.advance(timedelta(milliseconds=1))
        self.tickets[ticket_id]["updated_at"] = _ms(self.clock.now())
        self.tickets[ticket_id]["updated_by_id"] = self.me_id

    def _render(self, ticket: dict[str, Any], expand: bool) -> dict[str, Any]:
        data = dict(ticket)
        if expand:
            owner = self.users.get(ticket["owner_id"], {})
            data.update(
                group=self.groups[ticket["group_id"]]["name"],
                state=self.states[ticket["state_id"]]["name"],
                owner=owner.get("login", "-") if ticket["owner_id"] != 1 else "-",
                customer=self.users.get(ticket["customer_id"], {}).get("login"),
            )
        return data

    def _access(self, user_id: int, group_id: int) -> set[str]:
        user = self.users.get(user_id) or {}
        return set(user.get("group_ids", {}).get(str(group_id), []))

    def _may_own(self, user_id: int, group_id: int) -> bool:
        user = self.users.get(user_id) or {}
        return user_id == 1 or (
            user.get("active", False) and "full" in self._access(user_id, group_id)
        )

    def _group_id(self, name: str) -> int | None:
        return next((g["id"] for g in self.groups.values() if g["name"] == name), None)

    def _state_id(self, name: str) -> int | None:
        return next((s["id"] for s in self.states.values() if s["name"] == name), None)

    def _by_number(self, number: str) -> dict[str, Any] | None:
        return next((t for t in self.tickets.values() if t["number"] == str(number)), None)

    def _new_article(self, ticket_id: int, data: dict[str, Any]) -> Answer | dict[str, Any]:
        body = data.get("body")
        if body is None:
            return _error(422, "body is missing")
        if len(body) > 1_500_000:
            return _error(422, "body of article is too large")
        if len(data.get("content_type", "")) > 20:
            return _error(422, "content_type too long")
        article_id = max([*self.articles, 100]) + 1
        attachments = []
        for number, att in enumerate(data.get("attachments") or [], start=1):
            try:
                blob = base64.b64decode(att["data"], validate=True)
            except (binascii.Error, KeyError):
                return _error(422, "Invalid base64 for attachment")
            attachment_id = article_id * 100 + number
            self.blobs[attachment_id] = blob
            attachments.append(
                {
                    "id": attachment_id,
                    "filename": att["filename"],
                    "size": str(len(blob)),
                    "preferences": {"Mime-Type": att["mime-type"]},
                }
            )
        kind = data.get("type", "note")
        sender = data.get("sender", "Agent")
        article = {
            "id": article_id,
            "ticket_id": ticket_id,
            "type_id": next((k for k, v in ARTICLE_TYPES.items() if v == kind), 10),
            "sender_id": next((k for k, v in SENDERS.items() if v == sender), 1),
            "from": "Christopher Miller",
            "to": None,
            "cc": None,
            "subject": data.get("subject"),
            "content_type": data.get("content_type", "text/plain"),
            "body": body,
            "internal": bool(data.get("internal", False)),  # Zammad's default is false
            "created_by_id": self.me_id,
            "created_at": _ms(self.clock.now()),
            "updated_at": _ms(self.clock.now()),
            "attachments": attachments,
            "type": kind,
            "sender": sender,
        }
        self.articles[article_id] = article
        return article

    # -- tickets ----------------------------------------------------------------------------

    def _search(self, request: Any, query: Any, body: dict[str, Any]) -> Answer:
        condition = (body.get("condition") or {}).get("ticket.updated_at") or {}
        rows = sorted(self.tickets.values(), key=lambda t: (t["updated_at"], t["id"]))
        if condition.get("operator") == "after (absolute)" and condition.get("value"):
            floor = _parse(condition["value"])
            rows = [t for t in rows if _parse(t["updated_at"]) >= floor]
        # else: Zammad drops an invalid selector and returns everything (Corrections #4)
        per_page = min(int(body.get("per_page", 50)), 200)
        page = int(body.get("page", 1))
        chunk = rows[(page - 1) * per_page : page * per_page]
        return _json(200, [self._render(t, bool(body.get("expand"))) for t in chunk])

    def _get_ticket(self, request: Any, query: Any, body: Any, ticket_id: str) -> Answer:
        ticket = self.tickets.get(int(ticket_id))
        if ticket is None:
            return _error(404, f"Couldn't find Ticket with 'id'={ticket_id}")
        return _json(200, self._render(ticket, query.get("expand") == "true"))

    def _create_ticket(self, request: Any, query: Any, body: dict[str, Any]) -> Answer:
        if not body.get("group") and not body.get("group_id"):
            return _error(403, "The required value 'group_id' is missing.")
        group_id = self._group_id(body.get("group", ""))
        if group_id is None:
            return _error(422, f"No lookup value found for 'group': \"{body.get('group')}\"")
        owner_id = int(body.get("owner_id", 1))
        if not self._may_own(owner_id, group_id):
            return _error(422, f"Invalid value '{owner_id}' for field 'owner_id'!")
        state_id = self._state_id(body.get("state", "new"))
        if state_id is None:
            return _error(422, f"No lookup value found for 'state': \"{body.get('state')}\"")
        for user_id in body.get("mentions", []):
            if not self._access(int(user_id), group_id):
                return _error(422, "A mentioned user has no agent access to this ticket")
        ticket_id = max(self.tickets) + 1
        now = _ms(self.clock.now())
        ticket = {
            **load_fixture("zammad/ticket_created_19.json"),
            "id": ticket_id,
            "number": str(31000 + ticket_id),
            "title": body["title"],
            "group_id": group_id,
            "state_id": state_id,
            "owner_id": owner_id,
            "customer_id": int(body["customer_id"]),
            "organization_id": body.get("organization_id"),
            "created_at": now,
            "updated_at": now,
            "created_by_id": self.me_id,
            "updated_by_id": self.me_id,
        }
        ticket.update({k: v for k, v in body.items() if k in CUSTOM_FIELDS})
        self.tickets[ticket_id] = ticket
        tags = body.get("tags", "")
        if not isinstance(tags, str):
            del self.tickets[ticket_id]
            return _error(500, "undefined method `split' for an instance of Array")
        self.tags[ticket_id] = [t.strip() for t in tags.split(",") if t.strip()]
        for user_id in body.get("mentions", []):
            self.mentions.append(self._mention(ticket_id, int(user_id)))
        for link_type, targets in (body.get("links", {}).get("Ticket") or {}).items():
            for target in targets:
                self.links.append((link_type, ticket_id, int(target)))
        article = self._new_article(ticket_id, body["article"]) if body.get("article") else None
        if isinstance(article, tuple):
            del self.tickets[ticket_id]
            return article
        ticket["article_ids"] = [article["id"]] if article else []
        return _json(201, ticket)

    def _update_ticket(
        self, request: Any, query: Any, body: dict[str, Any], ticket_id: str
    ) -> Answer:
        ticket = self.tickets.get(int(ticket_id))
        if ticket is None:
            return _error(404, f"Couldn't find Ticket with 'id'={ticket_id}")
        if "group" in body:
            group_id = self._group_id(body["group"])
            if group_id is None:
                return _error(422, f"No lookup value found for 'group': \"{body['group']}\"")
            ticket["group_id"] = group_id
        if "state" in body:
            state_id = self._state_id(body["state"])
            if state_id is None:
                return _error(422, f"No lookup value found for 'state': \"{body['state']}\"")
            ticket["state_id"] = state_id
        if "pending_time" in body:
            ticket["pending_time"] = body["pending_time"]
        if "owner_id" in body:
            ticket["owner_id"] = int(body["owner_id"])
        closed = self.states[ticket["state_id"]]["state_type_id"] == 5
        if not closed and not self._may_own(ticket["owner_id"], ticket["group_id"]):
            ticket["owner_id"] = 1  # check_owner_active: silent reset (Corrections #1)
        ticket.update({k: v for k, v in body.items() if k in CUSTOM_FIELDS})
        self._touch(int(ticket_id))
        return _json(200, self._render(ticket, query.get("expand") == "true"))

    # -- tags -------------------------------------------------------------------------------

    def _get_tags(self, request: Any, query: dict[str, str], body: Any) -> Answer:
        return _json(200, {"tags": self.tags.get(int(query["o_id"]), [])})

    def _tag_add(self, request: Any, query: Any, body: dict[str, Any]) -> Answer:
        ticket_id = int(body["o_id"])
        tags = self.tags.setdefault(ticket_id, [])
        if body["item"] not in tags:
            tags.append(body["item"].strip())
            self._touch(ticket_id)
        return _json(201, True)

    def _tag_remove(self, request: Any, query: Any, body: dict[str, Any]) -> Answer:
        ticket_id = int(body["o_id"])
        tags = self.tags.setdefault(ticket_id, [])
        if body["item"] in tags:
            tags.remove(body["item"])
        self._touch(ticket_id)  # always, even for an absent tag
        return _json(200, True)

    # -- links ------------------------------------------------------------------------------

    def _get_links(self, request: Any, query: dict[str, str], body: Any) -> Answer:
        me = int(query["link_object_value"])
        mirror = {"parent": "child", "child": "parent", "normal": "normal"}
        items = [
            {"link_type": mirror[t], "link_object": "Ticket", "link_object_value": target}
            for t, source, target in self.links
            if source == me
        ] + [
            {"link_type": t, "link_object": "Ticket", "link_object_value": source}
            for t, source, target in self.links
            if target == me
        ]
        return _json(200, {"links": items, "assets": {}})

    def _link_add(self, request: Any, query: Any, body: dict[str, Any]) -> Answer:
        source = self._by_number(body.get("link_object_source_number", ""))
        if source is None:
            return _error(404, "Couldn't find Ticket")
        target_id = int(body["link_object_target_value"])
        link = (body["link_type"], source["id"], target_id)
        if link in self.links:
            return _json(201, {"id": None})
        self.links.append(link)
        self._touch(source["id"])
        self._touch(target_id)
        return _json(201, {"id": len(self.links), "link_object_source_value": source["id"]})

    # -- mentions ---------------------------------------------------------------------------

    def _mention(self, ticket_id: int, user_id: int) -> dict[str, Any]:
        return {
            "id": len(self.mentions) + 1,
            "mentionable_type": "Ticket",
            "mentionable_id": ticket_id,
            "user_id": user_id,
        }

    def _get_mentions(self, request: Any, query: dict[str, str], body: Any) -> Answer:
        if "mentionable_id" not in query or "mentionable_type" not in query:
            return _error(422, "mentionable_type and mentionable_id are required")
        ticket_id = int(query["mentionable_id"])
        return _json(
            200, {"mentions": [m for m in self.mentions if m["mentionable_id"] == ticket_id]}
        )

    def _mention_add(
        self, request: requests.PreparedRequest, query: Any, body: dict[str, Any]
    ) -> Answer:
        ticket_id = int(body["mentionable_id"])
        user_id = self.me_id
        if "From" in request.headers:
            if not self.admin_user:
                return _error(403, "Current user has no permission to use 'From'/'X-On-Behalf-Of'!")
            user_id = int(request.headers["From"])
        if not self._access(user_id, self.tickets[ticket_id]["group_id"]):
            return _error(403, "Not authorized")
        if not any(
            m["mentionable_id"] == ticket_id and m["user_id"] == user_id for m in self.mentions
        ):
            self.mentions.append(self._mention(ticket_id, user_id))
            self._touch(ticket_id)
        return _json(201, True)

    # -- articles ---------------------------------------------------------------------------

    def _by_ticket(self, request: Any, query: Any, body: Any, ticket_id: str) -> Answer:
        if int(ticket_id) not in self.tickets:
            return _error(404, f"Couldn't find Ticket with 'id'={ticket_id}")
        rows = [a for a in self.articles.values() if a["ticket_id"] == int(ticket_id)]
        return _json(200, sorted(rows, key=lambda a: (a["created_at"], a["id"])))

    def _article_add(self, request: Any, query: Any, body: dict[str, Any]) -> Answer:
        ticket_id = int(body["ticket_id"])
        if ticket_id not in self.tickets:
            return _error(404, f"Couldn't find Ticket with 'id'={ticket_id}")
        article = self._new_article(ticket_id, body)
        if isinstance(article, tuple):
            return article
        self._touch(ticket_id)
        return _json(201, article)

    def _attachment(self, request: Any, query: dict[str, str], body: Any, *ids: str) -> Answer:
        blob = self.blobs.get(int(ids[2]))
        if blob is None:
            return _error(404, "Couldn't find Store")
        return (200, {"Content-Type": "application/octet-stream"}, blob)  # type: ignore[return-value]

    # -- users and admin --------------------------------------------------------------------

    def _get_user(self, request: Any, query: Any, body: Any, user_id: str) -> Answer:
        user = self.users.get(int(user_id))
        if user is None:
            return _error(404, f"Couldn't find User with 'id'={user_id}")
        return _json(200, user)

    def _user_search(self, request: Any, query: dict[str, str], body: Any) -> Answer:
        needle = query.get("query", "").lower()
        rows = [
            u
            for u in self.users.values()
            if u["id"] != 1
            and any(needle in str(u.get(k) or "").lower() for k in ("login", "email", "firstname"))
        ]
        return _json(200, rows[: int(query.get("limit", 50))])

    def _attributes(self, request: Any, query: Any, body: Any) -> Answer:
        if not self.admin_object:
            return _error(403, "Not authorized (user)!")
        return _json(200, load_fixture("zammad/object_manager_attributes.json"))
