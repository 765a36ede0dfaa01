-- 014: which escalations have read a ticket (as on SQLite; see ../014_known_article_by_ticket.sql).
CREATE INDEX known_article_by_ticket ON known_article (ticket_id);
