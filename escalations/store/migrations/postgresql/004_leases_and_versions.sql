-- 004: a store ready for several workers, typed effect payloads, seen versions (as on
-- SQLite; see ../004_leases_and_versions.sql for what each part is for).
ALTER TABLE effect ADD COLUMN payload_version integer NOT NULL DEFAULT 1;
ALTER TABLE effect ADD COLUMN deferrals integer NOT NULL DEFAULT 0 CHECK (deferrals >= 0);
ALTER TABLE effect ADD COLUMN claimed_by text;
ALTER TABLE effect ADD COLUMN lease_until timestamptz;
CREATE INDEX effect_by_after ON effect (after_kind, after_key) WHERE after_kind IS NOT NULL;

CREATE TABLE lease (
  name text PRIMARY KEY,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL,
  acquired_at timestamptz NOT NULL
);

CREATE TABLE seen_version (
  ticket_id bigint NOT NULL,
  updated_at timestamptz NOT NULL,
  seen_at timestamptz NOT NULL,
  PRIMARY KEY (ticket_id, updated_at)
);
INSERT INTO seen_version (ticket_id, updated_at, seen_at)
  SELECT ticket_id, updated_at, updated_at FROM seen_ticket;
DROP TABLE seen_ticket;

ALTER TABLE escalation ADD COLUMN original_ticket_number text;

ALTER TABLE carrier_contact ADD COLUMN problems text NOT NULL DEFAULT '[]';
