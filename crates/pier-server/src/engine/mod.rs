//! The engine: Pier's use cases. An HTTP handler parses, calls one function here, and wraps the
//! result. The engine owns the payment state machine and the order of effects that keeps money
//! safe: persist the intent, call the PG outside any transaction with a deadline, persist the
//! outcome; an unknown outcome is left for the reconciler, never assumed.

pub mod auth;
pub mod balance;
pub mod channels;
pub mod charge;
pub mod customers;
pub mod escrows;
pub mod holder;
pub mod lookup;
pub mod merchants;
pub mod origins;
pub mod prepare;
pub mod receipts;
pub mod reconcile;
pub mod refunds;
pub mod schedules;
pub mod secrets;
pub mod vbanks;
pub mod webhooks;
pub mod window;

use crate::config::Config;
use pier_domain::Clock;
use pier_pg::Pg;
use pier_store::{Channel, Store};
use std::sync::Arc;

/// Why a use case did not produce its result. The HTTP layer maps each kind to a status and code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A parameter is missing or malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    #[error("Unauthorized")]
    Unauthorized,
    /// An id in the path names nothing (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Pier refused a business operation (HTTP 200, code 1).
    #[error("{0}")]
    Refused(String),
    /// The PG or card company refused (HTTP 200, code -1).
    #[error("{0}")]
    PgRefused(String),
    /// The PG's answer is unknown; `imp_uid` names the attempt the reconciler will settle.
    #[error("{message}")]
    PgUnknown { message: String, imp_uid: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RateLimited(String),
    /// Storage or another dependency failed (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<pier_store::StoreError> for Error {
    fn from(e: pier_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        Error::Unavailable("일시적인 저장소 오류입니다. 잠시 후 다시 시도해주세요. (storage temporarily unavailable)".into())
    }
}

impl From<pier_domain::FieldError> for Error {
    fn from(e: pier_domain::FieldError) -> Self {
        Error::Invalid(e.to_string())
    }
}

/// Builds the connector for a pgsim base URL.
pub type RemoteFactory = Box<dyn Fn(&str) -> Arc<dyn Pg> + Send + Sync>;

/// Which connector serves a channel: the in-process test PG, or a pgsim over HTTP.
pub struct PgRegistry {
    inprocess: Arc<dyn Pg>,
    remote: dashmap::DashMap<String, Arc<dyn Pg>>,
    make_remote: RemoteFactory,
}

impl PgRegistry {
    pub fn new(inprocess: Arc<dyn Pg>, make_remote: RemoteFactory) -> Self {
        Self {
            inprocess,
            remote: dashmap::DashMap::new(),
            make_remote,
        }
    }

    pub fn for_channel(&self, c: &Channel) -> Arc<dyn Pg> {
        if c.target == "inprocess" {
            return self.inprocess.clone();
        }
        if let Some(pg) = self.remote.get(&c.target) {
            return pg.clone();
        }
        let pg = (self.make_remote)(&c.target);
        self.remote.insert(c.target.clone(), pg.clone());
        pg
    }
}

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub pgs: PgRegistry,
    pub cfg: Config,
    pub(crate) auth: auth::AuthState,
    /// The in-process test PG, for simulated deposits (set once at start-up).
    pub testpg: std::sync::OnceLock<pier_pg::testpg::Engine>,
    /// The outbound client of confirm_url calls (built on first use).
    pub(crate) confirm_client: std::sync::OnceLock<crate::outbound::Outbound>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, pgs: PgRegistry, cfg: Config) -> Self {
        let auth = auth::AuthState::new(&cfg);
        Self {
            store,
            clock,
            pgs,
            cfg,
            auth,
            testpg: std::sync::OnceLock::new(),
            confirm_client: std::sync::OnceLock::new(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_unix()
    }
}

/// Stands in for a connector that could not be built (a malformed channel target): every call
/// is `Unreachable`, so nothing is charged and the error names the cause.
pub struct BrokenPg(pub String);

#[async_trait::async_trait]
impl Pg for BrokenPg {
    async fn approve_keyed(
        &self,
        _: &pier_pg::Mid,
        _: &pier_pg::Order,
        _: pier_pg::CardData,
    ) -> pier_pg::PgResult<pier_pg::Approval> {
        Err(self.err())
    }
    async fn issue_billing_key(
        &self,
        _: &pier_pg::Mid,
        _: &str,
        _: pier_pg::CardData,
    ) -> pier_pg::PgResult<pier_pg::BillingKey> {
        Err(self.err())
    }
    async fn delete_billing_key(&self, _: &pier_pg::Mid, _: &str) -> pier_pg::PgResult<()> {
        Err(self.err())
    }
    async fn pay_with_key(
        &self,
        _: &pier_pg::Mid,
        _: &pier_pg::Order,
        _: &str,
    ) -> pier_pg::PgResult<pier_pg::Approval> {
        Err(self.err())
    }
    async fn cancel(
        &self,
        _: &pier_pg::Mid,
        _: &pier_pg::CancelRequest,
    ) -> pier_pg::PgResult<pier_pg::CancelOutcome> {
        Err(self.err())
    }
    async fn inquire(&self, _: &pier_pg::Mid, _: &str) -> pier_pg::PgResult<pier_pg::Inquiry> {
        Err(self.err())
    }
    async fn net_cancel(&self, _: &pier_pg::Mid, _: &str) -> pier_pg::PgResult<()> {
        Err(self.err())
    }
    async fn issue_vbank(
        &self,
        _: &pier_pg::Mid,
        _: &pier_pg::VbankRequest,
    ) -> pier_pg::PgResult<pier_pg::VbankIssued> {
        Err(self.err())
    }
    async fn begin_auth(
        &self,
        _: &pier_pg::Mid,
        _: &pier_pg::AuthBegin,
    ) -> pier_pg::PgResult<pier_pg::AuthSession> {
        Err(self.err())
    }
    async fn complete_auth(
        &self,
        _: &pier_pg::Mid,
        _: &pier_pg::AuthComplete,
    ) -> pier_pg::PgResult<pier_pg::AuthOutcome> {
        Err(self.err())
    }
}

impl BrokenPg {
    fn err(&self) -> pier_pg::PgError {
        pier_pg::PgError::Unreachable(self.0.clone())
    }
}
