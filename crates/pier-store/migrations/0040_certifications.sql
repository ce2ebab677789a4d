-- Identity verifications (본인인증): `IMP.certification` windows and the REST OTP flow
-- (`/certifications/otp/request`, `/certifications/otp/confirm/{imp_uid}`), looked up and
-- deleted with `GET`/`DELETE /certifications/{imp_uid}`.
--
-- The person's data (name, phone, birth date, gender digit, carrier) is personal data: it is
-- stored only sealed (`sealed`, AES-256-GCM under a key derived from the server key, the imp_uid
-- as associated data). CI and DI (`unique_key`, `unique_in_site`) are keyed hashes, never the
-- raw inputs. `DELETE /certifications/{imp_uid}` removes the row.
CREATE TABLE certifications (
    imp_uid             TEXT PRIMARY KEY,
    merchant_id         TEXT NOT NULL,
    merchant_uid        TEXT,
    pg_provider         TEXT NOT NULL,
    pg_tid              TEXT NOT NULL,
    -- 'window' (window opened, nobody entered yet), 'requested' (code sent), 'certified',
    -- 'failed' (too many wrong codes, under min_age) or 'cancelled' (window closed).
    status              TEXT NOT NULL,
    sealed              TEXT,
    unique_key          TEXT,
    unique_in_site      TEXT,
    origin              TEXT,
    company             TEXT,
    min_age             BIGINT,
    otp_attempts        BIGINT NOT NULL,
    fail_reason         TEXT,
    certified_at        BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    -- The window session, then the code, is valid until then.
    expires_at          BIGINT NOT NULL,
    -- Browser windows only: the capability in the window's URL, how it was opened, where the
    -- result goes.
    window_id           TEXT UNIQUE,
    window_mode         TEXT,
    parent_origin       TEXT,
    m_redirect_url      TEXT
);
CREATE INDEX certifications_by_merchant ON certifications (merchant_id, created_at);
CREATE INDEX certifications_by_expiry ON certifications (expires_at) WHERE status <> 'certified';
