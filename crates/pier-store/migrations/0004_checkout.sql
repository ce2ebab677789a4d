-- Payment-window sessions (browser SDK `IMP.request_pay`): one row per opened window.
-- The id is the window's capability (random, 128 bits); card data is never stored here.
CREATE TABLE checkout_sessions (
    id              TEXT PRIMARY KEY,
    imp_uid         TEXT NOT NULL REFERENCES payments(imp_uid),
    merchant_id     TEXT NOT NULL REFERENCES merchants(imp_code),
    -- iframe | popup | redirect
    mode            TEXT NOT NULL,
    -- the merchant page's origin: the only target of the result postMessage
    parent_origin   TEXT,
    m_redirect_url  TEXT,
    confirm_url     TEXT,
    customer_id     TEXT,
    -- the PG's window session and where the browser authenticates
    pg_session_id   TEXT NOT NULL,
    pg_window_url   TEXT NOT NULL,
    -- open | done
    state           TEXT NOT NULL DEFAULT 'open',
    -- the callback/redirect result (JSON) once done
    result          TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX checkout_by_pg_session ON checkout_sessions (pg_session_id);
CREATE INDEX checkout_by_imp_uid ON checkout_sessions (imp_uid);
