-- 011: the articles the worker has accounted for on a ticket, per escalation (as on SQLite;
-- see ../011_known_article.sql).
CREATE TABLE known_article (
  escalation_id bigint NOT NULL REFERENCES escalation (id),
  ticket_id bigint NOT NULL,
  article_id bigint NOT NULL,
  known_at timestamptz NOT NULL,
  PRIMARY KEY (escalation_id, ticket_id, article_id)
);
