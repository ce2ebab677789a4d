//! Windows opened by a PG's own browser script (Toss's SDK) rather than by a URL, and returns
//! that carry the PG's own parameters.
//!
//! `Pg::begin_auth` may answer a `BrowserCall`; it is stored in the checkout session's
//! `pg_window_url` as `CALL_PREFIX` + JSON (written by Pier from the connector's answer, never
//! from the browser), and `GET /checkout/window/{id}` serves a page that performs it. The PG
//! sends the buyer back to `/checkout/return/{id}` with its own parameters; the channel's
//! connector reads them (`Pg::read_return`).

use super::window::result::WindowResult;
use super::{Engine, Error, Result};
use pier_pg::{BrowserCall, WindowReturn};
use pier_store::CheckoutSession;

/// Marks a stored `pg_window_url` that is a `BrowserCall`, not a URL.
pub const CALL_PREFIX: &str = "call:";

/// The browser call of a checkout session, if its window is opened by the PG's script.
pub fn browser_call(c: &CheckoutSession) -> Option<BrowserCall> {
    c.pg_window_url
        .strip_prefix(CALL_PREFIX)
        .and_then(|j| serde_json::from_str(j).ok())
}

impl Engine {
    /// Reads a return carrying the PG's own parameters. `Ok(Some(token))`: authenticated, go on
    /// and approve; `Ok(None)`: the buyer cancelled; `Err(result)`: the PG's window failed, the
    /// attempt is recorded failed (nothing reached the PG's approval) and `result` is its answer.
    pub(super) async fn read_pg_return(
        &self,
        c: &CheckoutSession,
        params: &[(String, String)],
    ) -> Result<std::result::Result<Option<String>, WindowResult>> {
        let p = self.payment_of(c).await?;
        let channel = match &p.channel_id {
            Some(id) => self.store.get_channel(id).await?,
            None => None,
        }
        .ok_or_else(|| Error::Unavailable("the payment's channel is gone".into()))?;
        let pg = self.pgs.for_channel(&channel);
        match pg.read_return(params) {
            WindowReturn::Authenticated { token } => Ok(Ok(Some(token))),
            WindowReturn::Cancelled => Ok(Ok(None)),
            WindowReturn::Failed { code, message } => {
                let reason = format!("[{code}] {message}");
                let now = self.now();
                Ok(Err(
                    match self.store.fail_before_pg(&c.imp_uid, &reason, now).await? {
                        Some(p) => WindowResult::of(&p, Some((&code, &message))),
                        None => self.current_result(c).await?,
                    },
                ))
            }
        }
    }
}
