"""Tags, links and mentions (``tag.rb``, ``link.rb``, ``mention.rb``): idempotence, what bumps
``updated_at`` (a tag remove always; a link change on both tickets), the link direction
quirks (add: source by number, target by id; remove: source by id), and the history rows a
tag change writes (``tag/writes_to_ticket_history.rb``: the tag in ``value_to``, added or
removed alike; a link change writes none in 6.5)."""

from __future__ import annotations

from typing import Any

from sandbox.actor import Actor
from sandbox.records import ApiError, Link, Mention, Ticket, forbidden
from sandbox.state import LINK_TYPE_MAP, SandboxState, as_int
from sandbox.views import link_row_json


class RelationRules:
    """Tag, link and mention rules over one ``SandboxState``."""

    def __init__(self, state: SandboxState, outbox: list[dict[str, Any]]) -> None:
        self.state = state
        self.outbox = outbox
        self.auto_reply_active = True

    def _tag_allowed(self, actor: Actor, name: str) -> bool:
        st = self.state
        return name in st.db.tag_items or st.settings.tag_new or actor.has(st, "admin.tag")

    # -- tags ---------------------------------------------------------------------------------

    def tag_add(self, actor: Actor, ticket: Ticket, item: object) -> bool:
        st = self.state
        if not actor.may(st, ticket, "change") or not actor.is_agent(st):
            raise forbidden()
        name = _tag_name(item)
        if name in st.tags_of(ticket.id):
            return True  # a duplicate add is a no-op and does not touch
        if not self._tag_allowed(actor, name):
            raise forbidden()
        self.tag_add_unchecked(ticket, name, by=actor.user.id)
        return True

    def tag_add_unchecked(self, ticket: Ticket, name: str, *, by: int = 1) -> None:
        """Add a tag as user ``by`` (1, the system, for a trigger or a macro)."""
        st = self.state
        st.ensure_tag_item(name)
        tags = st.tags_of(ticket.id)
        if name not in tags:
            tags.append(name)
            st.touch(ticket)
            st.history_add("added", "Ticket", ticket.id, by, attribute="tag", value_to=name)

    def tag_remove(self, actor: Actor, ticket: Ticket, item: object) -> bool:
        """Always ``true``, always touches, creates the tag item if unknown."""
        st = self.state
        if not actor.may(st, ticket, "change") or not actor.is_agent(st):
            raise forbidden()
        name = _tag_name(item)
        st.ensure_tag_item(name)
        tags = st.tags_of(ticket.id)
        if name in tags:
            tags.remove(name)
            st.history_add(
                "removed", "Ticket", ticket.id, actor.user.id, attribute="tag", value_to=name
            )
        st.touch(ticket)
        return True

    # -- links --------------------------------------------------------------------------------

    def link_add(self, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
        """Source by NUMBER, target by ID; a duplicate answers 201 with a null id."""
        st = self.state
        _require_ticket_object(params.get("link_object_source"))
        _require_ticket_object(params.get("link_object_target"))
        source = st.ticket_by_number(params.get("link_object_source_number"))
        if source is None:
            raise ApiError(404, "Couldn't find Ticket")
        target = st.ticket(params.get("link_object_target_value"))
        if not actor.may(st, source, "read") or not actor.may(st, target, "change"):
            raise forbidden()
        link_type = params.get("link_type")
        if link_type in (None, ""):
            raise ApiError(422, "Validation failed: Name can't be blank")
        link = self.link_unchecked(str(link_type), source.id, target.id)
        type_id = st.link_type_id(str(link_type), create=True) or 0
        return link_row_json(link, link_type_id=type_id, source=source.id, target=target.id)

    def link_unchecked(self, link_type: str, source: int, target: int) -> Link | None:
        """``Link.add``: touches both tickets first; a duplicate is not saved."""
        st = self.state
        st.touch_id(source)
        st.touch_id(target)
        type_id = st.link_type_id(link_type, create=True) or 0
        reverse_id = st.link_type_id(LINK_TYPE_MAP.get(link_type), create=False)
        for link in st.db.links.values():
            if (link.link_type_id, link.source_value, link.target_value) in (
                (type_id, source, target),
                (reverse_id, target, source),
            ):
                return None
        now = st.now()
        link = Link(st.next_id("links"), type_id, source, target, now, now)
        st.db.links[link.id] = link
        return link

    def link_remove(self, actor: Actor, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Source by ID (``link_object_source_value``). Removes both directions; the answer
        is what the reverse-direction delete removed (``Link.remove``'s last expression)."""
        st = self.state
        target = st.ticket(params.get("link_object_target_value"))
        if not actor.may(st, target, "change"):
            raise forbidden()
        source_value = as_int(params.get("link_object_source_value"))
        link_type = params.get("link_type")
        link_type = str(link_type) if link_type not in (None, "") else None
        forward = st.link_type_id(link_type, create=link_type is not None)
        reverse = st.link_type_id(LINK_TYPE_MAP.get(link_type or ""), create=False)
        self._links_delete(forward, source_value, target.id)
        removed = self._links_delete(reverse, target.id, source_value)
        return [
            link_row_json(
                link,
                link_type_id=link.link_type_id,
                source=link.source_value,
                target=link.target_value,
            )
            for link in removed
        ]

    def _links_delete(
        self, type_id: int | None, source: int | None, target: int | None
    ) -> list[Link]:
        st = self.state
        if type_id is None or source is None or target is None:
            return []
        doomed = [
            link
            for link in st.db.links.values()
            if (link.link_type_id, link.source_value, link.target_value)
            == (type_id, source, target)
        ]
        for link in doomed:
            del st.db.links[link.id]
            st.touch_id(link.source_value)
            st.touch_id(link.target_value)
        return doomed

    def links_of(self, ticket_id: int) -> list[dict[str, Any]]:
        """``Link.list``: types from the queried ticket's point of view."""
        st = self.state
        out: list[dict[str, Any]] = []
        for link in st.db.links.values():
            if link.source_value == ticket_id:
                name = st.db.link_types.get(link.link_type_id)
                out.append(
                    {
                        "link_type": LINK_TYPE_MAP.get(name or ""),
                        "link_object": "Ticket",
                        "link_object_value": link.target_value,
                    }
                )
        for link in st.db.links.values():
            if link.target_value == ticket_id:
                out.append(
                    {
                        "link_type": st.db.link_types.get(link.link_type_id),
                        "link_object": "Ticket",
                        "link_object_value": link.source_value,
                    }
                )
        return out

    # -- mentions -----------------------------------------------------------------------------

    def mention_add(self, actor: Actor, ticket: Ticket) -> bool:
        """``POST /api/v1/mentions`` subscribes the caller only."""
        st = self.state
        if not actor.group_access(st, ticket.group_id, "read"):
            raise forbidden()
        self.mention_unchecked(ticket, actor.user.id, actor.user.id)
        return True

    def mention_unchecked(self, ticket: Ticket, user_id: int, created_by_id: int) -> None:
        st = self.state
        if any(m.user_id == user_id for m in st.mentions_of(ticket.id)):
            return
        now = st.now()
        mention = Mention(st.next_id("mentions"), ticket.id, user_id, created_by_id, now, now)
        st.db.mentions[mention.id] = mention
        st.touch(ticket)


def _tag_name(item: object) -> str:
    name = str(item or "").strip()
    if not name:
        raise ApiError(422, "Need 'item' param")
    if "," in name or "*" in name:
        raise ApiError(422, f"Invalid tag name '{name}'")
    return name


def _require_ticket_object(value: object) -> None:
    if value not in (None, "Ticket"):
        raise ApiError(422, "The object could not be found.")
