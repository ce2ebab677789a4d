//! A certification's personal data at rest: AES-256-GCM under `Purpose::PersonalData`, the
//! imp_uid as associated data, so a blob opens only for its own row.

use super::*;
use crate::engine::{Error, Result};
use crate::keys::{self, Purpose};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use serde::{Deserialize, Serialize};

/// The sealed blob of a certification.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(super) struct Sealed {
    pub(super) person: Option<Person>,
    pub(super) prefill: Option<Prefill>,
}

pub(super) fn cipher(server_key: &[u8; 32]) -> Aes256Gcm {
    let key = keys::derive(server_key, Purpose::PersonalData);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))
}

pub(super) fn seal(server_key: &[u8; 32], imp_uid: &str, s: &Sealed) -> Result<String> {
    let plain = serde_json::to_vec(s).map_err(|_| sealing_failed())?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    let ct = cipher(server_key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: imp_uid.as_bytes(),
            },
        )
        .map_err(|_| sealing_failed())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(format!(
        "{SEALED_V1}{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

pub(super) fn open(server_key: &[u8; 32], imp_uid: &str, sealed: Option<&str>) -> Result<Sealed> {
    let Some(sealed) = sealed else {
        return Ok(Sealed::default());
    };
    let raw = sealed
        .strip_prefix(SEALED_V1)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .filter(|r| r.len() > NONCE_LEN)
        .ok_or_else(sealing_failed)?;
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let plain = cipher(server_key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: imp_uid.as_bytes(),
            },
        )
        .map_err(|_| sealing_failed())?;
    serde_json::from_slice(&plain).map_err(|_| sealing_failed())
}

pub(super) fn sealing_failed() -> Error {
    // Never says more: the cause is the server key or a damaged row, not the client.
    tracing::error!("a certification's personal data does not seal or open");
    Error::Unavailable(
        "본인인증 정보를 처리할 수 없습니다. (the certification's data cannot be read)".into(),
    )
}
