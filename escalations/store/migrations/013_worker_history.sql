-- 013: the workers' past, for the nightly report (issues 16 and 19): the worker and lease
-- tables hold only the present (a row per running worker, the current holder of each lease).
-- worker_run: one row per worker process, from its first heartbeat; stopped_at when it
-- stopped cleanly; last_heartbeat_at copied from its worker row when that row is removed
-- (a clean stop, or silent for too long), so a worker that went silent is still known after
-- its row is gone. lease_grant: one row per epoch of a lease (who was granted it, when), so a
-- change of leader is known after the lease has moved on. Both are pruned with the workers.
CREATE TABLE worker_run (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  version TEXT NOT NULL,
  started_at TEXT NOT NULL,
  stopped_at TEXT,
  last_heartbeat_at TEXT
);
CREATE TABLE lease_grant (
  name TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  holder TEXT NOT NULL,
  granted_at TEXT NOT NULL,
  PRIMARY KEY (name, epoch)
);
CREATE INDEX lease_grant_granted_at ON lease_grant (granted_at);
