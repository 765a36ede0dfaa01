"""Bulk seeding, without the API: thousands of tickets and open escalations are written
straight into the sandbox's tables and the store's, as copies of one escalation the worker
raised and settled through the real path (``clone_escalation``), so the seeded ones look to
every job exactly like that one.

Only the identities change in a copy (ticket ids and numbers, the customer, the escalation key
and the article ids); times and contents stay, so a copy is as quiet — or as due — as its
template."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from sandbox import ZammadSandbox
from sandbox.records import Article, Link, Mention, Ticket

ESCALATION_TABLES = ("level_change", "copied_article", "carrier_contact", "duty", "scan_request")


def add_plain_tickets(sandbox: ZammadSandbox, count: int, *, like: int) -> None:
    """``count`` more tickets shaped like ticket ``like`` (same customer, times and state),
    without articles: bulk for the poll's search to skip."""
    with sandbox.lock:
        st = sandbox.state
        template = st.db.tickets[like]
        for _ in range(count):
            tid = st.next_id("tickets")
            st.db.tickets[tid] = replace(
                template, id=tid, number=st.next_ticket_number(), custom=dict(template.custom)
            )


class EscalationCloner:
    """Copies of escalation ``escalation_id`` (open, settled) in the sandbox and the store."""

    def __init__(self, sandbox: ZammadSandbox, store_path: Path, escalation_id: int) -> None:
        self.sandbox = sandbox
        self.db = sqlite3.connect(store_path, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.row = dict(
            self.db.execute("SELECT * FROM escalation WHERE id = ?", (escalation_id,)).fetchone()
        )
        self.template_id = escalation_id
        self.original = int(self.row["original_ticket_id"])
        self.ticket = int(self.row["escalation_ticket_id"])
        db = sandbox.state.db
        self.articles = {
            t: [a for a in db.articles.values() if a.ticket_id == t]
            for t in (self.original, self.ticket)
        }
        self.links = [x for x in db.links.values() if self._touches(x)]
        self.mentions = [m for m in db.mentions.values() if m.ticket_id == self.ticket]

    def clone(self, count: int) -> None:
        with self.sandbox.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                new_ids = [self._one(n) for n in range(count)]
                self._clone_meta(new_ids)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        self.db.close()

    def _one(self, n: int) -> int:
        st = self.sandbox.state
        db = st.db
        customer = self.sandbox.rules.create_customer(
            email=f"bench{n}.{st.next_id('bench')}@x.test"
        )
        original = self._copy_ticket(db.tickets[self.original], customer_id=customer.id)
        key = f"zammad:ticket:{original.id}:1"
        esc_ticket = self._copy_ticket(
            db.tickets[self.ticket],
            custom_changes={"escalation_key": key, "escalation_original": original.number},
        )
        articles = {
            **self._copy_articles(self.original, original.id),
            **self._copy_articles(self.ticket, esc_ticket.id),
        }
        for link in self.links:
            lid = st.next_id("links")
            db.links[lid] = Link(
                lid,
                link.link_type_id,
                self._map_ticket(link.source_value, original.id, esc_ticket.id),
                self._map_ticket(link.target_value, original.id, esc_ticket.id),
                link.created_at,
                link.updated_at,
            )
        for mention in self.mentions:
            mid = st.next_id("mentions")
            db.mentions[mid] = Mention(
                mid,
                esc_ticket.id,
                mention.user_id,
                mention.created_by_id,
                mention.created_at,
                mention.updated_at,
            )
        return self._store_rows(original, esc_ticket, customer.id, key, articles)

    def _touches(self, link: Link) -> bool:
        ends = {link.source_value, link.target_value}
        return self.ticket in ends and self.original in ends

    def _map_ticket(self, value: int, original: int, ticket: int) -> int:
        return original if value == self.original else ticket if value == self.ticket else value

    def _copy_ticket(
        self,
        template: Ticket,
        *,
        customer_id: int | None = None,
        custom_changes: dict[str, Any] | None = None,
    ) -> Ticket:
        st = self.sandbox.state
        tid = st.next_id("tickets")
        ticket = replace(
            template,
            id=tid,
            number=st.next_ticket_number(),
            customer_id=customer_id or template.customer_id,
            custom={**template.custom, **(custom_changes or {})},
            preferences=dict(template.preferences),
        )
        st.db.tickets[tid] = ticket
        st.db.ticket_tags[tid] = list(st.db.ticket_tags.get(template.id, []))
        return ticket

    def _copy_articles(self, source: int, target: int) -> dict[int, int]:
        st = self.sandbox.state
        mapping: dict[int, int] = {}
        for article in self.articles[source]:
            aid = st.next_id("articles")
            copy: Article = replace(
                article, id=aid, ticket_id=target, attachments=list(article.attachments)
            )
            st.db.articles[aid] = copy
            mapping[article.id] = aid
        return mapping

    def _store_rows(
        self, original: Ticket, ticket: Ticket, customer_id: int, key: str, articles: dict[int, int]
    ) -> int:
        row = dict(self.row)
        row.pop("id")
        row.update(
            key=key,
            original_ticket_id=original.id,
            escalation_ticket_id=ticket.id,
            escalation_ticket_number=ticket.number,
            customer_id=customer_id,
        )
        if "original_ticket_number" in row:
            row["original_ticket_number"] = original.number
        new_id = self._insert("escalation", row)
        tickets = {self.original: original.id, self.ticket: ticket.id}
        for table in ESCALATION_TABLES:
            for old in self._rows(table, "escalation_id = ?", self.template_id):
                old.pop("id", None)
                old["escalation_id"] = new_id
                for column in ("source_ticket_id", "ticket_id"):
                    if column in old:
                        old[column] = tickets.get(old[column], old[column])
                if "ticket_number" in old:
                    old["ticket_number"] = original.number
                for column in ("source_article_id", "copy_article_id"):
                    if old.get(column) is not None:
                        old[column] = articles.get(old[column], old[column])
                self._insert(table, old)
        for old in self._rows("effect", "escalation_id = ?", self.template_id):
            old.pop("id")
            old.update(escalation_id=new_id, key=f"{old['key']}|bench:{new_id}")
            if old["after_key"] is not None:
                old["after_key"] = f"{old['after_key']}|bench:{new_id}"
            self._insert("effect", old)
        for old_id, new in tickets.items():
            seen = self._rows("seen_version", "ticket_id = ?", old_id)
            for seen_row in seen:
                seen_row["ticket_id"] = new
                self._insert("seen_version", seen_row)
        return new_id

    def _clone_meta(self, new_ids: list[int]) -> None:
        """Meta values kept per escalation id — under a key of their own (``<key>:<id>``),
        or in one value of them all (``{"<id>": …}``) — get an entry per copy."""
        template = str(self.template_id)
        for meta in self._rows("meta", "1 = ?", 1):
            prefix, _, owner = str(meta["key"]).rpartition(":")
            if prefix and owner == template:
                for new in new_ids:
                    self._insert("meta", {**meta, "key": f"{prefix}:{new}"})
                continue
            value = json.loads(meta["value"])
            if isinstance(value, dict) and template in value:
                for new in new_ids:
                    value[str(new)] = value[template]
                self.db.execute(
                    "UPDATE meta SET value = ? WHERE key = ?", (json.dumps(value), meta["key"])
                )

    def _rows(self, table: str, where: str, value: object) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(f"SELECT * FROM {table} WHERE {where}", (value,))]

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cursor = self.db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())
        )
        return int(cursor.lastrowid or 0)
