//! `getToken` and token checks.
//!
//! Official clients call getToken before *every* request, so both paths are served from memory
//! when possible: merchants by key (short TTL), the current token per key, and tokens by value.
//! The database stays the truth, so several instances agree on a key's current token.
//! `imp_secret` is kept only as HMAC-SHA256 under the server key (it is high-entropy, so a fast
//! keyed hash is right) and compared in constant time.

use super::{Engine, Error, Result};
use crate::config::Config;
use crate::edge::buckets::KeyedBuckets;
use crate::edge::{limit_key, LIMITER_MAX_KEYS};
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use pier_store::{Merchant, Token};
use sha2::Sha256;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a merchant row is trusted from memory.
const MERCHANT_TTL: Duration = Duration::from_secs(10);
/// Last stretch of a token's life in which getToken extends it, and by how much (spec §2.2).
const EXTEND_WINDOW_SECS: i64 = 60;
const EXTEND_BY_SECS: i64 = 5 * 60;
/// Bound on the in-memory maps; past it they are cleared (they are caches).
const CACHE_MAX: usize = 100_000;

pub struct AuthState {
    key: [u8; 32],
    merchants: DashMap<String, (Merchant, Instant)>,
    current: DashMap<String, Token>,
    tokens: DashMap<String, (String, i64)>,
    /// Failed getToken attempts per (client address, key) and per client address. Never per key
    /// alone: anyone who knows a key could then lock its merchant out (and behind a proxy
    /// without `--trusted-proxies` every client shares one address). Token buckets of
    /// `auth_failures_per_minute` per minute on the engine clock, bounded to
    /// `LIMITER_MAX_KEYS` keys each (see edge/buckets.rs for the eviction).
    failures_key: KeyedBuckets<(IpAddr, String)>,
    failures_addr: KeyedBuckets<IpAddr>,
}

impl AuthState {
    pub fn new(cfg: &Config) -> Self {
        Self {
            key: cfg.server_key,
            merchants: DashMap::new(),
            current: DashMap::new(),
            tokens: DashMap::new(),
            failures_key: KeyedBuckets::new(
                cfg.auth_failures_per_minute,
                60_000,
                cfg.auth_failures_per_minute,
                LIMITER_MAX_KEYS,
            ),
            failures_addr: KeyedBuckets::new(
                cfg.auth_failures_per_minute,
                60_000,
                cfg.auth_failures_per_minute,
                LIMITER_MAX_KEYS,
            ),
        }
    }

    /// HMAC-SHA256 of `data` under the server key, hex.
    pub fn keyed_hash(&self, data: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    fn limited(&self, client: IpAddr, imp_key: &str, now_ms: i64) -> bool {
        let addr = limit_key(client);
        !self.failures_addr.allows(&addr, now_ms)
            || !self
                .failures_key
                .allows(&(addr, imp_key.to_owned()), now_ms)
    }

    fn note_failure(&self, client: IpAddr, imp_key: &str, now_ms: i64) {
        let addr = limit_key(client);
        self.failures_addr.charge(&addr, now_ms);
        self.failures_key
            .charge(&(addr, imp_key.to_owned()), now_ms);
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub now: i64,
    pub expired_at: i64,
}

/// The merchant a request acts for.
#[derive(Debug, Clone)]
pub struct Principal {
    pub merchant_id: String,
}

impl Engine {
    pub fn hash_secret(&self, secret: &str) -> String {
        self.auth.keyed_hash(secret.as_bytes())
    }

    async fn merchant_by_key(&self, imp_key: &str) -> Result<Option<Merchant>> {
        if let Some(e) = self.auth.merchants.get(imp_key) {
            if e.1.elapsed() < MERCHANT_TTL {
                return Ok(Some(e.0.clone()));
            }
        }
        let m = self.store.get_merchant_by_key(imp_key).await?;
        if let Some(m) = &m {
            if self.auth.merchants.len() > CACHE_MAX {
                self.auth.merchants.clear();
            }
            self.auth
                .merchants
                .insert(imp_key.to_owned(), (m.clone(), Instant::now()));
        }
        Ok(m)
    }

    /// `POST /users/getToken`. `client` is the caller's address (`edge::client_ip`), for the
    /// brute-force limits.
    pub async fn get_token(
        &self,
        imp_key: &str,
        imp_secret: &str,
        client: IpAddr,
    ) -> Result<IssuedToken> {
        let now = self.now();
        let now_ms = now.saturating_mul(1000);
        if self.auth.limited(client, imp_key, now_ms) {
            return Err(Error::RateLimited(
                "인증 시도가 너무 많습니다. 잠시 후 다시 시도해주세요. (too many failed attempts)"
                    .into(),
            ));
        }
        let merchant = self.merchant_by_key(imp_key).await?;
        let ok = match &merchant {
            Some(m) => {
                let h = self.hash_secret(imp_secret);
                bool::from(h.as_bytes().ct_eq(m.secret_hash.as_bytes()))
            }
            None => {
                // Same work on unknown keys, so timing does not tell keys apart.
                let _ = self.hash_secret(imp_secret);
                false
            }
        };
        let Some(merchant) = merchant.filter(|_| ok) else {
            self.auth.note_failure(client, imp_key, now_ms);
            return Err(Error::Unauthorized);
        };

        let current = match self.auth.current.get(imp_key).map(|t| t.clone()) {
            Some(t) if t.expired_at > now => Some(t),
            _ => self.store.current_token(imp_key, now).await?,
        };
        let token = match current {
            Some(mut t) => {
                if t.expired_at - now <= EXTEND_WINDOW_SECS {
                    t.expired_at += EXTEND_BY_SECS;
                    self.store.extend_token(&t.token, t.expired_at).await?;
                }
                t
            }
            None => {
                let t = Token {
                    token: pier_domain::ids::random_hex(20),
                    merchant_id: merchant.imp_code.clone(),
                    imp_key: imp_key.to_owned(),
                    expired_at: now + self.cfg.token_ttl_secs,
                    created_at: now,
                };
                self.store.insert_token(&t).await?;
                t
            }
        };
        if self.auth.current.len() > CACHE_MAX {
            self.auth.current.clear();
        }
        self.auth.current.insert(imp_key.to_owned(), token.clone());
        self.auth.tokens.insert(
            token.token.clone(),
            (token.merchant_id.clone(), token.expired_at),
        );
        Ok(IssuedToken {
            access_token: token.token,
            now,
            expired_at: token.expired_at,
        })
    }

    /// Resolves an access token to its merchant, or `Unauthorized`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::Unauthorized);
        }
        let now = self.now();
        if let Some(e) = self.auth.tokens.get(token) {
            if e.1 > now {
                return Ok(Principal {
                    merchant_id: e.0.clone(),
                });
            }
        }
        // Not cached, or cached as expired: another instance may have extended it.
        match self.store.get_token(token).await? {
            Some(t) if t.expired_at > now => {
                if self.auth.tokens.len() > CACHE_MAX {
                    self.auth.tokens.clear();
                }
                self.auth
                    .tokens
                    .insert(t.token.clone(), (t.merchant_id.clone(), t.expired_at));
                Ok(Principal {
                    merchant_id: t.merchant_id,
                })
            }
            _ => {
                self.auth.tokens.remove(token);
                Err(Error::Unauthorized)
            }
        }
    }
}
