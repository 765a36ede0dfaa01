"""JSON renderings of the sandbox's rows, shaped like Zammad's: plain attributes, attributes
with association ids (create/update responses) and attributes with association names
(``expand=true``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sandbox.records import (
    Article,
    Group,
    HistoryEntry,
    Link,
    Mention,
    ObjectAttribute,
    Organization,
    Priority,
    Ticket,
    TicketState,
    User,
    iso,
)
from sandbox.state import SandboxState


def user_json(state: SandboxState, user: User, *, expand: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": user.id,
        "organization_id": user.organization_id,
        "login": user.login,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "email": user.email,
        "image": None,
        "image_source": None,
        "web": "",
        "phone": user.phone,
        "fax": "",
        "mobile": "",
        "department": "",
        "street": "",
        "zip": "",
        "city": "",
        "country": "",
        "address": "",
        "vip": user.vip,
        "verified": False,
        "active": user.active,
        "note": user.note,
        "last_login": None,
        "source": None,
        "login_failed": 0,
        "out_of_office": False,
        "out_of_office_start_at": None,
        "out_of_office_end_at": None,
        "out_of_office_replacement_id": None,
        "preferences": {},
        "updated_by_id": user.updated_by_id,
        "created_by_id": user.created_by_id,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
        "role_ids": list(user.role_ids),
        "organization_ids": [],
        "authorization_ids": [],
        "group_ids": {str(gid): list(levels) for gid, levels in user.group_access.items()},
    }
    if expand:
        org = state.db.organizations.get(user.organization_id or 0)
        out["roles"] = [state.db.roles[rid].name for rid in user.role_ids]
        out["organization"] = org.name if org else None
        out["organizations"] = []
        out["groups"] = {
            state.db.groups[gid].name: list(levels)
            for gid, levels in user.group_access.items()
            if gid in state.db.groups
        }
        out["permissions"] = state.user_permissions(user)
    return out


def organization_json(org: Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "shared": org.shared,
        "domain": org.domain,
        "domain_assignment": False,
        "active": org.active,
        "vip": org.vip,
        "note": org.note,
        "updated_by_id": 1,
        "created_by_id": 1,
        "created_at": iso(org.created_at),
        "updated_at": iso(org.updated_at),
    }


def group_json(group: Group, *, expand: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": group.id,
        "signature_id": None,
        "email_address_id": None,
        "name": group.name,
        "name_last": group.name_last,
        "parent_id": group.parent_id,
        "assignment_timeout": None,
        "follow_up_possible": group.follow_up_possible,
        "reopen_time_in_days": None,
        "follow_up_assignment": True,
        "active": group.active,
        "shared_drafts": True,
        "note": group.note,
        "updated_by_id": 1,
        "created_by_id": 1,
        "created_at": iso(group.created_at),
        "updated_at": iso(group.updated_at),
    }
    if expand:
        out["created_by"] = "-"
        out["updated_by"] = "-"
    return out


def state_json(sandbox: SandboxState, st: TicketState, *, expand: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": st.id,
        "state_type_id": st.state_type_id,
        "name": st.name,
        "next_state_id": st.next_state_id,
        "ignore_escalation": st.ignore_escalation,
        "default_create": st.default_create,
        "default_follow_up": st.default_follow_up,
        "note": st.note,
        "active": st.active,
        "updated_by_id": 1,
        "created_by_id": 1,
        "created_at": iso(st.created_at),
        "updated_at": iso(st.updated_at),
    }
    if expand:
        nxt = sandbox.db.states.get(st.next_state_id or 0)
        out["state_type"] = sandbox.db.state_types[st.state_type_id].name
        out["next_state"] = nxt.name if nxt else None
    return out


def priority_json(pr: Priority) -> dict[str, Any]:
    return {
        "id": pr.id,
        "name": pr.name,
        "default_create": pr.default_create,
        "ui_icon": pr.ui_icon,
        "ui_color": pr.ui_color,
        "note": None,
        "active": pr.active,
        "updated_by_id": 1,
        "created_by_id": 1,
        "created_at": iso(pr.created_at),
        "updated_at": iso(pr.updated_at),
    }


def attribute_json(attr: ObjectAttribute) -> dict[str, Any]:
    return {
        "id": attr.id,
        "object_lookup_id": 2,
        "name": attr.name,
        "display": attr.display,
        "data_type": attr.data_type,
        "data_option": attr.data_option,
        "data_option_new": attr.data_option_new,
        "editable": attr.editable,
        "active": attr.active,
        "screens": attr.screens,
        "to_create": attr.to_create,
        "to_migrate": attr.to_migrate,
        "to_delete": attr.to_delete,
        "to_config": attr.to_config,
        "position": attr.position,
        "created_by_id": attr.created_by_id,
        "updated_by_id": attr.updated_by_id,
        "created_at": iso(attr.created_at),
        "updated_at": iso(attr.updated_at),
        "object": attr.object,
    }


def _custom_value(value: object) -> object:
    return iso(value) if isinstance(value, datetime) else value


def ticket_json(state: SandboxState, ticket: Ticket, *, mode: str = "plain") -> dict[str, Any]:
    """``mode``: ``plain`` (``GET /tickets/{id}``), ``ids`` (create/update responses: adds
    ``article_ids``) or ``names`` (``expand=true``: adds association names too)."""
    out: dict[str, Any] = {
        "id": ticket.id,
        "group_id": ticket.group_id,
        "priority_id": ticket.priority_id,
        "state_id": ticket.state_id,
        "organization_id": ticket.organization_id,
        "number": ticket.number,
        "title": ticket.title,
        "owner_id": ticket.owner_id,
        "customer_id": ticket.customer_id,
        "note": ticket.note,
        "first_response_at": iso(ticket.first_response_at),
        "first_response_escalation_at": None,
        "first_response_in_min": None,
        "first_response_diff_in_min": None,
        "close_at": iso(ticket.close_at),
        "close_escalation_at": None,
        "close_in_min": None,
        "close_diff_in_min": None,
        "update_escalation_at": None,
        "update_in_min": None,
        "update_diff_in_min": None,
        "last_close_at": iso(ticket.last_close_at),
        "last_contact_at": iso(ticket.last_contact_at),
        "last_contact_agent_at": iso(ticket.last_contact_agent_at),
        "last_contact_customer_at": iso(ticket.last_contact_customer_at),
        "last_owner_update_at": iso(ticket.last_owner_update_at),
        "create_article_type_id": ticket.create_article_type_id,
        "create_article_sender_id": ticket.create_article_sender_id,
        "article_count": ticket.article_count,
        "escalation_at": None,
        "pending_time": iso(ticket.pending_time),
        "type": None,
        "time_unit": None,
        "preferences": dict(ticket.preferences),
        "updated_by_id": ticket.updated_by_id,
        "created_by_id": ticket.created_by_id,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
    }
    for name in state.ticket_attributes():
        out[name] = _custom_value(ticket.custom.get(name))
    if mode == "plain":
        return out
    out["article_ids"] = [a.id for a in state.articles_of(ticket.id)]
    out["ticket_time_accounting_ids"] = []
    if mode == "names":
        users = state.db.users
        org = state.db.organizations.get(ticket.organization_id or 0)
        type_id, sender_id = ticket.create_article_type_id, ticket.create_article_sender_id
        out.update(
            {
                "group": state.db.groups[ticket.group_id].name,
                "state": state.db.states[ticket.state_id].name,
                "priority": state.db.priorities[ticket.priority_id].name,
                "owner": users[ticket.owner_id].login,
                "customer": users[ticket.customer_id].login,
                "organization": org.name if org else None,
                "created_by": users[ticket.created_by_id].login,
                "updated_by": users[ticket.updated_by_id].login,
                "create_article_type": state.article_type_name(type_id) if type_id else None,
                "create_article_sender": state.sender_name(sender_id) if sender_id else None,
            }
        )
    return out


_CID_IMG = re.compile(r'(<img\s[^>]*?src=")cid:([^"]+)(")', re.IGNORECASE)


def article_json(state: SandboxState, article: Article) -> dict[str, Any]:
    """With association names and ``attachments``; inline images (``cid:``) are rewritten to
    attachment URLs and left out of ``attachments`` (``Ticket::Article.insert_urls``)."""
    body = article.body
    inline: set[int] = set()
    if "html" in article.content_type.lower() and article.attachments:
        by_cid = {a.content_id: a for a in article.attachments if a.content_id}

        def _rewrite(match: re.Match[str]) -> str:
            found = by_cid.get(match.group(2).strip("<>"))
            if found is None:
                return match.group(0)
            inline.add(found.id)
            url = f"/api/v1/ticket_attachment/{article.ticket_id}/{article.id}/{found.id}"
            return f"{match.group(1)}{url}?view=inline{match.group(3)}"

        body = _CID_IMG.sub(_rewrite, body)
    users = state.db.users
    origin = users.get(article.origin_by_id or 0)
    return {
        "id": article.id,
        "ticket_id": article.ticket_id,
        "type_id": article.type_id,
        "sender_id": article.sender_id,
        "from": article.from_,
        "to": article.to,
        "cc": article.cc,
        "subject": article.subject,
        "reply_to": article.reply_to,
        "message_id": article.message_id,
        "message_id_md5": None,
        "in_reply_to": article.in_reply_to,
        "content_type": article.content_type,
        "body": body,
        "internal": article.internal,
        "preferences": dict(article.preferences),
        "updated_by_id": article.updated_by_id,
        "created_by_id": article.created_by_id,
        "origin_by_id": article.origin_by_id,
        "created_at": iso(article.created_at),
        "updated_at": iso(article.updated_at),
        "detected_language": None,
        "time_unit": article.time_unit,
        "attachments": [
            {
                "id": att.id,
                "store_file_id": att.store_file_id,
                "filename": att.filename,
                "size": str(len(att.data)),
                "preferences": dict(att.preferences),
            }
            for att in article.attachments
            if att.id not in inline
        ],
        "type": state.article_type_name(article.type_id),
        "sender": state.sender_name(article.sender_id),
        "created_by": users[article.created_by_id].login,
        "updated_by": users[article.updated_by_id].login,
        "origin_by": origin.login if origin else None,
    }


def link_row_json(
    link: Link | None, *, link_type_id: int, source: int, target: int
) -> dict[str, Any]:
    """The ``links/add`` response: the row; a duplicate is not saved, so its id is null."""
    return {
        "id": link.id if link else None,
        "link_type_id": link_type_id,
        "link_object_source_id": 1,
        "link_object_source_value": source,
        "link_object_target_id": 1,
        "link_object_target_value": target,
        "created_at": iso(link.created_at) if link else None,
        "updated_at": iso(link.updated_at) if link else None,
    }


def mention_json(mention: Mention) -> dict[str, Any]:
    return {
        "id": mention.id,
        "mentionable_type": "Ticket",
        "mentionable_id": mention.ticket_id,
        "user_id": mention.user_id,
        "created_by_id": mention.created_by_id,
        "updated_by_id": mention.created_by_id,
        "created_at": iso(mention.created_at),
        "updated_at": iso(mention.updated_at),
    }


def history_entry_json(entry: HistoryEntry) -> dict[str, Any]:
    """One row as ``History.list`` renders it: lookups as names (``object``, ``type``,
    ``attribute`` when there is one), ``updated_at`` dropped, ``related_*`` only when set,
    and ``id_from``/``id_to`` and ``value_from``/``value_to`` each dropped as a pair when
    both are null."""
    out: dict[str, Any] = {
        "id": entry.id,
        "o_id": entry.o_id,
        "object": entry.object,
        "type": entry.type,
        "sourceable_type": entry.sourceable_type,
        "sourceable_id": entry.sourceable_id,
        "sourceable_name": entry.sourceable_name,
        "created_by_id": entry.created_by_id,
        "created_at": iso(entry.created_at),
    }
    if entry.attribute is not None:
        out["attribute"] = entry.attribute
    if entry.related_o_id is not None:
        out["related_o_id"] = entry.related_o_id
        out["related_object"] = entry.related_object
    if entry.id_from is not None or entry.id_to is not None:
        out["id_from"], out["id_to"] = entry.id_from, entry.id_to
    if entry.value_from is not None or entry.value_to is not None:
        out["value_from"], out["value_to"] = entry.value_from, entry.value_to
    return out


def ticket_history_json(state: SandboxState, ticket: Ticket) -> dict[str, Any]:
    """``GET /api/v1/ticket_history/{id}`` (``Ticket#history_get(true)``): the rows, and the
    assets of the ticket and of the users who made them."""
    rows = state.history_of(ticket.id)
    users = {ticket.customer_id, ticket.owner_id} | {h.created_by_id for h in rows}
    return {
        "history": [history_entry_json(h) for h in rows],
        "assets": {
            "Ticket": {str(ticket.id): ticket_json(state, ticket, mode="ids")},
            "User": {
                str(u): user_json(state, state.db.users[u])
                for u in sorted(users)
                if u in state.db.users
            },
        },
    }
