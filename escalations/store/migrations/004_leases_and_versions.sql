-- 004: a store ready for several workers, typed effect payloads, seen versions.
--
-- Effects are claimed by a worker with a lease (claimed_by, lease_until); a row in flight
-- under a live lease is never claimed by another worker. A row in flight with no lease is
-- orphaned (its claimer died, or its write's outcome is unknown): it may be taken again once
-- the settle window after its last update has passed. Rows in flight from before this
-- migration are orphans.
ALTER TABLE effect ADD COLUMN payload_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE effect ADD COLUMN deferrals INTEGER NOT NULL DEFAULT 0 CHECK (deferrals >= 0);
ALTER TABLE effect ADD COLUMN claimed_by TEXT;
ALTER TABLE effect ADD COLUMN lease_until TEXT;
CREATE INDEX effect_by_after ON effect (after_kind, after_key) WHERE after_kind IS NOT NULL;

-- Leadership of the poll and the timed jobs, and any other named lease: one row each, held
-- by one worker until it expires.
CREATE TABLE lease (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  acquired_at TEXT NOT NULL
);

-- A ticket version is seen when (ticket id, updated_at) was handled, not when updated_at is at
-- or below the highest seen: a helpdesk clock that ran ahead and was corrected must not hide
-- the versions after it.
CREATE TABLE seen_version (
  ticket_id INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  seen_at TEXT NOT NULL,
  PRIMARY KEY (ticket_id, updated_at)
);
INSERT INTO seen_version (ticket_id, updated_at, seen_at)
  SELECT ticket_id, updated_at, updated_at FROM seen_ticket;
DROP TABLE seen_ticket;

-- The original ticket's number as agents know it (for log lines and status about it).
ALTER TABLE escalation ADD COLUMN original_ticket_number TEXT;

-- Details of a carrier contact that were given but not understood, apart from those missing.
ALTER TABLE carrier_contact ADD COLUMN problems TEXT NOT NULL DEFAULT '[]';
