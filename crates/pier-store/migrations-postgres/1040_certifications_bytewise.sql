-- The text columns of 0040 (certifications) compare bytewise like every other (COLLATE "C",
-- why: 1008_bytewise_text.sql). On a fresh database 1008 ran after 0040 and this changes nothing;
-- on a database upgraded past 1008/1010 before 0040 came, it converts exactly those columns.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text'
          AND table_name = 'certifications'
          AND collation_name IS DISTINCT FROM 'C'
        ORDER BY ordinal_position
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"', c.table_name, c.column_name);
    END LOOP;
END
$$;
