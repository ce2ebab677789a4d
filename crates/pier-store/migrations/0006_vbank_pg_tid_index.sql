-- Only virtual accounts are ever looked up by the PG's transaction id (a deposit notice names
-- the account by it). Indexing every card payment's pg_tid cost each approval an index entry
-- on insert and again on settle; the partial index holds virtual accounts only, and the lookup
-- (`vbank_by_pg_tid`) names `pay_method = 'vbank'` so both databases use it.
DROP INDEX payments_by_pg_tid;
CREATE INDEX payments_vbank_by_pg_tid ON payments (pg_tid) WHERE pay_method = 'vbank';
