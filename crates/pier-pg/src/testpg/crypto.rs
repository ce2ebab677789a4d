//! Card data at rest: the test PG keeps the cards behind billing keys (and, for a few minutes, the
//! card a buyer authenticated in the payment window) sealed with AES-256-GCM under the
//! configured key. Nothing else in the engine ever holds a card number in clear for longer than
//! one call.
//!
//! A sealed blob is `base64(nonce ‖ ciphertext ‖ tag)` with a fresh random 96-bit nonce. The
//! record's id (billing key, session id) is the associated data, so a blob copied onto another
//! record does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use pier_domain::{CardNumber, Expiry};
use rand::RngCore;

const NONCE_LEN: usize = 12;

pub(crate) struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encryption only fails for inputs beyond GCM's ~64 GiB limit; ours are a few bytes.
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// `None` when the blob is malformed, was sealed under another key, or belongs to another
    /// record.
    pub(crate) fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if raw.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }

    /// Seal the card facts a later charge needs: the number and the expiry. Birth and password
    /// digits are checked at issuance and never kept.
    pub(crate) fn seal_card(&self, number: &CardNumber, expiry: &Expiry, aad: &[u8]) -> String {
        let plain = format!("{}|{:04}-{:02}", number.digits(), expiry.year, expiry.month);
        self.seal(plain.as_bytes(), aad)
    }

    pub(crate) fn open_card(&self, sealed: &str, aad: &[u8]) -> Option<(CardNumber, Expiry)> {
        let plain = String::from_utf8(self.open(sealed, aad)?).ok()?;
        let (number, expiry) = plain.split_once('|')?;
        Some((CardNumber::parse(number).ok()?, Expiry::parse(expiry).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let s = Sealer::new(&[7u8; 32]);
        let number = CardNumber::parse("4518-4200-0000-0000").unwrap();
        let expiry = Expiry::parse("2031-07").unwrap();
        let blob = s.seal_card(&number, &expiry, b"key-1");
        assert!(!blob.contains("4518420000000000"));
        let (n, e) = s.open_card(&blob, b"key-1").unwrap();
        assert_eq!(n.digits(), "4518420000000000");
        assert_eq!(e, expiry);
        // Another record's id, another key, or a damaged blob does not open.
        assert!(s.open_card(&blob, b"key-2").is_none());
        assert!(Sealer::new(&[8u8; 32]).open_card(&blob, b"key-1").is_none());
        assert!(s.open("AAAA", b"key-1").is_none());
        assert!(s.open("not base64!", b"key-1").is_none());
        // Fresh nonce every time.
        assert_ne!(blob, s.seal_card(&number, &expiry, b"key-1"));
    }
}
