//! The rows the charge path reads besides payments (channels, billing keys, pre-registrations),
//! declared once (`row::declare_row!`), and the charge context that joins them. They sit below
//! the per-table files so that the lane and the batched PostgreSQL reads and writes, which read
//! these rows too, need nothing from the table files (no import circle).

use crate::models::{Channel, Customer};
use crate::row::{declare_row, qualified, ReadRow, Row};
use std::sync::OnceLock;

declare_row!(Channel in "channels" as ch => CHANNEL_AS_CH, CHANNEL_CH_NAMES {
    id,
    merchant_id,
    pg_provider,
    mid,
    is_default,
    sandbox,
    target,
    created_at,
    api_base,
    client_key,
    secret_sealed,
});

declare_row!(Customer in "customers" {
    merchant_id,
    customer_uid,
    channel_id,
    pg_provider,
    pg_id,
    sandbox,
    billing_key,
    customer_id,
    card_name,
    card_code,
    card_number,
    card_type,
    customer_name,
    customer_tel,
    customer_email,
    customer_addr,
    customer_postcode,
    inserted,
    updated,
});

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

declare_row!(Prepared in "payment_prepares" as pp => PREPARE_AS_PP, PREPARE_PP_NAMES {
    merchant_id,
    merchant_uid,
    amount,
    currency,
    created_at,
    updated_at,
});

/// What an `again` charge reads before it starts: the billing key, its channel (`None` if the
/// channel is gone) and the amount pre-registered for the merchant_uid, if any.
#[derive(Clone, Debug)]
pub struct ChargeContext {
    pub customer: Customer,
    pub channel: Option<Channel>,
    pub prepared: Option<Prepared>,
}

/// The charge context's columns: the customer's by their names, the channel's and the
/// pre-registration's aliased `ch_…` / `pp_…` (`read_charge_context`).
fn charge_context_cols() -> String {
    format!(
        "{}, {CHANNEL_AS_CH}, {PREPARE_AS_PP}",
        qualified::<Customer>("c")
    )
}

/// The charge context of (`$1` merchant_id, `$2` customer_uid, `$3` merchant_uid).
pub(crate) fn charge_context_sql() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        format!(
            "SELECT {} FROM customers c LEFT JOIN channels ch ON ch.id = c.channel_id \
             LEFT JOIN payment_prepares pp ON pp.merchant_id = c.merchant_id AND pp.merchant_uid = $3 \
             WHERE c.merchant_id = $1 AND c.customer_uid = $2",
            charge_context_cols()
        )
    })
}

/// The batched charge contexts: `keys` yields rows (km, kc, ku, kn) = (merchant_id,
/// customer_uid, merchant_uid, position) from the JSON array bound as `$1`
/// (`charge_context_keys`).
pub(crate) fn charge_contexts_sql(keys: &str) -> String {
    format!(
        "SELECT {}, kn FROM {keys} JOIN customers c ON c.merchant_id = km AND c.customer_uid = kc \
         LEFT JOIN channels ch ON ch.id = c.channel_id \
         LEFT JOIN payment_prepares pp ON pp.merchant_id = km AND pp.merchant_uid = ku",
        charge_context_cols()
    )
}

/// The keys of `charge_contexts_sql` on SQLite.
pub(crate) const SQLITE_CONTEXT_KEYS: &str =
    "(SELECT json_extract(value, '$.km') AS km, json_extract(value, '$.kc') AS kc, \
     json_extract(value, '$.ku') AS ku, json_extract(value, '$.kn') AS kn FROM json_each($1)) AS k";
/// The keys of `charge_contexts_sql` on PostgreSQL.
pub(crate) const PG_CONTEXT_KEYS: &str =
    "json_to_recordset($1::json) AS k(km text, kc text, ku text, kn int8)";

/// The JSON array `charge_contexts_sql` reads its keys from.
pub(crate) fn charge_context_keys(keys: &[(String, String, String)]) -> String {
    serde_json::Value::Array(
        keys.iter()
            .enumerate()
            .map(|(n, (m, c, u))| serde_json::json!({"km": m, "kc": c, "ku": u, "kn": n as i64}))
            .collect(),
    )
    .to_string()
}

/// A charge context from a row of `charge_context_sql` or `charge_contexts_sql`.
pub(crate) fn read_charge_context<R: ReadRow>(r: &R) -> Result<ChargeContext, R::Error> {
    let customer = Customer::read(r)?;
    let channel = match r.opt_text(CHANNEL_CH_NAMES[0])? {
        None => None,
        Some(_) => Some(Channel::read_as(r, CHANNEL_CH_NAMES)?),
    };
    let prepared = match r.opt_text(PREPARE_PP_NAMES[0])? {
        None => None,
        Some(_) => Some(Prepared::read_as(r, PREPARE_PP_NAMES)?),
    };
    Ok(ChargeContext {
        customer,
        channel,
        prepared,
    })
}

/// Puts the rows of `charge_contexts_sql` at their keys' places (`kn`): one answer per key.
pub(crate) fn charge_contexts_by_key<R: ReadRow>(
    keys: usize,
    rows: &[R],
) -> Result<Vec<Option<ChargeContext>>, R::Error> {
    let mut out: Vec<Option<ChargeContext>> = vec![None; keys];
    for r in rows {
        let n = r.int("kn")?;
        if let Some(slot) = usize::try_from(n).ok().and_then(|i| out.get_mut(i)) {
            *slot = Some(read_charge_context(r)?);
        }
    }
    Ok(out)
}
