//! Runtime configuration of a Pier server, built by the binary from flags and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    /// Key of the keyed hashes (imp_secret, idempotency request hashes) and the root of the
    /// test PG's card-data key. Every instance sharing a database needs the same key.
    pub server_key: [u8; 32],
    /// Base URL browsers use to reach this server (window pages, receipts, SDK).
    pub public_url: Option<String>,
    /// Deadline of every PG call.
    pub pg_deadline: Duration,
    /// Lifetime of an access token (spec: 30 minutes).
    pub token_ttl_secs: i64,
    /// Demo merchant credentials to use when creating it (None = random).
    pub demo: DemoCredentials,
    /// Create the demo merchant on a fresh database.
    pub create_demo: bool,
    /// Journal of the in-process test PG (keeps billing keys across restarts).
    pub testpg_journal: Option<PathBuf>,
    /// Run background jobs (webhook dispatcher, reconciler, scheduler) in this process.
    pub run_jobs: bool,
    /// Webhook targets on loopback/private addresses are allowed (tests, local development).
    pub webhook_allow_private: bool,
    /// Failed getToken attempts allowed per key and per client address per minute.
    pub auth_failures_per_minute: u32,
}

#[derive(Clone, Debug, Default)]
pub struct DemoCredentials {
    pub imp_code: Option<String>,
    pub imp_key: Option<String>,
    pub imp_secret: Option<String>,
}

impl Config {
    /// Defaults for a server on `listen` with a database URL; the rest as in production.
    pub fn new(listen: SocketAddr, database_url: impl Into<String>, server_key: [u8; 32]) -> Self {
        Self {
            listen,
            database_url: database_url.into(),
            server_key,
            public_url: None,
            pg_deadline: Duration::from_secs(5),
            token_ttl_secs: 30 * 60,
            demo: DemoCredentials::default(),
            create_demo: true,
            testpg_journal: None,
            run_jobs: true,
            webhook_allow_private: false,
            auth_failures_per_minute: 20,
        }
    }
}
