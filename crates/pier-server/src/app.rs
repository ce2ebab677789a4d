//! Startup and shutdown in one place: open the store, build the engine and its PG connectors,
//! create the demo merchant on a fresh database, start the background jobs and the HTTP server,
//! and stop them all gracefully (in-flight requests finish).

use crate::config::Config;
use crate::engine::merchants::Credentials;
use crate::engine::{Engine, PgRegistry};
use crate::http;
use pier_domain::Clock;
use pier_pg::Pg;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running Pier.
pub struct Pier {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub engine: Arc<Engine>,
    /// Set when this start created the demo merchant.
    pub demo: Option<Credentials>,
    /// The in-process test PG behind `inprocess` channels.
    pub testpg: pier_pg::testpg::Engine,
    /// The store this start opened (closed for writes at shutdown).
    store: Arc<dyn pier_store::Store>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    jobs: Vec<JoinHandle<()>>,
}

/// Builds the engine on an opened store.
pub async fn build_engine(
    cfg: Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Arc<Engine>, pier_pg::testpg::Engine)> {
    http::ops::init_metrics();
    let (store, kind) = pier_store::connect(&cfg.database_url, true)
        .await
        .map_err(|e| anyhow::anyhow!("opening the database: {e}"))?;
    let base_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let mut pg_cfg =
        pier_pg::testpg::EngineConfig::new(crate::keys::testpg_card_key(&cfg.server_key), base_url);
    let testpg = if kind == pier_store::StoreKind::Postgres {
        // Instances on one PostgreSQL run one test PG between them (docs/ARCHITECTURE.md).
        crate::testpg_shared::start(pg_cfg, clock.clone(), store.clone(), &cfg).await?
    } else {
        if let Some(j) = &cfg.testpg_journal {
            pg_cfg = pg_cfg.with_journal(j.clone());
        }
        pier_pg::testpg::Engine::new(pg_cfg, clock.clone())
            .map_err(|e| anyhow::anyhow!("starting the test PG: {e}"))?
    };
    let deadline = cfg.pg_deadline;
    let inprocess: Arc<dyn Pg> =
        Arc::new(pier_pg::testpg::InProcess::new(testpg.clone()).with_deadline(deadline));
    let registry = PgRegistry::new(Box::new(move |url: &str| -> Arc<dyn Pg> {
        match pier_pg::pgsim::Client::with_deadline(url, deadline) {
            Ok(c) => Arc::new(c),
            Err(e) => Arc::new(crate::engine::BrokenPg(format!(
                "channel target {url}: {e}"
            ))),
        }
    }))
    .register("inprocess", inprocess);
    let engine = Arc::new(Engine::new(store, clock, registry, cfg));
    Ok((engine, testpg))
}

impl Pier {
    /// Starts Pier on `listener` (bind `127.0.0.1:0` in tests).
    pub async fn start(
        mut cfg: Config,
        clock: Arc<dyn Clock>,
        listener: TcpListener,
    ) -> anyhow::Result<Pier> {
        let addr = listener.local_addr().map_err(|e| anyhow::anyhow!(e))?;
        cfg.listen = addr;
        let (engine, testpg) = build_engine(cfg, clock).await?;
        let demo = if engine.config().create_demo {
            engine
                .ensure_demo()
                .await
                .map_err(|e| anyhow::anyhow!("creating the demo merchant: {e}"))?
        } else {
            None
        };
        let (stop, stop_rx) = watch::channel(false);
        // Every task below is the server's (`crate::tasks`): `shutdown` joins them all.
        let tasks = engine.tasks();
        let mut jobs = Vec::new();
        if engine.config().run_jobs {
            jobs.push(tasks.spawn(crate::jobs::idempotency_expiry(
                engine.clone(),
                stop_rx.clone(),
            )));
            jobs.push(tasks.spawn(crate::jobs::vbank_deposits(
                engine.clone(),
                testpg.subscribe(),
                stop_rx.clone(),
            )));
            jobs.push(tasks.spawn(crate::jobs::cancel_retry(engine.clone(), stop_rx.clone())));
            jobs.push(tasks.spawn(crate::jobs::webhooks::dispatcher(
                engine.clone(),
                stop_rx.clone(),
            )));
            jobs.push(tasks.spawn(crate::jobs::scheduler::scheduler(
                engine.clone(),
                stop_rx.clone(),
            )));
            // Secrets and retention: abandoned windows, expired tokens, old history.
            jobs.push(tasks.spawn(crate::jobs::retention::retention(
                engine.clone(),
                stop_rx.clone(),
            )));
            // Its first pass is the crash recovery of a previous process's attempts.
            jobs.push(tasks.spawn(crate::jobs::reconciler(engine.clone(), stop_rx.clone())));
        }
        // The test PG's window pages, for in-process channels (framing per merchant).
        let csrf_key = crate::keys::derive(
            &engine.config().server_key,
            crate::keys::Purpose::TestpgWindowCsrf,
        );
        let pg_windows = pier_pg::testpg::window::router_with_csrf_key(testpg.clone(), csrf_key)
            .layer(axum::middleware::from_fn_with_state(
                engine.clone(),
                http::checkout::pg_window_headers,
            ));
        let app = http::router(engine.clone(), crate::console::router(), pg_windows);
        let app = tower::Layer::layer(
            &tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(),
            app,
        );
        let limits = crate::edge::serve::ConnLimits {
            header_read_timeout: engine.config().header_read_timeout,
            idle_timeout: engine.config().idle_timeout,
            max_connections: engine.config().max_connections,
        };
        // `/metrics` on its own listener when configured (an operator's network, not the public).
        let mut metrics_addr = None;
        if let Some(m) = engine.config().metrics_listen {
            let ml = TcpListener::bind(m)
                .await
                .map_err(|e| anyhow::anyhow!("binding the metrics listener {m}: {e}"))?;
            metrics_addr = Some(ml.local_addr().map_err(|e| anyhow::anyhow!(e))?);
            jobs.push(tasks.spawn({
                let stop_rx = stop_rx.clone();
                async move {
                    let r = crate::edge::serve::serve(ml, http::metrics_router(), limits, stop_rx)
                        .await;
                    if let Err(e) = r {
                        tracing::error!(error = %e, "the metrics listener stopped");
                    }
                }
            }));
        }
        let server = tasks.spawn(crate::edge::serve::serve(
            listener,
            app,
            limits,
            stop_rx.clone(),
        ));
        Ok(Pier {
            store: engine.store_handle(),
            addr,
            metrics_addr,
            engine,
            demo,
            testpg,
            stop,
            server,
            jobs,
        })
    }

    /// The store, for tests that set up or inspect rows the API does not expose.
    pub fn store(&self) -> &Arc<dyn pier_store::Store> {
        &self.store
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, stops the jobs, waits for the attempts
    /// detached from requests (each PG call has a deadline, so this wait is bounded).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        for j in self.jobs {
            let _ = j.await;
        }
        self.engine.tasks().joined().await;
        // No PG call is left: the test PG's journal tasks (shared journal) append what is
        // queued and end.
        self.testpg.shutdown().await;
        // Nothing writes any more: the group-commit writers drain their queue and end.
        self.engine.close_writes();
        let _ = self.testpg.flush_journal().await;
        // Then the store's own tasks and threads are stopped and joined.
        self.engine.shutdown_store().await;
    }
}

/// A key for one of the legacy purposes (HMAC-SHA256 as a KDF); new purposes use
/// `crate::keys::derive` (HKDF). Every derivation is listed in `crate::keys`.
pub fn derive_key(server_key: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    crate::keys::legacy_hmac_kdf(server_key, purpose)
}
