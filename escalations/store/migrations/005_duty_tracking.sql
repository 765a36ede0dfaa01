-- 005: duties of the communication plan as the comms job tracks them (issue 11).
--
-- A duty is open from opens_at until due_at; it is done when the helpdesk shows it was done
-- inside that window (evidence names the article or caller-log entry), missed when due_at
-- passed without it. reminded_at and missed_at record that the one reminder, and the one
-- flag of a miss, were requested: in the same transaction as the note's effect, so each is
-- written exactly once. Rows from before this migration have no window start.
ALTER TABLE duty ADD COLUMN opens_at TEXT;
ALTER TABLE duty ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE duty ADD COLUMN evidence TEXT;
ALTER TABLE duty ADD COLUMN reminded_at TEXT;
ALTER TABLE duty ADD COLUMN missed_at TEXT;
DROP INDEX duty_open_by_due;
CREATE INDEX duty_open_by_due ON duty (due_at) WHERE done_at IS NULL AND missed_at IS NULL;
