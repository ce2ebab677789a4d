//! The small reads and writes the HTTP layer's gates need — readiness, a merchant's allowed
//! origins for CORS and `frame-ancestors`, the Idempotency-Key records, the demo shop's lookups —
//! as engine calls, so that `http/` never reaches the store itself (issue #21).

use super::{Engine, Error, Result};
use pier_store::{Channel, IdemBegin, Merchant, Payment};

/// A merchant's origin rule for a page or an answer: any origin (none configured), or a list.
/// An unknown merchant or a storage error gives `Only(empty)`: the gates fail closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origins {
    Any,
    Only(Vec<String>),
}

impl Origins {
    /// As the window code reads it: `None` any origin, `Some(list)` only those.
    pub fn into_list(self) -> Option<Vec<String>> {
        match self {
            Origins::Any => None,
            Origins::Only(list) => Some(list),
        }
    }
}

/// Idempotency-Keys live at least this long.
pub const IDEM_RETENTION_SECS: i64 = 24 * 3600;

impl Engine {
    /// `GET /readyz`: the database answers. The driver's text goes to the log only.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness: database unreachable");
            Error::Unavailable("database unreachable".into())
        })
    }

    /// The merchant's channels (`GET /users/pg`).
    pub async fn merchant_channels(&self, merchant_id: &str) -> Result<Vec<Channel>> {
        Ok(self.store.list_channels(Some(merchant_id)).await?)
    }

    /// The allowed origins of `merchant_id` (see `Origins`).
    pub async fn merchant_origins(&self, merchant_id: &str) -> Origins {
        match self.store.get_merchant(merchant_id).await {
            Ok(Some(m)) => match Self::allowed_origins(&m) {
                None => Origins::Any,
                Some(list) => Origins::Only(list),
            },
            Ok(None) => Origins::Only(Vec::new()),
            Err(e) => {
                tracing::warn!(error = %e, "store error reading allowed origins; refusing");
                Origins::Only(Vec::new())
            }
        }
    }

    /// The merchant whose checkout holds the test PG's window session `pg_session`.
    pub async fn merchant_of_pg_session(&self, pg_session: &str) -> Option<String> {
        match self.store.checkout_by_pg_session(pg_session).await {
            Ok(Some(c)) => Some(c.merchant_id),
            _ => None,
        }
    }

    /// The keyed hash an Idempotency-Key request is matched by (keyed: the body may hold card
    /// data, and a plain hash of it could be brute-forced).
    pub fn idem_request_hash(&self, material: &[u8]) -> String {
        self.auth.keyed_hash(material)
    }

    /// Forgets Idempotency-Keys older than twice their retention (`IDEM_RETENTION_SECS`).
    pub async fn idem_expire(&self) -> Result<u64> {
        let before = self.now() - 2 * IDEM_RETENTION_SECS;
        Ok(self.store.idem_purge(before).await?)
    }

    /// Starts an Idempotency-Key request (or finds it running or done).
    pub async fn idem_begin(
        &self,
        merchant_id: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdemBegin> {
        Ok(self
            .store
            .idem_begin(merchant_id, key, request_hash, self.now())
            .await?)
    }

    /// Releases a key whose answer was not final, so that a retry runs again.
    pub async fn idem_abort(&self, merchant_id: &str, key: &str) -> Result<()> {
        Ok(self.store.idem_abort(merchant_id, key).await?)
    }

    /// Stores a final answer for replay.
    pub async fn idem_finish(
        &self,
        merchant_id: &str,
        key: &str,
        http_status: i64,
        body: &str,
    ) -> Result<()> {
        Ok(self
            .store
            .idem_finish(merchant_id, key, http_status, body)
            .await?)
    }

    /// The demo shop's merchant, when this server has one.
    pub async fn demo_merchant(&self) -> Result<Option<Merchant>> {
        Ok(self
            .store
            .list_merchants()
            .await?
            .into_iter()
            .find(|m| m.is_demo))
    }

    /// A payment of `merchant_id`, or `None`.
    pub async fn find_payment_by_uid(
        &self,
        merchant_id: &str,
        imp_uid: &str,
    ) -> Result<Option<Payment>> {
        Ok(self.store.get_payment(Some(merchant_id), imp_uid).await?)
    }
}
