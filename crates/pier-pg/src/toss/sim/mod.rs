//! A protocol simulator of the Toss Payments v1 endpoints the connector calls, in memory.
//!
//! What it holds to, so that a connector bug fails a test instead of a live payment:
//!
//! - auth: `Authorization: Basic base64(secretKey + ":")` with the configured key, else 401
//!   `UNAUTHORIZED_KEY` in Toss's `{code, message}` shape;
//! - fields: request bodies are parsed strictly (unknown, missing or mistyped fields are 400
//!   `INVALID_REQUEST`, naming the field but never echoing a value);
//! - `Idempotency-Key` (at most 300 characters): the same key with the same body answers the
//!   stored answer again without processing anything; the same key with another body is refused;
//! - money: payments by `paymentKey` and `orderId` (one payment per order id), `balanceAmount`
//!   and the `cancels` list, billing keys with the `customerKey` they were issued for;
//! - cards: the test PG's card table (`testpg::cards`: same numbers, same behaviours, same
//!   issuers), answered with Toss's codes (`docs/connectors/tosspayments.md` lists them);
//! - faults: pgsim's knobs (`pgsim::Faults`: latency, timeouts, 5xx, answers lost after
//!   processing, down), set at construction or with `PUT /admin/faults`.
//!
//! The admin routes (`/admin/...`) are unauthenticated and never subject to faults: mount the
//! simulator only on loopback or a trusted test network. It keeps no card number, birth date or
//! password: a billing key remembers only the card's behaviour, issuer and masked number.
//!
//! The parts: `books` (the simulator's state) and `api` (the key-in, billing, cancel and
//! virtual-account operations on it), `checks` (request fields as Toss checks them), `answer`
//! (what a handler answers), `routes` (the HTTP routes, auth and idempotency), and the payment
//! window: `window` (what it was opened for), `window_page`, `window_submit` and `confirm`.

use crate::pgsim::{FaultControl, Faults, InvalidFaults};
use crate::toss::wire::Payment;
use answer::{now_kst, ts};
use axum::http::header;
use base64::Engine as _;
use books::Books;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

mod answer;
mod api;
mod books;
mod checks;
mod confirm;
mod routes;
mod window;
mod window_page;
mod window_submit;

/// Requests are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Toss: an `Idempotency-Key` is at most 300 characters (idempotency guide).
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 300;
/// The simulator is for tests and chaos runs: past this many payments (or stored answers) it
/// answers 500 instead of growing without bound. ~1 KB each: about 1 GB at the cap.
const MAX_RECORDS: usize = 1_000_000;
/// Toss: card payments start at 100 KRW (error code `BELOW_MINIMUM_AMOUNT`).
const MIN_CARD_AMOUNT: i64 = 100;
/// orderName up to 100 characters, cancelReason up to 200, installments 2 to 12 months: the
/// connector's limits (docs/connectors/tosspayments.md lists them under "to verify").
const MAX_ORDER_NAME_CHARS: usize = 100;
const MAX_CANCEL_REASON_CHARS: usize = 200;
const MAX_INSTALLMENT_MONTHS: i64 = 12;
/// Toss: a virtual account is valid 7 days by default and at most 30 (virtual-account guide).
const DEFAULT_VBANK_HOURS: i64 = 7 * 24;
const MAX_VBANK_HOURS: i64 = 30 * 24;
/// The API version the simulator's objects claim (the one in the reference examples).
const VERSION: &str = "2022-11-16";

/// How to build a simulator. `Debug` hides the secret key.
#[derive(Clone)]
pub struct SimConfig {
    /// The one secret key the simulator accepts.
    pub secret_key: String,
    /// The `mId` written into every object.
    pub mid: String,
    /// Where receipts are said to live (`{base}/receipt/{paymentKey}`).
    pub base_url: String,
    pub faults: Faults,
    /// Refuse card requests without `customerIdentityNumber` (a contract option at Toss; on by
    /// default because Korean keyed payments normally carry the holder's birth date).
    pub require_identity: bool,
    /// Seed of the fault RNG (same seed, same request order: same faults).
    pub seed: u64,
    /// The client key the payment window accepts (`None`: any `test_ck_`/`live_ck_` key).
    pub client_key: Option<String>,
    /// Where deposits are announced (`PAYMENT_STATUS_CHANGED`, Toss's webhook shape), e.g.
    /// Pier's `/pg/tosspayments/{channel_id}/webhook`. `None`: no webhooks.
    pub webhook_url: Option<String>,
}

impl SimConfig {
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            mid: "tosspayments_sim".into(),
            base_url: "http://127.0.0.1".into(),
            faults: Faults::default(),
            require_identity: true,
            seed: 0,
            client_key: None,
            webhook_url: None,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("secret_key", &"<redacted>")
            .field("mid", &self.mid)
            .field("base_url", &self.base_url)
            .field("faults", &self.faults)
            .field("require_identity", &self.require_identity)
            .field("seed", &self.seed)
            .field("client_key", &self.client_key)
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

/// One simulator: cheap to clone, all clones share the books.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    /// The whole expected `Authorization` header value.
    auth: String,
    mid: String,
    base_url: String,
    require_identity: bool,
    faults: FaultControl,
    books: Mutex<Books>,
    client_key: Option<String>,
    webhook_url: Mutex<Option<String>>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("mid", &self.inner.mid)
            .field("faults", &self.inner.faults)
            .finish_non_exhaustive()
    }
}

impl Sim {
    pub fn new(config: SimConfig) -> Result<Self, InvalidFaults> {
        let faults = FaultControl::new(config.faults, config.seed)?;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", config.secret_key));
        Ok(Self {
            inner: Arc::new(Inner {
                auth: format!("Basic {encoded}"),
                mid: config.mid,
                base_url: config.base_url.trim_end_matches('/').to_owned(),
                require_identity: config.require_identity,
                faults,
                books: Mutex::new(Books::default()),
                client_key: config.client_key,
                webhook_url: Mutex::new(config.webhook_url),
            }),
        })
    }

    /// Where deposits are announced from now on (`SimConfig::webhook_url`).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *self
            .inner
            .webhook_url
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// The live fault knobs (the same ones `PUT /admin/faults` changes).
    pub fn faults(&self) -> &FaultControl {
        &self.inner.faults
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.inner.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The payment of an order, as `GET /v1/payments/orders/{orderId}` would show it.
    pub fn payment_of_order(&self, order_id: &str) -> Option<Payment> {
        let books = self.books();
        let key = books.by_order.get(order_id)?;
        books.payments.get(key).cloned()
    }

    /// How many billing keys Toss holds. Toss documents no way to delete one, so nothing ever
    /// lowers this: a key Pier deleted stays here (docs/connectors/tosspayments.md).
    pub fn billing_keys(&self) -> usize {
        self.books().billing.len()
    }

    /// How many charges were processed with an approval for an order (more than 1 is a double
    /// charge).
    pub fn approved_charges(&self, order_id: &str) -> usize {
        self.books()
            .approved_charges
            .iter()
            .filter(|o| *o == order_id)
            .count()
    }

    /// Money arrives on the virtual account of `order_id`: the payment becomes `DONE`.
    pub fn deposit(&self, order_id: &str) -> bool {
        let mut books = self.books();
        let Some(key) = books.by_order.get(order_id).cloned() else {
            return false;
        };
        match books.payments.get_mut(&key) {
            Some(p) if p.status == "WAITING_FOR_DEPOSIT" => {
                p.status = "DONE".into();
                p.approved_at = Some(ts(now_kst()));
                if let Some(va) = p.virtual_account.as_mut() {
                    va.settlement_status = Some("COMPLETED".into());
                }
                let announced = p.clone();
                drop(books);
                self.announce(&announced);
                true
            }
            _ => false,
        }
    }

    /// Announces a payment's new status to `webhook_url` (Toss's `PAYMENT_STATUS_CHANGED`
    /// shape), in the background, once, within `WEBHOOK_DEADLINE`.
    fn announce(&self, p: &Payment) {
        let url = self
            .inner
            .webhook_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(url) = url else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = serde_json::json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": now_kst().format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
            "data": p,
        });
        rt.spawn(async move {
            let client = match reqwest::Client::builder()
                .timeout(WEBHOOK_DEADLINE)
                .no_proxy()
                .build()
            {
                Ok(c) => c,
                Err(_) => return,
            };
            let _ = client
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
        });
    }
}

/// Deadline of one webhook delivery (the simulator does not retry).
const WEBHOOK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serve `sim` on `listener` until `shutdown` resolves. Held requests are let go at shutdown.
pub async fn serve(
    sim: Sim,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let faults = sim.inner.faults.clone();
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(async move {
            shutdown.await;
            faults.release_hangs();
        })
        .await
}
