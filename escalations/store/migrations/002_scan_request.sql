-- 002: durable requests to scan a source ticket for customer messages to copy.
-- Recorded in the same transaction that sees the change (the outbox rule), cleared in the
-- transaction that records the copy intents, so a crash in between loses nothing.

CREATE TABLE scan_request (
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  ticket_id INTEGER NOT NULL,
  ticket_number TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  PRIMARY KEY (escalation_id, ticket_id)
);
