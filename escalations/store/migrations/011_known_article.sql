-- 011: the articles the worker has accounted for on a ticket, per escalation (issue 15): each
-- article its poll or copy job listed there and each it wrote there itself (a copy, a note).
-- A changed ticket whose every article id (as its ticket answer lists them) is among these
-- holds no article the worker has not seen, so it is not listed again: the echo of the
-- worker's own write costs no read. Compared as exact ids, never by time or count.
CREATE TABLE known_article (
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  ticket_id INTEGER NOT NULL,
  article_id INTEGER NOT NULL,
  known_at TEXT NOT NULL,
  PRIMARY KEY (escalation_id, ticket_id, article_id)
);
