//! Merchant credential lifecycle: rotating `imp_secret` and revoking access tokens
//! (`pier merchant rotate-secret` / `revoke-tokens`; docs/security/secrets.md).
//!
//! The store writes; the decisions (new secret, which merchant) are made here. Both take effect
//! at once in this process (its caches are cleared) and within `MERCHANT_TTL` (secret) or
//! `TOKEN_CACHE_TTL` (tokens) in every other process sharing the database (engine/auth.rs).

use super::{Engine, Error, Result};
use pier_domain::ids::random_hex;

impl Engine {
    /// Gives the merchant a new random `imp_secret` (returned once, stored only as a keyed
    /// hash); the old secret and every token of the merchant stop working.
    pub async fn rotate_secret(&self, imp_code: &str) -> Result<String> {
        // 32 random bytes, as `create_merchant` makes them.
        let secret = random_hex(32);
        let hash = self.hash_secret(&secret);
        if !self.store.rotate_secret(imp_code, &hash).await? {
            return Err(Error::NotFound(format!("no merchant {imp_code:?}")));
        }
        self.auth.forget_cached();
        Ok(secret)
    }

    /// Revokes every access token of the merchant; returns how many were live in the database.
    pub async fn revoke_tokens(&self, imp_code: &str) -> Result<u64> {
        if self.store.get_merchant(imp_code).await?.is_none() {
            return Err(Error::NotFound(format!("no merchant {imp_code:?}")));
        }
        let n = self.store.revoke_tokens(imp_code).await?;
        self.auth.forget_cached();
        Ok(n)
    }
}
