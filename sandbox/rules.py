"""Ticket rules as read in Zammad's source (``reference/zammad-api.md``): create in one
transaction (ticket, tags, mentions, article, links), partial update (owner reset, pending
time, unknown keys dropped), and the pending-state scheduler. Articles, tags, links and
mentions come from ``articles.py`` and ``relations.py``.

Every multi-step write validates everything first and applies afterwards, so an error leaves
nothing behind, as Zammad's transaction does. Each rule bumps ``updated_at`` as §4.5 of the
reference says."""

from __future__ import annotations

import secrets
from typing import Any

from sandbox.actor import Actor
from sandbox.articles import ArticleRules
from sandbox.records import (
    ApiError,
    Ticket,
    User,
    forbidden,
    invalid_value,
    missing_value,
    parse_time,
)
from sandbox.state import SandboxState, as_int, require_lookup
from sandbox.values import coerce_attribute, default_value, valid_email

__all__ = ["Actor", "Rules"]

_TICKET_WRITABLE = (
    "title",
    "group_id",
    "priority_id",
    "state_id",
    "organization_id",
    "owner_id",
    "customer_id",
    "note",
    "pending_time",
    "preferences",
)
_ASSOCIATIONS = (
    ("group", "group_id"),
    ("state", "state_id"),
    ("priority", "priority_id"),
    ("owner", "owner_id"),
    ("customer", "customer_id"),
    ("organization", "organization_id"),
)


class Rules(ArticleRules):
    """All write rules over one ``SandboxState``; outbound mail goes to ``outbox``."""

    # -- shared parameter handling ------------------------------------------------------------

    def _associations(self, params: dict[str, Any]) -> dict[str, Any]:
        """``association_name_to_id_convert``: names become ids; an ``*_id`` present wins;
        unknown names get 422 "No lookup value found"."""
        st = self.state
        out = dict(params)
        for name, key in _ASSOCIATIONS:
            value = out.pop(name, None)
            if key in out or not isinstance(value, str):
                continue
            found: object
            if name == "group":
                found = st.group_by_name(value)
            elif name == "state":
                found = next((s for s in st.db.states.values() if s.name == value), None)
            elif name == "priority":
                found = next((p for p in st.db.priorities.values() if p.name == value), None)
            elif name == "organization":
                found = next((o for o in st.db.organizations.values() if o.name == value), None)
            else:
                found = next((u for u in st.db.users.values() if u.login == value), None)
                found = found or next((u for u in st.db.users.values() if u.email == value), None)
            require_lookup(found, name, value)
            out[key] = found.id  # type: ignore[union-attr]
        return out

    def _check_ids(self, values: dict[str, Any], *, allow_guess: bool = False) -> None:
        """An ``*_id`` naming a missing row gets 422 (the group is checked by the policy)."""
        st = self.state
        tables: dict[str, dict[int, Any]] = {
            "state_id": st.db.states,
            "priority_id": st.db.priorities,
            "owner_id": st.db.users,
            "customer_id": st.db.users,
            "organization_id": st.db.organizations,
        }
        for key, table in tables.items():
            if key not in values or values[key] is None:
                continue
            value = values[key]
            guess = isinstance(value, str) and value.startswith("guess:")
            if key == "customer_id" and guess and allow_guess:
                continue
            ident = as_int(value)
            if ident is None or ident not in table:
                if key == "owner_id":
                    raise invalid_value(value, "owner_id")
                raise ApiError(422, f"Invalid value for param '{key}': {value}")
            values[key] = ident

    def _custom_values(self, params: dict[str, Any]) -> dict[str, Any]:
        attrs = self.state.ticket_attributes()
        return {
            name: coerce_attribute(attrs[name], value)
            for name, value in params.items()
            if name in attrs
        }

    # -- tickets ------------------------------------------------------------------------------

    def create_ticket(
        self, actor: Actor, params: dict[str, Any], *, import_mode: bool = False
    ) -> Ticket:
        """``POST /api/v1/tickets``: all or nothing."""
        st = self.state
        params = dict(params)
        customer_hash = params.pop("customer") if isinstance(params.get("customer"), dict) else None
        values = self._associations(params)
        if not actor.is_agent(st):
            for key in ("owner_id", "customer_id", "preferences"):
                values.pop(key, None)
            values["customer_id"] = actor.user.id
            customer_hash = None

        new_customer: dict[str, Any] | None = None
        customer = values.get("customer_id")
        if isinstance(customer, str) and customer.startswith("guess:"):
            email = customer[len("guess:") :]
            if not valid_email(email):
                raise ApiError(422, f"Invalid email '{email}' of customer", kind="plain")
            found = st.user_by_email(email)
            if found is None:
                new_customer = {"email": email.strip().lower()}
                values.pop("customer_id")
            else:
                values["customer_id"] = found.id
        elif customer in (None, "") and customer_hash:
            found = self._find_customer(customer_hash)
            if found is None:
                new_customer = {
                    k: str(customer_hash[k]).strip()
                    for k in ("firstname", "lastname", "email", "login", "phone")
                    if customer_hash.get(k)
                }
                if "email" in new_customer:
                    new_customer["email"] = new_customer["email"].lower()
            else:
                values["customer_id"] = found.id
        self._check_ids(values, allow_guess=True)

        group_id = values.get("group_id")
        if group_id in (None, ""):
            raise forbidden("The required value 'group_id' is missing.")
        gid = as_int(group_id)
        if gid is None or gid not in st.db.groups:
            raise ApiError(500, f"Couldn't find Group with 'id'={group_id}", kind="detail")
        if not self._may_create(actor, gid):
            raise forbidden()

        title = params.get("title")
        if not isinstance(title, str) or not title.strip():
            raise missing_value("title")
        if values.get("customer_id") is None and new_customer is None:
            raise missing_value("customer_id")
        state_id = values.get("state_id") or st.default_state("default_create").id
        self._check_state(state_id)
        pending_time = parse_time(values.get("pending_time"))
        if st.is_pending_state(state_id) and pending_time is None:
            raise missing_value("pending_time")
        if not st.is_pending_state(state_id):
            pending_time = None
        owner_id = values.get("owner_id") or 1
        if not st.owner_eligible(owner_id, gid):
            raise invalid_value(owner_id, "owner_id")
        custom = self._custom_values(values)
        tags = self._parse_create_tags(actor, params.get("tags"))
        mention_ids = self._check_create_mentions(actor, gid, params.get("mentions"))
        article_params = params.get("article")
        plan = (
            self.prepare_article(actor, gid, article_params)
            if isinstance(article_params, dict) and article_params
            else None
        )
        links = self._parse_create_links(params.get("links"))

        # -- apply: nothing below raises -------------------------------------------------------
        if new_customer is not None:
            values["customer_id"] = self.create_customer(**new_customer).id
        customer_user = st.db.users[values["customer_id"]]
        organization_id = customer_user.organization_id
        now = st.now()
        attrs = st.ticket_attributes()
        ticket = Ticket(
            id=st.next_id("tickets"),
            number=st.next_ticket_number(),
            title=title.strip(),
            group_id=gid,
            state_id=state_id,
            priority_id=values.get("priority_id") or st.default_priority_id(),
            customer_id=customer_user.id,
            organization_id=organization_id,
            owner_id=owner_id,
            pending_time=pending_time,
            note=values.get("note"),
            preferences=dict(values.get("preferences") or {}),
            created_at=now,
            updated_at=now,
            created_by_id=actor.user.id,
            updated_by_id=actor.user.id,
            custom={name: default_value(attr) for name, attr in attrs.items()} | custom,
        )
        if st.state_type_name(state_id) == "closed":
            ticket.close_at = ticket.last_close_at = now
        st.db.tickets[ticket.id] = ticket
        st.history_created(ticket)
        st.db.ticket_tags[ticket.id] = []
        for tag in tags:
            self.tag_add_unchecked(ticket, tag, by=actor.user.id)
        for user_id in mention_ids:
            self.mention_unchecked(ticket, user_id, actor.user.id)
        article = self.apply_article(actor, ticket, plan, import_mode=import_mode) if plan else None
        for link_type, target in links:
            self.link_unchecked(link_type, ticket.id, target)
        if article is not None and not import_mode:
            self._auto_reply(ticket, article)
        return ticket

    def _may_create(self, actor: Actor, group_id: int) -> bool:
        st = self.state
        if actor.is_agent(st):
            return actor.group_access(st, group_id, "create")
        return actor.has(st, "ticket.customer")

    def _find_customer(self, spec: dict[str, Any]) -> User | None:
        st = self.state
        ident = as_int(spec.get("id"))
        if ident is not None and ident in st.db.users:
            return st.db.users[ident]
        if spec.get("email"):
            found = st.user_by_email(str(spec["email"]))
            if found:
                return found
        if spec.get("login"):
            login = str(spec["login"]).lower()
            return next((u for u in st.db.users.values() if u.login == login), None)
        return None

    def _check_state(self, state_id: int) -> None:
        st = self.state
        state = st.db.states[state_id]
        if not state.active or st.state_type_name(state_id) == "merged":
            raise invalid_value(state_id, "state_id")

    def _parse_create_tags(self, actor: Actor, raw: object) -> list[str]:
        if raw in (None, "", [], {}):
            return []
        if not isinstance(raw, str):
            raise ApiError(500, f"undefined method 'split' for {type(raw).__name__}", kind="detail")
        tags: list[str] = []
        for item in raw.split(","):
            name = item.strip()
            if not name or "*" in name or name in tags:
                continue
            if not self._tag_allowed(actor, name):
                continue  # skipped silently, as Zammad does
            tags.append(name)
        return tags

    def _check_create_mentions(self, actor: Actor, group_id: int, raw: object) -> list[int]:
        if raw in (None, "", [], {}):
            return []
        st = self.state
        if not actor.is_agent(st):
            raise forbidden()
        ids: list[int] = []
        for value in raw if isinstance(raw, list) else [raw]:
            user = st.db.users.get(as_int(value) or 0)
            if user is None or not st.group_access(user, group_id, "read"):
                raise ApiError(422, "A mentioned user has no agent access to this ticket")
            if user.id not in ids:
                ids.append(user.id)
        return ids

    @staticmethod
    def _parse_create_links(raw: object) -> list[tuple[str, int]]:
        if raw in (None, "", [], {}):
            return []
        if not isinstance(raw, dict):
            raise ApiError(422, "Invalid link structure")
        out: list[tuple[str, int]] = []
        for target_object, by_type in raw.items():
            if not isinstance(by_type, dict):
                raise ApiError(422, "Invalid link structure (Object)")
            for link_type, ids in by_type.items():
                if not isinstance(ids, list):
                    raise ApiError(422, "Invalid link structure (Object → LinkType)")
                if target_object != "Ticket":
                    continue
                # Link.add checks nothing about the target: a wrong id makes a dangling link.
                out.extend((str(link_type), as_int(value) or 0) for value in ids)
        return out

    def update_ticket(self, actor: Actor, ticket: Ticket, params: dict[str, Any]) -> Ticket:
        """``PUT /api/v1/tickets/{id}``: partial; ``tags`` and unknown keys are ignored."""
        st = self.state
        if not actor.may(st, ticket, "change"):
            raise forbidden()
        params = dict(params)
        article_params = params.pop("article", None)
        values = self._associations(params)
        values.pop("number", None)
        if not actor.is_agent(st):
            for key in ("owner_id", "customer_id", "organization_id", "preferences"):
                values.pop(key, None)
        self._check_ids(values)
        changes = {k: values[k] for k in _TICKET_WRITABLE if k in values}
        for required in ("group_id", "state_id", "priority_id", "customer_id"):
            if required in changes and changes[required] in (None, ""):
                raise missing_value(required)
        if "group_id" in changes:
            gid = as_int(changes["group_id"])
            if gid is None or gid not in st.db.groups:
                raise ApiError(422, f"Invalid value for param 'group_id': {changes['group_id']}")
            changes["group_id"] = gid
        if "title" in changes and not str(changes["title"] or "").strip():
            raise missing_value("title")
        custom = self._custom_values(values)
        new_state = changes.get("state_id", ticket.state_id)
        if "state_id" in changes:
            self._check_state(new_state)
        pending_time = ticket.pending_time
        if "pending_time" in changes:
            pending_time = parse_time(changes["pending_time"])
        if new_state != ticket.state_id and not st.is_pending_state(new_state):
            pending_time = None  # reset_pending_time
        if st.is_pending_state(new_state) and pending_time is None:
            raise missing_value("pending_time")
        group_id = changes.get("group_id", ticket.group_id)
        owner_id = changes.get("owner_id", ticket.owner_id) or 1
        closed = st.state_type_name(new_state) == "closed"
        if not st.owner_eligible(owner_id, group_id):
            if closed:
                raise invalid_value(owner_id, "owner_id")
            owner_id = 1  # check_owner_active: silently unassigned
        plan = (
            self.prepare_article(actor, group_id, article_params)
            if isinstance(article_params, dict) and article_params
            else None
        )

        # -- apply ------------------------------------------------------------------------------
        before = _snapshot(ticket)
        old_state = ticket.state_id
        now = st.now()
        if "title" in changes:
            ticket.title = str(changes["title"]).strip()
        if "customer_id" in changes and changes["customer_id"] != ticket.customer_id:
            ticket.customer_id = changes["customer_id"]
            ticket.organization_id = st.db.users[ticket.customer_id].organization_id
        if "organization_id" in changes:
            ticket.organization_id = self._organization_for(ticket, changes["organization_id"])
        for key in ("priority_id", "note"):
            if key in changes:
                setattr(ticket, key, changes[key])
        if "preferences" in changes and isinstance(changes["preferences"], dict):
            ticket.preferences = {**ticket.preferences, **changes["preferences"]}
        ticket.group_id = group_id
        ticket.state_id = new_state
        ticket.pending_time = pending_time
        if owner_id != ticket.owner_id:
            ticket.owner_id = owner_id
            ticket.last_owner_update_at = now
        if closed and old_state != new_state:
            ticket.close_at = ticket.close_at or now
            ticket.last_close_at = now
        ticket.custom.update(custom)
        if _snapshot(ticket) != before:
            st.saved(ticket, actor.user.id)
        if plan is not None:
            self.apply_article(actor, ticket, plan)
        return ticket

    def _organization_for(self, ticket: Ticket, organization_id: object) -> int | None:
        """``check_default_organization``: an explicit organization is kept only if the
        customer belongs to it; otherwise the customer's own organization applies."""
        del organization_id  # a sandbox customer belongs to at most one organization
        return self.state.db.users[ticket.customer_id].organization_id

    def create_customer(self, **attrs: Any) -> User:
        st = self.state
        now = st.now()
        email = str(attrs.pop("email", "") or "").lower()
        login = str(attrs.pop("login", "") or email or f"customer-{secrets.token_hex(4)}").lower()
        user = User(
            id=st.next_id("users"),
            login=login,
            email=email,
            created_at=now,
            updated_at=now,
            role_ids=[_role_id(st, "Customer")],
            **attrs,
        )
        st.db.users[user.id] = user
        return user

    # -- scheduler ----------------------------------------------------------------------------

    def process_pending(self) -> list[int]:
        """``Ticket.process_pending``: a pending *action* whose time has come moves to its
        next state (a save by user 1); a pending *reminder* changes nothing."""
        st = self.state
        now = st.now()
        changed: list[int] = []
        for ticket in st.db.tickets.values():
            state = st.db.states[ticket.state_id]
            if st.state_type_name(ticket.state_id) != "pending action":
                continue
            if ticket.pending_time is None or ticket.pending_time > now or not state.next_state_id:
                continue
            ticket.state_id = state.next_state_id
            if not st.is_pending_state(ticket.state_id):
                ticket.pending_time = None
            if st.state_type_name(ticket.state_id) == "closed":
                ticket.close_at = ticket.close_at or now
                ticket.last_close_at = now
            st.saved(ticket, 1)
            changed.append(ticket.id)
        return changed


# --- helpers ----------------------------------------------------------------------------------


def _role_id(state: SandboxState, name: str) -> int:
    return next(r.id for r in state.db.roles.values() if r.name == name)


def _snapshot(ticket: Ticket) -> tuple[Any, ...]:
    return (
        ticket.title,
        ticket.group_id,
        ticket.state_id,
        ticket.priority_id,
        ticket.owner_id,
        ticket.customer_id,
        ticket.organization_id,
        ticket.pending_time,
        ticket.note,
        tuple(sorted(ticket.preferences.items(), key=lambda kv: kv[0])).__repr__(),
        tuple(sorted(ticket.custom.items(), key=lambda kv: kv[0])).__repr__(),
    )
