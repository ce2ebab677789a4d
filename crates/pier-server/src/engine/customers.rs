//! Billing keys: issue from card data at the PG, read, delete.

use super::{Engine, Error, Result};
use pier_domain::CustomerUid;
use pier_pg::{CardData, Mid, PgError};
use pier_store::Customer;
use std::sync::Arc;

pub const MSG_KEY_FAILED: &str = "카드정보 인증 및 빌키 발급에 실패하였습니다.";

#[derive(Debug, Clone, Default)]
pub struct CustomerFields {
    pub customer_id: Option<String>,
    pub name: Option<String>,
    pub tel: Option<String>,
    pub email: Option<String>,
    pub addr: Option<String>,
    pub postcode: Option<String>,
}

pub fn not_registered(uid: &str) -> Error {
    Error::Refused(format!(
        "요청하신 customer_uid({uid})로 등록된 정보를 찾을 수 없습니다."
    ))
}

impl Engine {
    /// `POST /subscribe/customers/{customer_uid}`: issue (or replace) a billing key.
    pub async fn issue_customer(
        self: &Arc<Self>,
        merchant_id: &str,
        uid: CustomerUid,
        card: CardData,
        pg: Option<&str>,
        fields: CustomerFields,
    ) -> Result<Customer> {
        let channel = self.select_channel(merchant_id, pg).await?;
        let pgc = self.pgs.for_channel(&channel);
        let this = self.clone();
        let ch = channel.clone();
        let uid_s = uid.to_string();
        // Detached so a hang-up cannot lose a key the PG issued.
        let key = self
            .tasks
            .spawn(async move { this.issue_key_at_pg(&pgc, &ch, &uid_s, card).await })
            .await
            .map_err(|_| Error::Unavailable("internal error".into()))?;
        let key = match key {
            Ok(k) => k,
            Err(PgError::Declined { code, message } | PgError::Rejected { code, message }) => {
                return Err(Error::PgRefused(format!(
                    "{MSG_KEY_FAILED} [{code}] {message}"
                )))
            }
            Err(PgError::Unknown(_)) | Err(PgError::Unreachable(_)) => {
                return Err(Error::PgRefused(format!(
                    "{MSG_KEY_FAILED} PG사 응답을 받지 못했습니다. 다시 시도해주세요."
                )))
            }
        };
        let now = self.now();
        let c = Customer {
            merchant_id: merchant_id.to_owned(),
            customer_uid: uid.to_string(),
            channel_id: channel.id.clone(),
            pg_provider: channel.pg_provider.clone(),
            pg_id: channel.mid.clone(),
            sandbox: channel.sandbox,
            billing_key: key.billing_key,
            customer_id: fields.customer_id,
            card_name: key.card_name,
            card_code: key.card_code,
            card_number: key.card_number,
            card_type: key.card_type,
            customer_name: fields.name,
            customer_tel: fields.tel,
            customer_email: fields.email,
            customer_addr: fields.addr,
            customer_postcode: fields.postcode,
            inserted: now,
            updated: now,
        };
        Ok(self.store.upsert_customer(&c).await?)
    }

    pub async fn get_customer(&self, merchant_id: &str, uid: &str) -> Result<Customer> {
        self.store
            .get_customer(merchant_id, uid)
            .await?
            .ok_or_else(|| not_registered(uid))
    }

    pub async fn get_customers(&self, merchant_id: &str, uids: &[String]) -> Result<Vec<Customer>> {
        Ok(self.store.get_customers(merchant_id, uids).await?)
    }

    /// Deletes the key here and (best effort) at the PG.
    pub async fn delete_customer(&self, merchant_id: &str, uid: &str) -> Result<Customer> {
        let c = self
            .store
            .delete_customer(merchant_id, uid)
            .await?
            .ok_or_else(|| not_registered(uid))?;
        self.revoke_customer_schedules(merchant_id, uid).await;
        if let Ok(Some(channel)) = self.store.get_channel(&c.channel_id).await {
            let pg = self.pgs.for_channel(&channel);
            // Bounded like every PG call: before this went through `pg_call` a PG that never
            // answered held the DELETE open.
            let deadline = self.cfg.pg_deadline + std::time::Duration::from_secs(1);
            if let Err(e) = super::pg_call(
                "delete_billing_key",
                deadline,
                pg.delete_billing_key(&Mid(channel.mid.clone()), &c.billing_key),
            )
            .await
            {
                tracing::warn!(customer_uid = uid, error = %e, "billing key deleted here but not at the PG");
            }
        }
        Ok(c)
    }
}
