//! Payments and their cancel history: insert an attempt, record the PG's answer, look up.

use crate::batch::{Op, OpResult};
use crate::connect::{PgStore, SqliteStore};
use crate::error::{on_conflict, StoreError, StoreResult};
use crate::models::{
    CancelEntry, Channel, OutboxEvent, Page, Payment, PgState, Settlement, Sorting,
};
use async_trait::async_trait;

/// Filters of the lookup endpoints. `status: None` means every status.
#[derive(Clone, Debug, Default)]
pub struct PaymentQuery<'a> {
    pub status: Option<&'a str>,
    pub sorting: Sorting,
    pub offset: i64,
    pub limit: i64,
}

/// A billing-key charge's attempt as inserted, with what its PG call needs.
#[derive(Clone, Debug)]
pub struct KeyedAttempt {
    pub payment: Payment,
    pub channel: Channel,
    pub billing_key: String,
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Inserts a new attempt. With `uid_lock` set, a second locked row for the same
    /// (merchant, merchant_uid) is refused with `Conflict`: the double-charge guard.
    async fn insert_payment(&self, p: &Payment) -> StoreResult<()>;
    /// Inserts a billing-key charge's attempt completed from its context in the same write,
    /// where the store can (PostgreSQL's batch writer: no read before the insert). `template`
    /// is the attempt without the key's part: its channel, card and buyer defaults are filled
    /// from `customer_uid`'s customer and channel, as `again` fills them. Inserted only when
    /// the customer and its channel exist, any pre-registered amount equals `amount`, and the
    /// merchant_uid guard is free. `None`: nothing was inserted (or the store cannot do it):
    /// the caller takes the ordinary path (read the context, judge it, insert).
    async fn insert_keyed_attempt(&self, template: &Payment) -> StoreResult<Option<KeyedAttempt>>;
    /// `merchant_id: None` reads across merchants (reconciler, PG notifications).
    async fn get_payment(
        &self,
        merchant_id: Option<&str>,
        imp_uid: &str,
    ) -> StoreResult<Option<Payment>>;
    /// The attempt holding the merchant_uid guard (in flight or paid), if any.
    async fn locked_payment(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
    ) -> StoreResult<Option<Payment>>;
    /// Takes the merchant_uid guard for a `ready` attempt that is about to call the PG
    /// (window flow). `Conflict` when another attempt holds it.
    async fn lock_for_pg(&self, imp_uid: &str, now: i64) -> StoreResult<Payment>;
    /// Records the PG's answer on a `ready` attempt whose call was under way or unknown, with
    /// the webhook announcements in the same transaction. `Stale` if the row had moved on.
    async fn settle(
        &self,
        imp_uid: &str,
        s: &Settlement,
        now: i64,
        events: &[OutboxEvent],
    ) -> StoreResult<Payment>;
    async fn find_by_merchant_uid(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
        q: &PaymentQuery<'_>,
    ) -> StoreResult<Page<Payment>>;
    /// Payments whose status time (started/paid/cancelled/failed by status) is in `[from, to]`.
    async fn list_by_status(
        &self,
        merchant_id: &str,
        from: i64,
        to: i64,
        q: &PaymentQuery<'_>,
    ) -> StoreResult<Page<Payment>>;
    async fn get_many(
        &self,
        merchant_id: &str,
        imp_uids: &[String],
        merchant_uids: &[String],
    ) -> StoreResult<Vec<Payment>>;
    async fn list_by_customer(
        &self,
        merchant_id: &str,
        customer_uid: &str,
        q: &PaymentQuery<'_>,
    ) -> StoreResult<Page<Payment>>;
    /// Attempts whose PG outcome is unknown and due for another look, and attempts left in
    /// flight before `stale_before` (a crash between the call and its record).
    async fn list_unsettled(
        &self,
        now: i64,
        stale_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<Payment>>;
    /// Writes webhook announcements on their own (e.g. a redelivery).
    async fn insert_events(&self, events: &[OutboxEvent]) -> StoreResult<()>;
}

/// Builds a `Payment` from a row of `PAYMENT_COLUMNS`; `$get` is the driver's by-name getter
/// (`try_get` for sqlx, `get` for rusqlite), so both read paths share one mapping.
macro_rules! payment_from_row {
    ($r:expr, $get:ident) => {
        Payment {
            imp_uid: $r.$get("imp_uid")?,
            merchant_id: $r.$get("merchant_id")?,
            merchant_uid: $r.$get("merchant_uid")?,
            uid_lock: $r.$get("uid_lock")?,
            told_failed: $r.$get("told_failed")?,
            reconcile_attempts: $r.$get("reconcile_attempts")?,
            next_reconcile_at: $r.$get("next_reconcile_at")?,
            channel_id: $r.$get("channel_id")?,
            pay_method: $r.$get("pay_method")?,
            channel: $r.$get("channel")?,
            pg_provider: $r.$get("pg_provider")?,
            emb_pg_provider: $r.$get("emb_pg_provider")?,
            pg_tid: $r.$get("pg_tid")?,
            pg_id: $r.$get("pg_id")?,
            sandbox: $r.$get("sandbox")?,
            escrow: $r.$get("escrow")?,
            apply_num: $r.$get("apply_num")?,
            bank_code: $r.$get("bank_code")?,
            bank_name: $r.$get("bank_name")?,
            card_code: $r.$get("card_code")?,
            card_name: $r.$get("card_name")?,
            card_quota: $r.$get("card_quota")?,
            card_number: $r.$get("card_number")?,
            card_type: $r.$get("card_type")?,
            vbank_code: $r.$get("vbank_code")?,
            vbank_name: $r.$get("vbank_name")?,
            vbank_num: $r.$get("vbank_num")?,
            vbank_holder: $r.$get("vbank_holder")?,
            vbank_date: $r.$get("vbank_date")?,
            vbank_issued_at: $r.$get("vbank_issued_at")?,
            name: $r.$get("name")?,
            amount: $r.$get("amount")?,
            cancel_amount: $r.$get("cancel_amount")?,
            cancel_reserved: $r.$get("cancel_reserved")?,
            tax_free: $r.$get("tax_free")?,
            vat_amount: $r.$get("vat_amount")?,
            currency: $r.$get("currency")?,
            buyer_name: $r.$get("buyer_name")?,
            buyer_email: $r.$get("buyer_email")?,
            buyer_tel: $r.$get("buyer_tel")?,
            buyer_addr: $r.$get("buyer_addr")?,
            buyer_postcode: $r.$get("buyer_postcode")?,
            custom_data: $r.$get("custom_data")?,
            user_agent: $r.$get("user_agent")?,
            notice_url: $r.$get("notice_url")?,
            status: $r.$get("status")?,
            started_at: $r.$get("started_at")?,
            paid_at: $r.$get("paid_at")?,
            failed_at: $r.$get("failed_at")?,
            cancelled_at: $r.$get("cancelled_at")?,
            updated_at: $r.$get("updated_at")?,
            fail_reason: $r.$get("fail_reason")?,
            cancel_reason: $r.$get("cancel_reason")?,
            receipt_url: $r.$get("receipt_url")?,
            cash_receipt_issued: $r.$get("cash_receipt_issued")?,
            customer_uid: $r.$get("customer_uid")?,
            customer_uid_usage: $r.$get("customer_uid_usage")?,
            pg_state: {
                let s: String = $r.$get("pg_state")?;
                PgState::parse(&s)
            },
            cancel_history: Vec::new(),
        }
    };
}
pub(crate) use payment_from_row;

/// `(imp_uid, entry)` from a `cancel_history` row.
macro_rules! cancel_entry_from_row {
    ($r:expr, $get:ident) => {
        (
            $r.$get("imp_uid")?,
            CancelEntry {
                cancellation_id: $r.$get("cancellation_id")?,
                pg_tid: $r.$get("pg_tid")?,
                amount: $r.$get("amount")?,
                cancelled_at: $r.$get("cancelled_at")?,
                reason: $r.$get("reason")?,
                receipt_url: $r.$get("receipt_url")?,
            },
        )
    };
}
pub(crate) use cancel_entry_from_row;

pub(crate) const PAYMENT_COLUMNS: &[&str] = &[
    "imp_uid",
    "merchant_id",
    "merchant_uid",
    "uid_lock",
    "pg_state",
    "told_failed",
    "reconcile_attempts",
    "next_reconcile_at",
    "channel_id",
    "pay_method",
    "channel",
    "pg_provider",
    "emb_pg_provider",
    "pg_tid",
    "pg_id",
    "sandbox",
    "escrow",
    "apply_num",
    "bank_code",
    "bank_name",
    "card_code",
    "card_name",
    "card_quota",
    "card_number",
    "card_type",
    "vbank_code",
    "vbank_name",
    "vbank_num",
    "vbank_holder",
    "vbank_date",
    "vbank_issued_at",
    "name",
    "amount",
    "cancel_amount",
    "cancel_reserved",
    "tax_free",
    "vat_amount",
    "currency",
    "buyer_name",
    "buyer_email",
    "buyer_tel",
    "buyer_addr",
    "buyer_postcode",
    "custom_data",
    "user_agent",
    "notice_url",
    "status",
    "started_at",
    "paid_at",
    "failed_at",
    "cancelled_at",
    "updated_at",
    "fail_reason",
    "cancel_reason",
    "receipt_url",
    "cash_receipt_issued",
    "customer_uid",
    "customer_uid_usage",
];

pub(crate) fn cols() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| PAYMENT_COLUMNS.join(", "))
}

/// `cols()` qualified by the alias `p` (for joins and `UPDATE … FROM`).
pub(crate) fn p_cols() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        PAYMENT_COLUMNS
            .iter()
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

pub(crate) fn insert_sql() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let ph: Vec<String> = (1..=PAYMENT_COLUMNS.len())
            .map(|i| format!("${i}"))
            .collect();
        // DO NOTHING: a taken merchant_uid guard (partial unique index) inserts no row, and the
        // caller reports the conflict, instead of failing the whole group-commit batch.
        format!(
            "INSERT INTO payments ({}) VALUES ({}) ON CONFLICT DO NOTHING",
            cols(),
            ph.join(",")
        )
    })
}

/// The column a status filter's time window applies to (spec §3.1).
fn time_column(status: Option<&str>) -> &'static str {
    match status {
        Some("paid") => "paid_at",
        Some("cancelled") => "cancelled_at",
        Some("failed") => "failed_at",
        _ => "started_at",
    }
}

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Clone, Copy)]
pub(crate) enum SettleKind {
    Paid,
    Failed,
    Unknown,
}

/// The guarded UPDATE recording a PG answer, returning the row. Parameters: `$1` imp_uid,
/// `$2` now, then per kind — Paid: `$3` pg_tid, `$4` apply_num, `$5` paid_at, `$6` card_code,
/// `$7` card_name, `$8` card_number, `$9` card_type, `$10` card_quota, `$11` bank_code,
/// `$12` bank_name, `$13` receipt_url; Failed: `$3` reason, `$4` failed_at; Unknown:
/// `$3` told_failed, `$4` next_reconcile_at.
pub(crate) fn settle_sql(kind: SettleKind) -> &'static str {
    static S: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    let all = S.get_or_init(|| {
        let guard = "WHERE imp_uid = $1 AND status = 'ready' AND pg_state IN ('in_flight','unknown')";
        [
            format!(
                "UPDATE payments SET status = 'paid', pg_state = 'settled', uid_lock = TRUE, updated_at = $2, \
                 pg_tid = $3, apply_num = $4, paid_at = $5, card_code = COALESCE($6, card_code), \
                 card_name = COALESCE($7, card_name), card_number = COALESCE($8, card_number), \
                 card_type = COALESCE($9, card_type), card_quota = $10, bank_code = COALESCE($11, bank_code), \
                 bank_name = COALESCE($12, bank_name), receipt_url = $13 {guard} RETURNING {}",
                cols()
            ),
            format!(
                "UPDATE payments SET status = 'failed', pg_state = 'settled', uid_lock = FALSE, updated_at = $2, \
                 fail_reason = $3, failed_at = $4 {guard} RETURNING {}",
                cols()
            ),
            format!(
                "UPDATE payments SET pg_state = 'unknown', updated_at = $2, told_failed = (told_failed OR $3), \
                 next_reconcile_at = $4, reconcile_attempts = reconcile_attempts + 1 {guard} RETURNING {}",
                cols()
            ),
        ]
    });
    &all[kind as usize]
}

/// Reads one payment of one merchant (`$1` imp_uid, `$2` merchant_id), or of any (`$1` only).
pub(crate) fn get_sql(with_merchant: bool) -> &'static str {
    static S: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let all = S.get_or_init(|| {
        [
            format!("SELECT {} FROM payments WHERE imp_uid = $1", cols()),
            format!(
                "SELECT {} FROM payments WHERE imp_uid = $1 AND merchant_id = $2",
                cols()
            ),
        ]
    });
    &all[with_merchant as usize]
}

pub(crate) const CANCEL_HISTORY_COLS: &str =
    "imp_uid, cancellation_id, pg_tid, amount, cancelled_at, reason, receipt_url";
pub(crate) const CANCEL_HISTORY_ONE: &str =
    "SELECT imp_uid, cancellation_id, pg_tid, amount, cancelled_at, reason, receipt_url \
     FROM cancel_history WHERE imp_uid = $1 ORDER BY seq";

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

macro_rules! impl_payment_store {
    ($store:ty, $db:ty, $row:ty, $m:ident) => {
        pub(crate) mod $m {
            use super::*;
            use sqlx::Row;
            use crate::connect::{HasLane, HasPgReads};

            pub(crate) fn payment(r: &$row) -> sqlx::Result<Payment> {
                Ok(payment_from_row!(r, try_get))
            }

            fn cancel_entry(r: &$row) -> sqlx::Result<(String, CancelEntry)> {
                Ok(cancel_entry_from_row!(r, try_get))
            }

            /// Fills `cancel_history` of payments that have cancels, in one query.
            pub(crate) async fn with_history<'e, E>(exec: E, mut ps: Vec<Payment>) -> sqlx::Result<Vec<Payment>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let ids: Vec<&str> = ps.iter().filter(|p| p.cancel_amount > 0 || p.cancelled_at > 0).map(|p| p.imp_uid.as_str()).collect();
                if ids.is_empty() {
                    return Ok(ps);
                }
                let sql = format!(
                    "SELECT imp_uid, cancellation_id, pg_tid, amount, cancelled_at, reason, receipt_url \
                     FROM cancel_history WHERE imp_uid IN ({}) ORDER BY imp_uid, seq",
                    placeholders(1, ids.len())
                );
                let mut q = sqlx::query(&sql);
                for id in &ids {
                    q = q.bind(*id);
                }
                let rows = q.fetch_all(exec).await?;
                for r in &rows {
                    let (imp_uid, e) = cancel_entry(r)?;
                    if let Some(p) = ps.iter_mut().find(|p| p.imp_uid == imp_uid) {
                        p.cancel_history.push(e);
                    }
                }
                Ok(ps)
            }

            pub(crate) async fn insert_outbox<'e, E>(exec: E, ev: &OutboxEvent) -> sqlx::Result<()>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                sqlx::query(OUTBOX_INSERT)
                    .bind(&ev.id)
                    .bind(&ev.merchant_id)
                    .bind(&ev.imp_uid)
                    .bind(&ev.merchant_uid)
                    .bind(&ev.status)
                    .bind(&ev.cancellation_id)
                    .bind(&ev.notice_urls)
                    .bind(ev.created_at)
                    .bind(NO_WEBHOOK_TARGET)
                    .execute(exec)
                    .await?;
                Ok(())
            }

            async fn page(store: &$store, count_sql: String, list_sql: String, binds: Vec<BindVal<'_>>, q: &PaymentQuery<'_>) -> StoreResult<Page<Payment>> {
                let mut cq = sqlx::query_scalar::<_, i64>(&count_sql);
                for b in &binds {
                    cq = match b {
                        BindVal::S(s) => cq.bind(*s),
                        BindVal::I(i) => cq.bind(*i),
                    };
                }
                let total = cq.fetch_one(&store.pool).await?;
                let mut lq = sqlx::query(&list_sql);
                for b in &binds {
                    lq = match b {
                        BindVal::S(s) => lq.bind(*s),
                        BindVal::I(i) => lq.bind(*i),
                    };
                }
                let rows = lq.bind(q.limit).bind(q.offset).fetch_all(&store.pool).await?;
                let ps = rows.iter().map(payment).collect::<sqlx::Result<Vec<_>>>()?;
                Ok(Page { total, items: with_history(&store.pool, ps).await? })
            }

            enum BindVal<'a> {
                S(&'a str),
                I(i64),
            }

            /// Records the PG's answer on an attempt awaiting it, with its outbox rows, inside `tx`.
            /// `None` when the row had moved on.
            pub(crate) async fn settle_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                imp_uid: &str,
                s: &Settlement,
                now: i64,
                events: &[OutboxEvent],
            ) -> sqlx::Result<Option<Payment>> {
                let q = match s {
                    Settlement::Paid { pg_tid, apply_num, paid_at, card_code, card_name, card_number, card_type, card_quota, bank_code, bank_name, receipt_url } => {
                        sqlx::query(settle_sql(SettleKind::Paid))
                            .bind(imp_uid)
                            .bind(now)
                            .bind(pg_tid)
                            .bind(apply_num)
                            .bind(*paid_at)
                            .bind(card_code)
                            .bind(card_name)
                            .bind(card_number)
                            .bind(*card_type)
                            .bind(*card_quota)
                            .bind(bank_code)
                            .bind(bank_name)
                            .bind(receipt_url)
                    }
                    Settlement::Failed { reason, failed_at } => sqlx::query(settle_sql(SettleKind::Failed))
                        .bind(imp_uid)
                        .bind(now)
                        .bind(reason)
                        .bind(*failed_at),
                    Settlement::Unknown { told_failed, next_reconcile_at } => sqlx::query(settle_sql(SettleKind::Unknown))
                        .bind(imp_uid)
                        .bind(now)
                        .bind(*told_failed)
                        .bind(*next_reconcile_at),
                };
                let Some(row) = q.fetch_optional(&mut **tx).await? else {
                    return Ok(None);
                };
                for ev in events {
                    insert_outbox(&mut **tx, ev).await?;
                }
                Ok(Some(payment(&row)?))
            }

            /// The group-commit writer: takes a batch of queued writes, runs them in one
            /// transaction (one fsync for the lot), and answers each. If the batch fails, each
            /// write is retried alone so one bad write cannot fail the others.
            pub(crate) async fn run_writer(pool: sqlx::Pool<$db>, queue: crate::batch::Queue) {
                loop {
                    let batch = match crate::batch::next_batch(&queue).await {
                        Some(b) => b,
                        None => return,
                    };
                    let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
                    let attempt: sqlx::Result<Vec<OpResult>> = match <$db as crate::pg_batch::MultiRow>::write_batch(&pool, &ops).await {
                        Some(r) => r,
                        None => async {
                            let mut tx = pool.begin().await?;
                            let mut results = Vec::with_capacity(ops.len());
                            for op in &ops {
                                results.push(apply(&mut tx, op).await?);
                            }
                            tx.commit().await?;
                            Ok(results)
                        }
                        .await,
                    };
                    match attempt {
                        Ok(results) => {
                            for ((_, reply), r) in batch.into_iter().zip(results) {
                                let _ = reply.send(Ok(r));
                            }
                        }
                        Err(_) if batch.len() > 1 => {
                            for (op, reply) in batch {
                                let one: sqlx::Result<OpResult> = async {
                                    let mut tx = pool.begin().await?;
                                    let r = apply(&mut tx, &op).await?;
                                    tx.commit().await?;
                                    Ok(r)
                                }
                                .await;
                                let _ = reply.send(one.map_err(|e| on_conflict(e, "payment exists")));
                            }
                        }
                        Err(e) => {
                            if let Some((_, reply)) = batch.into_iter().next() {
                                let _ = reply.send(Err(on_conflict(e, "payment exists")));
                            }
                        }
                    }
                }
            }

            async fn apply(tx: &mut sqlx::Transaction<'_, $db>, op: &Op) -> sqlx::Result<OpResult> {
                Ok(match op {
                    Op::Insert(p) => OpResult::Inserted(insert_exec(&mut **tx, p).await?),
                    // Only the multi-row batch completes an attempt from its context; alone,
                    // nothing is inserted and the caller reads the context first.
                    Op::InsertKeyed(_) => OpResult::InsertedKeyed(None),
                    Op::Settle { imp_uid, s, now, events } => {
                        OpResult::Settled(settle_tx(tx, imp_uid, s, *now, events).await?.map(Box::new))
                    }
                })
            }

            /// Inserts an attempt; 0 rows when the merchant_uid guard is taken.
            pub(crate) async fn insert_exec<'e, E>(exec: E, p: &Payment) -> sqlx::Result<u64>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                Ok(sqlx::query(insert_sql())
                        .bind(&p.imp_uid)
                        .bind(&p.merchant_id)
                        .bind(&p.merchant_uid)
                        .bind(p.uid_lock)
                        .bind(p.pg_state.as_str())
                        .bind(p.told_failed)
                        .bind(p.reconcile_attempts)
                        .bind(p.next_reconcile_at)
                        .bind(&p.channel_id)
                        .bind(&p.pay_method)
                        .bind(&p.channel)
                        .bind(&p.pg_provider)
                        .bind(&p.emb_pg_provider)
                        .bind(&p.pg_tid)
                        .bind(&p.pg_id)
                        .bind(p.sandbox)
                        .bind(p.escrow)
                        .bind(&p.apply_num)
                        .bind(&p.bank_code)
                        .bind(&p.bank_name)
                        .bind(&p.card_code)
                        .bind(&p.card_name)
                        .bind(p.card_quota)
                        .bind(&p.card_number)
                        .bind(p.card_type)
                        .bind(&p.vbank_code)
                        .bind(&p.vbank_name)
                        .bind(&p.vbank_num)
                        .bind(&p.vbank_holder)
                        .bind(p.vbank_date)
                        .bind(p.vbank_issued_at)
                        .bind(&p.name)
                        .bind(p.amount)
                        .bind(p.cancel_amount)
                        .bind(p.cancel_reserved)
                        .bind(p.tax_free)
                        .bind(p.vat_amount)
                        .bind(&p.currency)
                        .bind(&p.buyer_name)
                        .bind(&p.buyer_email)
                        .bind(&p.buyer_tel)
                        .bind(&p.buyer_addr)
                        .bind(&p.buyer_postcode)
                        .bind(&p.custom_data)
                        .bind(&p.user_agent)
                        .bind(&p.notice_url)
                        .bind(&p.status)
                        .bind(p.started_at)
                        .bind(p.paid_at)
                        .bind(p.failed_at)
                        .bind(p.cancelled_at)
                        .bind(p.updated_at)
                        .bind(&p.fail_reason)
                        .bind(&p.cancel_reason)
                        .bind(&p.receipt_url)
                        .bind(p.cash_receipt_issued)
                        .bind(&p.customer_uid)
                        .bind(&p.customer_uid_usage).execute(exec).await?.rows_affected())
            }

            #[async_trait]
            impl PaymentStore for $store {
                async fn insert_payment(&self, p: &Payment) -> StoreResult<()> {
                    let inserted = match &self.writer {
                        Some(w) => match w.submit(Op::Insert(Box::new(p.clone()))).await? {
                            OpResult::Inserted(n) => n,
                            _ => 0,
                        },
                        None => insert_exec(&self.pool, p).await.map_err(|e| on_conflict(e, "payment exists"))?,
                    };
                    if inserted == 0 {
                        return Err(StoreError::Conflict("merchant_uid is locked by another attempt".into()));
                    }
                    Ok(())
                }

                async fn insert_keyed_attempt(&self, template: &Payment) -> StoreResult<Option<KeyedAttempt>> {
                    // Only a multi-row writer (PostgreSQL) completes the attempt as it inserts
                    // it; SQLite reads in-process, so reading first costs nothing worth saving.
                    match &self.writer {
                        Some(w) if <$db as crate::pg_batch::MultiRow>::MULTI_ROW => {
                            w.submit(Op::InsertKeyed(Box::new(template.clone()))).await?.into_keyed()
                        }
                        _ => Ok(None),
                    }
                }

                async fn get_payment(&self, merchant_id: Option<&str>, imp_uid: &str) -> StoreResult<Option<Payment>> {
                    if let Some(lane) = self.lane() {
                        return lane.get_payment(merchant_id, imp_uid);
                    }
                    if let (Some(m), Some(reads)) = (merchant_id, self.pg_reads()) {
                        return reads.payments.read((m.to_owned(), imp_uid.to_owned())).await;
                    }
                    let row = match merchant_id {
                        Some(m) => sqlx::query(get_sql(true))
                            .bind(imp_uid)
                            .bind(m)
                            .fetch_optional(&self.pool)
                            .await?,
                        None => sqlx::query(get_sql(false))
                            .bind(imp_uid)
                            .fetch_optional(&self.pool)
                            .await?,
                    };
                    match row {
                        None => Ok(None),
                        Some(r) => {
                            let p = payment(&r)?;
                            Ok(with_history(&self.pool, vec![p]).await?.pop())
                        }
                    }
                }

                async fn locked_payment(&self, merchant_id: &str, merchant_uid: &str) -> StoreResult<Option<Payment>> {
                    let row = sqlx::query(&format!(
                        "SELECT {} FROM payments WHERE merchant_id = $1 AND merchant_uid = $2 AND uid_lock = TRUE",
                        cols()
                    ))
                    .bind(merchant_id)
                    .bind(merchant_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(payment).transpose()?)
                }

                async fn lock_for_pg(&self, imp_uid: &str, now: i64) -> StoreResult<Payment> {
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET uid_lock = TRUE, pg_state = 'in_flight', updated_at = $2 \
                         WHERE imp_uid = $1 AND status = 'ready' AND pg_state = 'none' RETURNING {}",
                        cols()
                    ))
                    .bind(imp_uid)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| on_conflict(e, "merchant_uid is locked by another attempt"))?;
                    match row {
                        Some(r) => Ok(payment(&r)?),
                        None => Err(StoreError::Stale(format!("{imp_uid} is not a ready attempt"))),
                    }
                }

                async fn settle(&self, imp_uid: &str, s: &Settlement, now: i64, events: &[OutboxEvent]) -> StoreResult<Payment> {
                    let row = match &self.writer {
                        Some(w) => w
                            .submit(Op::Settle { imp_uid: imp_uid.to_owned(), s: Box::new(s.clone()), now, events: events.to_vec() })
                            .await?
                            .into_settled()?,
                        None => {
                            let mut tx = self.pool.begin().await?;
                            let p = settle_tx(&mut tx, imp_uid, s, now, events).await?;
                            tx.commit().await?;
                            p
                        }
                    };
                    row.ok_or_else(|| StoreError::Stale(format!("{imp_uid} is no longer awaiting the PG")))
                }

                async fn find_by_merchant_uid(&self, merchant_id: &str, merchant_uid: &str, q: &PaymentQuery<'_>) -> StoreResult<Page<Payment>> {
                    let mut binds = vec![BindVal::S(merchant_id), BindVal::S(merchant_uid)];
                    let mut filter = String::from("merchant_id = $1 AND merchant_uid = $2");
                    if let Some(st) = q.status {
                        binds.push(BindVal::S(st));
                        filter.push_str(" AND status = $3");
                    }
                    let n = binds.len();
                    let count_sql = format!("SELECT COUNT(*) FROM payments WHERE {filter}");
                    let list_sql = format!(
                        "SELECT {} FROM payments WHERE {filter} ORDER BY {} LIMIT ${} OFFSET ${}",
                        cols(),
                        q.sorting.order_by(),
                        n + 1,
                        n + 2
                    );
                    page(self, count_sql, list_sql, binds, q).await
                }

                async fn list_by_status(&self, merchant_id: &str, from: i64, to: i64, q: &PaymentQuery<'_>) -> StoreResult<Page<Payment>> {
                    let tcol = time_column(q.status);
                    let mut binds = vec![BindVal::S(merchant_id), BindVal::I(from), BindVal::I(to)];
                    let mut filter = format!("merchant_id = $1 AND {tcol} >= $2 AND {tcol} <= $3");
                    if let Some(st) = q.status {
                        binds.push(BindVal::S(st));
                        filter.push_str(" AND status = $4");
                    }
                    let n = binds.len();
                    let count_sql = format!("SELECT COUNT(*) FROM payments WHERE {filter}");
                    let list_sql = format!(
                        "SELECT {} FROM payments WHERE {filter} ORDER BY {} LIMIT ${} OFFSET ${}",
                        cols(),
                        q.sorting.order_by(),
                        n + 1,
                        n + 2
                    );
                    page(self, count_sql, list_sql, binds, q).await
                }

                async fn get_many(&self, merchant_id: &str, imp_uids: &[String], merchant_uids: &[String]) -> StoreResult<Vec<Payment>> {
                    let mut out = Vec::new();
                    if !imp_uids.is_empty() {
                        let sql = format!(
                            "SELECT {} FROM payments WHERE merchant_id = $1 AND imp_uid IN ({}) ORDER BY started_at DESC, imp_uid",
                            cols(),
                            placeholders(2, imp_uids.len())
                        );
                        let mut q = sqlx::query(&sql).bind(merchant_id);
                        for u in imp_uids {
                            q = q.bind(u);
                        }
                        for r in q.fetch_all(&self.pool).await? {
                            out.push(payment(&r)?);
                        }
                    }
                    if !merchant_uids.is_empty() {
                        // The latest attempt of each merchant_uid, as `find` would return it.
                        for m in merchant_uids {
                            let row = sqlx::query(&format!(
                                "SELECT {} FROM payments WHERE merchant_id = $1 AND merchant_uid = $2 \
                                 ORDER BY started_at DESC, imp_uid DESC LIMIT 1",
                                cols()
                            ))
                            .bind(merchant_id)
                            .bind(m)
                            .fetch_optional(&self.pool)
                            .await?;
                            if let Some(r) = row {
                                let p = payment(&r)?;
                                if !out.iter().any(|o| o.imp_uid == p.imp_uid) {
                                    out.push(p);
                                }
                            }
                        }
                    }
                    Ok(with_history(&self.pool, out).await?)
                }

                async fn list_by_customer(&self, merchant_id: &str, customer_uid: &str, q: &PaymentQuery<'_>) -> StoreResult<Page<Payment>> {
                    let binds = vec![BindVal::S(merchant_id), BindVal::S(customer_uid)];
                    let filter = "merchant_id = $1 AND customer_uid = $2";
                    let count_sql = format!("SELECT COUNT(*) FROM payments WHERE {filter}");
                    let list_sql = format!(
                        "SELECT {} FROM payments WHERE {filter} ORDER BY {} LIMIT $3 OFFSET $4",
                        cols(),
                        q.sorting.order_by()
                    );
                    page(self, count_sql, list_sql, binds, q).await
                }

                async fn list_unsettled(&self, now: i64, stale_before: i64, limit: i64) -> StoreResult<Vec<Payment>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {} FROM payments WHERE imp_uid IN (SELECT imp_uid FROM payments_unsettled) \
                         AND ((pg_state = 'unknown' AND next_reconcile_at <= $1) \
                         OR (pg_state = 'in_flight' AND updated_at < $2)) ORDER BY updated_at LIMIT $3",
                        cols()
                    ))
                    .bind(now)
                    .bind(stale_before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(payment).collect::<sqlx::Result<_>>()?)
                }

                async fn insert_events(&self, events: &[OutboxEvent]) -> StoreResult<()> {
                    let mut tx = self.pool.begin().await?;
                    for ev in events {
                        insert_outbox(&mut *tx, ev).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    };
}

impl_payment_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlite_impl
);
impl_payment_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, pg_impl);
