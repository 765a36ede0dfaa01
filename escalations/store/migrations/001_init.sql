-- 001: the initial schema.
-- Times are TEXT in one fixed UTC format, 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so they compare and
-- sort as strings. Uniqueness lives here, not in code (STYLE.md rule 25).

CREATE TABLE escalation (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  original_ticket_id INTEGER NOT NULL,
  escalation_ticket_id INTEGER UNIQUE,
  escalation_ticket_number TEXT,
  customer_id INTEGER NOT NULL,
  organization_id INTEGER,
  segment TEXT NOT NULL,
  level INTEGER NOT NULL CHECK (level >= 1),
  reason TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN
    ('flagged', 'open', 'resolved', 'parked', 'confirmed', 'closed', 'archived', 'purged')),
  owner_id INTEGER,
  flagged_by_id INTEGER,
  callback_at TEXT,
  flagged_at TEXT,
  opened_at TEXT,
  resolved_at TEXT,
  parked_at TEXT,
  confirmed_at TEXT,
  closed_at TEXT,
  archived_at TEXT,
  purged_at TEXT,
  updated_at TEXT NOT NULL
);
-- At most one escalation in progress per original ticket.
CREATE UNIQUE INDEX escalation_one_active_per_ticket ON escalation (original_ticket_id)
  WHERE state NOT IN ('closed', 'archived', 'purged');
CREATE INDEX escalation_by_state ON escalation (state, level);
CREATE INDEX escalation_by_customer ON escalation (customer_id);

CREATE TABLE level_change (
  id INTEGER PRIMARY KEY,
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  from_level INTEGER NOT NULL,
  to_level INTEGER NOT NULL,
  changed_at TEXT NOT NULL,
  changed_by_id INTEGER,
  reason TEXT
);
CREATE INDEX level_change_by_escalation ON level_change (escalation_id, changed_at);

CREATE TABLE copied_article (
  id INTEGER PRIMARY KEY,
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  source_ticket_id INTEGER NOT NULL,
  source_article_id INTEGER NOT NULL,
  copy_article_id INTEGER,
  copied_at TEXT NOT NULL,
  UNIQUE (escalation_id, source_article_id)
);

CREATE TABLE carrier_contact (
  id INTEGER PRIMARY KEY,
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  source_article_id INTEGER NOT NULL,
  carrier TEXT NOT NULL,
  stage TEXT NOT NULL,
  forename TEXT,
  location TEXT,
  user_id TEXT,
  called_at TEXT,
  missing TEXT NOT NULL DEFAULT '[]',  -- JSON array of the missing detail names
  UNIQUE (escalation_id, source_article_id)
);

CREATE TABLE duty (
  id INTEGER PRIMARY KEY,
  escalation_id INTEGER NOT NULL REFERENCES escalation (id),
  kind TEXT NOT NULL,
  slot TEXT NOT NULL,
  due_at TEXT NOT NULL,
  done_at TEXT,
  UNIQUE (escalation_id, kind, slot)
);
CREATE INDEX duty_open_by_due ON duty (due_at) WHERE done_at IS NULL;

-- The outbox of helpdesk writes (RELIABILITY.md §B2).
CREATE TABLE effect (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  marker TEXT NOT NULL,  -- 'hde1-' || first 16 hex of sha256(kind, key): recomputable
  payload TEXT NOT NULL,  -- canonical JSON
  payload_sha256 TEXT NOT NULL,
  escalation_id INTEGER REFERENCES escalation (id),
  state TEXT NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'in_flight', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  not_before TEXT NOT NULL,  -- back-off: not run before this instant
  remote_id TEXT,
  last_error TEXT,
  after_kind TEXT,  -- (after_kind, after_key): an effect that must be done first
  after_key TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (kind, key),
  CHECK ((after_kind IS NULL) = (after_key IS NULL)),
  CHECK (state != 'done' OR attempts >= 1)
);
CREATE INDEX effect_runnable ON effect (not_before, id) WHERE state IN ('pending', 'in_flight');
CREATE INDEX effect_by_escalation ON effect (escalation_id);

CREATE TABLE sync_cursor (
  stream TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  signpost TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  CHECK (value <= signpost)  -- never past the signpost
);

CREATE TABLE seen_ticket (
  ticket_id INTEGER PRIMARY KEY,
  updated_at TEXT NOT NULL
);

CREATE TABLE job_run (
  id INTEGER PRIMARY KEY,
  job TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  ok INTEGER CHECK (ok IN (0, 1)),
  counts TEXT NOT NULL DEFAULT '{}',  -- JSON object
  error TEXT
);
CREATE INDEX job_run_by_job ON job_run (job, id);

CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,  -- JSON
  updated_at TEXT NOT NULL
);
