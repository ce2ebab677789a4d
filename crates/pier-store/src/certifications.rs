//! Identity verifications (migration 0040). The store guards the transitions (`window` →
//! `requested` → `certified` | `failed` | `cancelled`, decided by `CertificationStatus::
//! can_become`) with conditional updates, so two confirms that race certify once; what a
//! transition means is the engine's business.

use crate::connect::{PgStore, SqliteStore};
use crate::error::{on_conflict, StoreResult};
use crate::models::CertificationStatus;
use async_trait::async_trait;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Certification {
    pub imp_uid: String,
    pub merchant_id: String,
    pub merchant_uid: Option<String>,
    pub pg_provider: String,
    pub pg_tid: String,
    pub status: CertificationStatus,
    /// The person's data, sealed by the engine (never plain text).
    pub sealed: Option<String>,
    pub unique_key: Option<String>,
    pub unique_in_site: Option<String>,
    pub origin: Option<String>,
    pub company: Option<String>,
    pub min_age: Option<i64>,
    pub otp_attempts: i64,
    pub fail_reason: Option<String>,
    pub certified_at: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub window_id: Option<String>,
    pub window_mode: Option<String>,
    pub parent_origin: Option<String>,
    pub m_redirect_url: Option<String>,
}

impl std::fmt::Debug for Certification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // CI/DI identify a person; the sealed blob is ciphertext but has no business in logs.
        f.debug_struct("Certification")
            .field("imp_uid", &self.imp_uid)
            .field("merchant_id", &self.merchant_id)
            .field("status", &self.status)
            .field("sealed", &self.sealed.as_ref().map(|_| "<sealed>"))
            .finish_non_exhaustive()
    }
}

/// What changes when a certification moves on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertStep {
    /// The person was entered and a code sent: `window`/`requested` → `requested`.
    Requested { sealed: String, expires_at: i64 },
    /// The right code: `requested` (unexpired at `now`) → `certified`.
    Certified {
        unique_key: String,
        unique_in_site: String,
        now: i64,
    },
    /// A wrong code: one more attempt; at `max_attempts` the certification fails.
    WrongCode { max_attempts: i64, reason: String },
    /// `window`/`requested` → `failed` or `cancelled` with a reason.
    Ended {
        status: CertificationStatus,
        reason: String,
    },
}

#[async_trait]
pub trait CertificationStore: Send + Sync {
    async fn insert_certification(&self, c: &Certification) -> StoreResult<()>;
    async fn get_certification(
        &self,
        merchant_id: &str,
        imp_uid: &str,
    ) -> StoreResult<Option<Certification>>;
    async fn certification_by_window(&self, window_id: &str) -> StoreResult<Option<Certification>>;
    /// Applies `step` if the certification is in a state it applies to; `None` otherwise
    /// (already certified, ended, or the code expired).
    async fn step_certification(
        &self,
        merchant_id: &str,
        imp_uid: &str,
        step: &CertStep,
    ) -> StoreResult<Option<Certification>>;
    /// Removes the certification and everything it holds; answers it as it was.
    async fn delete_certification(
        &self,
        merchant_id: &str,
        imp_uid: &str,
    ) -> StoreResult<Option<Certification>>;
    /// Deletes up to `limit` certifications that never completed and expired before `before`.
    async fn delete_stale_certifications(&self, before: i64, limit: i64) -> StoreResult<u64>;
}

const COLS: &str = "imp_uid, merchant_id, merchant_uid, pg_provider, pg_tid, status, sealed, \
     unique_key, unique_in_site, origin, company, min_age, otp_attempts, fail_reason, certified_at, \
     created_at, expires_at, window_id, window_mode, parent_origin, m_redirect_url";

/// The guard of an update moving a certification to `to`: the statuses the domain lets become
/// `to`, so the SQL follows the one state machine.
fn may_become(to: CertificationStatus) -> String {
    let from: Vec<String> = CertificationStatus::ALL
        .into_iter()
        .filter(|s| s.can_become(to))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    if from.is_empty() {
        return "1 = 0".into();
    }
    format!("status IN ({})", from.join(", "))
}

macro_rules! impl_certification_store {
    ($store:ty, $row:ty, $m:ident) => {
        mod $m {
            use super::*;
            use sqlx::Row;

            fn cert(r: &$row) -> sqlx::Result<Certification> {
                Ok(Certification {
                    imp_uid: r.try_get("imp_uid")?,
                    merchant_id: r.try_get("merchant_id")?,
                    merchant_uid: r.try_get("merchant_uid")?,
                    pg_provider: r.try_get("pg_provider")?,
                    pg_tid: r.try_get("pg_tid")?,
                    status: {
                        let v: &str = r.try_get("status")?;
                        v.parse().map_err(|_| sqlx::Error::ColumnDecode {
                            index: "status".into(),
                            source: format!("unknown certification status {v:?}").into(),
                        })?
                    },
                    sealed: r.try_get("sealed")?,
                    unique_key: r.try_get("unique_key")?,
                    unique_in_site: r.try_get("unique_in_site")?,
                    origin: r.try_get("origin")?,
                    company: r.try_get("company")?,
                    min_age: r.try_get("min_age")?,
                    otp_attempts: r.try_get("otp_attempts")?,
                    fail_reason: r.try_get("fail_reason")?,
                    certified_at: r.try_get("certified_at")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    window_id: r.try_get("window_id")?,
                    window_mode: r.try_get("window_mode")?,
                    parent_origin: r.try_get("parent_origin")?,
                    m_redirect_url: r.try_get("m_redirect_url")?,
                })
            }

            #[async_trait]
            impl CertificationStore for $store {
                async fn insert_certification(&self, c: &Certification) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO certifications ({COLS}) VALUES \
                         ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)"
                    ))
                    .bind(&c.imp_uid)
                    .bind(&c.merchant_id)
                    .bind(&c.merchant_uid)
                    .bind(&c.pg_provider)
                    .bind(&c.pg_tid)
                    .bind(c.status.as_str())
                    .bind(&c.sealed)
                    .bind(&c.unique_key)
                    .bind(&c.unique_in_site)
                    .bind(&c.origin)
                    .bind(&c.company)
                    .bind(c.min_age)
                    .bind(c.otp_attempts)
                    .bind(&c.fail_reason)
                    .bind(c.certified_at)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .bind(&c.window_id)
                    .bind(&c.window_mode)
                    .bind(&c.parent_origin)
                    .bind(&c.m_redirect_url)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| on_conflict(e, "the certification exists"))?;
                    Ok(())
                }

                async fn get_certification(&self, merchant_id: &str, imp_uid: &str) -> StoreResult<Option<Certification>> {
                    let row = sqlx::query(&format!(
                        "SELECT {COLS} FROM certifications WHERE merchant_id = $1 AND imp_uid = $2"
                    ))
                    .bind(merchant_id)
                    .bind(imp_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(cert).transpose()?)
                }

                async fn certification_by_window(&self, window_id: &str) -> StoreResult<Option<Certification>> {
                    let row = sqlx::query(&format!(
                        "SELECT {COLS} FROM certifications WHERE window_id = $1"
                    ))
                    .bind(window_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(cert).transpose()?)
                }

                async fn step_certification(&self, merchant_id: &str, imp_uid: &str, step: &CertStep) -> StoreResult<Option<Certification>> {
                    let sql: String;
                    let q = match step {
                        CertStep::Requested { sealed, expires_at } => {
                            sql = format!(
                                    "UPDATE certifications SET status = 'requested', sealed = $3, expires_at = $4, \
                                 otp_attempts = 0 WHERE merchant_id = $1 AND imp_uid = $2 \
                                 AND {} RETURNING {COLS}",
                                 may_become(CertificationStatus::Requested)
                            );
                            sqlx::query(&sql)
                            .bind(merchant_id)
                            .bind(imp_uid)
                            .bind(sealed)
                            .bind(*expires_at)
                        }
                        CertStep::Certified { unique_key, unique_in_site, now } => {
                            sql = format!(
                                    "UPDATE certifications SET status = 'certified', unique_key = $3, \
                                 unique_in_site = $4, certified_at = $5 WHERE merchant_id = $1 AND imp_uid = $2 \
                                 AND {} AND expires_at >= $5 RETURNING {COLS}",
                                 may_become(CertificationStatus::Certified)
                            );
                            sqlx::query(&sql)
                            .bind(merchant_id)
                            .bind(imp_uid)
                            .bind(unique_key)
                            .bind(unique_in_site)
                            .bind(*now)
                        }
                        CertStep::WrongCode { max_attempts, reason } => {
                            sql = format!(
                                    "UPDATE certifications SET otp_attempts = otp_attempts + 1, \
                                 status = CASE WHEN otp_attempts + 1 >= $3 THEN 'failed' ELSE status END, \
                                 fail_reason = CASE WHEN otp_attempts + 1 >= $3 THEN $4 ELSE fail_reason END \
                                 WHERE merchant_id = $1 AND imp_uid = $2 AND status = 'requested' RETURNING {COLS}"
                            );
                            sqlx::query(&sql)
                            .bind(merchant_id)
                            .bind(imp_uid)
                            .bind(*max_attempts)
                            .bind(reason)
                        }
                        CertStep::Ended { status, reason } => {
                            sql = format!(
                                    "UPDATE certifications SET status = $3, fail_reason = $4 \
                                 WHERE merchant_id = $1 AND imp_uid = $2 AND {} \
                                 RETURNING {COLS}",
                                 may_become(*status)
                            );
                            sqlx::query(&sql)
                            .bind(merchant_id)
                            .bind(imp_uid)
                            .bind(status.as_str())
                            .bind(reason)
                        }
                    };
                    let row = q.fetch_optional(&self.pool).await?;
                    Ok(row.as_ref().map(cert).transpose()?)
                }

                async fn delete_certification(&self, merchant_id: &str, imp_uid: &str) -> StoreResult<Option<Certification>> {
                    let row = sqlx::query(&format!(
                        "DELETE FROM certifications WHERE merchant_id = $1 AND imp_uid = $2 RETURNING {COLS}"
                    ))
                    .bind(merchant_id)
                    .bind(imp_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(cert).transpose()?)
                }

                async fn delete_stale_certifications(&self, before: i64, limit: i64) -> StoreResult<u64> {
                    let r = sqlx::query(
                        "DELETE FROM certifications WHERE imp_uid IN (SELECT imp_uid FROM certifications \
                         WHERE status <> 'certified' AND expires_at < $1 LIMIT $2)",
                    )
                    .bind(before)
                    .bind(limit)
                    .execute(&self.pool)
                    .await?;
                    Ok(r.rows_affected())
                }
            }
        }
    };
}

impl_certification_store!(SqliteStore, sqlx::sqlite::SqliteRow, sqlite_impl);
impl_certification_store!(PgStore, sqlx::postgres::PgRow, pg_impl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_follow_the_domain() {
        use CertificationStatus::*;
        assert_eq!(may_become(Requested), "status IN ('window', 'requested')");
        assert_eq!(may_become(Certified), "status IN ('requested')");
        assert_eq!(may_become(Cancelled), "status IN ('window', 'requested')");
        assert_eq!(may_become(Window), "1 = 0");
    }
}
