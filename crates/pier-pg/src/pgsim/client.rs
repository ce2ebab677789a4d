//! `Client`: the `Pg` connector that talks to a pgsim over HTTP.
//!
//! The connector holds no per-payment state: a base URL, a pooled HTTP client and a deadline.
//! How transport failures map onto the three-valued outcome is the whole point of this module:
//!
//! - the connection could not be made (refused, no route, connect timeout): nothing was sent, so
//!   `Unreachable`; so is pgsim's own 503 `unavailable` (down switch: it processed nothing);
//! - the deadline passed, the connection broke after sending, the answer was a 5xx or unreadable:
//!   the request may have been processed, so `Unknown`;
//! - an enveloped refusal is `Declined` / `Rejected`; any other 4xx means pgsim's router refused
//!   the request before a handler ran, so `Rejected`.

use super::wire::{self, Done, Reply, WireCard};
use crate::transport::{classify_transport, read_bounded, MAX_CONNECT_TIMEOUT};
use crate::{
    Approval, AuthBegin, AuthComplete, AuthOutcome, AuthSession, BillingKey, CancelOutcome,
    CancelRequest, CardData, Inquiry, Mid, Order, Pg, PgError, PgResult, VbankIssued, VbankRequest,
    DEFAULT_DEADLINE,
};
use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("invalid pgsim base URL: {0}")]
    BaseUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// Without a trailing slash; may carry a path prefix where pgsim is mounted.
    base_url: String,
    deadline: Duration,
}

impl Client {
    /// A client for the pgsim at `base_url` (e.g. `http://127.0.0.1:7070`), with `DEFAULT_DEADLINE`.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_deadline(base_url, DEFAULT_DEADLINE)
    }

    /// Every call (connect, send, full answer read) completes within `deadline` or is `Unknown`.
    pub fn with_deadline(base_url: &str, deadline: Duration) -> Result<Self, ClientError> {
        let url = reqwest::Url::parse(base_url).map_err(|e| ClientError::BaseUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ClientError::BaseUrl(format!(
                "{base_url}: must be an http(s) URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(deadline.min(MAX_CONNECT_TIMEOUT))
            .tcp_nodelay(true)
            // pgsim is a local or internal service; an ambient HTTP_PROXY must not reroute it.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            deadline,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
    ) -> PgResult<Resp> {
        // Encoding our own types cannot fail; if it did, nothing was sent.
        let body = serde_json::to_vec(body)
            .map_err(|e| PgError::Unreachable(format!("cannot encode the request: {e}")))?;
        let url = format!("{}{path}", self.base_url);
        let exchange = async {
            let resp = self
                .http
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(classify_transport)?;
            let status = resp.status();
            let bytes = read_bounded(resp, "pgsim").await?;
            decode(status, &bytes)
        };
        match tokio::time::timeout(self.deadline, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(PgError::Unknown(format!(
                "no answer from pgsim within {} ms ({path})",
                self.deadline.as_millis()
            ))),
        }
    }
}

fn decode<T: DeserializeOwned>(status: reqwest::StatusCode, bytes: &[u8]) -> PgResult<T> {
    match serde_json::from_slice::<Reply<T>>(bytes) {
        Ok(Reply::Ok { value }) if status == reqwest::StatusCode::OK => Ok(value),
        Ok(Reply::Declined { code, message }) => Err(PgError::Declined { code, message }),
        Ok(Reply::Rejected { code, message }) => Err(PgError::Rejected { code, message }),
        Ok(Reply::Unavailable { message }) => Err(PgError::Unreachable(message)),
        _ if status.is_client_error() => Err(PgError::Rejected {
            code: format!("HTTP_{}", status.as_u16()),
            message: "pgsim refused the request".into(),
        }),
        _ => Err(PgError::Unknown(format!(
            "unreadable pgsim answer (HTTP {})",
            status.as_u16()
        ))),
    }
}

#[async_trait]
impl Pg for Client {
    async fn approve_keyed(&self, mid: &Mid, order: &Order, card: CardData) -> PgResult<Approval> {
        let req = wire::ApproveKeyed {
            mid: mid.clone(),
            order: order.clone(),
            card: WireCard::from_card(&card),
        };
        drop(card);
        self.call(wire::APPROVE_KEYED, &req).await
    }

    async fn issue_billing_key(
        &self,
        mid: &Mid,
        customer_uid: &str,
        card: CardData,
    ) -> PgResult<BillingKey> {
        let req = wire::IssueBillingKey {
            mid: mid.clone(),
            customer_uid: customer_uid.to_owned(),
            card: WireCard::from_card(&card),
        };
        drop(card);
        self.call(wire::ISSUE_BILLING_KEY, &req).await
    }

    async fn delete_billing_key(&self, mid: &Mid, billing_key: &str) -> PgResult<()> {
        let req = wire::DeleteBillingKey {
            mid: mid.clone(),
            billing_key: billing_key.to_owned(),
        };
        self.call::<_, Done>(wire::DELETE_BILLING_KEY, &req)
            .await
            .map(|_| ())
    }

    async fn pay_with_key(
        &self,
        mid: &Mid,
        order: &Order,
        billing_key: &str,
    ) -> PgResult<Approval> {
        let req = wire::PayWithKey {
            mid: mid.clone(),
            order: order.clone(),
            billing_key: billing_key.to_owned(),
        };
        self.call(wire::PAY_WITH_KEY, &req).await
    }

    async fn cancel(&self, mid: &Mid, req: &CancelRequest) -> PgResult<CancelOutcome> {
        let req = wire::Cancel {
            mid: mid.clone(),
            request: req.clone(),
        };
        self.call(wire::CANCEL, &req).await
    }

    async fn inquire(&self, mid: &Mid, order_id: &str) -> PgResult<Inquiry> {
        let req = wire::OrderRef {
            mid: mid.clone(),
            order_id: order_id.to_owned(),
        };
        self.call(wire::INQUIRE, &req).await
    }

    async fn net_cancel(&self, mid: &Mid, order_id: &str) -> PgResult<()> {
        let req = wire::OrderRef {
            mid: mid.clone(),
            order_id: order_id.to_owned(),
        };
        self.call::<_, Done>(wire::NET_CANCEL, &req)
            .await
            .map(|_| ())
    }

    async fn issue_vbank(&self, mid: &Mid, req: &VbankRequest) -> PgResult<VbankIssued> {
        let req = wire::IssueVbank {
            mid: mid.clone(),
            request: req.clone(),
        };
        self.call(wire::ISSUE_VBANK, &req).await
    }

    async fn begin_auth(&self, mid: &Mid, req: &AuthBegin) -> PgResult<AuthSession> {
        let req = wire::BeginAuth {
            mid: mid.clone(),
            request: req.clone(),
        };
        self.call(wire::BEGIN_AUTH, &req).await
    }

    async fn complete_auth(&self, mid: &Mid, req: &AuthComplete) -> PgResult<AuthOutcome> {
        let req = wire::CompleteAuth {
            mid: mid.clone(),
            request: req.clone(),
        };
        self.call(wire::COMPLETE_AUTH, &req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn decoding_maps_outcomes() {
        let ok: PgResult<Done> = decode(StatusCode::OK, br#"{"outcome":"ok","value":{}}"#);
        assert!(ok.is_ok());
        let d: PgResult<Done> = decode(
            StatusCode::PAYMENT_REQUIRED,
            br#"{"outcome":"declined","code":"2116","message":"m"}"#,
        );
        assert_eq!(
            d.unwrap_err(),
            PgError::Declined {
                code: "2116".into(),
                message: "m".into()
            }
        );
        let u: PgResult<Done> = decode(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"outcome":"unavailable","message":"down"}"#,
        );
        assert!(matches!(u, Err(PgError::Unreachable(_))));
        let e: PgResult<Done> = decode(StatusCode::INTERNAL_SERVER_ERROR, b"boom");
        assert!(matches!(e, Err(PgError::Unknown(_))));
        let e: PgResult<Done> = decode(StatusCode::BAD_GATEWAY, br#"{"outcome":"ok","value":{}}"#);
        assert!(matches!(e, Err(PgError::Unknown(_))));
        let r: PgResult<Done> = decode(StatusCode::NOT_FOUND, b"");
        assert!(matches!(r, Err(PgError::Rejected { .. })));
    }

    #[test]
    fn base_url_checked() {
        assert!(Client::new("http://127.0.0.1:1/").is_ok());
        assert_eq!(
            Client::new("http://127.0.0.1:1/pgsim/").unwrap().base_url(),
            "http://127.0.0.1:1/pgsim"
        );
        assert!(Client::new("ftp://x").is_err());
        assert!(Client::new("not a url").is_err());
    }
}
