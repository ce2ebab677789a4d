//! Every key Pier derives from the server key, in one place (docs/security/secrets.md).
//!
//! New purposes get their own key through HKDF-SHA256 ([`derive`], one `info` label per
//! [`Purpose`]), so a key leaked or misused for one purpose says nothing about the others.
//! Some older uses predate this and protect data that must stay readable after an upgrade; they
//! keep their derivation and are named here as legacy:
//!
//! | use | derivation | why it stays |
//! |---|---|---|
//! | test PG card data (AES-256-GCM, journal) | [`legacy_hmac_kdf`]`(k, "pier testpg card data")` | sealed billing-key cards in existing journals |
//! | pgsim notify secret | [`legacy_hmac_kdf`]`(k, "pier pgsim notify")` | configured into running pgsims |
//! | `imp_secret` hashes without a `v1$` prefix | HMAC-SHA256 under the server key itself | merchants created before the upgrade |
//! | idempotency request hashes, keyed cancellation ids | HMAC-SHA256 under the server key itself | stored records and ids that retries must still match |

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A purpose of an HKDF-derived key. Each label is fixed forever: changing one changes the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `imp_secret` hashes written from now on (stored as `v1$<hex>`).
    SecretHashV1,
    /// The keyed hash under which access tokens are stored and looked up.
    TokenHash,
    /// Mints an access token from its stored random nonce, so getToken can answer the same
    /// token again (spec §2.2) without the database holding it.
    TokenMint,
    /// Seals the secret keys of PG channels Pier calls directly (Toss Payments) in the
    /// database (AES-256-GCM, engine/channels.rs).
    ChannelSecret,
    /// Keyed hash of a certified person (name, birth date, gender digit) into the CI
    /// (`unique_key`), the same for every merchant (engine/certifications.rs).
    CertificationCi,
    /// Keyed hash of (merchant, CI) into the DI (`unique_in_site`), different per merchant.
    CertificationDi,
    /// Seals the personal data of certifications (name, phone, birth) at rest (AES-256-GCM).
    PersonalData,
    /// Keys the CSRF tokens of the in-process test PG's window pages: every instance on one
    /// database derives the same, so a page served by one is accepted by another.
    TestpgWindowCsrf,
}

impl Purpose {
    /// Every purpose, for tests that check the keys differ.
    pub const ALL: [Purpose; 8] = [
        Purpose::SecretHashV1,
        Purpose::TokenHash,
        Purpose::TokenMint,
        Purpose::ChannelSecret,
        Purpose::CertificationCi,
        Purpose::CertificationDi,
        Purpose::PersonalData,
        Purpose::TestpgWindowCsrf,
    ];

    fn info(self) -> &'static [u8] {
        match self {
            Purpose::SecretHashV1 => b"pier/v1/imp-secret-hash",
            Purpose::TokenHash => b"pier/v1/token-hash",
            Purpose::TokenMint => b"pier/v1/token-mint",
            Purpose::ChannelSecret => b"pier/v1/channel-secret",
            Purpose::CertificationCi => b"pier/v1/certification-ci",
            Purpose::CertificationDi => b"pier/v1/certification-di",
            Purpose::PersonalData => b"pier/v1/personal-data",
            Purpose::TestpgWindowCsrf => b"pier/v1/testpg-window-csrf",
        }
    }
}

/// Salt of every HKDF derivation (a fixed, public domain separator: RFC 5869 §3.1 allows it).
const HKDF_SALT: &[u8] = b"pier server key v1";

/// The key for `purpose`: HKDF-SHA256(salt = "pier server key v1", ikm = server key,
/// info = the purpose's label), 32 bytes.
pub fn derive(server_key: &[u8; 32], purpose: Purpose) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), server_key);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail.
    hk.expand(purpose.info(), &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// The derivation used before HKDF: HMAC-SHA256(server key, label). Kept only for the legacy
/// uses listed above; new purposes go through [`derive`].
pub fn legacy_hmac_kdf(server_key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    hmac_sha256(server_key, label)
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA512 of `data` under `key` (64 bytes: a CI is 88 base64 characters, as i'mport's).
pub fn hmac_sha512(key: &[u8], data: &[u8]) -> [u8; 64] {
    let mut mac =
        <Hmac<sha2::Sha512> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The test PG's card-data key (legacy derivation, see the table above).
pub fn testpg_card_key(server_key: &[u8; 32]) -> [u8; 32] {
    legacy_hmac_kdf(server_key, b"pier testpg card data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_get_distinct_keys_and_legacy_keys_are_unchanged() {
        let k = [7u8; 32];
        let keys: Vec<_> = Purpose::ALL.iter().map(|p| derive(&k, *p)).collect();
        for (i, a) in keys.iter().enumerate() {
            assert_ne!(a, &k);
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            derive(&k, Purpose::TokenHash),
            derive(&k, Purpose::TokenHash)
        );
        // The legacy card key is what app.rs derived before: HMAC(server key, label).
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&k).unwrap();
        mac.update(b"pier testpg card data");
        let before: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(testpg_card_key(&k), before);
    }
}
