//! The column lists and row mappings of the rows the charge path reads besides payments
//! (channels, billing keys, pre-registrations). They sit below the per-table files so that the
//! lane and the batched PostgreSQL reads and writes, which read these rows too, need nothing
//! from the table files (no import circle).

use crate::models::{Channel, Customer};

pub(crate) const CHANNEL_COLS: &str =
    "id, merchant_id, pg_provider, mid, is_default, sandbox, target, created_at, api_base, \
     client_key, secret_sealed";

/// Builds a `Channel` from a row; `$get` is the driver's by-name getter (`try_get` for sqlx,
/// `get` for rusqlite), so every read path shares one mapping.
macro_rules! channel_from_row {
    ($r:expr, $get:ident) => {
        channel_from_row!($r, $get, "")
    };
    // Columns named `{prefix}id`, … (a channel joined to another table).
    ($r:expr, $get:ident, $prefix:literal) => {
        Channel {
            id: $r.$get(concat!($prefix, "id"))?,
            merchant_id: $r.$get(concat!($prefix, "merchant_id"))?,
            pg_provider: $r.$get(concat!($prefix, "pg_provider"))?,
            mid: $r.$get(concat!($prefix, "mid"))?,
            is_default: $r.$get(concat!($prefix, "is_default"))?,
            sandbox: $r.$get(concat!($prefix, "sandbox"))?,
            target: $r.$get(concat!($prefix, "target"))?,
            created_at: $r.$get(concat!($prefix, "created_at"))?,
            api_base: $r.$get(concat!($prefix, "api_base"))?,
            client_key: $r.$get(concat!($prefix, "client_key"))?,
            secret_sealed: $r.$get(concat!($prefix, "secret_sealed"))?,
        }
    };
}
pub(crate) use channel_from_row;

/// The columns of a channel `ch` joined to another table, named as `channel_from_row!(r, get,
/// "ch_")` reads them.
pub(crate) const CHANNEL_AS_CH: &str = "ch.id AS ch_id, ch.merchant_id AS ch_merchant_id, \
     ch.pg_provider AS ch_pg_provider, ch.mid AS ch_mid, ch.is_default AS ch_is_default, \
     ch.sandbox AS ch_sandbox, ch.target AS ch_target, ch.created_at AS ch_created_at, \
     ch.api_base AS ch_api_base, ch.client_key AS ch_client_key, ch.secret_sealed AS ch_secret_sealed";

pub(crate) const CUSTOMER_COLS: &str = "merchant_id, customer_uid, channel_id, pg_provider, pg_id, sandbox, billing_key, \
     customer_id, card_name, card_code, card_number, card_type, customer_name, customer_tel, customer_email, \
     customer_addr, customer_postcode, inserted, updated";

/// Builds a `Customer` from a row; `$get` is the driver's by-name getter (`try_get` for sqlx,
/// `get` for rusqlite), so every read path shares one mapping.
macro_rules! customer_from_row {
    ($r:expr, $get:ident) => {
        Customer {
            merchant_id: $r.$get("merchant_id")?,
            customer_uid: $r.$get("customer_uid")?,
            channel_id: $r.$get("channel_id")?,
            pg_provider: $r.$get("pg_provider")?,
            pg_id: $r.$get("pg_id")?,
            sandbox: $r.$get("sandbox")?,
            billing_key: $r.$get("billing_key")?,
            customer_id: $r.$get("customer_id")?,
            card_name: $r.$get("card_name")?,
            card_code: $r.$get("card_code")?,
            card_number: $r.$get("card_number")?,
            card_type: $r.$get("card_type")?,
            customer_name: $r.$get("customer_name")?,
            customer_tel: $r.$get("customer_tel")?,
            customer_email: $r.$get("customer_email")?,
            customer_addr: $r.$get("customer_addr")?,
            customer_postcode: $r.$get("customer_postcode")?,
            inserted: $r.$get("inserted")?,
            updated: $r.$get("updated")?,
        }
    };
}
pub(crate) use customer_from_row;

/// What an `again` charge reads before it starts: the billing key, its channel (`None` if the
/// channel is gone) and the amount pre-registered for the merchant_uid, if any.
#[derive(Clone, Debug)]
pub struct ChargeContext {
    pub customer: Customer,
    pub channel: Option<Channel>,
    pub prepared: Option<Prepared>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub merchant_id: String,
    pub merchant_uid: String,
    pub amount: i64,
    /// `None`: the currency is not checked.
    pub currency: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const PREPARE_COLS: &str =
    "merchant_id, merchant_uid, amount, currency, created_at, updated_at";

/// Builds a `Prepared` from a row; `$get` is the driver's by-name getter (`try_get` for sqlx,
/// `get` for rusqlite), so every read path shares one mapping.
macro_rules! prepared_from_row {
    ($r:expr, $get:ident) => {
        Prepared {
            merchant_id: $r.$get("merchant_id")?,
            merchant_uid: $r.$get("merchant_uid")?,
            amount: $r.$get("amount")?,
            currency: $r.$get("currency")?,
            created_at: $r.$get("created_at")?,
            updated_at: $r.$get("updated_at")?,
        }
    };
}
pub(crate) use prepared_from_row;
