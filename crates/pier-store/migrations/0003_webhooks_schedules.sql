-- Webhook delivery log and re-arming, and scheduled payments.

-- When an event was last re-armed for delivery (manual redelivery); the age limit of retries
-- counts from the later of created_at and armed_at.
ALTER TABLE outbox ADD COLUMN armed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_by_merchant ON outbox (merchant_id, imp_uid);

-- One row per HTTP attempt of a webhook (per target URL).
CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    imp_uid      TEXT NOT NULL,
    merchant_uid TEXT NOT NULL,
    status       TEXT NOT NULL,
    url          TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    -- 0 when no HTTP answer came (network error, timeout, refused target)
    status_code  BIGINT NOT NULL DEFAULT 0,
    latency_ms   BIGINT NOT NULL DEFAULT 0,
    error        TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_by_merchant ON webhook_deliveries (merchant_id, at);
CREATE INDEX webhook_deliveries_by_imp_uid ON webhook_deliveries (merchant_id, imp_uid, at);

-- Scheduled payments. merchant_uid is unique per merchant and becomes the payment's
-- merchant_uid, so the payments guard (uid_lock) makes a second charge impossible.
CREATE TABLE schedules (
    merchant_id     TEXT NOT NULL REFERENCES merchants(imp_code),
    merchant_uid    TEXT NOT NULL,
    customer_uid    TEXT NOT NULL,
    customer_id     TEXT,
    schedule_at     BIGINT NOT NULL,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL DEFAULT 'KRW',
    tax_free        BIGINT NOT NULL DEFAULT 0,
    vat_amount      BIGINT,
    card_quota      BIGINT NOT NULL DEFAULT 0,
    name            TEXT,
    buyer_name      TEXT,
    buyer_email     TEXT,
    buyer_tel       TEXT,
    buyer_addr      TEXT,
    buyer_postcode  TEXT,
    custom_data     TEXT,
    notice_urls     TEXT,
    pg_provider     TEXT,
    pg_id           TEXT,
    -- scheduled | executed | revoked
    schedule_status TEXT NOT NULL DEFAULT 'scheduled',
    -- idle | running (claimed by a scheduler; only while scheduled)
    run_state       TEXT NOT NULL DEFAULT 'idle',
    lease_until     BIGINT NOT NULL DEFAULT 0,
    -- imp_uid of the execution under way: a re-claimed schedule finds its payment by it
    attempt_imp_uid TEXT,
    imp_uid         TEXT,
    payment_status  TEXT,
    fail_reason     TEXT,
    executed_at     BIGINT NOT NULL DEFAULT 0,
    revoked_at      BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, merchant_uid)
);
CREATE INDEX schedules_due ON schedules (schedule_status, schedule_at);
CREATE INDEX schedules_by_time ON schedules (merchant_id, schedule_at);
CREATE INDEX schedules_by_customer ON schedules (merchant_id, customer_uid, schedule_at);
