-- 010: the workers on this store (issue 19), for `escalations status`: one row per running
-- worker, written at each of its job runs (its heartbeat) and removed when it stops cleanly.
-- role is 'leader' while it holds a job's lease, else 'executor' (it still runs effects).
CREATE TABLE worker (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('leader', 'executor')),
  version TEXT NOT NULL,
  started_at TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL
);
