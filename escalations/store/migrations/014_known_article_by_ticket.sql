-- 014: which escalations have read a ticket (issue 16: an original merged into another ticket
-- is followed there). The sync pass asks this of every changed ticket, by ticket id alone.
CREATE INDEX known_article_by_ticket ON known_article (ticket_id);
