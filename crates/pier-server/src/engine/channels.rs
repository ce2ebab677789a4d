//! Channel selection (spec: `pg` omitted → the merchant's only or default channel;
//! `pg:'jtnet'` → that provider's default; `pg:'jtnet.MID'` → that MID; unknown → an error).

use super::{Engine, Error, Result};
use crate::keys::{self, Purpose};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use pier_domain::ids::random_hex;
use pier_store::Channel;

/// The `pg_provider` of Toss Payments channels (i'mport's name for it).
pub const TOSS: &str = "tosspayments";
/// `target` of a channel whose PG Pier calls directly at its `api_base`.
pub const DIRECT_TARGET: &str = "direct";
/// Toss keys are ~30–40 characters (`test_sk_…`, `test_ck_…`); 200 leaves room for any format
/// change while keeping junk out of the database.
const MAX_KEY_CHARS: usize = 200;
/// An API base is a short URL; 2,000 is the common URL limit.
const MAX_API_BASE_CHARS: usize = 2_000;
/// MIDs are short ids (`tosspayments_…`); 64 bounds them.
const MAX_MID_CHARS: usize = 64;
/// AES-GCM's standard 96-bit nonce.
const NONCE_LEN: usize = 12;
/// Version prefix of a sealed secret, so the format can change later.
const SEALED_V1: &str = "v1:";

/// What an operator gives to add a Toss Payments channel.
pub struct TossChannel {
    pub merchant: String,
    pub secret_key: String,
    pub client_key: String,
    /// `None`: Toss's production base (`pier_pg::toss::LIVE_API_BASE`).
    pub api_base: Option<String>,
    pub mid: Option<String>,
    pub is_default: bool,
}

impl std::fmt::Debug for TossChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TossChannel")
            .field("merchant", &self.merchant)
            .field("secret_key", &"<redacted>")
            .field("client_key", &self.client_key)
            .field("api_base", &self.api_base)
            .field("mid", &self.mid)
            .field("is_default", &self.is_default)
            .finish()
    }
}

impl Engine {
    pub async fn select_channel(&self, merchant_id: &str, pg: Option<&str>) -> Result<Channel> {
        let channels = self.store.list_channels(Some(merchant_id)).await?;
        pick_channel(&channels, pg).cloned()
    }

    /// Adds a `tosspayments` channel: checks the keys and the API base (by building the
    /// connector), seals the secret key, and has the store write the channel. The API base is
    /// operator input, not a merchant's: it may name loopback (the simulator).
    pub async fn add_toss_channel(&self, req: TossChannel) -> Result<Channel> {
        let api_base = req
            .api_base
            .clone()
            .unwrap_or_else(|| pier_pg::toss::LIVE_API_BASE.to_owned());
        if api_base.chars().count() > MAX_API_BASE_CHARS {
            return Err(Error::Invalid(format!(
                "api base longer than {MAX_API_BASE_CHARS} characters"
            )));
        }
        if req.secret_key.chars().count() > MAX_KEY_CHARS {
            return Err(Error::Invalid(format!(
                "secret key longer than {MAX_KEY_CHARS} characters"
            )));
        }
        let ck = req.client_key.trim();
        if ck.is_empty()
            || ck.chars().count() > MAX_KEY_CHARS
            || !ck.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(Error::Invalid(format!(
                "client key must be 1-{MAX_KEY_CHARS} printable ASCII characters"
            )));
        }
        // The connector refuses a malformed URL or secret key (without echoing the key).
        pier_pg::toss::Connector::new(&pier_pg::toss::Config {
            api_base: api_base.clone(),
            secret_key: req.secret_key.clone(),
            deadline: self.cfg.pg_deadline,
        })
        .map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(m) = &req.mid {
            if m.is_empty()
                || m.chars().count() > MAX_MID_CHARS
                || !m
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(Error::Invalid(format!(
                    "mid must be 1-{MAX_MID_CHARS} of A-Z a-z 0-9 - _ ."
                )));
            }
        }
        let merchant = req.merchant.as_str();
        if self.store.get_merchant(merchant).await?.is_none() {
            return Err(Error::NotFound(format!("no merchant {merchant}")));
        }
        let existing = self.store.list_channels(Some(merchant)).await?;
        let id = format!("ch_{}", random_hex(8));
        let sealed = seal_secret(&self.cfg.server_key, &id, &req.secret_key)?;
        let c = Channel {
            mid: req.mid.clone().unwrap_or_else(|| {
                format!("{TOSS}_{}", &merchant[merchant.len().saturating_sub(8)..])
            }),
            id,
            merchant_id: merchant.to_owned(),
            pg_provider: TOSS.to_owned(),
            // The first channel is the default whatever the flag says: there must be one.
            is_default: req.is_default || existing.is_empty(),
            sandbox: req.secret_key.starts_with("test_"),
            target: DIRECT_TARGET.to_owned(),
            created_at: self.now(),
            api_base: Some(api_base),
            client_key: Some(ck.to_owned()),
            secret_sealed: Some(sealed),
        };
        self.store.add_channel(&c).await.map_err(|e| match e {
            pier_store::StoreError::Conflict(_) => {
                Error::Conflict("this merchant already has a channel with that pg and mid".into())
            }
            other => other.into(),
        })?;
        Ok(c)
    }
}

impl Engine {
    /// Replaces the secret key of a channel that holds one (a `tosspayments` channel), e.g. after
    /// the merchant re-issued it at Toss. The key is checked as `add_toss_channel` checks it and
    /// sealed under the channel's id; the connector of a running server is rebuilt when it next
    /// sees the channel row (`PgRegistry` keys it by the sealed secret), so no restart is needed.
    /// Billing keys stay valid: each stored key carries the `customerKey` it was issued with.
    pub async fn rotate_channel_secret(
        &self,
        channel_id: &str,
        secret_key: &str,
    ) -> Result<Channel> {
        let mut c = self
            .store
            .get_channel(channel_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no channel {channel_id}")))?;
        if c.secret_sealed.is_none() {
            return Err(Error::Invalid(format!(
                "channel {channel_id} ({}) holds no secret key to rotate",
                c.pg_provider
            )));
        }
        if secret_key.chars().count() > MAX_KEY_CHARS {
            return Err(Error::Invalid(format!(
                "secret key longer than {MAX_KEY_CHARS} characters"
            )));
        }
        pier_pg::toss::Connector::new(&pier_pg::toss::Config {
            api_base: c
                .api_base
                .clone()
                .unwrap_or_else(|| pier_pg::toss::LIVE_API_BASE.to_owned()),
            secret_key: secret_key.to_owned(),
            deadline: self.cfg.pg_deadline,
        })
        .map_err(|e| Error::Invalid(e.to_string()))?;
        if secret_key.starts_with("test_") != c.sandbox {
            // A test key on a live channel (or the reverse) would silently move the channel's
            // payments between Toss's test and live worlds: that is a new channel, not a rotation.
            return Err(Error::Invalid(format!(
                "the new key is a {} key but channel {channel_id} is a {} channel: add a new channel instead",
                if secret_key.starts_with("test_") { "test" } else { "live" },
                if c.sandbox { "test" } else { "live" }
            )));
        }
        let sealed = seal_secret(&self.cfg.server_key, &c.id, secret_key)?;
        if !self.store.set_channel_secret(&c.id, &sealed).await? {
            return Err(Error::NotFound(format!("no channel {channel_id}")));
        }
        c.secret_sealed = Some(sealed);
        Ok(c)
    }

    /// Removes a channel nothing needs any more. Refused, saying why, while it is its merchant's
    /// default (payments without `pg` would have nowhere to go), while billing keys issued
    /// through it exist (`again` charges them there), or while payments on it are not final
    /// (the reconciler, deposits and cancels need its PG). The store re-checks all of it in the
    /// DELETE itself, so nothing issued meanwhile is orphaned.
    pub async fn remove_channel(&self, channel_id: &str) -> Result<Channel> {
        let c = self
            .store
            .get_channel(channel_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no channel {channel_id}")))?;
        if c.is_default {
            return Err(Error::Refused(format!(
                "channel {} is the default channel of merchant {}: make another channel the default first (pier channel add … --default)",
                c.id, c.merchant_id
            )));
        }
        let used = self.store.channel_use(&c.id).await?;
        if used.billing_keys > 0 {
            return Err(Error::Refused(format!(
                "channel {} still has {} billing key(s) issued through it: delete them first (DELETE /subscribe/customers/{{customer_uid}})",
                c.id, used.billing_keys
            )));
        }
        if used.open_payments > 0 {
            return Err(Error::Refused(format!(
                "channel {} still has {} payment(s) that are in flight, awaiting a deposit or paid and cancellable: its PG is needed to settle or cancel them",
                c.id, used.open_payments
            )));
        }
        if !self.store.remove_channel(&c.id).await? {
            return Err(Error::Conflict(format!(
                "channel {} changed while it was being removed (a billing key or payment appeared, or it became the default): look again",
                c.id
            )));
        }
        Ok(c)
    }
}

fn channel_cipher(server_key: &[u8; 32]) -> Aes256Gcm {
    let key = keys::derive(server_key, Purpose::ChannelSecret);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))
}

/// Seals a channel's PG secret key: AES-256-GCM under the channel-secret key, a random 96-bit
/// nonce, the channel id as associated data (a sealed key copied onto another channel does not
/// open). Stored as `v1:` + base64(nonce || ciphertext).
pub fn seal_secret(server_key: &[u8; 32], channel_id: &str, secret: &str) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    let ct = channel_cipher(server_key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret.as_bytes(),
                aad: channel_id.as_bytes(),
            },
        )
        .map_err(|_| Error::Invalid("the secret key cannot be sealed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(format!(
        "{SEALED_V1}{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

/// Opens what [`seal_secret`] sealed for this channel. The error names no part of the secret.
pub fn open_secret(
    server_key: &[u8; 32],
    channel_id: &str,
    sealed: &str,
) -> std::result::Result<String, &'static str> {
    let b64 = sealed
        .strip_prefix(SEALED_V1)
        .ok_or("unknown sealed-secret format")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "sealed secret is not base64")?;
    if raw.len() <= NONCE_LEN {
        return Err("sealed secret too short");
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let plain = channel_cipher(server_key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: channel_id.as_bytes(),
            },
        )
        .map_err(|_| "sealed secret does not open under this server key")?;
    String::from_utf8(plain).map_err(|_| "sealed secret is not UTF-8")
}

/// The pure rule, separated for tests.
pub fn pick_channel<'a>(channels: &'a [Channel], pg: Option<&str>) -> Result<&'a Channel> {
    if channels.is_empty() {
        return Err(Error::Refused(
            "등록된 PG 설정정보가 없습니다. (the merchant has no PG channel)".into(),
        ));
    }
    let pick_default = |cs: Vec<&'a Channel>| -> Option<&'a Channel> {
        cs.iter()
            .find(|c| c.is_default)
            .copied()
            .or_else(|| cs.first().copied())
    };
    match pg.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(pick_default(channels.iter().collect()).expect("non-empty")),
        Some(spec) => {
            let (provider, mid) = match spec.split_once('.') {
                Some((p, m)) => (p, Some(m)),
                None => (spec, None),
            };
            let matching: Vec<&Channel> = channels
                .iter()
                .filter(|c| c.pg_provider == provider && mid.is_none_or(|m| c.mid == m))
                .collect();
            pick_default(matching).ok_or_else(|| {
                Error::Refused(format!(
                    "요청하신 PG({spec})의 설정정보가 존재하지 않습니다. (no channel for pg {spec:?}; configured: {})",
                    channels.iter().map(|c| format!("{}.{}", c.pg_provider, c.mid)).collect::<Vec<_>>().join(", ")
                ))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(id: &str, pg: &str, mid: &str, d: bool) -> Channel {
        Channel {
            id: id.into(),
            merchant_id: "m".into(),
            pg_provider: pg.into(),
            mid: mid.into(),
            is_default: d,
            sandbox: true,
            target: "inprocess".into(),
            created_at: 0,
            api_base: None,
            client_key: None,
            secret_sealed: None,
        }
    }

    #[test]
    fn sealed_secret_opens_only_for_its_channel_and_key() {
        let k = [7u8; 32];
        let s = seal_secret(&k, "ch_a", "test_sk_abc").unwrap();
        assert!(s.starts_with("v1:") && !s.contains("test_sk_abc"));
        assert_ne!(s, seal_secret(&k, "ch_a", "test_sk_abc").unwrap());
        assert_eq!(open_secret(&k, "ch_a", &s).unwrap(), "test_sk_abc");
        assert!(open_secret(&k, "ch_b", &s).is_err());
        assert!(open_secret(&[8u8; 32], "ch_a", &s).is_err());
        assert!(open_secret(&k, "ch_a", "v1:AAAA").is_err());
    }

    #[test]
    fn selection_rules() {
        let one = vec![ch("a", "jtnet", "m1", false)];
        assert_eq!(pick_channel(&one, None).unwrap().id, "a");
        assert_eq!(pick_channel(&one, Some("jtnet")).unwrap().id, "a");
        let several = vec![
            ch("a", "jtnet", "m1", false),
            ch("b", "jtnet", "m2", true),
            ch("c", "jtnet", "m3", false),
        ];
        assert_eq!(pick_channel(&several, None).unwrap().id, "b");
        assert_eq!(pick_channel(&several, Some("jtnet")).unwrap().id, "b");
        assert_eq!(pick_channel(&several, Some("jtnet.m3")).unwrap().id, "c");
        assert!(matches!(
            pick_channel(&several, Some("jtnet.nope")),
            Err(Error::Refused(_))
        ));
        assert!(matches!(
            pick_channel(&several, Some("kcp")),
            Err(Error::Refused(_))
        ));
        assert!(matches!(pick_channel(&[], None), Err(Error::Refused(_))));
    }
}
