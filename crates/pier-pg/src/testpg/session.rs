//! Payment-window sessions: what the test PG keeps of one buyer's window between `begin_auth`
//! and `complete_auth` (`auth`, `complete`), and how a session is replayed from a shared
//! journal.

use super::cards::{self, Decline};
use super::crypto::Sealer;
use super::ledger::PayMethod;
use crate::{AuthOutcome, Mid, Order, PgError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct Sessions {
    pub map: HashMap<String, Session>,
    /// When expired sessions (and the sealed cards in them) are next swept out.
    pub next_sweep_at: i64,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub mid: Mid,
    pub order: Order,
    pub method: PayMethod,
    pub issue_billing_key: bool,
    pub return_url: String,
    pub expires_at: i64,
    pub state: SessionState,
    pub sms_failures: u32,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
pub(crate) enum SessionState {
    Pending,
    Authenticated {
        token: String,
        auth: AuthData,
    },
    Completed {
        token: String,
        outcome: Result<AuthOutcome, PgError>,
    },
    Abandoned,
    /// Closed after too many wrong SMS codes.
    Failed,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "m", rename_all = "snake_case")]
pub(crate) enum AuthData {
    Card {
        sealed: String,
        quota: i64,
        #[serde(with = "holder_code")]
        holder: Option<Decline>,
    },
    Trans {
        bank_code: String,
    },
    Phone,
    Vbank {
        bank_code: String,
    },
}

/// A payment-window session as the window pages need it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionView {
    pub auth_session_id: String,
    pub mid: Mid,
    pub order: Order,
    /// `card`, `trans`, `phone` or `vbank`.
    pub pay_method: String,
    pub amount_krw: i64,
    pub issue_billing_key: bool,
    /// Where the page sends the browser with `auth_session_id` and `auth_token`.
    pub return_url: String,
    pub status: SessionStatus,
    pub expires_at: i64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Waiting for the buyer.
    Pending,
    /// The buyer authenticated; waiting for Pier's `complete_auth`.
    Authenticated,
    Completed,
    /// The buyer closed or cancelled the window.
    Abandoned,
    /// Too many wrong SMS codes.
    Failed,
    Expired,
}

/// A holder-check refusal travels by its code (`Decline` holds `&'static str`s).
mod holder_code {
    use super::Decline;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decline>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| d.code).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decline>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(code) => super::cards::decline_by_code(&code)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown decline {code}"))),
        }
    }
}

impl Sessions {
    /// Drops a session, so that its journal entries can be replayed on a clean slate.
    pub(crate) fn forget(&mut self, id: &str) {
        self.map.remove(id);
    }

    /// Replay a session written by `Engine::log_session` (a shared journal). A session that
    /// does not open under our key is skipped: it was not ours to read.
    pub(crate) fn apply_sealed(&mut self, id: String, sealed: &str, sealer: &Sealer) {
        let Some(json) = sealer.open(sealed, id.as_bytes()) else {
            tracing::warn!("testpg journal: a window session sealed under another key; skipped");
            return;
        };
        match serde_json::from_slice::<Session>(&json) {
            Ok(s) => {
                self.map.insert(id, s);
            }
            Err(e) => tracing::warn!(error = %e, "testpg journal: unreadable window session"),
        }
    }
}
