-- Indexes that only hold the rows a poller looks for.
--
-- The dispatcher claims pending events oldest first. The old index (state, next_attempt_at)
-- kept an entry for every version of every event; a partial index holds only pending ones
-- (entries of delivered events are dead until vacuum, and an ordered index scan marks them so
-- the next claim skips them).
--
-- The reconciler looks for attempts whose PG outcome is unknown and for attempts left in flight.
-- The old index (pg_state, next_reconcile_at) also matched the guard of every settle
-- (`pg_state IN ('in_flight','unknown')`), and under load PostgreSQL answered batched settles
-- by scanning it — thousands of dead in-flight entries per batch — instead of the primary key.
-- Two partial indexes serve the reconciler and cannot serve that guard.
DROP INDEX outbox_due;
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state = 'pending';
DROP INDEX payments_unsettled;
CREATE INDEX payments_unknown ON payments (next_reconcile_at) WHERE pg_state = 'unknown';
CREATE INDEX payments_in_flight ON payments (updated_at) WHERE pg_state = 'in_flight';
