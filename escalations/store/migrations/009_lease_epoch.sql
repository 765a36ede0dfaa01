-- 009: a fencing epoch on each lease (issue 19). It grows by one each time the lease passes
-- to another holder (or is taken again after a release) and stays while the same holder
-- renews it. A released lease keeps its row, with no holder (''), so the epoch never goes
-- back. A leader's commits of poll and timed-job state check the epoch it was granted
-- (Store.fence): a paused leader that wakes after another took over writes nothing.
ALTER TABLE lease ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
