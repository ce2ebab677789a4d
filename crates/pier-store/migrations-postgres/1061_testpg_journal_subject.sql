-- The test PG journal's conflict check (pier-store/src/testpg_journal.rs `APPEND_PG_SQL`: has
-- another instance written one of these subjects after the operation's read point?) had only
-- the primary key on `seq`. Its read points come from the statement's input, so the planner
-- could not know they are near the end, and it hashed the whole journal on every append:
-- measured 300 ms an append (10,319 buffers) at 101,966 entries, which took `again` on a
-- database grown by 100,000 payments from 1,163 to 195 a second. With this index the same
-- check is two index probes: 0.08 ms (6 buffers). The pruner's "replaced by a later entry of
-- the same subject" uses it too.
CREATE INDEX testpg_journal_subject ON testpg_journal (subject, seq);
