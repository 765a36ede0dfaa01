-- 006: the update cadence agreed with the customer, in business minutes (as on SQLite).
ALTER TABLE escalation ADD COLUMN agreed_cadence_minutes integer;
