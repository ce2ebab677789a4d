-- The entries of one record (`subject`), in order: a test PG replica that lost an append race
-- reads back only the records its operation touched (`testpg_read_subjects`) instead of the
-- whole journal, and the conflict check and retention find later entries of a subject by it.
-- Before this index the conflict check of `APPEND_PG_SQL` ("has another instance written one
-- of these subjects after my read point?") hashed the whole journal on every append, since its
-- read points come from the statement's input: 300 ms and 10,319 buffers an append at 101,966
-- entries (EXPLAIN ANALYZE), which took `again` on a database grown by 100,000 payments from
-- 1,163 to 195 a second. With it: two index probes, 0.08 ms and 6 buffers.
CREATE INDEX testpg_journal_subject ON testpg_journal (subject, seq);
