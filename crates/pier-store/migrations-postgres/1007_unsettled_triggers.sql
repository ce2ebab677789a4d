-- PostgreSQL side of 0007_hot_settle.sql.
--
-- `payments_unsettled` holds exactly the payments whose pg_state is in_flight or unknown. The
-- triggers' WHEN clauses are checked without entering PL/pgSQL, so only the two transitions
-- that matter (an attempt starts, an attempt settles) run the function.
CREATE FUNCTION payments_track_unsettled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.pg_state IN ('in_flight', 'unknown') THEN
        INSERT INTO payments_unsettled (imp_uid) VALUES (NEW.imp_uid) ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM payments_unsettled WHERE imp_uid = NEW.imp_uid;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER payments_unsettled_on_insert AFTER INSERT ON payments FOR EACH ROW
    WHEN (NEW.pg_state IN ('in_flight', 'unknown'))
    EXECUTE FUNCTION payments_track_unsettled();

CREATE TRIGGER payments_unsettled_on_update AFTER UPDATE OF pg_state ON payments FOR EACH ROW
    WHEN ((OLD.pg_state IN ('in_flight', 'unknown')) IS DISTINCT FROM (NEW.pg_state IN ('in_flight', 'unknown')))
    EXECUTE FUNCTION payments_track_unsettled();

-- Room on each page for the settle's new row version, so it can stay on the page (HOT). A row
-- is updated about once after its insert; page pruning reclaims the old versions.
ALTER TABLE payments SET (fillfactor = 70);
