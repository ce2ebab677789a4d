//! The payment window behind the browser SDK (`IMP.request_pay`).
//!
//! 1. `open_window` (POST /checkout/prepare): pre-validation that needs the database (merchant,
//!    origin, merchant_uid already paid, prepared amount, channel), then the attempt is inserted
//!    `ready` *without* the merchant_uid guard (a window may be abandoned), the PG's window
//!    session is begun (`Pg::begin_auth`, deadline, no transaction) and the checkout session row
//!    is stored.
//! 2. The buyer authenticates on the PG's pages; the PG window sends the browser back to
//!    `/checkout/return/{id}`.
//! 3. `window_return`: the merchant_uid guard is taken (`lock_for_pg`), the merchant's
//!    `confirm_url` is asked, the PG approves server-to-server (`Pg::complete_auth`, spawned
//!    task, deadline) and the answer is recorded with its webhook row in one transaction.
//!
//! The result a window records (`WindowResult`) is taken from the recorded payment, so what the
//! browser sees is what the REST API answers; `http/window_result.rs` makes it the callback
//! object (or merges it into `m_redirect_url`).
//!
//! `types` holds what the flow is about (requests, errors, codes), `open` step 1, `complete`
//! steps 3 and after, `result` the result the window records.

mod complete;
mod open;
pub mod result;
pub mod types;

pub use result::WindowResult;
pub(crate) use types::store_err;
pub use types::*;
