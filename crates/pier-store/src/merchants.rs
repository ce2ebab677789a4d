//! Merchants, their PG channels, and API tokens.

use crate::connect::{PgStore, SqliteStore};
use crate::error::{on_conflict, StoreResult};
use crate::models::{Channel, Merchant, Token};
use crate::row::{bind_row, insert_sql};
use async_trait::async_trait;

#[async_trait]
pub trait MerchantStore: Send + Sync {
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    async fn create_merchant(&self, m: &Merchant) -> StoreResult<()>;
    async fn update_merchant(&self, m: &Merchant) -> StoreResult<()>;
    async fn get_merchant(&self, imp_code: &str) -> StoreResult<Option<Merchant>>;
    async fn get_merchant_by_key(&self, imp_key: &str) -> StoreResult<Option<Merchant>>;
    async fn list_merchants(&self) -> StoreResult<Vec<Merchant>>;
    /// Adds a channel; a default channel clears the default flag of the merchant's others.
    async fn add_channel(&self, c: &Channel) -> StoreResult<()>;
    async fn list_channels(&self, merchant_id: Option<&str>) -> StoreResult<Vec<Channel>>;
    async fn get_channel(&self, id: &str) -> StoreResult<Option<Channel>>;
    /// Replaces a channel's sealed PG secret; false when there is no such channel.
    async fn set_channel_secret(&self, id: &str, secret_sealed: &str) -> StoreResult<bool>;
    /// What still needs a channel (see [`ChannelUse`]).
    async fn channel_use(&self, id: &str) -> StoreResult<ChannelUse>;
    /// Deletes a channel in one guarded statement: not its merchant's default, and nothing
    /// [`ChannelUse`] counts. False when nothing was deleted (no such channel, or the guard held).
    async fn remove_channel(&self, id: &str) -> StoreResult<bool>;
    async fn insert_token(&self, t: &Token) -> StoreResult<()>;
    /// The newest token of this key still valid at `now`.
    async fn current_token(&self, imp_key: &str, now: i64) -> StoreResult<Option<Token>>;
    /// The token stored under this keyed hash.
    async fn get_token(&self, token_hash: &str) -> StoreResult<Option<Token>>;
    /// Moves a token's expiry forward (never backward).
    async fn extend_token(&self, token_hash: &str, expired_at: i64) -> StoreResult<()>;
    /// Writes the merchant's allowed origins (`None` clears them). `false` if no such merchant.
    /// The engine validates and normalizes the text; the store only writes it.
    async fn set_allowed_origins(&self, imp_code: &str, origins: Option<&str>)
        -> StoreResult<bool>;
    /// Deletes every token of the merchant; returns how many.
    async fn revoke_tokens(&self, merchant_id: &str) -> StoreResult<u64>;
    /// Replaces the merchant's secret hash and deletes its tokens in one transaction; false when
    /// there is no such merchant.
    async fn rotate_secret(&self, imp_code: &str, secret_hash: &str) -> StoreResult<bool>;
    /// Deletes at most `limit` tokens that expired before `before`; returns how many.
    async fn delete_expired_tokens(&self, before: i64, limit: i64) -> StoreResult<u64>;
}

/// What still needs a channel's credentials: billing keys issued through it (`again` charges
/// them there) and payment attempts on it that are not final — `ready` (in flight, unknown to the
/// reconciler, or a virtual account awaiting its deposit) or `paid` (it may still be cancelled,
/// which only that channel's PG can do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelUse {
    pub billing_keys: i64,
    pub open_payments: i64,
}

impl ChannelUse {
    pub fn is_unused(&self) -> bool {
        self.billing_keys == 0 && self.open_payments == 0
    }
}

/// The rows [`ChannelUse`] counts, as SQL conditions on a channel id `$1`.
const CHANNEL_KEYS_SQL: &str = "SELECT COUNT(*) FROM customers WHERE channel_id = $1";
const CHANNEL_OPEN_PAYMENTS_SQL: &str =
    "SELECT COUNT(*) FROM payments WHERE channel_id = $1 AND status IN ('ready', 'paid')";

const MERCHANT_COLS: &str = "imp_code, name, imp_key, secret_hash, webhook_url, webhook_format, \
     webhook_secret, allowed_origins, is_demo, created_at";
const TOKEN_COLS: &str = "token_hash, nonce, merchant_id, imp_key, expired_at, created_at";

macro_rules! impl_merchant_store {
    ($store:ty, $row:ty, $m:ident) => {
        mod $m {
            use super::*;
            use sqlx::Row;
            use crate::row::Row as _;
            use crate::connect::{HasLane, HasPgReads};

            fn merchant(r: &$row) -> sqlx::Result<Merchant> {
                Ok(Merchant {
                    imp_code: r.try_get("imp_code")?,
                    name: r.try_get("name")?,
                    imp_key: r.try_get("imp_key")?,
                    secret_hash: r.try_get("secret_hash")?,
                    webhook_url: r.try_get("webhook_url")?,
                    webhook_format: r.try_get("webhook_format")?,
                    webhook_secret: r.try_get("webhook_secret")?,
                    allowed_origins: r.try_get("allowed_origins")?,
                    is_demo: r.try_get("is_demo")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            fn channel(r: &$row) -> sqlx::Result<Channel> {
                Channel::read(r)
            }

            fn token(r: &$row) -> sqlx::Result<Token> {
                Ok(Token {
                    token_hash: r.try_get("token_hash")?,
                    nonce: r.try_get("nonce")?,
                    merchant_id: r.try_get("merchant_id")?,
                    imp_key: r.try_get("imp_key")?,
                    expired_at: r.try_get("expired_at")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            #[async_trait]
            impl MerchantStore for $store {
                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                }

                async fn create_merchant(&self, m: &Merchant) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO merchants ({MERCHANT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
                    ))
                    .bind(&m.imp_code)
                    .bind(&m.name)
                    .bind(&m.imp_key)
                    .bind(&m.secret_hash)
                    .bind(&m.webhook_url)
                    .bind(&m.webhook_format)
                    .bind(&m.webhook_secret)
                    .bind(&m.allowed_origins)
                    .bind(m.is_demo)
                    .bind(m.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| on_conflict(e, "merchant exists"))?;
                    Ok(())
                }

                async fn update_merchant(&self, m: &Merchant) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE merchants SET name = $2, secret_hash = $3, webhook_url = $4, \
                         webhook_format = $5, webhook_secret = $6, allowed_origins = $7 \
                         WHERE imp_code = $1",
                    )
                    .bind(&m.imp_code)
                    .bind(&m.name)
                    .bind(&m.secret_hash)
                    .bind(&m.webhook_url)
                    .bind(&m.webhook_format)
                    .bind(&m.webhook_secret)
                    .bind(&m.allowed_origins)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn get_merchant(&self, imp_code: &str) -> StoreResult<Option<Merchant>> {
                    let row = sqlx::query(&format!("SELECT {MERCHANT_COLS} FROM merchants WHERE imp_code = $1"))
                        .bind(imp_code)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.as_ref().map(merchant).transpose()?)
                }

                async fn get_merchant_by_key(&self, imp_key: &str) -> StoreResult<Option<Merchant>> {
                    let row = sqlx::query(&format!("SELECT {MERCHANT_COLS} FROM merchants WHERE imp_key = $1"))
                        .bind(imp_key)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.as_ref().map(merchant).transpose()?)
                }

                async fn list_merchants(&self) -> StoreResult<Vec<Merchant>> {
                    let rows = sqlx::query(&format!("SELECT {MERCHANT_COLS} FROM merchants ORDER BY created_at, imp_code"))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.iter().map(merchant).collect::<sqlx::Result<_>>()?)
                }

                async fn add_channel(&self, c: &Channel) -> StoreResult<()> {
                    let mut tx = self.pool.begin().await?;
                    if c.is_default {
                        sqlx::query("UPDATE channels SET is_default = FALSE WHERE merchant_id = $1")
                            .bind(&c.merchant_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    bind_row(sqlx::query(&insert_sql::<Channel>()), c)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| on_conflict(e, "channel exists"))?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn list_channels(&self, merchant_id: Option<&str>) -> StoreResult<Vec<Channel>> {
                    if let (Some(lane), Some(m)) = (self.lane(), merchant_id) {
                        return lane.merchant_channels(m);
                    }
                    if let (Some(reads), Some(m)) = (self.pg_reads(), merchant_id) {
                        return reads.channels.read(m.to_owned()).await;
                    }
                    let rows = match merchant_id {
                        Some(m) => sqlx::query(&format!(
                            "SELECT {} FROM channels WHERE merchant_id = $1 ORDER BY created_at, id",
                            Channel::LIST
                        ))
                        .bind(m)
                        .fetch_all(&self.pool)
                        .await?,
                        None => sqlx::query(&format!("SELECT {} FROM channels ORDER BY merchant_id, created_at, id", Channel::LIST))
                            .fetch_all(&self.pool)
                            .await?,
                    };
                    Ok(rows.iter().map(channel).collect::<sqlx::Result<_>>()?)
                }

                async fn get_channel(&self, id: &str) -> StoreResult<Option<Channel>> {
                    if let Some(lane) = self.lane() {
                        return lane.get_channel(id);
                    }
                    let row = sqlx::query(&format!("SELECT {} FROM channels WHERE id = $1", Channel::LIST))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.as_ref().map(channel).transpose()?)
                }

                async fn set_channel_secret(&self, id: &str, secret_sealed: &str) -> StoreResult<bool> {
                    let r = sqlx::query("UPDATE channels SET secret_sealed = $2 WHERE id = $1")
                        .bind(id)
                        .bind(secret_sealed)
                        .execute(&self.pool)
                        .await?;
                    Ok(r.rows_affected() > 0)
                }

                async fn channel_use(&self, id: &str) -> StoreResult<ChannelUse> {
                    let billing_keys: i64 = sqlx::query_scalar(CHANNEL_KEYS_SQL)
                        .bind(id)
                        .fetch_one(&self.pool)
                        .await?;
                    let open_payments: i64 = sqlx::query_scalar(CHANNEL_OPEN_PAYMENTS_SQL)
                        .bind(id)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(ChannelUse { billing_keys, open_payments })
                }

                async fn remove_channel(&self, id: &str) -> StoreResult<bool> {
                    // The same counts as `channel_use`, inside the DELETE: a billing key issued
                    // between the engine's check and this statement keeps the channel.
                    let r = sqlx::query(&format!(
                        "DELETE FROM channels WHERE id = $1 AND is_default = FALSE \
                         AND ({CHANNEL_KEYS_SQL}) = 0 AND ({CHANNEL_OPEN_PAYMENTS_SQL}) = 0"
                    ))
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                    Ok(r.rows_affected() > 0)
                }

                async fn insert_token(&self, t: &Token) -> StoreResult<()> {
                    sqlx::query(&format!("INSERT INTO tokens ({TOKEN_COLS}) VALUES ($1,$2,$3,$4,$5,$6)"))
                        .bind(&t.token_hash)
                        .bind(&t.nonce)
                        .bind(&t.merchant_id)
                        .bind(&t.imp_key)
                        .bind(t.expired_at)
                        .bind(t.created_at)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| on_conflict(e, "token exists"))?;
                    Ok(())
                }

                async fn current_token(&self, imp_key: &str, now: i64) -> StoreResult<Option<Token>> {
                    let row = sqlx::query(&format!(
                        "SELECT {TOKEN_COLS} FROM tokens WHERE imp_key = $1 AND expired_at > $2 \
                         ORDER BY expired_at DESC, token_hash LIMIT 1"
                    ))
                    .bind(imp_key)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(token).transpose()?)
                }

                async fn get_token(&self, token_hash: &str) -> StoreResult<Option<Token>> {
                    let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE token_hash = $1"))
                        .bind(token_hash)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.as_ref().map(token).transpose()?)
                }

                async fn extend_token(&self, token_hash: &str, expired_at: i64) -> StoreResult<()> {
                    sqlx::query("UPDATE tokens SET expired_at = $2 WHERE token_hash = $1 AND expired_at < $2")
                        .bind(token_hash)
                        .bind(expired_at)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn set_allowed_origins(
                    &self,
                    imp_code: &str,
                    origins: Option<&str>,
                ) -> StoreResult<bool> {
                    let done = sqlx::query("UPDATE merchants SET allowed_origins = $2 WHERE imp_code = $1")
                        .bind(imp_code)
                        .bind(origins)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn revoke_tokens(&self, merchant_id: &str) -> StoreResult<u64> {
                    let r = sqlx::query("DELETE FROM tokens WHERE merchant_id = $1")
                        .bind(merchant_id)
                        .execute(&self.pool)
                        .await?;
                    Ok(r.rows_affected())
                }

                async fn rotate_secret(&self, imp_code: &str, secret_hash: &str) -> StoreResult<bool> {
                    let mut tx = self.pool.begin().await?;
                    let r = sqlx::query("UPDATE merchants SET secret_hash = $2 WHERE imp_code = $1")
                        .bind(imp_code)
                        .bind(secret_hash)
                        .execute(&mut *tx)
                        .await?;
                    if r.rows_affected() == 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM tokens WHERE merchant_id = $1")
                        .bind(imp_code)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn delete_expired_tokens(&self, before: i64, limit: i64) -> StoreResult<u64> {
                    let r = sqlx::query(
                        "DELETE FROM tokens WHERE token_hash IN \
                         (SELECT token_hash FROM tokens WHERE expired_at < $1 LIMIT $2)",
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

impl_merchant_store!(SqliteStore, sqlx::sqlite::SqliteRow, sqlite_impl);
impl_merchant_store!(PgStore, sqlx::postgres::PgRow, pg_impl);
