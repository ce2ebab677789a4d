-- The merchant console (docs/console.md): operators who sign in with a password, their
-- sessions (in the database, so any instance serves them), and the audit log of every change
-- made through the console.

CREATE TABLE operators (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(imp_code),
    -- lowercased; one operator per address across merchants (sign-in names no merchant)
    email         TEXT NOT NULL,
    -- viewer | operator | admin
    role          TEXT NOT NULL,
    -- Argon2id PHC string
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX operators_by_email ON operators (email);

CREATE TABLE console_sessions (
    -- keyed hash of the cookie's token: a read of this table does not yield a session
    id_hash      TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL REFERENCES operators(id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    -- absolute expiry (created_at + the absolute lifetime)
    expires_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    detail      TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX audit_by_merchant ON audit_log (merchant_id, at, id);

-- The console's search by buyer name (imp_uid and merchant_uid have theirs).
CREATE INDEX payments_by_buyer ON payments (merchant_id, buyer_name);
-- Newest-first keyset pages order by (started_at, imp_uid): with imp_uid in the index a page is
-- an index walk of 51 entries on PostgreSQL, not a sort of the whole date range. It replaces
-- payments_by_started (merchant_id, started_at), a prefix of it, so a payment insert still
-- maintains the same number of indexes.
DROP INDEX payments_by_started;
CREATE INDEX payments_by_started_uid ON payments (merchant_id, started_at, imp_uid);
