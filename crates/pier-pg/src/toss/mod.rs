//! Toss Payments (core API v1): the `tosspayments` connector and a protocol simulator of the
//! endpoints it calls.
//!
//! `Connector` implements `Pg` against `https://api.tosspayments.com` (or any base URL, e.g. the
//! simulator): key-in payments, card billing keys, cancels, inquiry by order id and virtual
//! accounts. `sim` serves the same endpoints from memory, strict about auth, field names and
//! types, with Toss's error shape, honouring `Idempotency-Key`, and with pgsim's fault knobs.
//! `docs/connectors/tosspayments.md` maps every field to i'mport's and names the Toss page each
//! fact comes from.

mod answers;
mod client;
mod codes;
mod connector;
mod errors;
mod requests;
pub mod sim;
mod window;
mod wire;

pub use answers::mask_card_number;
pub use client::{Config, ConfigError, Connector, UNSEEN_ORDER_GRACE};
pub use codes::{kftc_bank_of_toss, kftc_card_of_toss, toss_bank_of_kftc, toss_card_of_kftc};
pub use requests::idempotency_key;
pub use wire::{Payment, TossError};

/// Toss's production API base.
pub const LIVE_API_BASE: &str = "https://api.tosspayments.com";

/// Where Toss's browser SDK lives (`{LIVE_SDK_BASE}/v1/payment`), for the live API base.
pub const LIVE_SDK_BASE: &str = "https://js.tosspayments.com";
