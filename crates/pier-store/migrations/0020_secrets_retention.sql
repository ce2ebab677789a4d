-- Access tokens are stored only as a keyed hash (HMAC-SHA256 under a key derived from the
-- server key, docs/security/secrets.md), with the random nonce the server mints the token from
-- (so getToken can answer the same token again, spec §2.2). The database alone yields no usable
-- token. Tokens stored in plain text before are dropped: they live 30 minutes, and clients call
-- getToken again on a 401.
DELETE FROM tokens;
ALTER TABLE tokens RENAME COLUMN token TO token_hash;
ALTER TABLE tokens ADD COLUMN nonce TEXT NOT NULL DEFAULT '';
-- Revocation and rotation delete a merchant's tokens; the retention job deletes expired ones.
CREATE INDEX tokens_by_merchant ON tokens (merchant_id);
CREATE INDEX tokens_by_expiry ON tokens (expired_at);

-- The retention job finds open windows past their expiry, then old sessions, by expiry.
CREATE INDEX checkout_by_expiry ON checkout_sessions (state, expires_at);
