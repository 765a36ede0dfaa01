-- 008: the hard copies (issue 12). One row per archive written: the directory, the SHA-256
-- of its manifest, when it was written; purged_at is set when retention removed it (the
-- manifest checksum stays, as a record of what was removed).
CREATE TABLE archive (
  id INTEGER PRIMARY KEY,
  escalation_id INTEGER NOT NULL REFERENCES escalation(id),
  closed_at TEXT NOT NULL,
  path TEXT NOT NULL UNIQUE,
  manifest_sha256 TEXT NOT NULL,
  archived_at TEXT NOT NULL,
  purged_at TEXT,
  purge_reason TEXT,
  UNIQUE (escalation_id, closed_at)
);
