-- One schema for SQLite and PostgreSQL: only TEXT, BIGINT and BOOLEAN columns, ids made by Pier,
-- and partial unique indexes (both engines support them). Money columns are *_krw-free by
-- tradition of the wire (amount, cancel_amount) but always BIGINT KRW.

CREATE TABLE merchants (
    imp_code        TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    imp_key         TEXT NOT NULL UNIQUE,
    secret_hash     TEXT NOT NULL,
    webhook_url     TEXT,
    webhook_format  TEXT NOT NULL DEFAULT 'json',
    webhook_secret  TEXT,
    allowed_origins TEXT,
    is_demo         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL
);

CREATE TABLE channels (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(imp_code),
    pg_provider TEXT NOT NULL,
    mid         TEXT NOT NULL,
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    sandbox     BOOLEAN NOT NULL DEFAULT TRUE,
    target      TEXT NOT NULL DEFAULT 'inprocess',
    created_at  BIGINT NOT NULL,
    UNIQUE (merchant_id, pg_provider, mid)
);

CREATE TABLE tokens (
    token       TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(imp_code),
    imp_key     TEXT NOT NULL,
    expired_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX tokens_by_key ON tokens (imp_key, expired_at);

CREATE TABLE payments (
    imp_uid             TEXT PRIMARY KEY,
    merchant_id         TEXT NOT NULL REFERENCES merchants(imp_code),
    merchant_uid        TEXT NOT NULL,
    -- TRUE while this attempt is in flight at the PG or once it was paid: at most one such row
    -- per (merchant, merchant_uid). This is the double-charge guard in SQL.
    uid_lock            BOOLEAN NOT NULL DEFAULT FALSE,
    -- none | in_flight | unknown | settled : where the PG call of this attempt stands.
    pg_state            TEXT NOT NULL DEFAULT 'none',
    -- TRUE when the client was told this attempt failed (a late approval must be net-cancelled).
    told_failed         BOOLEAN NOT NULL DEFAULT FALSE,
    reconcile_attempts  BIGINT NOT NULL DEFAULT 0,
    next_reconcile_at   BIGINT NOT NULL DEFAULT 0,
    channel_id          TEXT,
    pay_method          TEXT,
    channel             TEXT,
    pg_provider         TEXT,
    emb_pg_provider     TEXT,
    pg_tid              TEXT,
    pg_id               TEXT,
    sandbox             BOOLEAN NOT NULL DEFAULT FALSE,
    escrow              BOOLEAN NOT NULL DEFAULT FALSE,
    apply_num           TEXT,
    bank_code           TEXT,
    bank_name           TEXT,
    card_code           TEXT,
    card_name           TEXT,
    card_quota          BIGINT NOT NULL DEFAULT 0,
    card_number         TEXT,
    card_type           BIGINT,
    vbank_code          TEXT,
    vbank_name          TEXT,
    vbank_num           TEXT,
    vbank_holder        TEXT,
    vbank_date          BIGINT NOT NULL DEFAULT 0,
    vbank_issued_at     BIGINT NOT NULL DEFAULT 0,
    name                TEXT,
    amount              BIGINT NOT NULL,
    cancel_amount       BIGINT NOT NULL DEFAULT 0,
    -- refunds reserved by cancels whose PG call is under way
    cancel_reserved     BIGINT NOT NULL DEFAULT 0,
    tax_free            BIGINT NOT NULL DEFAULT 0,
    vat_amount          BIGINT,
    currency            TEXT NOT NULL DEFAULT 'KRW',
    buyer_name          TEXT,
    buyer_email         TEXT,
    buyer_tel           TEXT,
    buyer_addr          TEXT,
    buyer_postcode      TEXT,
    custom_data         TEXT,
    user_agent          TEXT,
    notice_url          TEXT,
    status              TEXT NOT NULL,
    started_at          BIGINT NOT NULL,
    paid_at             BIGINT NOT NULL DEFAULT 0,
    failed_at           BIGINT NOT NULL DEFAULT 0,
    cancelled_at        BIGINT NOT NULL DEFAULT 0,
    updated_at          BIGINT NOT NULL,
    fail_reason         TEXT,
    cancel_reason       TEXT,
    receipt_url         TEXT,
    cash_receipt_issued BOOLEAN NOT NULL DEFAULT FALSE,
    customer_uid        TEXT,
    customer_uid_usage  TEXT
);
CREATE UNIQUE INDEX payments_uid_guard ON payments (merchant_id, merchant_uid) WHERE uid_lock = TRUE;
CREATE INDEX payments_by_uid ON payments (merchant_id, merchant_uid, started_at);
CREATE INDEX payments_by_status ON payments (merchant_id, status, started_at);
CREATE INDEX payments_by_customer ON payments (merchant_id, customer_uid, started_at);
CREATE INDEX payments_unsettled ON payments (pg_state, next_reconcile_at);

CREATE TABLE cancel_history (
    cancellation_id TEXT PRIMARY KEY,
    imp_uid         TEXT NOT NULL REFERENCES payments(imp_uid),
    seq             BIGINT NOT NULL,
    pg_tid          TEXT,
    amount          BIGINT NOT NULL,
    cancelled_at    BIGINT NOT NULL,
    reason          TEXT,
    receipt_url     TEXT,
    UNIQUE (imp_uid, seq)
);

CREATE TABLE customers (
    merchant_id       TEXT NOT NULL REFERENCES merchants(imp_code),
    customer_uid      TEXT NOT NULL,
    channel_id        TEXT NOT NULL,
    pg_provider       TEXT NOT NULL,
    pg_id             TEXT NOT NULL,
    sandbox           BOOLEAN NOT NULL DEFAULT FALSE,
    -- the PG's billing key: an opaque handle, never card data
    billing_key       TEXT NOT NULL,
    customer_id       TEXT,
    card_name         TEXT,
    card_code         TEXT,
    card_number       TEXT,
    card_type         BIGINT,
    customer_name     TEXT,
    customer_tel      TEXT,
    customer_email    TEXT,
    customer_addr     TEXT,
    customer_postcode TEXT,
    inserted          BIGINT NOT NULL,
    updated           BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, customer_uid)
);

CREATE TABLE idempotency_keys (
    merchant_id   TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    -- in_flight | done
    state         TEXT NOT NULL,
    http_status   BIGINT NOT NULL DEFAULT 0,
    response_body TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, idem_key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);

-- Webhook announcements, written in the same transaction as the change they announce.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL,
    imp_uid         TEXT NOT NULL,
    merchant_uid    TEXT NOT NULL,
    status          TEXT NOT NULL,
    cancellation_id TEXT,
    notice_urls     TEXT,
    created_at      BIGINT NOT NULL,
    -- pending | delivered | dead
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    leased_until    BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
