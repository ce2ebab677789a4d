//! Fault injection on pgsim's payment endpoints (never on the admin API, so faults can always be
//! switched off again).
//!
//! Each payment request draws its fate from a seeded RNG, so a run with the same seed and the same
//! request order sees the same faults:
//!
//! - `latency_ms` + up to `latency_jitter_ms`: added before anything else happens;
//! - `timeout_rate`: the request is not processed and not answered (held `hang_ms`, or until
//!   the server shuts down): the client's deadline expires;
//! - `error_rate`: the request is not processed; the answer is a bare HTTP 500;
//! - `drop_response_rate`: the request *is* processed (the ledger has it), then the answer is
//!   withheld like a timeout: the case a reconciler exists for;
//! - `down`: every payment request is refused at once with 503 `unavailable`, nothing processed.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

use super::wire::Reply;

const MAX_LATENCY_MS: u64 = 60_000;
const MAX_HANG_MS: u64 = 300_000;

/// The fault knobs, as `GET`/`PUT /admin/faults` show and take them. Missing fields take their
/// defaults, so `PUT {"timeout_rate":0.1}` means "only that".
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fixed delay before each payment request, in milliseconds.
    pub latency_ms: u64,
    /// Random extra delay, uniformly 0..=this, in milliseconds.
    pub latency_jitter_ms: u64,
    /// Share of requests never processed nor answered (0.0–1.0).
    pub timeout_rate: f64,
    /// Share of requests answered with HTTP 500 without processing (0.0–1.0).
    pub error_rate: f64,
    /// Share of requests processed, then never answered (0.0–1.0).
    pub drop_response_rate: f64,
    /// Refuse every payment request with 503 (nothing processed).
    pub down: bool,
    /// How long an unanswered request is held open before pgsim lets go of it.
    pub hang_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            latency_jitter_ms: 0,
            timeout_rate: 0.0,
            error_rate: 0.0,
            drop_response_rate: 0.0,
            down: false,
            hang_ms: 30_000,
        }
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid faults: {0}")]
pub struct InvalidFaults(pub String);

impl Faults {
    pub fn validate(&self) -> Result<(), InvalidFaults> {
        let bad = |m: &str| Err(InvalidFaults(m.to_owned()));
        let rates = [self.timeout_rate, self.error_rate, self.drop_response_rate];
        if rates
            .iter()
            .any(|r| !r.is_finite() || !(0.0..=1.0).contains(r))
        {
            return bad("rates must be between 0.0 and 1.0");
        }
        if rates.iter().sum::<f64>() > 1.0 + 1e-9 {
            return bad("timeout_rate + error_rate + drop_response_rate must not exceed 1.0");
        }
        if self.latency_ms > MAX_LATENCY_MS || self.latency_jitter_ms > MAX_LATENCY_MS {
            return bad("latency_ms and latency_jitter_ms must be at most 60000");
        }
        if !(1..=MAX_HANG_MS).contains(&self.hang_ms) {
            return bad("hang_ms must be between 1 and 300000");
        }
        Ok(())
    }

    fn is_quiet(&self) -> bool {
        self.latency_ms == 0
            && self.latency_jitter_ms == 0
            && self.timeout_rate == 0.0
            && self.error_rate == 0.0
            && self.drop_response_rate == 0.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Normal,
    Hang,
    Error,
    Drop,
}

/// The live fault settings of one pgsim, shared by its router and whoever changes them (the admin
/// API, a test). Cheap to clone.
#[derive(Clone)]
pub struct FaultControl {
    inner: Arc<FaultInner>,
}

struct FaultInner {
    faults: RwLock<Faults>,
    rng: Mutex<StdRng>,
    /// Flipped at shutdown: held requests are let go so a graceful shutdown does not wait `hang_ms`.
    release: watch::Sender<bool>,
}

impl Default for FaultControl {
    fn default() -> Self {
        Self::build(Faults::default(), 0)
    }
}

impl std::fmt::Debug for FaultControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FaultControl").field(&self.get()).finish()
    }
}

impl FaultControl {
    pub fn new(faults: Faults, seed: u64) -> Result<Self, InvalidFaults> {
        faults.validate()?;
        Ok(Self::build(faults, seed))
    }

    fn build(faults: Faults, seed: u64) -> Self {
        Self {
            inner: Arc::new(FaultInner {
                faults: RwLock::new(faults),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                release: watch::channel(false).0,
            }),
        }
    }

    pub fn get(&self) -> Faults {
        *self.inner.faults.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, faults: Faults) -> Result<(), InvalidFaults> {
        faults.validate()?;
        *self.inner.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
        Ok(())
    }

    /// Let go of every held request now and from now on (called at shutdown).
    pub fn release_hangs(&self) {
        self.inner.release.send_replace(true);
    }

    /// Draw the fate of one request.
    pub(crate) fn draw(&self) -> (Faults, Duration, Fate) {
        let f = self.get();
        if f.down || f.is_quiet() {
            return (f, Duration::ZERO, Fate::Normal);
        }
        let mut rng = self.inner.rng.lock().unwrap_or_else(|e| e.into_inner());
        let jitter = if f.latency_jitter_ms > 0 {
            rng.gen_range(0..=f.latency_jitter_ms)
        } else {
            0
        };
        let r: f64 = rng.gen();
        let fate = if r < f.timeout_rate {
            Fate::Hang
        } else if r < f.timeout_rate + f.error_rate {
            Fate::Error
        } else if r < f.timeout_rate + f.error_rate + f.drop_response_rate {
            Fate::Drop
        } else {
            Fate::Normal
        };
        (f, Duration::from_millis(f.latency_ms + jitter), fate)
    }

    /// Hold an unanswered request: `hang_ms`, or until shutdown.
    pub(crate) async fn hang(&self) {
        let mut release = self.inner.release.subscribe();
        if *release.borrow_and_update() {
            return;
        }
        let hold = Duration::from_millis(self.get().hang_ms);
        tokio::select! {
            _ = tokio::time::sleep(hold) => {}
            _ = release.changed() => {}
        }
    }
}

pub(crate) fn unavailable() -> Response {
    let body: Reply<()> = Reply::Unavailable {
        message: "pgsim is down".into(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// The middleware in front of the payment endpoints.
pub(crate) async fn inject(
    State(faults): State<FaultControl>,
    req: Request,
    next: Next,
) -> Response {
    let (settings, delay, fate) = faults.draw();
    if settings.down {
        return unavailable();
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fate {
        Fate::Normal => next.run(req).await,
        Fate::Error => (StatusCode::INTERNAL_SERVER_ERROR, "pgsim: injected error").into_response(),
        Fate::Hang => {
            faults.hang().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Fate::Drop => {
            drop(next.run(req).await);
            faults.hang().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Faults::default().validate().is_ok());
        let f = |t: f64, e: f64, d: f64| Faults {
            timeout_rate: t,
            error_rate: e,
            drop_response_rate: d,
            ..Faults::default()
        };
        assert!(f(0.5, 0.5, 0.0).validate().is_ok());
        assert!(f(0.5, 0.5, 0.1).validate().is_err());
        assert!(f(-0.1, 0.0, 0.0).validate().is_err());
        assert!(f(f64::NAN, 0.0, 0.0).validate().is_err());
        assert!(Faults {
            hang_ms: 0,
            ..Faults::default()
        }
        .validate()
        .is_err());
        assert!(Faults {
            latency_ms: 60_001,
            ..Faults::default()
        }
        .validate()
        .is_err());
        let parsed: Faults = serde_json::from_str(r#"{"timeout_rate":0.25}"#).unwrap();
        assert_eq!(
            parsed,
            Faults {
                timeout_rate: 0.25,
                ..Faults::default()
            }
        );
        assert!(serde_json::from_str::<Faults>(r#"{"timeout":1}"#).is_err());
    }

    #[test]
    fn draws_are_seeded() {
        let faults = Faults {
            timeout_rate: 0.3,
            error_rate: 0.3,
            drop_response_rate: 0.3,
            latency_jitter_ms: 50,
            ..Faults::default()
        };
        let run = |seed| {
            let c = FaultControl::new(faults, seed).unwrap();
            (0..64)
                .map(|_| c.draw())
                .map(|(_, d, f)| (d, f))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let fates: Vec<Fate> = run(7).into_iter().map(|(_, f)| f).collect();
        for fate in [Fate::Normal, Fate::Hang, Fate::Error, Fate::Drop] {
            assert!(fates.contains(&fate), "{fate:?} never drawn");
        }
    }
}
