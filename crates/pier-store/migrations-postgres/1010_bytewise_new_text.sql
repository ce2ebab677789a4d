-- Text columns added after 1008 compare bytewise too (COLLATE "C", why: 1008_bytewise_text.sql).
--
-- On a fresh database 1008 already ran after 0020/0030/0031 (versions apply in order) and this
-- changes nothing. On a database that had 1009 before those migrations came, they were applied
-- after 1008 and their text columns (tokens.nonce, channels' credentials, cash_receipts,
-- escrow_logis) kept the default collation: convert exactly the columns that are not "C" yet.
-- None of them is on payments, so the payments triggers that pin column types need no rebuild.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text'
          AND table_name NOT IN ('_sqlx_migrations', 'payments')
          AND collation_name IS DISTINCT FROM 'C'
        ORDER BY table_name, ordinal_position
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"', c.table_name, c.column_name);
    END LOOP;
END
$$;
