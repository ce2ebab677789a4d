-- The console's tables (0070_console.sql) compare text bytewise too (COLLATE "C", why:
-- 1008_bytewise_text.sql). Small tables, created just before: the rewrite is instant.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text'
          AND table_name IN ('operators', 'console_sessions', 'audit_log')
          AND collation_name IS DISTINCT FROM 'C'
        ORDER BY table_name, ordinal_position
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"', c.table_name, c.column_name);
    END LOOP;
END
$$;
