//! The HTTP side of the `tosspayments` connector: its configuration, the client (Basic auth
//! with the secret key, one exchange within the deadline) and the reads of one payment.

use super::errors::{decode, decode_found};
use super::wire::Payment;
use super::LIVE_API_BASE;
use crate::transport::{classify_transport, read_bounded, MAX_CONNECT_TIMEOUT};
use crate::{Mid, PgError, PgResult, DEFAULT_DEADLINE};
use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// What a Toss connector needs. `Debug` hides the secret key.
#[derive(Clone)]
pub struct Config {
    /// `LIVE_API_BASE`, or the simulator's address in tests.
    pub api_base: String,
    /// `test_sk_…` or `live_sk_…`.
    pub secret_key: String,
    /// Every call (connect, send, full answer read) completes within this or is `Unknown`.
    pub deadline: Duration,
}

impl Config {
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            api_base: LIVE_API_BASE.to_owned(),
            secret_key: secret_key.into(),
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid Toss API base URL: {0}")]
    BaseUrl(String),
    #[error("invalid Toss secret key: {0}")]
    SecretKey(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The `tosspayments` connector. Holds no per-payment state. `Debug` hides the secret key.
#[derive(Clone)]
pub struct Connector {
    http: reqwest::Client,
    base: Url,
    /// `Basic base64(secretKey + ":")`, marked sensitive so that no HTTP-level logging shows it.
    auth: HeaderValue,
    /// SHA-256 of the secret key: keys the derivation of `customerKey`s (never sent).
    pub(super) key_salt: [u8; 32],
    deadline: Duration,
    /// The channel's client key (`test_ck_…`), public: the payment window's SDK takes it.
    pub(super) client_key: Option<String>,
    /// Where Toss's browser SDK is loaded from (`{sdk_base}/v1/payment`): Toss's script host for
    /// the live API base, else the API base itself (the simulator serves both).
    pub(super) sdk_base: String,
    /// `Pg::unseen_order_grace`: `UNSEEN_ORDER_GRACE`, or `PIER_TOSS_UNSEEN_ORDER_GRACE_SECS`.
    pub(super) unseen_order_grace: Duration,
}

/// How long after an attempt began a Toss "not found" is trusted. Toss has no void for an order
/// id it has not seen, so a charge request that reaches Toss after the reconciler's inquiry would
/// still be approved. Pier stops sending at its deadline (5 s by default); no Toss page read here
/// says how long Toss may take to act on a request it received, so the grace is generous: 24
/// deadlines, and twice the 60 s after which HTTP front ends commonly abandon a request they have
/// not answered. The cost is only that a buyer's merchant_uid stays "in progress" that long after
/// an answer lost before Toss saw the request.
pub const UNSEEN_ORDER_GRACE: Duration = Duration::from_secs(120);

/// The grace from `PIER_TOSS_UNSEEN_ORDER_GRACE_SECS` (whole seconds), else the default. The
/// chaos harness shortens it: its simulator never acts on a request after the deadline.
fn unseen_order_grace_from_env() -> Duration {
    std::env::var("PIER_TOSS_UNSEEN_ORDER_GRACE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(UNSEEN_ORDER_GRACE, Duration::from_secs)
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("base", &self.base.as_str())
            .field("secret_key", &"<redacted>")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Connector {
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let base = Url::parse(&config.api_base)
            .map_err(|e| ConfigError::BaseUrl(format!("{}: {e}", config.api_base)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ConfigError::BaseUrl(format!(
                "{}: must be an http(s) URL",
                config.api_base
            )));
        }
        if base.cannot_be_a_base() || base.query().is_some() {
            return Err(ConfigError::BaseUrl(format!(
                "{}: must be a plain base URL",
                config.api_base
            )));
        }
        let key = &config.secret_key;
        if key.is_empty() || key.contains(':') || !key.chars().all(|c| c.is_ascii_graphic()) {
            // Never echo the key itself.
            return Err(ConfigError::SecretKey(
                "must be non-empty printable ASCII without ':'".into(),
            ));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
        let mut auth = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| ConfigError::SecretKey("not usable in a header".into()))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(config.deadline.min(MAX_CONNECT_TIMEOUT))
            .tcp_nodelay(true)
            // Outbound proxies are not supported yet: an ambient HTTP_PROXY must not silently
            // reroute card data.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ConfigError::Http(e.to_string()))?;
        let sdk_base = if config.api_base.trim_end_matches('/') == LIVE_API_BASE {
            super::LIVE_SDK_BASE.to_owned()
        } else {
            base.as_str().trim_end_matches('/').to_owned()
        };
        Ok(Self {
            http,
            base,
            auth,
            key_salt: Sha256::digest(key.as_bytes()).into(),
            deadline: config.deadline,
            client_key: None,
            sdk_base,
            unseen_order_grace: unseen_order_grace_from_env(),
        })
    }

    /// The same connector with the channel's client key (needed by the payment window only).
    /// A key that is empty or not printable ASCII is ignored (the window then answers
    /// `NO_CLIENT_KEY`).
    pub fn with_client_key(mut self, client_key: Option<&str>) -> Self {
        self.client_key = client_key
            .filter(|k| !k.is_empty() && k.len() <= 200 && k.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned);
        self
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    fn url(&self, segments: &[&str]) -> PgResult<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| PgError::Unreachable("the API base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// One exchange within the deadline: the status and the raw answer.
    pub(super) async fn exchange(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
        idempotency: Option<&str>,
    ) -> PgResult<(StatusCode, Vec<u8>)> {
        let url = self.url(segments)?;
        let what = format!("{method} /{}", segments.join("/"));
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        if let Some(key) = idempotency {
            req = req.header("Idempotency-Key", key);
        }
        let run = async {
            let resp = req.send().await.map_err(classify_transport)?;
            let status = resp.status();
            let bytes = read_bounded(resp, "Toss").await?;
            Ok((status, bytes))
        };
        match tokio::time::timeout(self.deadline, run).await {
            Ok(answer) => answer,
            Err(_) => Err(PgError::Unknown(format!(
                "no answer from Toss within {} ms ({what})",
                self.deadline.as_millis()
            ))),
        }
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Vec<u8>,
        idempotency: &str,
    ) -> PgResult<T> {
        let (status, bytes) = self
            .exchange(Method::POST, segments, Some(body), Some(idempotency))
            .await?;
        decode(status, &bytes)
    }

    /// `GET /v1/payments/orders/{orderId}`: `None` when Toss has no payment for it.
    pub(super) async fn payment_by_order(&self, order_id: &str) -> PgResult<Option<Payment>> {
        let (status, bytes) = self
            .exchange(
                Method::GET,
                &["v1", "payments", "orders", order_id],
                None,
                None,
            )
            .await?;
        decode_found(status, &bytes)
    }

    /// `GET /v1/payments/{paymentKey}`: `None` when Toss has no payment with that key.
    pub(super) async fn payment_by_key(&self, payment_key: &str) -> PgResult<Option<Payment>> {
        let (status, bytes) = self
            .exchange(Method::GET, &["v1", "payments", payment_key], None, None)
            .await?;
        decode_found(status, &bytes)
    }

    /// The `customerKey` Pier uses at Toss for a customer: unguessable (Toss asks for random
    /// values, and i'mport `customer_uid`s are often e-mails or counters) yet stable, so a retried
    /// issuance names the same customer. Keyed by the secret key, scoped by the channel's MID.
    pub(super) fn customer_key(&self, mid: &Mid, customer_uid: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key_salt);
        h.update(mid.as_str().as_bytes());
        h.update([0]);
        h.update(customer_uid.as_bytes());
        // 40 hex digits (160 bits): well inside Toss's customerKey length limit.
        format!("pier_{}", &hex::encode(h.finalize())[..40])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let config = Config::new("test_sk_verysecret");
        assert!(!format!("{config:?}").contains("verysecret"));
        let c = Connector::new(&config).unwrap();
        assert!(!format!("{c:?}").contains("verysecret"));
    }
}
