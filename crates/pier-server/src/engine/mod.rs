//! The engine: Pier's use cases. An HTTP handler parses, calls one function here, and wraps the
//! result. The engine owns the payment state machine and the order of effects that keeps money
//! safe: persist the intent, call the PG outside any transaction with a deadline, persist the
//! outcome; an unknown outcome is left for the reconciler, never assumed.

pub(crate) mod attempt;
pub mod auth;
pub mod balance;
pub mod certifications;
pub mod channels;
pub mod charge;
pub mod console;
pub mod customers;
pub mod escrows;
pub mod gates;
pub mod holder;
pub mod lookup;
pub mod merchants;
pub mod origins;
pub mod pg_webhooks;
pub mod pg_window;
pub mod prepare;
pub mod receipts;
pub mod reconcile;
pub mod refunds;
pub mod retention;
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
    /// Pier refused for now: another attempt for the same order is in flight (HTTP 200, code 1).
    /// Not final, so an Idempotency-Key is not bound to it and a retry runs again.
    #[error("{0}")]
    Busy(String),
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

/// Every call to a PG goes through here: the deadline (past it the answer is `Unknown`: the PG
/// may still have acted, and the reconciler finds out), one latency histogram and one outcome
/// counter per operation (`/metrics`: `pier_pg_call_seconds{op,outcome}`), a debug event.
pub(crate) async fn pg_call<T>(
    op: &'static str,
    deadline: std::time::Duration,
    call: impl std::future::Future<Output = pier_pg::PgResult<T>>,
) -> pier_pg::PgResult<T> {
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| Err(pier_pg::PgError::Unknown("deadline passed".into())));
    let outcome = match &answer {
        Ok(_) => "ok",
        Err(pier_pg::PgError::Declined { .. }) => "declined",
        Err(pier_pg::PgError::Rejected { .. }) => "rejected",
        Err(pier_pg::PgError::Unknown(_)) => "unknown",
        Err(pier_pg::PgError::Unreachable(_)) => "unreachable",
    };
    let secs = started.elapsed().as_secs_f64();
    metrics::histogram!("pier_pg_call_seconds", "op" => op, "outcome" => outcome).record(secs);
    tracing::debug!(op, outcome, ms = secs * 1000.0, "pg call");
    answer
}

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

/// Which connector serves a channel, by the channel alone: a PG Pier calls directly with the
/// channel's own credentials (`tosspayments`), a connector registered under the channel's
/// target name (the in-process test PG is registered as `inprocess` at start-up), or a pgsim
/// over HTTP at the target URL.
pub struct PgRegistry {
    /// Connectors by target name, registered at start-up.
    named: std::collections::HashMap<String, Arc<dyn Pg>>,
    remote: dashmap::DashMap<String, Arc<dyn Pg>>,
    make_remote: RemoteFactory,
    /// Direct connectors by channel id, with the sealed secret each was built from: a rotated
    /// secret (`pier channel rotate-secret`, another process) is a new sealed value, so the
    /// connector is rebuilt the next time the channel row is read.
    direct: dashmap::DashMap<String, (Option<String>, Arc<dyn Pg>)>,
    /// What direct connectors are built with; set by `Engine::new`.
    direct_setup: std::sync::OnceLock<DirectSetup>,
}

struct DirectSetup {
    server_key: [u8; 32],
    deadline: std::time::Duration,
}

impl PgRegistry {
    pub fn new(make_remote: RemoteFactory) -> Self {
        Self {
            named: std::collections::HashMap::new(),
            remote: dashmap::DashMap::new(),
            make_remote,
            direct: dashmap::DashMap::new(),
            direct_setup: std::sync::OnceLock::new(),
        }
    }

    /// The Toss connector of a `tosspayments` channel: its sealed secret key opened with the
    /// server key, its API base, the server's per-call PG deadline. A channel whose secret
    /// does not open gets a `BrokenPg` (every call `Unreachable`: nothing is charged).
    fn direct_for(&self, c: &Channel) -> Arc<dyn Pg> {
        if let Some(e) = self.direct.get(&c.id) {
            if e.0 == c.secret_sealed {
                return e.1.clone();
            }
        }
        let built = || -> std::result::Result<Arc<dyn Pg>, String> {
            let setup = self
                .direct_setup
                .get()
                .ok_or("the engine has not set up direct PGs")?;
            let sealed = c.secret_sealed.as_deref().ok_or("no secret key stored")?;
            let secret = channels::open_secret(&setup.server_key, &c.id, sealed)?;
            let cfg = pier_pg::toss::Config {
                api_base: c
                    .api_base
                    .clone()
                    .unwrap_or_else(|| pier_pg::toss::LIVE_API_BASE.to_owned()),
                secret_key: secret,
                deadline: setup.deadline,
            };
            let conn = pier_pg::toss::Connector::new(&cfg)
                .map_err(|e| e.to_string())?
                .with_client_key(c.client_key.as_deref());
            Ok(Arc::new(conn))
        };
        let pg = built().unwrap_or_else(|e| {
            tracing::error!(channel = %c.id, error = %e, "cannot build the channel's connector");
            Arc::new(BrokenPg(format!("channel {}: {e}", c.id))) as Arc<dyn Pg>
        });
        self.direct
            .insert(c.id.clone(), (c.secret_sealed.clone(), pg.clone()));
        pg
    }

    /// Channels whose target is `name` are served by `pg` (before the engine is built).
    pub fn register(mut self, name: &str, pg: Arc<dyn Pg>) -> Self {
        self.named.insert(name.to_owned(), pg);
        self
    }

    pub fn for_channel(&self, c: &Channel) -> Arc<dyn Pg> {
        if c.pg_provider == channels::TOSS {
            return self.direct_for(c);
        }
        if let Some(pg) = self.named.get(&c.target) {
            return pg.clone();
        }
        if let Some(pg) = self.remote.get(&c.target) {
            return pg.clone();
        }
        let pg = (self.make_remote)(&c.target);
        self.remote.insert(c.target.clone(), pg.clone());
        pg
    }
}

/// How long shutdown waits for the store's tasks. They only finish what is queued (at most
/// `QUEUE_DEPTH` writes, a few hundred milliseconds of batches) but a statement may wait up to
/// 10 s for a connection (the pools' acquire timeout); past that, shutdown goes on without them.
const STORE_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(15);

/// Every field is private: the HTTP layer, the console, the jobs and the binary call the
/// engine's methods (one per use case), never its store or connectors.
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    pgs: PgRegistry,
    cfg: Config,
    auth: auth::AuthState,
    /// The outbound client of confirm_url calls (built on first use).
    confirm_client: std::sync::OnceLock<crate::outbound::Outbound>,
    /// Limits of the anonymous endpoints (edge/).
    anon: crate::edge::AnonLimits,
    /// The console's sign-in limits (engine/console.rs).
    console: console::ConsoleState,
    /// Owns the attempts detached from requests (and, through `app`, the jobs): shutdown
    /// waits for them before the store stops taking writes.
    tasks: crate::tasks::Tasks,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, pgs: PgRegistry, cfg: Config) -> Self {
        let auth = auth::AuthState::new(&cfg);
        let anon = crate::edge::AnonLimits::new(&cfg);
        let _ = pgs.direct_setup.set(DirectSetup {
            server_key: cfg.server_key,
            deadline: cfg.pg_deadline,
        });
        Self {
            store,
            clock,
            pgs,
            cfg,
            auth,
            confirm_client: std::sync::OnceLock::new(),
            anon,
            console: console::ConsoleState::default(),
            tasks: crate::tasks::Tasks::default(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_unix()
    }

    /// The store, for the application that opened it and closes it (`app::Pier`), which hands
    /// it to tests; the HTTP layer, the console and the jobs never get it.
    pub(crate) fn store_handle(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The owner of the server's tasks (`crate::tasks`).
    pub fn tasks(&self) -> crate::tasks::Tasks {
        self.tasks.clone()
    }

    /// The server's configuration, read-only.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The anonymous endpoints' limits (the HTTP edge middleware takes from them).
    pub fn anon_limits(&self) -> &crate::edge::AnonLimits {
        &self.anon
    }

    /// Tells the store's group-commit writers that nothing writes any more (shutdown, or a
    /// test stopping the writer mid-request): they drain their queue and end.
    pub fn close_writes(&self) {
        self.store.close_writes();
    }

    /// Stops the store's own tasks and threads (writers, batched readers) and joins them; the
    /// last step of shutdown, when nothing uses the store any more.
    pub async fn shutdown_store(&self) {
        if let Err(e) = self.store.shutdown(STORE_SHUTDOWN).await {
            tracing::warn!(error = %e, "the store did not stop in time");
        }
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
