"""Articles (``creates_ticket_articles.rb``, ``ticket/article.rb``): defaults, limits,
attachments, mention anchors, the side effects on the ticket, and the mail Zammad sends: every
new email article from Agent or System (whatever ``internal`` says), and the seeded, active
trigger "auto reply (on new tickets)"."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from typing import Any

from sandbox.actor import Actor
from sandbox.records import ApiError, Article, Attachment, Ticket, cast_bool, forbidden, not_found
from sandbox.relations import RelationRules
from sandbox.state import as_int, require_lookup
from sandbox.values import (
    AttachmentData,
    extract_inline_images,
    parse_attachments,
    too_long,
    valid_email,
)

BODY_LIMIT = 1_500_000
CONTENT_TYPE_LIMIT = 20
ADDRESS_LIMIT = 3000
COMMUNICATION_TYPES_AUTO_REPLY = ("email", "phone", "web")
_MENTION_RE = re.compile(r"<a\b[^>]*\bdata-mention-user-id=[\"']?(\d+)", re.IGNORECASE)


@dataclass
class ArticlePlan:
    """A validated article, ready to apply."""

    type_id: int
    sender_id: int
    internal: bool
    content_type: str
    body: str
    fields: dict[str, Any]
    preferences: dict[str, Any]
    attachments: list[AttachmentData] = field(default_factory=list)
    mention_user_ids: list[int] = field(default_factory=list)


class ArticleRules(RelationRules):
    """Article rules; tickets (``Rules``) build on them."""

    # -- articles -----------------------------------------------------------------------------

    def create_article(self, actor: Actor, params: dict[str, Any]) -> Article:
        """``POST /api/v1/ticket_articles``: needs ``create`` on the ticket's group."""
        st = self.state
        if params.get("ticket_id") in (None, ""):
            raise ApiError(404, "Couldn't find Ticket without an ID")
        ticket = st.ticket(params["ticket_id"])
        if not actor.may(st, ticket, "create"):
            raise forbidden()
        plan = self.prepare_article(actor, ticket.group_id, params)
        return self.apply_article(actor, ticket, plan)

    def prepare_article(self, actor: Actor, group_id: int, params: dict[str, Any]) -> ArticlePlan:
        st = self.state
        if params.get("body") is None:
            raise ApiError(422, "Need at least an 'article body' field.")
        type_id = self._lookup_article_type(params)
        sender_id = self._lookup_sender(actor, params)
        internal = bool(cast_bool(params.get("internal")))
        if not actor.is_agent(st):
            sender_id = st.sender_id("Customer") or 2
            if st.article_type_name(type_id) not in ("note", "web"):
                type_id = st.article_type_id("note") or 10
            internal = False
        content_type = str(params.get("content_type") or "text/plain")
        if len(content_type) > CONTENT_TYPE_LIMIT:
            raise too_long("content_type", CONTENT_TYPE_LIMIT)
        fields: dict[str, Any] = {}
        for key, attr in (
            ("from", "from_"),
            ("to", "to"),
            ("cc", "cc"),
            ("reply_to", "reply_to"),
            ("subject", "subject"),
            ("message_id", "message_id"),
            ("in_reply_to", "in_reply_to"),
        ):
            value = params.get(key)
            if value is None:
                continue
            value = str(value)
            if len(value) > ADDRESS_LIMIT:
                raise too_long(key, ADDRESS_LIMIT)
            fields[attr] = value
        if fields.get("subject"):
            fields["subject"] = re.sub(r"[\s]", " ", fields["subject"])
        if params.get("time_unit") not in (None, ""):
            fields["time_unit"] = str(params["time_unit"])
        if actor.is_agent(st) and as_int(params.get("origin_by_id")) in st.db.users:
            fields["origin_by_id"] = as_int(params.get("origin_by_id"))
        body = str(params["body"])
        if len(body) > BODY_LIMIT:
            raise ApiError(
                422,
                f"body of article is too large, {len(body)} chars - only {BODY_LIMIT} allowed",
            )
        attachments = parse_attachments(params.get("attachments"), keep_content_id=actor.postmaster)
        if "html" in content_type.lower():
            body, inline = extract_inline_images(body)
            attachments = inline + attachments
        if st.article_type_name(type_id) == "email" and not actor.postmaster:
            # check_email_recipient_raises_error is set for API calls, not for the postmaster
            to = fields.get("to") or ""
            addresses = [a for _, a in getaddresses([to]) if a]
            if len(addresses) != 1 or "," in to or not valid_email(addresses[0]):
                raise ApiError(422, "Sending an email without a valid recipient is not possible.")
        mention_ids: list[int] = []
        if "html" in content_type.lower() and not actor.postmaster:
            for raw_id in _MENTION_RE.findall(body):
                if not actor.is_agent(st):
                    raise forbidden()
                user = st.db.users.get(int(raw_id))
                if user is None:
                    raise not_found("User", raw_id)
                if not st.group_access(user, group_id, "read"):
                    raise ApiError(422, "A mentioned user has no agent access to this ticket")
                if user.id not in mention_ids:
                    mention_ids.append(user.id)
        preferences = params.get("preferences")
        return ArticlePlan(
            type_id=type_id,
            sender_id=sender_id,
            internal=internal,
            content_type=content_type,
            body=body,
            fields=fields,
            preferences=dict(preferences) if isinstance(preferences, dict) else {},
            attachments=attachments,
            mention_user_ids=mention_ids,
        )

    def _lookup_article_type(self, params: dict[str, Any]) -> int:
        st = self.state
        if params.get("type_id") not in (None, ""):
            type_id = as_int(params["type_id"])
            if type_id is None or not 1 <= type_id <= 13:
                raise ApiError(422, f"Invalid value for param 'type_id': {params['type_id']}")
            return type_id
        name = params.get("type")
        if name in (None, ""):
            return st.article_type_id("note") or 10
        found = st.article_type_id(str(name))
        require_lookup(found, "type", name)
        return found or 10

    def _lookup_sender(self, actor: Actor, params: dict[str, Any]) -> int:
        st = self.state
        if params.get("sender_id") not in (None, ""):
            sender_id = as_int(params["sender_id"])
            if sender_id is None or not 1 <= sender_id <= 3:
                raise ApiError(422, f"Invalid value for param 'sender_id': {params['sender_id']}")
            return sender_id
        name = params.get("sender")
        if name in (None, ""):
            return st.sender_id("Agent" if actor.is_agent(st) else "Customer") or 1
        found = st.sender_id(str(name))
        require_lookup(found, "sender", name)
        return found or 1

    def apply_article(
        self, actor: Actor, ticket: Ticket, plan: ArticlePlan, *, import_mode: bool = False
    ) -> Article:
        st = self.state
        now = st.now()
        type_name = st.article_type_name(plan.type_id)
        sender_name = st.sender_name(plan.sender_id)
        fields = dict(plan.fields)
        if sender_name != "Customer" and type_name == "note":
            author = st.db.users.get(fields.get("origin_by_id") or actor.user.id, actor.user)
            fields["from_"] = f"{author.firstname} {author.lastname}".strip() or author.login
        if type_name == "email" and sender_name != "Customer" and not import_mode:
            group = st.db.groups[ticket.group_id]
            fields["from_"] = fields.get("from_") or f"{group.email_name} <{group.email_address}>"
            fields["message_id"] = f"<{now:%Y%m%d%H%M%S}.{secrets.token_hex(6)}@{st.settings.fqdn}>"
            fields["subject"] = fields.get("subject") or ticket.title
        article = Article(
            id=st.next_id("articles"),
            ticket_id=ticket.id,
            type_id=plan.type_id,
            sender_id=plan.sender_id,
            body=plan.body,
            content_type=plan.content_type,
            internal=plan.internal,
            created_at=now,
            updated_at=now,
            created_by_id=actor.user.id,
            updated_by_id=actor.user.id,
            preferences=dict(plan.preferences),
            **fields,
        )
        for filename, data, prefs, content_id in plan.attachments:
            article.attachments.append(
                Attachment(
                    id=st.next_id("attachments"),
                    store_file_id=st.next_id("store_files"),
                    filename=filename,
                    data=data,
                    preferences=dict(prefs),
                    content_id=content_id,
                )
            )
        st.db.articles[article.id] = article
        st.history_add(
            "created", "Ticket::Article", article.id, actor.user.id, related=("Ticket", ticket.id)
        )
        self._ticket_after_article(actor, ticket, article)
        for user_id in plan.mention_user_ids:
            self.mention_unchecked(ticket, user_id, actor.user.id)
        if type_name == "email" and sender_name in ("Agent", "System") and not import_mode:
            self._send(ticket, article, reason="email_article")
        return article

    def _ticket_after_article(self, actor: Actor, ticket: Ticket, article: Article) -> None:
        """Article side effects on the ticket: count, contact times, new → open, touch."""
        st = self.state
        ticket.article_count += 1
        if ticket.create_article_type_id is None:
            ticket.create_article_type_id = article.type_id
            ticket.create_article_sender_id = article.sender_id
        type_name = st.article_type_name(article.type_id)
        sender_name = st.sender_name(article.sender_id)
        saved = False
        if type_name != "note":
            if sender_name == "Customer":
                ticket.last_contact_customer_at = ticket.last_contact_at = article.created_at
                saved = True
            elif sender_name == "Agent" and not article.internal:
                ticket.last_contact_agent_at = ticket.last_contact_at = article.created_at
                ticket.first_response_at = ticket.first_response_at or article.created_at
                saved = True
                if ticket.state_id == st.default_state("default_create").id:
                    ticket.state_id = st.default_state("default_follow_up").id
        if saved:
            st.saved(ticket, actor.user.id)
        else:
            st.touch(ticket)

    # -- outbound mail ------------------------------------------------------------------------

    def _send(self, ticket: Ticket, article: Article, *, reason: str) -> None:
        self.outbox.append(
            {
                "to": article.to,
                "subject": article.subject,
                "ticket_id": ticket.id,
                "article_id": article.id,
                "reason": reason,
            }
        )

    def _auto_reply(self, ticket: Ticket, first: Article) -> None:
        """The seeded, active trigger "auto reply (on new tickets)"."""
        st = self.state
        if not self.auto_reply_active:
            return
        if st.article_type_name(first.type_id) not in COMMUNICATION_TYPES_AUTO_REPLY:
            return
        if st.sender_name(first.sender_id) != "Customer":
            return
        recipient = ""
        for candidate in (first.reply_to, first.from_):
            address = parseaddr(candidate or "")[1]
            if address and valid_email(address):
                recipient = address
                break
        if not recipient:
            fallback = st.db.users.get(first.origin_by_id or first.created_by_id)
            recipient = fallback.email if fallback else ""
        if not valid_email(recipient or ""):
            return
        group = st.db.groups[ticket.group_id]
        now = st.now()
        reply = Article(
            id=st.next_id("articles"),
            ticket_id=ticket.id,
            type_id=st.article_type_id("email") or 1,
            sender_id=st.sender_id("System") or 3,
            body=(
                f"<div>Your request <b>(Ticket#{ticket.number})</b> has been received and will "
                "be reviewed by our support staff.</div><br><div>To provide additional "
                "information, please reply to this email or click on the following link: "
                f'<a href="https://{st.settings.fqdn}/#ticket/zoom/{ticket.id}">'
                f"https://{st.settings.fqdn}/#ticket/zoom/{ticket.id}</a></div>"
            ),
            content_type="text/html",
            internal=False,
            created_at=now,
            updated_at=now,
            created_by_id=1,
            updated_by_id=1,
            from_=f"{group.email_name} <{group.email_address}>",
            to=recipient,
            subject=f"Thanks for your inquiry ({ticket.title})",
            message_id=f"<{now:%Y%m%d%H%M%S}.{secrets.token_hex(6)}@{st.settings.fqdn}>",
            preferences={"perform_origin": "trigger", "trigger": {"name": "auto reply"}},
        )
        st.db.articles[reply.id] = reply
        ticket.article_count += 1
        st.touch(ticket)
        self._send(ticket, reply, reason="auto_reply")
