"""The articles the worker has accounted for on each ticket (``KnownArticles``) in
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

from escalations.store.postgres._db import PgBase, to_db


class KnownArticlesMixin(PgBase):
    def known_articles(self, escalation_id: int, ticket_id: int) -> frozenset[int]:
        rows = self._read(
            "SELECT article_id FROM known_article WHERE escalation_id = %s AND ticket_id = %s",
            (escalation_id, ticket_id),
        )
        return frozenset(int(r["article_id"]) for r in rows)

    def note_articles_known(
        self, tx: object, escalation_id: int, ticket_id: int, article_ids: Iterable[int]
    ) -> int:
        wanted = sorted({int(a) for a in article_ids})
        if not wanted:
            return 0
        cur = self._tx(tx).execute(
            "INSERT INTO known_article (escalation_id, ticket_id, article_id, known_at)"
            " SELECT %s, %s, a, %s FROM unnest(%s::bigint[]) AS a ON CONFLICT DO NOTHING",
            (escalation_id, ticket_id, to_db(self.clock.now()), wanted),
        )
        return cur.rowcount
