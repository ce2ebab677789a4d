-- Credentials of channels whose PG Pier calls directly (Toss Payments, docs/connectors/tosspayments.md):
-- the API base URL (operator-configured), the public client key, and the secret key sealed by the
-- engine (AES-256-GCM under a key derived from the server key; `v1:` + base64(nonce || ciphertext)).
-- The database alone never yields the secret key. All NULL for test-PG and pgsim channels.
ALTER TABLE channels ADD COLUMN api_base TEXT;
ALTER TABLE channels ADD COLUMN client_key TEXT;
ALTER TABLE channels ADD COLUMN secret_sealed TEXT;
