-- Refunds (cancel requests and their reservations), amount pre-registration, virtual accounts.

-- One row per cancel Pier sent (or is about to send) to the PG. The money of a request is held
-- in payments.cancel_reserved from `reserve` until it is `done` (moved into cancel_amount, with
-- its cancel_history row) or `released` (the PG refused). `unknown` keeps the reservation and is
-- retried with the same cancellation_id, which the PG treats as the same cancel.
CREATE TABLE cancel_requests (
    cancellation_id TEXT PRIMARY KEY,
    imp_uid         TEXT NOT NULL REFERENCES payments(imp_uid),
    merchant_id     TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    tax_free        BIGINT NOT NULL DEFAULT 0,
    vat_amount      BIGINT,
    reason          TEXT,
    refund_holder   TEXT,
    refund_bank     TEXT,
    refund_account  TEXT,
    refund_tel      TEXT,
    enable_webhook  BOOLEAN NOT NULL DEFAULT FALSE,
    -- in_flight | unknown | done | released
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX cancel_requests_pending ON cancel_requests (state, next_attempt_at);
CREATE INDEX cancel_requests_by_payment ON cancel_requests (imp_uid);

-- POST/PUT /payments/prepare: the amount a merchant_uid must be paid with.
CREATE TABLE payment_prepares (
    merchant_id  TEXT NOT NULL REFERENCES merchants(imp_code),
    merchant_uid TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    -- NULL: the currency is not checked
    currency     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, merchant_uid)
);

-- Virtual accounts: the PG's order id of the account currently issued for a payment (NULL = the
-- imp_uid; a PUT /vbanks re-issues the account under a new order id), and deposits found by the
-- account's PG transaction id.
ALTER TABLE payments ADD COLUMN pg_order_id TEXT;
CREATE INDEX payments_by_pg_tid ON payments (pg_tid);
