-- Cash receipts (`/receipts/{imp_uid}`, `/receipts/external/{merchant_uid}`) and escrow delivery
-- information (`/escrows/logis/{imp_uid}`).
--
-- A receipt's identifier (phone, business or resident registration number, NTS card number) is
-- personal data: only its masked form is stored (`identifier_masked`, first 3 and last 4 digits).
-- The escrow sender and receiver (names, phones, addresses) are checked and handed to the PG, never
-- stored: the documented answer (company, invoice, sent_at, applied_at) does not need them.
CREATE TABLE cash_receipts (
    receipt_id          TEXT PRIMARY KEY,
    merchant_id         TEXT NOT NULL,
    -- 'payment' (of a Pier payment, imp_uid set) or 'external' (of a sale outside Pier).
    kind                TEXT NOT NULL,
    imp_uid             TEXT,
    merchant_uid        TEXT NOT NULL,
    receipt_tid         TEXT NOT NULL,
    apply_num           TEXT NOT NULL,
    receipt_type        TEXT NOT NULL,
    identifier_masked   TEXT NOT NULL,
    identifier_type     TEXT,
    name                TEXT,
    pay_method          TEXT,
    amount              BIGINT NOT NULL,
    vat                 BIGINT NOT NULL,
    tax_free            BIGINT NOT NULL,
    receipt_url         TEXT NOT NULL,
    -- 'issued' or 'cancelled'.
    status              TEXT NOT NULL,
    applied_at          BIGINT NOT NULL,
    cancelled_at        BIGINT NOT NULL
);
-- At most one issued receipt per payment and per external merchant_uid: a second issue fails
-- on the index, even when two race.
CREATE UNIQUE INDEX cash_receipts_one_issued_payment ON cash_receipts (merchant_id, imp_uid)
    WHERE status = 'issued' AND kind = 'payment';
CREATE UNIQUE INDEX cash_receipts_one_issued_external ON cash_receipts (merchant_id, merchant_uid)
    WHERE status = 'issued' AND kind = 'external';
CREATE INDEX cash_receipts_by_payment ON cash_receipts (merchant_id, kind, imp_uid, applied_at);
CREATE INDEX cash_receipts_by_merchant_uid ON cash_receipts (merchant_id, kind, merchant_uid, applied_at);

CREATE TABLE escrow_logis (
    imp_uid             TEXT PRIMARY KEY,
    merchant_id         TEXT NOT NULL,
    company             TEXT NOT NULL,
    invoice             TEXT NOT NULL,
    sent_at             BIGINT NOT NULL,
    applied_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
