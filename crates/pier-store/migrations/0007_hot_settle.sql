-- Settling a payment without touching any indexed column, so PostgreSQL can make the settle a
-- HOT update (new row version on the same page, no new index entries) and SQLite rewrites no
-- index entry. Before this, each settle inserted five index entries and dirtied five index pages.
--
-- 1. Attempts whose PG outcome is still open (pg_state in_flight or unknown) are listed in
--    `payments_unsettled` instead of by two partial indexes on payments.pg_state (a column every
--    settle changes). Triggers keep it exact (migrations-postgres/, migrations-sqlite/): the
--    reconciler reads this small table, never a payments index.
CREATE TABLE payments_unsettled (
    imp_uid TEXT PRIMARY KEY
);
INSERT INTO payments_unsettled (imp_uid)
    SELECT imp_uid FROM payments WHERE pg_state IN ('in_flight', 'unknown');
DROP INDEX payments_unknown;
DROP INDEX payments_in_flight;

-- 2. Listing by status uses the merchant's payments by start time (status changes at settle;
--    started_at never does). The time column of a status listing is often paid_at or failed_at
--    anyway, so the old index only ever narrowed the scan by status.
DROP INDEX payments_by_status;
CREATE INDEX payments_by_started ON payments (merchant_id, started_at);

-- 3. A virtual account's PG transaction id gets a column of its own: deposit notices find the
--    account by it, and a card settle, which writes pg_tid, no longer changes an indexed column.
ALTER TABLE payments ADD COLUMN vbank_tid TEXT;
UPDATE payments SET vbank_tid = pg_tid WHERE pay_method = 'vbank' AND pg_tid IS NOT NULL;
DROP INDEX payments_vbank_by_pg_tid;
CREATE INDEX payments_by_vbank_tid ON payments (vbank_tid) WHERE vbank_tid IS NOT NULL;
