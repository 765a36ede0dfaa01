"""The articles the worker has accounted for on each ticket (``KnownArticles``) in SQLite."""

from __future__ import annotations

from collections.abc import Iterable

from escalations.store.sqlite._db import SqliteBase, to_db


class KnownArticlesMixin(SqliteBase):
    def known_articles(self, escalation_id: int, ticket_id: int) -> frozenset[int]:
        rows = (
            self._conn()
            .execute(
                "SELECT article_id FROM known_article WHERE escalation_id = ? AND ticket_id = ?",
                (escalation_id, ticket_id),
            )
            .fetchall()
        )
        return frozenset(r[0] for r in rows)

    def note_articles_known(
        self, tx: object, escalation_id: int, ticket_id: int, article_ids: Iterable[int]
    ) -> int:
        at = to_db(self.clock.now())
        conn = self._tx(tx)
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO known_article (escalation_id, ticket_id, article_id, known_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(escalation_id, ticket_id, int(a), at) for a in sorted(set(article_ids))],
        )
        return conn.total_changes - before
