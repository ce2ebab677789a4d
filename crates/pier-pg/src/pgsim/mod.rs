//! pgsim: the test PG engine behind a small HTTP JSON protocol, with injectable faults, and
//! `Client`, the connector that talks to it.
//!
//! `serve` runs a standalone pgsim (what `pier pgsim` does); `router` gives the same endpoints as
//! an `axum::Router` so that Pier can mount them in its own server. The protocol is in `wire`; the
//! fault knobs in `faults`; `docs/test-cards.md` has curl examples of the admin API.
//!
//! Deposits on virtual accounts reach Pier by `notify_url`: every `PgEvent` is POSTed there as
//! JSON with the shared secret in the `x-pgsim-secret` header, retried a few times on failure.

mod client;
pub(crate) mod faults;
mod server;
mod wire;

pub use client::{Client, ClientError};
pub use faults::{FaultControl, Faults, InvalidFaults};
pub use server::{admin_router, payment_router};

use crate::testpg::{self, Engine, EngineConfig};
use crate::PgEvent;
use pier_domain::SystemClock;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinHandle;

/// The header carrying `PgsimOptions::notify_secret` on event notifications.
pub const NOTIFY_SECRET_HEADER: &str = "x-pgsim-secret";
/// Notifications delivered concurrently at most.
const NOTIFY_CONCURRENCY: usize = 32;
const NOTIFY_ATTEMPTS: u32 = 5;
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run a standalone pgsim. `Debug` hides the key and the secret.
#[derive(Clone)]
pub struct PgsimOptions {
    /// Initial faults (changeable later through `PUT /admin/faults`).
    pub faults: Faults,
    /// Seed of the fault RNG: same seed and request order, same faults.
    pub seed: u64,
    /// Where to POST `PgEvent`s (Pier's receiving endpoint).
    pub notify_url: Option<String>,
    /// Sent as `x-pgsim-secret` with every notification.
    pub notify_secret: Option<String>,
    /// AES-256-GCM key for card data behind billing keys (see `testpg::parse_encryption_key`).
    pub encryption_key: [u8; 32],
    /// Journal file; `None` keeps the ledger in memory only.
    pub journal_path: Option<PathBuf>,
    /// Public base URL of this pgsim for window and receipt links; default `http://{bound address}`.
    pub base_url: Option<String>,
}

impl PgsimOptions {
    pub fn new(encryption_key: [u8; 32]) -> Self {
        Self {
            faults: Faults::default(),
            seed: 0,
            notify_url: None,
            notify_secret: None,
            encryption_key,
            journal_path: None,
            base_url: None,
        }
    }
}

impl fmt::Debug for PgsimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgsimOptions")
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("notify_url", &self.notify_url)
            .field(
                "notify_secret",
                &self.notify_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("encryption_key", &"<redacted>")
            .field("journal_path", &self.journal_path)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Everything pgsim serves: the payment endpoints (with faults), the admin API, `/healthz`, and
/// the test PG's window pages.
pub fn router(engine: Engine, faults: FaultControl) -> axum::Router {
    axum::Router::new()
        .merge(payment_router(engine.clone(), faults.clone()))
        .merge(admin_router(engine.clone(), faults))
        .merge(testpg::window::router(engine))
}

/// Run a standalone pgsim on `listener` until `shutdown` resolves. Builds the engine (replaying
/// the journal), starts the notifier, serves, and flushes the journal on the way out.
pub async fn serve(
    opts: PgsimOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let faults = FaultControl::new(opts.faults, opts.seed)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let base_url = opts
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut config = EngineConfig::new(opts.encryption_key, base_url);
    config.journal_path = opts.journal_path.clone();
    // Replaying the journal is file IO: keep it off the executor.
    let engine = tokio::task::spawn_blocking(move || Engine::new(config, Arc::new(SystemClock)))
        .await
        .map_err(io::Error::other)??;
    let notifier = match &opts.notify_url {
        Some(url) => Some(spawn_notifier(
            &engine,
            url.clone(),
            opts.notify_secret.clone(),
        )?),
        None => None,
    };
    tracing::info!(%addr, "pgsim listening");
    let served = serve_engine(engine.clone(), faults, listener, shutdown).await;
    if let Some(task) = notifier {
        task.abort();
    }
    engine.flush_journal().await?;
    served
}

/// Serve an existing engine (tests, benchmarks, or a caller that wants the engine in hand).
/// Held requests are let go as soon as `shutdown` resolves, so shutdown does not wait `hang_ms`.
pub async fn serve_engine(
    engine: Engine,
    faults: FaultControl,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    use axum::serve::ListenerExt;
    let app = router(engine, faults.clone());
    // Answers are small single writes; Nagle's algorithm would only add delay to them.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            faults.release_hangs();
        })
        .await
}

/// Forward the engine's events to `url` as JSON POSTs (with `NOTIFY_SECRET_HEADER`), each retried
/// with backoff up to five times. Runs until the engine is dropped or the task is aborted.
pub fn spawn_notifier(
    engine: &Engine,
    url: String,
    secret: Option<String>,
) -> io::Result<JoinHandle<()>> {
    let http = reqwest::Client::builder()
        .timeout(NOTIFY_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(io::Error::other)?;
    let mut events = engine.subscribe();
    let slots = Arc::new(Semaphore::new(NOTIFY_CONCURRENCY));
    Ok(tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "pgsim notifier fell behind; events lost (inquire recovers them)"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
            tokio::spawn(async move {
                deliver(&http, &url, secret.as_deref(), &event).await;
                drop(slot);
            });
        }
    }))
}

async fn deliver(http: &reqwest::Client, url: &str, secret: Option<&str>, event: &PgEvent) {
    let mut backoff = Duration::from_millis(200);
    for attempt in 1..=NOTIFY_ATTEMPTS {
        let mut req = http.post(url).json(event);
        if let Some(secret) = secret {
            req = req.header(NOTIFY_SECRET_HEADER, secret);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => {
                tracing::warn!(attempt, status = %resp.status(), "pgsim notification refused")
            }
            Err(e) => tracing::warn!(attempt, error = %e, "pgsim notification failed"),
        }
        if attempt < NOTIFY_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!(?event, "pgsim notification given up");
}
