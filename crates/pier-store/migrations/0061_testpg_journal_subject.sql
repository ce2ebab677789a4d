-- The entries of one record (`subject`), in order: a test PG replica that lost an append race
-- reads back only the records its operation touched (`testpg_read_subjects`) instead of the
-- whole journal, and the conflict check and retention find later entries of a subject by it.
CREATE INDEX testpg_journal_subject ON testpg_journal (subject, seq);
