-- Room for every settle to be a HOT update.
--
-- A payment row is about 450 bytes and its settle writes a new version of about the same size.
-- At fillfactor 70 a page took nine or ten attempts but had room for five or six new versions,
-- so under `again` about half the settles could not stay on their page and added an entry to
-- each of the table's five indexes: 10.5 index entries and 19 WAL records per payment. Measured
-- over 12 s runs of `again` (pg_stat_user_tables, pg_waldump --stats): at 50, 89 % of settles
-- HOT, 8.9 index entries and 16.0 WAL records per payment; at 40, 100 %, 8.3 and 15.2, with the
-- table 16 % larger than at 70 (8.2 rows a page instead of 9.5 — the moved versions took pages
-- too) and its indexes smaller. Applies to pages written from now on.
ALTER TABLE payments SET (fillfactor = 40);

-- An inserted attempt's imp_uid is new (the payments primary key), so its listing is a plain
-- insert: no speculative insertion and no confirmation record, as ON CONFLICT needs.
CREATE OR REPLACE FUNCTION payments_track_unsettled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO payments_unsettled (imp_uid) VALUES (NEW.imp_uid);
    ELSIF NEW.pg_state IN ('in_flight', 'unknown') THEN
        INSERT INTO payments_unsettled (imp_uid) VALUES (NEW.imp_uid) ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM payments_unsettled WHERE imp_uid = NEW.imp_uid;
    END IF;
    RETURN NULL;
END
$$;
