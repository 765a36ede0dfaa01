-- 012: a hard copy being written (as on SQLite; see ../012_archive_intent.sql).
CREATE TABLE archive_intent (
  escalation_id bigint NOT NULL REFERENCES escalation (id),
  closed_at timestamptz NOT NULL,
  path text NOT NULL UNIQUE,
  begun_at timestamptz NOT NULL,
  PRIMARY KEY (escalation_id, closed_at)
);
