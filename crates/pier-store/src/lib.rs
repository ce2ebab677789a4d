//! Pier's durable store.
//!
//! The `Store` trait is the only way the engine reads or changes state. It is split into one
//! trait per area (merchants, payments, customers, idempotency…) so that each area's SQL lives in
//! one file. Every area is implemented twice from the same code, for SQLite and for PostgreSQL,
//! by the `impl_*` macros in its file: one schema (`migrations/`, plain TEXT/BIGINT/BOOLEAN columns
//! and `$n` placeholders) serves both engines, and the store conformance suite in `tests/` runs
//! against both.
//!
//! Every state change is one transaction, and transitions are guarded in SQL
//! (`UPDATE … WHERE status = 'ready'`, partial unique indexes), so a concurrency bug shows up as
//! a conflict, never as a double charge.

/// Runs `$run` with `$c` bound to the pool or, when `$plan` is a planner setting (`SET LOCAL …`,
/// empty for none), in a transaction that applies the setting first.
macro_rules! planned {
    ($pool:expr, $plan:expr, |$c:ident| $run:expr) => {
        if $plan.is_empty() {
            let $c = &$pool;
            $run
        } else {
            let mut tx = $pool.begin().await?;
            sqlx::query($plan).execute(&mut *tx).await?;
            let out = {
                let $c = &mut *tx;
                $run
            };
            tx.commit().await?;
            out
        }
    };
}

mod batch;
mod certifications;
mod checkout;
mod connect;
mod customers;
mod error;
mod idempotency;
mod lane;
mod merchants;
mod models;
mod operators;
mod outbox_row;
mod owner;
mod payment_row;
mod payment_settle;
mod payment_write;
pub mod payments;
mod pg_batch;
mod pg_reads;
mod pg_stats;
mod prepare;
mod receipts;
mod reconcile;
mod refunds;
mod retention;
mod row;
mod rows;
mod schedule_guards;
mod schedules;
pub mod testdb;
mod testpg_journal;
mod vbanks;
mod webhooks;

pub use certifications::{CertStep, Certification, CertificationStore};
pub use checkout::{CheckoutSession, CheckoutStore, VbankIssue};
pub use connect::{connect, migration_versions, PgStore, SqliteStore, StoreKind};
pub use customers::{ChargeContext, CustomerStore};
pub use error::{StoreError, StoreResult};
pub use idempotency::{IdemBegin, IdempotencyStore};
pub use merchants::{ChannelUse, MerchantStore};
pub use models::*;
pub use operators::{AuditEntry, ConsoleFilter, ConsoleSession, ConsoleStore, DayTotals, Operator};
pub use owner::Unjoined;
pub use payments::{PaymentQuery, PaymentStore, NO_WEBHOOK_TARGET};
pub use prepare::{PrepareStore, Prepared};
pub use receipts::{CashReceipt, EscrowLogis, ReceiptStore};
pub use reconcile::ReconcileStore;
pub use refunds::{CancelRequestRow, RefundStore};
pub use retention::RetentionStore;
pub use schedules::{Schedule, ScheduleFinish, ScheduleOutcome, ScheduleQuery, ScheduleStore};
pub use testpg_journal::{JournalAppend, JournalEntry, TestpgJournalStore};
pub use vbanks::{VbankAccount, VbankStore};
pub use webhooks::{Delivery, EventUpdate, OutboxRow, WebhookStore};

/// The store's own lifecycle.
#[async_trait::async_trait]
pub trait Lifecycle: Send + Sync {
    /// Stops taking writes of the charge path: the group-commit writers finish what is queued and
    /// end; later writes are answered `StoreError::Unavailable`. Called at shutdown, after the
    /// server and the jobs stopped (and by tests that stop the writer mid-request).
    fn close_writes(&self);

    /// Stops every task and thread the store started — the writers (`close_writes`), the
    /// batched readers, the analyze loop — and joins them, waiting at most `within`. What is
    /// queued is answered first. `Unjoined` names what was still running at the deadline (a
    /// task is aborted then; a thread cannot be). Reads outside the batched readers still work
    /// afterwards; the batched ones answer `Unavailable`.
    async fn shutdown(&self, within: std::time::Duration) -> Result<(), Unjoined>;

    /// Tasks and threads the store started that have not ended (0 after `shutdown`).
    fn live_tasks(&self) -> usize;
}

macro_rules! impl_lifecycle {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl Lifecycle for $store {
            fn close_writes(&self) {
                if let Some(w) = &self.writer {
                    w.close();
                }
            }

            async fn shutdown(&self, within: std::time::Duration) -> Result<(), Unjoined> {
                self.close_writes();
                self.owner.shutdown(within).await
            }

            fn live_tasks(&self) -> usize {
                self.owner.live()
            }
        }
    };
}

impl_lifecycle!(SqliteStore);
impl_lifecycle!(PgStore);

/// Everything the engine needs from storage.
pub trait Store:
    Lifecycle
    + MerchantStore
    + PaymentStore
    + CustomerStore
    + IdempotencyStore
    + RefundStore
    + PrepareStore
    + VbankStore
    + WebhookStore
    + ScheduleStore
    + CheckoutStore
    + ReconcileStore
    + RetentionStore
    + ReceiptStore
    + CertificationStore
    + ConsoleStore
    + TestpgJournalStore
{
}

impl<T> Store for T where
    T: Lifecycle
        + MerchantStore
        + PaymentStore
        + CustomerStore
        + IdempotencyStore
        + RefundStore
        + PrepareStore
        + VbankStore
        + WebhookStore
        + ScheduleStore
        + CheckoutStore
        + ReconcileStore
        + RetentionStore
        + ReceiptStore
        + CertificationStore
        + ConsoleStore
        + TestpgJournalStore
{
}
