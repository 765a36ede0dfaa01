-- 012: a hard copy being written (issue 19). The archive job records the directory it is
-- about to write, for which close, before it writes a file; recording the copy (archive)
-- removes the row in the same transaction. A row left behind is a run that was interrupted:
-- the next archive pass finishes it (records the directory when it is in place) or removes
-- what it left (when nothing was placed), so nothing stays in the archive unrecorded, even
-- when the escalation was reopened meanwhile.
CREATE TABLE archive_intent (
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  closed_at TEXT NOT NULL,
  path TEXT NOT NULL UNIQUE,
  begun_at TEXT NOT NULL,
  PRIMARY KEY (escalation_id, closed_at)
);
