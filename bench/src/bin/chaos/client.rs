//! The clients' side: a round-robin HTTP client that retries a payment with the same
//! merchant_uid and Idempotency-Key until it gets a final answer, its counters, and the RNG.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A tiny deterministic RNG (xorshift64*), enough for choosing cards, amounts and moments.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const MSG_ALREADY_PAID: &str = "이미 결제가 이루어진";

#[derive(Clone, Debug)]
pub enum Outcome {
    /// The client was told paid (imp_uid) or "already paid".
    Paid { imp_uid: Option<String> },
    /// The client was told the payment failed (declined, refused).
    Failed { message: String },
    /// No final answer within the payment timeout.
    GaveUp,
}

#[derive(Default)]
pub struct Counters {
    pub done: AtomicU64,
    pub requests: AtomicU64,
    pub conn_errors: AtomicU64,
    pub unknown_answers: AtomicU64,
    pub in_progress_answers: AtomicU64,
    pub server_errors: AtomicU64,
    pub idem_conflicts: AtomicU64,
    pub replays: AtomicU64,
}

pub struct Client {
    pub http: reqwest::Client,
    /// The instances' base URLs: each request goes to the next one.
    pub bases: Vec<String>,
    pub turn: AtomicUsize,
    pub key: String,
    pub secret: String,
    pub token: Mutex<String>,
    pub sem: Semaphore,
    pub c: Counters,
}

impl Client {
    /// The instance for the next request (round-robin).
    pub fn base(&self) -> &str {
        let n = self.turn.fetch_add(1, Ordering::Relaxed);
        &self.bases[n % self.bases.len()]
    }

    pub async fn refresh_token(&self) -> bool {
        let r = self
            .http
            .post(format!("{}/users/getToken", self.base()))
            .json(&json!({"imp_key": self.key, "imp_secret": self.secret}))
            .send()
            .await;
        if let Ok(r) = r {
            if let Ok(v) = r.json::<Value>().await {
                if let Some(t) = v["response"]["access_token"].as_str() {
                    *self.token.lock().unwrap() = t.to_owned();
                    return true;
                }
            }
        }
        false
    }

    /// One request; `None` on a transport error (Pier down or killed mid-request).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idem: Option<&str>,
    ) -> Option<(u16, bool, bool, Value)> {
        let _permit = self.sem.acquire().await.ok()?;
        self.c.requests.fetch_add(1, Ordering::Relaxed);
        let token = self.token.lock().unwrap().clone();
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base()))
            .header("Authorization", format!("Bearer {token}"))
            .timeout(Duration::from_secs(15));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        if let Some(k) = idem {
            rb = rb.header("Idempotency-Key", k);
        }
        let r = match rb.send().await {
            Ok(r) => r,
            Err(_) => {
                self.c.conn_errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let status = r.status().as_u16();
        let retryable = r.headers().contains_key("x-pier-retryable");
        let replayed = r.headers().contains_key("idempotent-replayed");
        match r.json::<Value>().await {
            Ok(v) => Some((status, retryable, replayed, v)),
            Err(_) => {
                self.c.conn_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Drives one payment to a final answer, retrying with the same key like a careful merchant.
    pub async fn pay(&self, path: &str, body: Value, idem: String, give_up: Duration) -> Outcome {
        let end = Instant::now() + give_up;
        let mut backoff = Duration::from_millis(100);
        loop {
            if Instant::now() > end {
                return Outcome::GaveUp;
            }
            let res = self
                .send(reqwest::Method::POST, path, Some(&body), Some(&idem))
                .await;
            let retry = match res {
                None => true,
                Some((401, _, _, _)) => {
                    self.refresh_token().await;
                    true
                }
                Some((status, retryable, replayed, v)) => {
                    if replayed {
                        self.c.replays.fetch_add(1, Ordering::Relaxed);
                    }
                    let code = v["code"].as_i64().unwrap_or(-99);
                    let msg = v["message"].as_str().unwrap_or("").to_owned();
                    if status == 409 {
                        self.c.idem_conflicts.fetch_add(1, Ordering::Relaxed);
                        true
                    } else if status >= 500 {
                        self.c.server_errors.fetch_add(1, Ordering::Relaxed);
                        true
                    } else if retryable {
                        if msg.contains("imp_uid:") {
                            self.c.unknown_answers.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.c.in_progress_answers.fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    } else if code == 0 && v["response"]["status"] == "paid" {
                        return Outcome::Paid {
                            imp_uid: v["response"]["imp_uid"].as_str().map(str::to_owned),
                        };
                    } else if code == 1 && msg.contains(MSG_ALREADY_PAID) {
                        return Outcome::Paid { imp_uid: None };
                    } else {
                        return Outcome::Failed { message: msg };
                    }
                }
            };
            if retry {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
