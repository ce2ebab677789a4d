//! The console's billing-key, webhook-setting, credential, channel, origin and operator use
//! cases, and what the settings page reads.
//!
//! Each goes through the same engine use case as its REST or CLI path (deleting a key is
//! `DELETE /subscribe/customers/{customer_uid}`, unscheduling is `POST
//! /subscribe/payments/unschedule`, the webhook target is `pier merchant set-webhook`'s
//! validation, the secret rotation is `pier merchant rotate-secret`), adds the role check and
//! writes an audit row.

use super::{Actor, Role, PAGE_SIZE};
use crate::engine::{Engine, Error, Result};
use pier_store::{
    Channel, Customer, Merchant, Operator, Page, Schedule, ScheduleQuery, ScheduleStatus,
};

/// One billing key as the console shows it: no billing key handle, the card masked.
pub struct BillingKey {
    pub customer: Customer,
    /// Schedules still waiting to run (`scheduled`): what deleting the key revokes.
    pub scheduled: i64,
}

/// `**** 1234` from whatever the PG returned (PGs send a masked number already; only the last
/// four digits are kept here so a PG that sent more never shows it).
pub fn mask_card(number: Option<&str>) -> String {
    let digits: Vec<char> = number
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if digits.len() < 4 {
        return "-".into();
    }
    let last: String = digits[digits.len() - 4..].iter().collect();
    format!("**** {last}")
}

fn no_key(customer_uid: &str) -> Error {
    Error::NotFound(format!(
        "빌링키가 없습니다. (no billing key {customer_uid:.80?})"
    ))
}

impl Engine {
    /// A page of billing keys (customer_uid order, keyset after `after`).
    pub async fn console_customers(&self, a: &Actor, after: Option<&str>) -> Result<Vec<Customer>> {
        Ok(self
            .store
            .console_customers(&a.merchant_id, after, PAGE_SIZE)
            .await?)
    }

    /// One key, how many schedules wait on it, and a page of its schedules (newest first).
    pub async fn console_customer(
        &self,
        a: &Actor,
        customer_uid: &str,
        offset: i64,
    ) -> Result<(BillingKey, Page<Schedule>)> {
        let customer = self
            .store
            .get_customer(&a.merchant_id, customer_uid)
            .await?
            .ok_or_else(|| no_key(customer_uid))?;
        let waiting = ScheduleQuery {
            customer_uid: Some(customer_uid),
            from: None,
            to: None,
            status: Some(ScheduleStatus::Scheduled),
            oldest_first: true,
            offset: 0,
            limit: 1,
        };
        let all = ScheduleQuery {
            status: None,
            oldest_first: false,
            offset: offset.max(0),
            limit: PAGE_SIZE,
            ..waiting
        };
        let (w, page) = tokio::try_join!(
            self.list_schedules(&a.merchant_id, &waiting),
            self.list_schedules(&a.merchant_id, &all)
        )?;
        Ok((
            BillingKey {
                customer,
                scheduled: w.total,
            },
            page,
        ))
    }

    /// Deletes a billing key through the REST use case (its waiting schedules are revoked).
    pub async fn console_delete_customer(&self, a: &Actor, customer_uid: &str) -> Result<()> {
        a.must_operate()?;
        // REST answers a missing key with code 1 (i'mport's); the console says "not found".
        let c = self
            .delete_customer(&a.merchant_id, customer_uid)
            .await
            .map_err(|e| match e {
                Error::Refused(_) => no_key(customer_uid),
                other => other,
            })?;
        self.audit(
            a,
            "billing.delete_key",
            Some(customer_uid),
            Some(format!(
                "pg={} card={}",
                c.pg_provider,
                mask_card(c.card_number.as_deref())
            )),
        )
        .await;
        Ok(())
    }

    /// Revokes one schedule of a key through the REST unschedule use case.
    pub async fn console_unschedule(
        &self,
        a: &Actor,
        customer_uid: &str,
        merchant_uid: &str,
    ) -> Result<()> {
        a.must_operate()?;
        // An empty merchant_uid would leave only the customer_uid filter: every schedule of
        // the key. One button revokes one schedule.
        if merchant_uid.is_empty() {
            return Err(Error::Invalid("merchant_uid is required".into()));
        }
        self.unschedule(
            &a.merchant_id,
            Some(customer_uid),
            &[merchant_uid.to_owned()],
        )
        .await?;
        self.audit(
            a,
            "billing.unschedule",
            Some(merchant_uid),
            Some(format!("customer_uid={customer_uid}")),
        )
        .await;
        Ok(())
    }

    /// Sets the webhook URL (empty = none) and format; the signing secret stays (a new one is
    /// made, and returned to be shown once, only if there was none).
    pub async fn console_set_webhook(
        &self,
        a: &Actor,
        url: &str,
        format: &str,
    ) -> Result<Option<String>> {
        a.must_admin()?;
        let before = self.console_merchant(a).await?;
        let url = Some(url.trim().to_owned()).filter(|u| !u.is_empty());
        // The CLI (Pier's own operator) may name a private address; a merchant's admin may
        // not unless the server allows private targets, as for a payment's notice_url
        // (engine/window.rs). Delivery checks each resolved address again.
        if let Some(u) = &url {
            crate::outbound::check_url(u, self.cfg.webhook_allow_private)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        let m = self
            .write_webhook(&a.merchant_id, url.clone(), format, false)
            .await?;
        self.audit(
            a,
            "webhook.settings",
            None,
            Some(format!(
                "url={} format={format}",
                url.as_deref().unwrap_or("(none)")
            )),
        )
        .await;
        Ok(m.webhook_secret.filter(|_| before.webhook_secret.is_none()))
    }

    /// A new webhook signing secret, returned to be shown once.
    pub async fn console_rotate_webhook_secret(&self, a: &Actor) -> Result<String> {
        a.must_admin()?;
        let m = self.console_merchant(a).await?;
        let m = self
            .write_webhook(&a.merchant_id, m.webhook_url, &m.webhook_format, true)
            .await?;
        self.audit(a, "webhook.rotate_secret", None, None).await;
        Ok(m.webhook_secret.unwrap_or_default())
    }

    /// A new `imp_secret` (`pier merchant rotate-secret`), returned to be shown once; the old
    /// one and every token stop working.
    pub async fn console_rotate_secret(&self, a: &Actor) -> Result<String> {
        a.must_admin()?;
        let s = self.rotate_secret(&a.merchant_id).await?;
        self.audit(a, "settings.rotate_imp_secret", None, None)
            .await;
        Ok(s)
    }

    pub async fn console_channels(&self, a: &Actor) -> Result<Vec<Channel>> {
        self.merchant_channels(&a.merchant_id).await
    }

    pub async fn console_set_default_channel(&self, a: &Actor, channel_id: &str) -> Result<()> {
        a.must_admin()?;
        if !self
            .store
            .set_default_channel(&a.merchant_id, channel_id)
            .await?
        {
            return Err(Error::NotFound(format!(
                "채널이 없습니다. (no channel {channel_id:.60?})"
            )));
        }
        self.audit(a, "settings.default_channel", Some(channel_id), None)
            .await;
        Ok(())
    }

    pub async fn console_create_operator(
        &self,
        a: &Actor,
        email: &str,
        role: &str,
        password: &str,
    ) -> Result<String> {
        a.must_admin()?;
        self.add_operator(&a.merchant_id, email, role, password, Some(a))
            .await
    }

    /// Changes an operator's role or disables / re-enables it. The merchant always keeps an
    /// enabled admin (the store refuses the change that would leave none, atomically).
    pub async fn console_set_operator(
        &self,
        a: &Actor,
        operator_id: &str,
        role: &str,
        disabled: bool,
    ) -> Result<Operator> {
        a.must_admin()?;
        let role = Role::parse(role)
            .ok_or_else(|| Error::Invalid("role must be admin, operator or viewer".into()))?;
        let target = self
            .store
            .get_operator(operator_id)
            .await?
            .filter(|o| o.merchant_id == a.merchant_id)
            .ok_or_else(|| Error::NotFound("운영자가 없습니다. (no such operator)".into()))?;
        if !self
            .store
            .set_operator(&a.merchant_id, operator_id, role.as_str(), disabled)
            .await?
        {
            return Err(Error::Refused(
                "마지막 관리자는 비활성화하거나 역할을 바꿀 수 없습니다. (the last enabled admin cannot be disabled or demoted)"
                    .into(),
            ));
        }
        self.audit(
            a,
            "operator.update",
            Some(&target.email),
            Some(format!("role={} disabled={disabled}", role.as_str())),
        )
        .await;
        Ok(Operator {
            role: role.as_str().to_owned(),
            disabled,
            ..target
        })
    }
}

impl Engine {
    pub async fn console_merchant(&self, a: &Actor) -> Result<Merchant> {
        self.store
            .get_merchant(&a.merchant_id)
            .await?
            .ok_or_else(|| Error::NotFound("no merchant".into()))
    }

    /// Whether the merchant's default channel (or, without one, any) is the test PG.
    pub async fn console_test_mode(&self, a: &Actor) -> Result<bool> {
        let chans = self.store.list_channels(Some(&a.merchant_id)).await?;
        let is_test = |c: &pier_store::Channel| {
            c.target == "inprocess" && c.pg_provider != crate::engine::channels::TOSS
        };
        Ok(match chans.iter().find(|c| c.is_default) {
            Some(c) => is_test(c),
            None => chans.iter().any(is_test),
        })
    }

    pub async fn console_set_origins(&self, a: &Actor, text: &str) -> Result<Option<Vec<String>>> {
        a.must_admin()?;
        let list = self.set_allowed_origins(&a.merchant_id, text).await?;
        let shown = list
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), |l| l.join(" "));
        self.audit(a, "settings.allowed_origins", None, Some(shown))
            .await;
        Ok(list)
    }

    pub async fn console_operators(&self, a: &Actor) -> Result<Vec<Operator>> {
        a.must_admin()?;
        Ok(self.store.list_operators(&a.merchant_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::mask_card;

    #[test]
    fn cards_show_only_their_last_four_digits() {
        assert_eq!(mask_card(Some("536181******1234")), "**** 1234");
        assert_eq!(mask_card(Some("4651200000002105")), "**** 2105");
        assert_eq!(mask_card(Some("12")), "-");
        assert_eq!(mask_card(None), "-");
    }
}
