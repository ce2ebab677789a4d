//! Webhooks a PG sends on its own initiative, received per channel
//! (`POST /pg/tosspayments/{channel_id}/webhook`).
//!
//! A webhook is only a hint: its body names a payment (Toss: `data.paymentKey` of
//! `PAYMENT_STATUS_CHANGED`, or `orderId`), and nothing in it is believed. Pier looks the named
//! payment up among the channel's own, builds the deposit event from **its own record** (MID,
//! amount, PG transaction), and `on_pg_event` asks the PG (`inquire`) whether the money really
//! arrived before marking anything paid. A forged or replayed body therefore changes nothing
//! unless Toss itself says the account was paid.

use super::channels::TOSS;
use super::{Engine, Error, Result};
use pier_domain::PaymentStatus;
use pier_pg::{Mid, PgEvent};
use serde_json::Value;

/// What became of a webhook (the HTTP answer says it; always 200 so that the PG stops
/// resending what Pier has read).
#[derive(Debug, PartialEq, Eq)]
pub enum PgWebhook {
    /// A deposit the PG confirmed: the payment is paid now.
    Paid(String),
    /// Read, and nothing to do (unknown payment, not a waiting account, not confirmed by the PG,
    /// already paid, another event).
    Ignored(&'static str),
}

/// Longest id read from a webhook body (Toss's `paymentKey` is at most 200 characters).
const MAX_ID_CHARS: usize = 200;

fn id_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str().filter(|s| {
        !s.is_empty() && s.len() <= MAX_ID_CHARS && s.chars().all(|c| c.is_ascii_graphic())
    })
}

impl Engine {
    pub async fn toss_webhook(&self, channel_id: &str, body: &[u8]) -> Result<PgWebhook> {
        let channel = match channel_id.len() {
            1..=64 => self.store.get_channel(channel_id).await?,
            _ => None,
        }
        .filter(|c| c.pg_provider == TOSS)
        .ok_or_else(|| Error::NotFound("no such tosspayments channel".into()))?;
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| Error::Invalid("the webhook body is not JSON".into()))?;
        let payment_key = id_at(&v, &["data", "paymentKey"]).or_else(|| id_at(&v, &["paymentKey"]));
        let order_id = id_at(&v, &["data", "orderId"]).or_else(|| id_at(&v, &["orderId"]));
        let p = match (payment_key, order_id) {
            (Some(k), _) => self.store.vbank_by_pg_tid(k).await?,
            (None, Some(o)) if o.len() <= 64 => {
                self.store
                    .get_payment(Some(&channel.merchant_id), o)
                    .await?
            }
            _ => return Ok(PgWebhook::Ignored("no payment named")),
        };
        let Some(p) = p.filter(|p| p.channel_id.as_deref() == Some(channel.id.as_str())) else {
            return Ok(PgWebhook::Ignored("not a payment of this channel"));
        };
        let (Some(pg_tid), true) = (
            p.pg_tid.clone(),
            p.status == PaymentStatus::Ready && p.vbank_num.is_some(),
        ) else {
            return Ok(PgWebhook::Ignored(
                "not a virtual account waiting for its deposit",
            ));
        };
        let ev = PgEvent::VbankDeposited {
            mid: Mid(channel.mid.clone()),
            order_id: self.store.pg_order_id(&p.imp_uid).await?,
            merchant_uid: p.merchant_uid.clone(),
            amount_krw: p.amount,
            pg_tid,
            deposited_at: 0,
        };
        Ok(match self.on_pg_event(&ev, true).await? {
            Some(paid) if paid.status == PaymentStatus::Paid => PgWebhook::Paid(paid.imp_uid),
            _ => PgWebhook::Ignored("the PG does not confirm a deposit"),
        })
    }
}
