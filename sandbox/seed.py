"""Loading a sandbox from seed JSON (``sandbox/demo.json`` is the demo's). Top-level keys, all
optional, applied in this order::

    settings       {"system_id": "31", "tag_new": true, "fqdn": "zammad.example.com"}
    groups         [{"name": "Support", "email_address": "...", "email_name": "..."}]
    states         [{"name": "parked", "state_type": "pending reminder",
                     "ignore_escalation": true, "next_state": null}]
    organizations  [{"name": "...", "note": "...", "vip": false}]
    users          [{"login": "...", "firstname": "...", "lastname": "...", "email": "...",
                     "roles": ["Agent"], "groups": {"Support": ["read", "change"]},
                     "organization": "...", "active": true, "phone": "...",
                     "tokens": [{"name": "...", "permissions": ["ticket.agent"],
                                 "token": "fixed value, or omit for a random one"}]}]
    attributes     [{"name": "...", "data_type": "select", "display": "...",
                     "data_option": {...}}]
    tags           ["escalation", ...]                 (the tag catalogue)
    tickets        [{"title", "group", "customer", "owner", "state", "priority",
                     "created_by", "minutes_ago", "pending_in_minutes", "tags": [...],
                     "attributes": {...},
                     "articles": [{"type", "sender", "internal", "from", "to", "subject",
                                   "body", "content_type", "created_by", "minutes_ago",
                                   "attachments": [{"filename", "mime_type",
                                                    "text" | "base64"}]}]}]

Seeded tickets are imported: no outbound mail, no auto-reply. Their times are ``minutes_ago``
before the sandbox clock's now."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sandbox.actor import Actor
from sandbox.records import User
from sandbox.rules import Rules
from sandbox.state import Clock, SandboxState


class ZammadSandbox(Protocol):
    """What loading a seed needs of the sandbox (``sandbox.core.ZammadSandbox`` has it); a
    protocol, so this module does not import the one that calls it."""

    lock: Any
    state: SandboxState
    rules: Rules
    clock: Clock

    def set_setting(self, name: str, value: Any) -> None: ...

    def add_group(self, name: str, *, email_address: str = "", email_name: str = "") -> int: ...

    def add_state(
        self,
        name: str,
        state_type: str,
        *,
        next_state: str | None = None,
        ignore_escalation: bool = False,
    ) -> int: ...

    def add_organization(self, name: str, *, note: str = "", vip: bool = False) -> int: ...

    def add_attribute(
        self,
        name: str,
        data_type: str,
        *,
        display: str | None = None,
        data_option: Mapping[str, Any] | None = None,
        active: bool = True,
    ) -> int: ...

    def create_tag_item(self, name: str) -> None: ...

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
    ) -> int: ...

    def issue_token(
        self,
        login: str,
        permissions: Iterable[str] = ("ticket.agent",),
        *,
        value: str | None = None,
        name: str = "api",
        expires_at: datetime | None = None,
    ) -> str: ...

    def user_record(self, login_or_email: str) -> User: ...


class _FixedClock:
    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        return self.instant


def load_seed_file(sandbox: ZammadSandbox, path: Path) -> None:
    load_seed(sandbox, json.loads(path.read_text(encoding="utf-8")))


def load_seed(sandbox: ZammadSandbox, data: dict[str, Any]) -> None:
    with sandbox.lock:
        for name, value in (data.get("settings") or {}).items():
            sandbox.set_setting(name, value)
        for group in data.get("groups") or []:
            sandbox.add_group(
                group["name"],
                email_address=group.get("email_address", ""),
                email_name=group.get("email_name", ""),
            )
        for state in data.get("states") or []:
            sandbox.add_state(
                state["name"],
                state["state_type"],
                next_state=state.get("next_state"),
                ignore_escalation=bool(state.get("ignore_escalation", False)),
            )
        for org in data.get("organizations") or []:
            sandbox.add_organization(
                org["name"], note=org.get("note", ""), vip=org.get("vip", False)
            )
        for user in data.get("users") or []:
            _load_user(sandbox, user)
        for attr in data.get("attributes") or []:
            sandbox.add_attribute(
                attr["name"],
                attr["data_type"],
                display=attr.get("display"),
                data_option=attr.get("data_option"),
            )
        for tag in data.get("tags") or []:
            sandbox.create_tag_item(tag)
        for ticket in data.get("tickets") or []:
            _load_ticket(sandbox, ticket)


def _load_user(sandbox: ZammadSandbox, spec: dict[str, Any]) -> None:
    sandbox.add_user(
        spec["login"],
        firstname=spec.get("firstname", ""),
        lastname=spec.get("lastname", ""),
        email=spec.get("email"),
        roles=spec.get("roles", ["Agent"]),
        groups=spec.get("groups"),
        organization=spec.get("organization"),
        active=spec.get("active", True),
        phone=spec.get("phone", ""),
    )
    for token in spec.get("tokens") or []:
        sandbox.issue_token(
            spec["login"],
            token.get("permissions", ["ticket.agent"]),
            value=token.get("token"),
            name=token.get("name", "api"),
        )


@contextmanager
def _clock_at(sandbox: ZammadSandbox, instant: datetime) -> Iterator[None]:
    state = sandbox.state
    saved = state.clock
    state.clock = _FixedClock(instant)
    try:
        yield
    finally:
        state.clock = saved


def _article_params(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: spec[k]
        for k in ("type", "sender", "internal", "from", "to", "subject", "body", "content_type")
        if k in spec
    }
    attachments = []
    for item in spec.get("attachments") or []:
        if "base64" in item:
            data = item["base64"]
        else:
            data = base64.b64encode(item.get("text", "").encode()).decode("ascii")
        attachments.append(
            {"filename": item["filename"], "mime-type": item["mime_type"], "data": data}
        )
    out["attachments"] = attachments
    return out


def _load_ticket(sandbox: ZammadSandbox, spec: dict[str, Any]) -> None:
    rules = sandbox.rules
    base = sandbox.clock.now()

    def at(item: dict[str, Any]) -> datetime:
        return base - timedelta(minutes=float(item.get("minutes_ago", 0)))

    customer = sandbox.user_record(spec["customer"])
    creator = sandbox.user_record(spec.get("created_by", spec["customer"]))
    params: dict[str, Any] = {
        "title": spec["title"],
        "group": spec.get("group", "Support"),
        "customer_id": customer.id,
        **(spec.get("attributes") or {}),
    }
    for key in ("state", "priority", "owner"):
        if key in spec:
            params[key] = spec[key]
    if "pending_in_minutes" in spec:
        params["pending_time"] = base + timedelta(minutes=float(spec["pending_in_minutes"]))
    articles = list(spec.get("articles") or [])
    if articles:
        params["article"] = _article_params(articles[0])
    with _clock_at(sandbox, at(spec)):
        ticket = rules.create_ticket(Actor(creator, postmaster=True), params, import_mode=True)
    for item in articles[1:]:
        author_login = item.get("created_by", spec.get("created_by", spec["customer"]))
        author = sandbox.user_record(author_login)
        actor = Actor(author, postmaster=True)
        with _clock_at(sandbox, at(item)):
            plan = rules.prepare_article(actor, ticket.group_id, _article_params(item))
            rules.apply_article(actor, ticket, plan, import_mode=True)
    with _clock_at(sandbox, max(at(item) for item in [spec, *articles])):
        for tag in spec.get("tags") or []:
            rules.tag_add_unchecked(ticket, tag)
