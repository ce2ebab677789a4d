//! Serving connections (replaces `axum::serve`, which has no timer, so hyper's header-read
//! timeout was off and a connection could hold half-sent headers forever).
//!
//! - hyper-util's auto builder (HTTP/1.1 and h2c, as before) with a `TokioTimer`, so HTTP/1's
//!   `header_read_timeout` works. hyper (1.4+) starts that timer whenever a connection waits for a
//!   request head, so it also bounds an idle HTTP/1 keep-alive connection.
//! - An idle timeout per connection (no request in flight for that long: graceful close), which
//!   also covers HTTP/2, where the header timer does not apply.
//! - A semaphore caps concurrent connections; at the cap the server stops accepting (new ones
//!   wait in the kernel's backlog) until one closes.
//! - Graceful shutdown as before: stop accepting, let in-flight requests finish, close idle
//!   connections, return when every connection has ended.

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Connection limits (from `Config`: `header_read_timeout`, `idle_timeout`, `max_connections`).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicI64,
    /// A request head has arrived. Until then the connection gets only the header-read
    /// timeout: hyper-util's auto builder first reads the protocol preface with no timer of
    /// its own, so a connection that sends nothing (or fewer than 24 bytes) would otherwise
    /// wait for the idle timeout.
    started: AtomicBool,
}

impl Activity {
    fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// Decrements `in_flight` when the request ends, even if its future is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once `stop` is true (the `watch::Ref` is dropped here, so callers stay `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// Serves `app` on `listener` until `stop` turns true, then drains.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let max = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let permits = Arc::new(Semaphore::new(max));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning
                    // (axum::serve waits 1 s; 100 ms recovers faster once descriptors free up).
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let mut stop = stop.clone();
        let (idle_limit, header_limit) = (limits.idle_timeout, limits.header_read_timeout);
        tokio::spawn(async move {
            let _permit = permit;
            let activity = Arc::new(Activity {
                epoch: Instant::now(),
                in_flight: AtomicUsize::new(0),
                last_ms: AtomicI64::new(0),
                started: AtomicBool::new(false),
            });
            let act = activity.clone();
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                act.in_flight.fetch_add(1, Ordering::Relaxed);
                act.started.store(true, Ordering::Relaxed);
                let guard = InFlight(act.clone());
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                let fut = tower::ServiceExt::oneshot(app.clone(), req);
                async move {
                    let res = fut.await;
                    drop(guard);
                    res
                }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            loop {
                let idle = if activity.started.load(Ordering::Relaxed) {
                    idle_limit
                } else {
                    idle_limit.min(header_limit)
                };
                let since = activity.now_ms() - activity.last_ms.load(Ordering::Relaxed);
                let wait = idle.saturating_sub(Duration::from_millis(since.max(0) as u64));
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, %peer, "connection ended with an error");
                        }
                        return;
                    }
                    _ = stopped(&mut stop) => break,
                    _ = tokio::time::sleep(wait) => {
                        let since = activity.now_ms() - activity.last_ms.load(Ordering::Relaxed);
                        if activity.in_flight.load(Ordering::Relaxed) == 0
                            && since >= i64::try_from(idle.as_millis()).unwrap_or(i64::MAX)
                        {
                            break;
                        }
                        if activity.in_flight.load(Ordering::Relaxed) > 0 {
                            // Busy: look again after another idle period.
                            activity.last_ms.store(activity.now_ms(), Ordering::Relaxed);
                        }
                    }
                }
            }
            // Idle or shutting down: finish what is in flight, then close.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    drop(listener);
    // Every connection holds a permit until it ends: having them all back means drained.
    let _ = permits.acquire_many(max as u32).await;
    Ok(())
}
