-- 003: a carrier contact may lack its carrier or stage (as on SQLite, where the table is
-- rebuilt; PostgreSQL relaxes NOT NULL in place).

ALTER TABLE carrier_contact ALTER COLUMN carrier DROP NOT NULL;
ALTER TABLE carrier_contact ALTER COLUMN stage DROP NOT NULL;
