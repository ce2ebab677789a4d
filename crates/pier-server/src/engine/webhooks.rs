//! Webhooks: the merchant's settings, signing (Standard Webhooks), delivering one leased outbox
//! row with retries and a delivery log, and manual redelivery.
//!
//! Delivery is at-least-once: a row is leased, delivered, then recorded. A crash in between lets
//! the lease expire and the row is delivered again, so receivers must tolerate duplicates (the
//! `webhook-id` header is the same on every attempt of one event).

use super::{Engine, Error, Result};
use crate::outbound::Outbound;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pier_store::{Delivery, DeliveryState, EventUpdate, Merchant, OutboxEvent, OutboxRow, Page};
use rand::Rng;
use std::collections::HashMap;
use std::time::Instant;

/// Most targets one event is sent to (the request's notice_url list is bounded the same way).
pub const MAX_TARGETS: usize = 5;

/// The Standard Webhooks signature header value: `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`
/// keyed with the base64-decoded part of `whsec_…`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// A fresh signing secret, `whsec_<base64 of 24 random bytes>`.
pub fn new_secret() -> String {
    let mut b = [0u8; 24];
    rand::thread_rng().fill(&mut b);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

/// The dispatcher's HTTP client: the outbound client (`crate::outbound`: checked addresses only,
/// timeouts, no redirects, no proxies, a bounded answer).
#[derive(Clone)]
pub struct WebhookSender {
    http: Outbound,
}

impl WebhookSender {
    pub fn new(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        let http = Outbound::new(
            cfg.webhook_connect_timeout,
            cfg.webhook_timeout,
            cfg.webhook_allow_private,
            "Pier-Webhook/1",
        )?;
        Ok(Self { http })
    }
}

/// The body of a webhook, JSON or form-encoded.
pub fn body_of(row: &OutboxRow, format: &str) -> (Vec<u8>, &'static str) {
    let e = &row.event;
    let mut pairs: Vec<(&str, &str)> = vec![
        ("imp_uid", &e.imp_uid),
        ("merchant_uid", &e.merchant_uid),
        ("status", e.status.as_str()),
    ];
    if let Some(c) = &e.cancellation_id {
        pairs.push(("cancellation_id", c));
    }
    if format == "form" {
        let body = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        (body.into_bytes(), "application/x-www-form-urlencoded")
    } else {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        (
            serde_json::to_vec(&map).unwrap_or_default(),
            "application/json",
        )
    }
}

fn jittered(secs: i64) -> i64 {
    if secs <= 0 {
        return 0;
    }
    let f: f64 = rand::thread_rng().gen_range(0.8..1.2);
    ((secs as f64) * f).round().max(1.0) as i64
}

/// The same reason the store writes for an event born without a target.
const NO_TARGET: &str = pier_store::NO_WEBHOOK_TARGET;

/// Where an event goes: the request's notice_url(s), else the merchant's URL (at most
/// `MAX_TARGETS`).
fn targets_of(e: &OutboxEvent, merchant: Option<&Merchant>) -> Vec<String> {
    let mut targets: Vec<String> = e
        .notice_urls
        .as_deref()
        .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .unwrap_or_default();
    if targets.is_empty() {
        if let Some(u) = merchant.and_then(|m| m.webhook_url.clone()) {
            targets.push(u);
        }
    }
    targets.truncate(MAX_TARGETS);
    targets
}

impl Engine {
    /// How long a dispatcher holds a leased event: every target may take the full timeout.
    pub fn webhook_lease_secs(&self) -> i64 {
        (self.cfg.webhook_timeout.as_secs() as i64 + 1) * MAX_TARGETS as i64 + 30
    }

    /// Leases due webhook events.
    pub async fn claim_webhooks(&self, limit: usize) -> Result<Vec<OutboxRow>> {
        self.claim_webhooks_except(limit, &[]).await
    }

    /// Leases due webhook events of merchants other than `busy` (those already at their share
    /// of the dispatcher's delivery slots).
    pub async fn claim_webhooks_except(
        &self,
        limit: usize,
        busy: &[String],
    ) -> Result<Vec<OutboxRow>> {
        let now = self.now();
        Ok(self
            .store
            .claim_events(now, now + self.webhook_lease_secs(), limit as i64, busy)
            .await?)
    }

    /// Gives a leased event back untouched (no attempt counted, still due), for a merchant
    /// that reached its share of delivery slots while the batch was claimed. Its next claim
    /// waits until that merchant has a free slot.
    pub async fn release_webhook(&self, row: &OutboxRow) -> Result<()> {
        let u = moved(
            row,
            DeliveryState::Pending,
            row.attempts,
            row.next_attempt_at,
            row.last_error.clone(),
        )?;
        self.store
            .record_attempt(&row.event.id, row.leased_until, &[], &u)
            .await?;
        Ok(())
    }

    /// Marks due events that cannot have a target `skipped`, up to `limit` in one statement,
    /// before any is leased (the common case of a merchant without a webhook URL costs one
    /// row update per event). Returns how many were marked.
    pub async fn sweep_untargeted(&self, limit: i64) -> Result<u64> {
        Ok(self
            .store
            .skip_untargeted_due(self.now(), limit, NO_TARGET)
            .await?)
    }

    /// Marks the leased events that have no target (no notice_url, no merchant URL) `skipped`
    /// in one statement per batch, and returns the others for delivery. Most merchants of a
    /// busy instance have a URL or none at all, so this keeps an event without a target to a
    /// fraction of a statement instead of a read and a transaction.
    pub async fn skip_untargeted(&self, rows: Vec<OutboxRow>) -> Result<Vec<OutboxRow>> {
        let mut merchants: HashMap<String, Option<Merchant>> = HashMap::new();
        for r in &rows {
            if !merchants.contains_key(&r.event.merchant_id) {
                let m = self.store.get_merchant(&r.event.merchant_id).await?;
                merchants.insert(r.event.merchant_id.clone(), m);
            }
        }
        let mut skip: HashMap<i64, Vec<String>> = HashMap::new();
        let mut deliver = Vec::with_capacity(rows.len());
        for r in rows {
            let m = merchants.get(&r.event.merchant_id).and_then(Option::as_ref);
            if targets_of(&r.event, m).is_empty() {
                skip.entry(r.leased_until).or_default().push(r.event.id);
            } else {
                deliver.push(r);
            }
        }
        for (leased_until, ids) in skip {
            self.store
                .skip_events(&ids, leased_until, NO_TARGET)
                .await?;
        }
        Ok(deliver)
    }

    /// Delivers one leased event to its targets and records the attempt.
    pub async fn deliver_webhook(&self, sender: &WebhookSender, row: OutboxRow) -> Result<()> {
        let e = &row.event;
        let merchant = self.store.get_merchant(&e.merchant_id).await?;
        let targets = targets_of(e, merchant.as_ref());
        let attempt = row.attempts + 1;
        if targets.is_empty() {
            let u = moved(
                &row,
                DeliveryState::Skipped,
                row.attempts,
                row.next_attempt_at,
                Some(NO_TARGET.into()),
            )?;
            self.store
                .record_attempt(&e.id, row.leased_until, &[], &u)
                .await?;
            return Ok(());
        }
        let format = merchant
            .as_ref()
            .map(|m| m.webhook_format.clone())
            .unwrap_or_else(|| "json".into());
        let (body, content_type) = body_of(&row, &format);
        let timestamp = self.now();
        let signature = merchant
            .as_ref()
            .and_then(|m| m.webhook_secret.as_deref())
            .and_then(|s| sign(s, &e.id, timestamp, &body));
        let mut deliveries = Vec::with_capacity(targets.len());
        let mut errors = Vec::new();
        for url in &targets {
            let started = Instant::now();
            let mut headers = vec![
                ("content-type", content_type.to_owned()),
                ("webhook-id", e.id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
            ];
            if let Some(sig) = &signature {
                headers.push(("webhook-signature", sig.clone()));
            }
            // What the target answered is never logged: only its status, or why it was
            // refused (naming the flag that allows it) or why contacting it failed.
            let (code, error) = match sender.http.post(url, &headers, body.clone()).await {
                Ok(a) if (200..300).contains(&a.status) => (a.status as i64, None),
                Ok(a) => (a.status as i64, Some(format!("HTTP {}", a.status))),
                Err(err) => (0, Some(err.to_string())),
            };
            if let Some(err) = &error {
                errors.push(format!("{url}: {err}"));
            }
            deliveries.push(Delivery {
                id: format!("whd_{}", pier_domain::ids::random_hex(10)),
                merchant_id: e.merchant_id.clone(),
                event_id: e.id.clone(),
                imp_uid: e.imp_uid.clone(),
                merchant_uid: e.merchant_uid.clone(),
                status: e.status,
                url: url.clone(),
                attempt,
                status_code: code,
                latency_ms: started.elapsed().as_millis() as i64,
                error,
                at: self.now(),
            });
        }
        let now = self.now();
        let update = if errors.is_empty() {
            metrics::counter!("pier_webhooks_delivered_total").increment(1);
            moved(
                &row,
                DeliveryState::Delivered,
                attempt,
                row.next_attempt_at,
                None,
            )?
        } else {
            let delays = &self.cfg.webhook_retry_delays_secs;
            let age_from = row.event.created_at.max(row.armed_at);
            let next = delays
                .get((attempt - 1) as usize)
                .map(|d| now + jittered(*d));
            let last_error = Some(errors.join("; ").chars().take(1000).collect());
            match next {
                Some(at) if at - age_from <= self.cfg.webhook_max_age_secs => {
                    moved(&row, DeliveryState::Pending, attempt, at, last_error)?
                }
                _ => {
                    metrics::counter!("pier_webhooks_dead_total").increment(1);
                    tracing::warn!(event_id = %e.id, imp_uid = %e.imp_uid, attempts = attempt, "webhook given up");
                    moved(
                        &row,
                        DeliveryState::Dead,
                        attempt,
                        row.next_attempt_at,
                        last_error,
                    )?
                }
            }
        };
        if !self
            .store
            .record_attempt(&e.id, row.leased_until, &deliveries, &update)
            .await?
        {
            tracing::warn!(event_id = %e.id, "webhook lease lost before its attempt was recorded");
        }
        Ok(())
    }

    /// Sets the merchant's webhook URL and format and rotates its signing secret (returned).
    pub async fn set_webhook(
        &self,
        merchant_id: &str,
        url: Option<String>,
        format: &str,
    ) -> Result<String> {
        let m = self.write_webhook(merchant_id, url, format, true).await?;
        Ok(m.webhook_secret.unwrap_or_default())
    }

    /// Sets the webhook URL and format (one validation for the CLI, REST and the console);
    /// the signing secret is replaced when `rotate` or when there is none yet.
    pub(crate) async fn write_webhook(
        &self,
        merchant_id: &str,
        url: Option<String>,
        format: &str,
        rotate: bool,
    ) -> Result<Merchant> {
        if !matches!(format, "json" | "form") {
            return Err(Error::Invalid("format must be json or form".into()));
        }
        if let Some(u) = &url {
            crate::outbound::check_url(u, true).map_err(|e| Error::Invalid(e.to_string()))?;
        }
        let mut m = self
            .store
            .get_merchant(merchant_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no merchant {merchant_id}")))?;
        if rotate || m.webhook_secret.is_none() {
            m.webhook_secret = Some(new_secret());
        }
        m.webhook_url = url;
        m.webhook_format = format.to_owned();
        self.store.update_merchant(&m).await?;
        Ok(m)
    }

    pub async fn webhook_deliveries(
        &self,
        merchant_id: &str,
        imp_uid: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Page<Delivery>> {
        Ok(self
            .store
            .list_deliveries(merchant_id, imp_uid, offset, limit)
            .await?)
    }

    /// Re-arms an event for delivery now (any state), with a fresh retry budget.
    pub async fn redeliver(&self, merchant_id: &str, event_id: &str) -> Result<OutboxRow> {
        // Every state may be re-armed (`DeliveryState::can_become`); the store only re-arms.
        self.store
            .rearm_event(merchant_id, event_id, self.now())
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "존재하지 않는 웹훅 이벤트입니다. (no webhook event {event_id})"
                ))
            })
    }
}

/// The update recording an attempt on the leased `row` that leaves it `to`: a transition the
/// domain allows (`DeliveryState::can_become`; a leased row is pending, so any end is), guarded
/// again by the store on the row's lease and state.
fn moved(
    row: &OutboxRow,
    to: DeliveryState,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
) -> Result<EventUpdate> {
    if !row.state.can_become(to) {
        return Err(Error::Conflict(format!(
            "webhook event {} is {}: it cannot become {to}",
            row.event.id, row.state
        )));
    }
    Ok(EventUpdate {
        state: to,
        attempts,
        next_attempt_at,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        use crate::outbound::{check_url, forbidden};
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "0.0.0.0",
            "100.64.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(forbidden(a.parse().unwrap()).is_some(), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(forbidden(a.parse().unwrap()).is_none(), "{a}");
        }
        assert!(check_url("ftp://example.com/", true).is_err());
        assert!(check_url("http://127.0.0.1:9/", false).is_err());
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
        assert!(check_url("https://example.com/hook", false).is_ok());
    }

    #[test]
    fn signature_is_standard_webhooks() {
        // Test vector of the Standard Webhooks reference libraries.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
