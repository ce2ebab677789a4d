//! The webhook announcement row a settle writes with the payment (the outbox's insert).

/// Why an event is recorded `skipped`: nothing could receive it.
pub const NO_WEBHOOK_TARGET: &str = "no webhook target (no notice_url and no merchant URL)";

/// SQL true when an event of `$merchant` with `$urls` (its notice_urls) has nowhere to go: no
/// notice_url of its own and no webhook URL on the merchant. Such an event is written already
/// `skipped` (most merchants of a busy instance configure no URL, and an event born pending cost
/// the dispatcher a second row version and index entries per payment).
macro_rules! untargeted {
    ($merchant:literal, $urls:literal) => {
        concat!(
            "(",
            $urls,
            " IS NULL AND NOT EXISTS (SELECT 1 FROM merchants m WHERE m.imp_code = ",
            $merchant,
            " AND m.webhook_url IS NOT NULL))"
        )
    };
}
pub(crate) use untargeted;

/// One event; `$9` is [`NO_WEBHOOK_TARGET`].
pub(crate) const OUTBOX_INSERT: &str = concat!(
    "INSERT INTO outbox (id, merchant_id, imp_uid, merchant_uid, status, cancellation_id, notice_urls, \
     created_at, next_attempt_at, state, last_error) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8, CASE WHEN ",
    untargeted!("$2", "$7"),
    " THEN 'skipped' ELSE 'pending' END, CASE WHEN ",
    untargeted!("$2", "$7"),
    " THEN $9 END)"
);
