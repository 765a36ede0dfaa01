-- 013: the workers' past, for the nightly report (as on SQLite; see ../013_worker_history.sql).
CREATE TABLE worker_run (
  id text PRIMARY KEY,
  host text NOT NULL,
  pid integer NOT NULL,
  version text NOT NULL,
  started_at timestamptz NOT NULL,
  stopped_at timestamptz,
  last_heartbeat_at timestamptz
);
CREATE TABLE lease_grant (
  name text NOT NULL,
  epoch integer NOT NULL,
  holder text NOT NULL,
  granted_at timestamptz NOT NULL,
  PRIMARY KEY (name, epoch)
);
CREATE INDEX lease_grant_granted_at ON lease_grant (granted_at);
