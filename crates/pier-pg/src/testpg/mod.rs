//! The test PG: a deterministic simulated acquirer, and `InProcess`, the connector that calls it
//! directly.
//!
//! Outcomes are chosen by card number (`TEST_CARDS`, documented in `docs/test-cards.md`), so a
//! test picks a behaviour by picking a card: approve, the usual issuer declines, an invalid number,
//! a charge that times out, an approval whose answer is lost, billing-key failures. The engine
//! keeps its own ledger (`Engine::ledger_snapshot`), which reliability tests compare with Pier's
//! database, and can journal it to disk so that billing keys survive a restart of an in-process
//! demo. pgsim (`crate::pgsim`) serves the very same engine over HTTP.
//!
//! Module map: `cards` (test-card and BIN tables, holder rules), `config` (engine settings),
//! `engine` (the engine's state and what every operation uses), `rules` (checks, verdicts,
//! refusals), `ops` (charges, billing keys, cancels), `vbank` (virtual accounts, deposits),
//! `session`, `auth` and `complete` (payment-window sessions, authentication, completion),
//! `ledger` (records and snapshot), `journal` (append-only file), `shared` and `replica` (a
//! journal shared by several instances: its store side and the engine's replica), `crypto`
//! (AES-256-GCM sealing of card data), `window` (pages).

pub mod accounts;
mod auth;
pub mod cards;
mod complete;
mod config;
mod crypto;
mod engine;
mod journal;
mod ledger;
mod ops;
mod replica;
mod rules;
mod session;
mod shared;
mod table;
mod vbank;
pub mod window;

pub use auth::{MAX_SMS_FAILURES, PHONE_CARRIERS};
pub use cards::{Behaviour, TestCard, TEST_CARDS};
pub use config::{parse_encryption_key, EngineConfig};
pub use engine::Engine;
pub use ledger::{
    LedgerBillingKey, LedgerCancel, LedgerOrder, LedgerSnapshot, LedgerStatus, LedgerVbank,
    LedgerVbankStatus, MerchantTotal, PayMethod,
};
pub use rules::MAX_AMOUNT_KRW;
pub use session::{SessionStatus, SessionView};
pub use vbank::{Deposit, DepositTarget};

pub use shared::{JournalOp, JournalRow, JournalStats, SharedJournal};

pub(crate) use rules::{EngineResult, Fail};

use crate::{
    Approval, AuthBegin, AuthComplete, AuthOutcome, AuthSession, BillingKey, CancelOutcome,
    CancelRequest, CardData, Inquiry, Mid, Order, Pg, PgError, PgEvent, PgResult, VbankIssued,
    VbankRequest, DEFAULT_DEADLINE,
};
use async_trait::async_trait;
use std::time::Duration;

/// The test PG called directly: no network, no serialization. Every call is bounded by the
/// deadline; the cards that make the PG fall silent make the call wait for it and answer
/// `Unknown`, exactly as a network connector would.
#[derive(Clone, Debug)]
pub struct InProcess {
    engine: Engine,
    deadline: Duration,
}

impl InProcess {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            deadline: DEFAULT_DEADLINE,
        }
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Run one engine operation (journalled and shared when the engine is, see `shared`) and
    /// answer as the network would, within the deadline.
    async fn call<T>(&self, op: impl FnMut(&Engine) -> EngineResult<T>) -> PgResult<T> {
        if !self.engine.is_shared() {
            let mut op = op;
            return self.answer(op(&self.engine)).await;
        }
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(self.deadline, self.engine.run(op)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(Fail::Pg(e)),
            Err(_) => {
                return Err(PgError::Unknown(format!(
                    "no answer from the test PG within {} ms",
                    self.deadline.as_millis()
                )))
            }
        };
        let left = self.deadline.saturating_sub(started.elapsed());
        Self::answer_within(left, self.deadline, result).await
    }

    async fn answer<T>(&self, result: EngineResult<T>) -> PgResult<T> {
        Self::answer_within(self.deadline, self.deadline, result).await
    }

    async fn answer_within<T>(
        left: Duration,
        deadline: Duration,
        result: EngineResult<T>,
    ) -> PgResult<T> {
        let silence = async {
            match result {
                Ok(v) => Ok(v),
                Err(Fail::Pg(e)) => Err(e),
                Err(Fail::NoAnswer) => std::future::pending().await,
            }
        };
        match tokio::time::timeout(left, silence).await {
            Ok(answer) => answer,
            Err(_) => Err(PgError::Unknown(format!(
                "no answer from the test PG within {} ms",
                deadline.as_millis()
            ))),
        }
    }
}

#[async_trait]
impl Pg for InProcess {
    async fn simulate_deposit(&self, order_id: &str, amount_krw: Option<i64>) -> PgResult<PgEvent> {
        let target = DepositTarget::OrderId(order_id.to_owned());
        let deposit = self.engine.deposit_shared(&target, amount_krw).await?;
        Ok(deposit.into())
    }

    async fn approve_keyed(&self, mid: &Mid, order: &Order, card: CardData) -> PgResult<Approval> {
        self.call(|e| e.approve_keyed(mid, order, card.clone()))
            .await
    }

    async fn issue_billing_key(
        &self,
        mid: &Mid,
        customer_uid: &str,
        card: CardData,
    ) -> PgResult<BillingKey> {
        self.call(|e| e.issue_billing_key(mid, customer_uid, card.clone()))
            .await
    }

    async fn delete_billing_key(&self, mid: &Mid, billing_key: &str) -> PgResult<()> {
        self.call(|e| e.delete_billing_key(mid, billing_key)).await
    }

    async fn pay_with_key(
        &self,
        mid: &Mid,
        order: &Order,
        billing_key: &str,
    ) -> PgResult<Approval> {
        self.call(|e| e.pay_with_key(mid, order, billing_key)).await
    }

    async fn cancel(&self, mid: &Mid, req: &CancelRequest) -> PgResult<CancelOutcome> {
        self.call(|e| e.cancel(mid, req)).await
    }

    async fn inquire(&self, mid: &Mid, order_id: &str) -> PgResult<Inquiry> {
        self.call(|e| e.inquire(mid, order_id)).await
    }

    async fn net_cancel(&self, mid: &Mid, order_id: &str) -> PgResult<()> {
        self.call(|e| e.net_cancel(mid, order_id)).await
    }

    async fn issue_vbank(&self, mid: &Mid, req: &VbankRequest) -> PgResult<VbankIssued> {
        self.call(|e| e.issue_vbank(mid, req)).await
    }

    async fn begin_auth(&self, mid: &Mid, req: &AuthBegin) -> PgResult<AuthSession> {
        self.call(|e| e.begin_auth(mid, req)).await
    }

    async fn complete_auth(&self, mid: &Mid, req: &AuthComplete) -> PgResult<AuthOutcome> {
        self.call(|e| e.complete_auth(mid, req)).await
    }
}
