-- 002: durable requests to scan a source ticket for customer messages to copy (as on SQLite).

CREATE TABLE scan_request (
  escalation_id bigint NOT NULL REFERENCES escalation (id),
  ticket_id bigint NOT NULL,
  ticket_number text NOT NULL,
  requested_at timestamptz NOT NULL,
  PRIMARY KEY (escalation_id, ticket_id)
);
