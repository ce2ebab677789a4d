//! What the HTTP connectors (pgsim, Toss) share about talking to a PG over HTTP: the answer-size
//! bound, the connect bound, and how a transport failure maps to an outcome.

use crate::{PgError, PgResult};
use std::time::Duration;

/// PG answers are a few KB; anything past 1 MiB is not the PG, and reading it would only cost
/// memory.
pub(crate) const MAX_REPLY_BYTES: usize = 1 << 20;
/// Connecting is bounded separately (and more tightly than a call) so that an unreachable PG is
/// reported as `Unreachable` (nothing was sent) instead of running into the call deadline and
/// becoming `Unknown`.
pub(crate) const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A failed send: not connected means nothing reached the PG; anything later may have.
pub(crate) fn classify_transport(e: reqwest::Error) -> PgError {
    if e.is_connect() {
        PgError::Unreachable(e.to_string())
    } else {
        PgError::Unknown(e.to_string())
    }
}

/// The answer's body, at most `MAX_REPLY_BYTES`; `pg` names the PG in the error.
pub(crate) async fn read_bounded(mut resp: reqwest::Response, pg: &str) -> PgResult<Vec<u8>> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| PgError::Unknown(e.to_string()))?
    {
        if buf.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(PgError::Unknown(format!("{pg} answer too large")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}
