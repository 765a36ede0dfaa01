-- 009: a fencing epoch on each lease (as on SQLite; see ../009_lease_epoch.sql).
ALTER TABLE lease ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
