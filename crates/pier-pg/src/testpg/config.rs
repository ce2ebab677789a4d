//! How the engine is set up (`EngineConfig`) and how its card-data key is given.

use rand::Rng;
use std::fmt;
use std::path::PathBuf;

/// How the engine is set up. `Debug` hides the key.
#[derive(Clone)]
pub struct EngineConfig {
    /// AES-256-GCM key sealing card data (billing keys, window sessions), here and in the journal.
    pub encryption_key: [u8; 32],
    /// Append-only journal, replayed at start; `None` keeps everything in memory.
    pub journal_path: Option<PathBuf>,
    /// Public base URL of the test PG's pages: windows are `{base_url}/testpg/window/{id}`,
    /// receipts `{base_url}/testpg/receipts/{pg_tid}`.
    pub base_url: String,
    /// Account holder shown on virtual accounts issued without one.
    pub vbank_holder: String,
    /// Deposit deadline of virtual accounts issued from the payment window (which has no due).
    pub vbank_due_secs: i64,
    /// How long a payment-window session stays usable.
    pub session_ttl_secs: i64,
    /// Open payment-window sessions kept at most; beyond that `begin_auth` is refused.
    pub max_sessions: usize,
    /// Events buffered per subscriber before a slow one starts losing them.
    pub event_capacity: usize,
}

impl EngineConfig {
    pub fn new(encryption_key: [u8; 32], base_url: impl Into<String>) -> Self {
        Self {
            encryption_key,
            journal_path: None,
            base_url: base_url.into(),
            vbank_holder: "(주)피어테스트".into(),
            vbank_due_secs: 3 * 24 * 3600,
            session_ttl_secs: 30 * 60,
            max_sessions: 100_000,
            event_capacity: 4_096,
        }
    }

    /// A fresh random key and no journal: for tests, benchmarks and throwaway demos.
    pub fn ephemeral(base_url: impl Into<String>) -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill(&mut key);
        Self::new(key, base_url)
    }

    pub fn with_journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal_path = Some(path.into());
        self
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("encryption_key", &"<redacted>")
            .field("journal_path", &self.journal_path)
            .field("base_url", &self.base_url)
            .field("vbank_holder", &self.vbank_holder)
            .field("vbank_due_secs", &self.vbank_due_secs)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("max_sessions", &self.max_sessions)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

/// Parse an encryption key given as 64 hex digits or as base64 of 32 bytes (CLI flags, env).
pub fn parse_encryption_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "expected 64 hex digits or base64 of 32 bytes".to_owned())?
    };
    bytes
        .try_into()
        .map_err(|_| "the key must be exactly 32 bytes".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_hex_or_base64() {
        let hex_key = "00".repeat(31) + "ff";
        assert_eq!(parse_encryption_key(&hex_key).unwrap()[31], 0xff);
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(parse_encryption_key(b64).unwrap(), [0u8; 32]);
        assert!(parse_encryption_key("abcd").is_err());
        assert!(parse_encryption_key(&"00".repeat(31)).is_err());
    }

    #[test]
    fn config_debug_hides_the_key() {
        let config = EngineConfig::new([0xab; 32], "http://x");
        let shown = format!("{config:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("171"),
            "{shown}"
        );
    }
}
