//! The load generator: keep-alive HTTP/1.1 connections driving one request shape, and the
//! measurement (requests/s, latency percentiles, busy CPU per request) of a run.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Result {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub secs: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Busy CPU of the whole machine (Pier, the load generator and the database) per request,
    /// from `/proc/stat`; `None` where there is no `/proc/stat`.
    pub cpu_us_per_req: Option<f64>,
}

/// Busy CPU time of the machine since `start`, from the first line of `/proc/stat` (user, nice,
/// system, irq and softirq ticks; idle, iowait and steal are not busy).
pub struct CpuMeter(Option<u64>);

impl CpuMeter {
    pub fn ticks() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let f: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?)
    }

    pub fn start() -> Self {
        Self(Self::ticks())
    }

    /// Seconds of busy CPU since `start` (`/proc/stat` counts in 1/100 s).
    pub fn busy_secs(&self) -> Option<f64> {
        Some((Self::ticks()? - self.0?) as f64 / 100.0)
    }
}

impl Result {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

pub type MakeReq = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Drives `concurrency` keep-alive connections for `seconds`, each sending `make(seq)`.
pub async fn drive(
    name: &str,
    addr: std::net::SocketAddr,
    concurrency: usize,
    seconds: u64,
    make: MakeReq,
    check: fn(&[u8]) -> bool,
) -> Result {
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let cpu = CpuMeter::start();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let make = make.clone();
        let seq = seq.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let ok = match sender.send_request(make(n)).await {
                    Ok(res) => {
                        let status = res.status();
                        let body = res
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        status.is_success() && check(&body)
                    }
                    Err(_) => false,
                };
                lat.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    summarize(
        name,
        all,
        errors.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        &cpu,
    )
}

pub fn summarize(name: &str, mut all: Vec<u64>, errors: u64, secs: f64, cpu: &CpuMeter) -> Result {
    let busy = cpu.busy_secs();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Result {
        name: name.into(),
        requests: all.len() as u64,
        errors,
        secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_req: busy
            .filter(|_| !all.is_empty())
            .map(|b| b * 1e6 / all.len() as f64),
    }
}

pub fn req(
    method: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if let Some(t) = token {
        b = b.header("authorization", t);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&v).unwrap())
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body)).unwrap()
}

pub fn code_zero(body: &[u8]) -> bool {
    // `{"code":0,...` — cheap check without parsing the whole body.
    body.windows(8).take(64).any(|w| w == b"\"code\":0")
}

pub fn paid(body: &[u8]) -> bool {
    code_zero(body) && body.windows(15).any(|w| w == b"\"status\":\"paid\"")
}
