//! `getToken` and token checks.
//!
//! Official clients call getToken before *every* request, so both paths are served from memory
//! when possible: merchants by key (short TTL), the current token per key, and tokens by value.
//! The database stays the truth, so several instances agree on a key's current token, and the
//! memory copies of a token check or a key's current token are trusted for `TOKEN_CACHE_TTL`
//! only, so a revocation or rotation done by another process (the CLI, another instance) takes
//! effect within that; done by this process, at once.
//! `imp_secret` is kept only as a keyed HMAC-SHA256 (it is high-entropy, so a fast keyed hash
//! is right) and compared in constant time. Access tokens are kept only as a keyed hash plus the
//! random nonce they are minted from (docs/security/secrets.md); every key comes from `crate::keys`.

use super::{Engine, Error, Result};
use crate::config::Config;
use crate::edge::buckets::KeyedBuckets;
use crate::edge::{limit_key, LIMITER_MAX_KEYS};
use crate::keys::{self, Purpose};
use dashmap::DashMap;
use pier_store::{Merchant, Token};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a merchant row is trusted from memory (bounds how long another process's secret
/// rotation takes to reach this one).
const MERCHANT_TTL: Duration = Duration::from_secs(10);
/// How long a token check, or a key's current token, is trusted from memory before the
/// database is asked again: bounds how long a token revoked by another process still works
/// here. 5 s costs one indexed read per live token per 5 s.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
/// Prefix of `imp_secret` hashes under the HKDF-derived key; hashes without it are the legacy
/// HMAC under the server key itself (merchants created before the upgrade).
const SECRET_HASH_V1: &str = "v1$";
/// Last stretch of a token's life in which getToken extends it, and by how much (spec §2.2).
const EXTEND_WINDOW_SECS: i64 = 60;
const EXTEND_BY_SECS: i64 = 5 * 60;
/// Bound on the in-memory maps; past it they are cleared (they are caches).
const CACHE_MAX: usize = 100_000;

pub struct AuthState {
    key: [u8; 32],
    secret_key_v1: [u8; 32],
    token_hash_key: [u8; 32],
    token_mint_key: [u8; 32],
    merchants: DashMap<String, (Merchant, Instant)>,
    /// imp_key → (its current token row, the token, when read from the database).
    current: DashMap<String, (Token, String, Instant)>,
    /// token → (merchant, expiry, when checked against the database).
    tokens: DashMap<String, (String, i64, Instant)>,
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
            secret_key_v1: keys::derive(&cfg.server_key, Purpose::SecretHashV1),
            token_hash_key: keys::derive(&cfg.server_key, Purpose::TokenHash),
            token_mint_key: keys::derive(&cfg.server_key, Purpose::TokenMint),
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

    /// HMAC-SHA256 of `data` under the server key itself, hex: the legacy keyed hash of
    /// idempotency request hashes, keyed cancellation ids and pre-v1 `imp_secret` hashes
    /// (kept so stored values still match; see `crate::keys`).
    pub fn keyed_hash(&self, data: &[u8]) -> String {
        hex::encode(keys::hmac_sha256(&self.key, data))
    }

    /// The stored form of a new `imp_secret`: `v1$` + HMAC-SHA256 under its HKDF key.
    pub fn secret_hash(&self, secret: &str) -> String {
        format!(
            "{SECRET_HASH_V1}{}",
            hex::encode(keys::hmac_sha256(&self.secret_key_v1, secret.as_bytes()))
        )
    }

    /// Constant-time check of `secret` against a stored hash of either version.
    fn secret_matches(&self, secret: &str, stored: &str) -> bool {
        let h = if stored.starts_with(SECRET_HASH_V1) {
            self.secret_hash(secret)
        } else {
            self.keyed_hash(secret.as_bytes())
        };
        bool::from(h.as_bytes().ct_eq(stored.as_bytes()))
    }

    /// The token minted from `nonce` (40 hex digits, 160 bits, as before hashing).
    fn mint(&self, nonce: &str) -> String {
        let mut t = hex::encode(keys::hmac_sha256(&self.token_mint_key, nonce.as_bytes()));
        t.truncate(40);
        t
    }

    /// The keyed hash a token is stored and looked up under.
    pub fn token_hash(&self, token: &str) -> String {
        hex::encode(keys::hmac_sha256(&self.token_hash_key, token.as_bytes()))
    }

    /// Forgets every cached merchant and token (after a rotation or revocation here).
    pub(crate) fn forget_cached(&self) {
        self.merchants.clear();
        self.current.clear();
        self.tokens.clear();
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
        self.auth.secret_hash(secret)
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
        // The secret is checked against the database's row, never a cached one: a rotation
        // through another instance must stop the old secret at once (and let the new one in),
        // not MERCHANT_TTL later. One primary-key read per getToken; the request paths keep
        // the cache. The row read refreshes it.
        self.auth.merchants.remove(imp_key);
        let merchant = self.merchant_by_key(imp_key).await?;
        let ok = match &merchant {
            Some(m) => self.auth.secret_matches(imp_secret, &m.secret_hash),
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

        let cached = self
            .auth
            .current
            .get(imp_key)
            .map(|e| e.clone())
            .filter(|(t, _, at)| t.expired_at > now && at.elapsed() < TOKEN_CACHE_TTL);
        // `checked`: when the database last confirmed the token, which the memory copies below
        // keep, so that serving from memory never extends how long a revoked token works.
        let current = match cached {
            Some(c) => Some(c),
            None => self.store.current_token(imp_key, now).await?.map(|t| {
                let raw = self.auth.mint(&t.nonce);
                (t, raw, Instant::now())
            }),
        };
        let (token, raw, checked) = match current {
            Some((mut t, raw, checked)) => {
                if t.expired_at - now <= EXTEND_WINDOW_SECS {
                    t.expired_at += EXTEND_BY_SECS;
                    self.store.extend_token(&t.token_hash, t.expired_at).await?;
                }
                (t, raw, checked)
            }
            None => {
                // 128 random bits; the token is minted from them under a key the database
                // does not hold, and stored only as its keyed hash.
                let nonce = pier_domain::ids::random_hex(16);
                let raw = self.auth.mint(&nonce);
                let t = Token {
                    token_hash: self.auth.token_hash(&raw),
                    nonce,
                    merchant_id: merchant.imp_code.clone(),
                    imp_key: imp_key.to_owned(),
                    expired_at: now + self.cfg.token_ttl_secs,
                    created_at: now,
                };
                self.store.insert_token(&t).await?;
                (t, raw, Instant::now())
            }
        };
        if self.auth.current.len() > CACHE_MAX {
            self.auth.current.clear();
        }
        self.auth
            .current
            .insert(imp_key.to_owned(), (token.clone(), raw.clone(), checked));
        if self.auth.tokens.len() > CACHE_MAX {
            self.auth.tokens.clear();
        }
        self.auth.tokens.insert(
            raw.clone(),
            (token.merchant_id.clone(), token.expired_at, checked),
        );
        Ok(IssuedToken {
            access_token: raw,
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
            if e.1 > now && e.2.elapsed() < TOKEN_CACHE_TTL {
                return Ok(Principal {
                    merchant_id: e.0.clone(),
                });
            }
        }
        // Not cached, cached too long ago (another process may have revoked it), or cached as
        // expired (another instance may have extended it).
        match self.store.get_token(&self.auth.token_hash(token)).await? {
            Some(t) if t.expired_at > now => {
                if self.auth.tokens.len() > CACHE_MAX {
                    self.auth.tokens.clear();
                }
                self.auth.tokens.insert(
                    token.to_owned(),
                    (t.merchant_id.clone(), t.expired_at, Instant::now()),
                );
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
