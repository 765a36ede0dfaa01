-- 010: the workers on this store (as on SQLite; see ../010_worker.sql).
CREATE TABLE worker (
  id text PRIMARY KEY,
  host text NOT NULL,
  pid integer NOT NULL,
  role text NOT NULL CHECK (role IN ('leader', 'executor')),
  version text NOT NULL,
  started_at timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL
);
