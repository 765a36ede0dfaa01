-- 005: duties of the communication plan as the comms job tracks them (as on SQLite).
ALTER TABLE duty ADD COLUMN opens_at timestamptz;
ALTER TABLE duty ADD COLUMN reason text NOT NULL DEFAULT '';
ALTER TABLE duty ADD COLUMN evidence text;
ALTER TABLE duty ADD COLUMN reminded_at timestamptz;
ALTER TABLE duty ADD COLUMN missed_at timestamptz;
DROP INDEX duty_open_by_due;
CREATE INDEX duty_open_by_due ON duty (due_at) WHERE done_at IS NULL AND missed_at IS NULL;
