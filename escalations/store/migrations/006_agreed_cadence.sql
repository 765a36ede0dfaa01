-- 006: the update cadence agreed with the customer when escalating (issue 11), in business
-- minutes, where the flag carries one (an enterprise customer's contract may set it); NULL
-- keeps the segment's cadence from process.toml.
ALTER TABLE escalation ADD COLUMN agreed_cadence_minutes INTEGER;
