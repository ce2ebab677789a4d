-- Every text column of Pier's tables compares bytewise (COLLATE "C"), as SQLite's do.
--
-- Pier's text keys are identifiers (imp_uid, merchant_uid, customer_uid, merchant codes),
-- compared for equality and ordered only as tie-breakers, so the database's locale buys them
-- nothing: under a libc locale such as C.UTF-8 each btree comparison copied both strings and
-- called strcoll, 5 % of PostgreSQL's CPU under `again`. Bytewise is also the order SQLite gives,
-- so both stores list in the same order. A text column added later should be converted the
-- same way in a file of this directory (SQLite knows no collation named "C"); left at the
-- default it still compares with these (the non-default collation wins), only slower.
--
-- On an existing database this rebuilds every index on a text column while holding its
-- table's lock: run it in a quiet window.
DROP TRIGGER payments_unsettled_on_insert ON payments;
DROP TRIGGER payments_unsettled_on_update ON payments;
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text'
          AND table_name <> '_sqlx_migrations'
        ORDER BY table_name, ordinal_position
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"', c.table_name, c.column_name);
    END LOOP;
END
$$;
-- As in 1007 (a trigger's WHEN clause pins the column's type).
CREATE TRIGGER payments_unsettled_on_insert AFTER INSERT ON payments FOR EACH ROW
    WHEN (NEW.pg_state IN ('in_flight', 'unknown'))
    EXECUTE FUNCTION payments_track_unsettled();
CREATE TRIGGER payments_unsettled_on_update AFTER UPDATE OF pg_state ON payments FOR EACH ROW
    WHEN ((OLD.pg_state IN ('in_flight', 'unknown')) IS DISTINCT FROM (NEW.pg_state IN ('in_flight', 'unknown')))
    EXECUTE FUNCTION payments_track_unsettled();
