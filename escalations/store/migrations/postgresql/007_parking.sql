-- 007: the parking periods of an escalation (as on SQLite).
CREATE TABLE parking (
  escalation_id bigint NOT NULL REFERENCES escalation (id),
  seq integer NOT NULL,
  resolved_at timestamptz NOT NULL,
  pending_until timestamptz NOT NULL,
  ended_at timestamptz,
  outcome text,
  reason text NOT NULL DEFAULT '',
  PRIMARY KEY (escalation_id, seq)
);
