-- 003: a carrier contact may lack its carrier or stage: an agent's note with a detail left out
-- is still recorded (the gaps are listed in `missing`) instead of failing the whole pass.
-- SQLite cannot relax NOT NULL in place, so the table is rebuilt.

CREATE TABLE carrier_contact_new (
  id INTEGER PRIMARY KEY,
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  source_article_id INTEGER NOT NULL,
  carrier TEXT,
  stage TEXT,
  forename TEXT,
  location TEXT,
  user_id TEXT,
  called_at TEXT,
  missing TEXT NOT NULL DEFAULT '[]',  -- JSON array of the missing detail names
  UNIQUE (escalation_id, source_article_id)
);
INSERT INTO carrier_contact_new
  SELECT id, escalation_id, source_article_id, carrier, stage, forename, location, user_id,
         called_at, missing
  FROM carrier_contact;
DROP TABLE carrier_contact;
ALTER TABLE carrier_contact_new RENAME TO carrier_contact;
