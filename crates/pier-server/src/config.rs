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
    /// Webhooks: connect timeout and total timeout of one delivery.
    pub webhook_connect_timeout: Duration,
    pub webhook_timeout: Duration,
    /// Webhooks: delay before each retry (the first after the first failure); the attempt count
    /// is bounded by its length + 1, and no retry happens past `webhook_max_age_secs`.
    /// Each delay gets ±20% jitter.
    pub webhook_retry_delays_secs: Vec<i64>,
    pub webhook_max_age_secs: i64,
    /// Webhooks: deliveries in flight at once per instance.
    pub webhook_concurrency: usize,
    /// How often the dispatcher and the scheduler look for due work when idle.
    pub jobs_poll_interval: Duration,
    /// Scheduler: schedules claimed per tick, executed concurrently at most per tick, ticks in
    /// flight at once (one claims while another finishes its slowest charge), and how long a
    /// claim holds before another instance may take the schedule over.
    pub schedule_batch: i64,
    pub schedule_concurrency: usize,
    pub schedule_ticks: usize,
    pub schedule_lease_secs: i64,
    // --- outbound requests (SSRF) ---
    /// Webhooks: most of the `webhook_concurrency` slots one merchant's deliveries take at once,
    /// so one merchant's hanging targets cannot stall every other merchant's webhooks.
    pub webhook_merchant_concurrency: usize,
    // --- Secrets and retention (docs/security/secrets.md) ---
    /// How long an opened payment window may take; past it the retention job fails its
    /// attempt if it never reached the PG.
    pub checkout_ttl_secs: i64,
    /// Windows are deleted this long after they expired.
    pub checkout_retention_secs: i64,
    /// Delivered/dead webhook events and delivery log rows are deleted this long after they
    /// were written.
    pub webhook_log_retention_secs: i64,
    /// How often the retention job runs, and the rows one statement of it touches at most.
    pub retention_interval: Duration,
    pub retention_batch: i64,
    // --- The network edge (edge/; docs/security/edge.md). ---
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`); empty = none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `POST /checkout/prepare` per client address and per merchant: sustained rate per second
    /// and burst.
    pub prepare_per_addr_per_sec: u32,
    pub prepare_per_addr_burst: u32,
    pub prepare_per_merchant_per_sec: u32,
    pub prepare_per_merchant_burst: u32,
    /// The other anonymous endpoints (windows, returns, cancels, test-PG pages, demo verify)
    /// per client address: rate per second and burst.
    pub anon_per_addr_per_sec: u32,
    pub anon_per_addr_burst: u32,
    /// Connections: time to send a request's headers, time a connection may sit idle, and how
    /// many may be open at once.
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Serve `/metrics` on this address instead of the public listener.
    pub metrics_listen: Option<SocketAddr>,
}

/// Default retry delays of webhooks: 5s, 30s, 2m, 10m, 30m, 1h, 3h, 6h, 12h (10 attempts in all,
/// within 24 hours).
pub const WEBHOOK_RETRY_DELAYS_SECS: &[i64] = &[5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200];

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
            webhook_connect_timeout: Duration::from_secs(5),
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_delays_secs: WEBHOOK_RETRY_DELAYS_SECS.to_vec(),
            webhook_max_age_secs: 24 * 3600,
            webhook_concurrency: 16,
            jobs_poll_interval: Duration::from_secs(1),
            schedule_batch: 100,
            schedule_concurrency: 100,
            schedule_ticks: 2,
            schedule_lease_secs: 120,
            // 4 of the 16 slots: a merchant whose targets all hang for the full timeout still
            // leaves 12 slots to the others (and 4 at a time drains a healthy merchant's
            // backlog at ~4 × 1/latency per second).
            webhook_merchant_concurrency: 4,
            // Secrets and retention: a window 30 minutes (as i'mport's), kept 7 days after it
            // expired (support questions about a buyer's attempt come within days); webhook
            // history 90 days (the merchant's dashboard history); expired tokens go at the next
            // pass. A pass every 5 minutes in batches of 500 rows keeps each statement short.
            checkout_ttl_secs: 30 * 60,
            checkout_retention_secs: 7 * 24 * 3600,
            webhook_log_retention_secs: 90 * 24 * 3600,
            retention_interval: Duration::from_secs(300),
            retention_batch: 500,
            // --- The network edge. ---
            trusted_proxies: Vec::new(),
            // A person pays about once a minute; a page that retries or a shop's checkout
            // test may burst. 10/s with a burst of 30 per address is far above any browser
            // and still caps one address at ~10 payment rows per second (the old flood needed
            // ~56/s to fill the 100k PG session table in half an hour).
            prepare_per_addr_per_sec: 10,
            prepare_per_addr_burst: 30,
            // A merchant's whole shop behind many addresses: 50/s (180k windows an hour) with a
            // burst of 100 is above the test merchants' real peaks and bounds what a botnet can
            // do to one merchant.
            prepare_per_merchant_per_sec: 50,
            prepare_per_merchant_burst: 100,
            // One payment is ~5 of these requests (window, PG page, form post, return, done).
            anon_per_addr_per_sec: 20,
            anon_per_addr_burst: 60,
            // 10 s to send headers is plenty for any real client (they send them in one
            // packet); slow-loris connections die within 10 s.
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            // 10k connections at ~10-20 KB of buffers each is 100-200 MB; the process needs a
            // descriptor limit (ulimit -n) above it.
            max_connections: 10_000,
            metrics_listen: None,
        }
    }
}
