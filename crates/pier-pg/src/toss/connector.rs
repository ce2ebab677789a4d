//! `Connector`: the `Pg` trait over Toss Payments core API v1.
//!
//! Each operation checks and shapes its request (`requests`), sends it through the HTTP client
//! (`client`, which maps Toss's errors: `errors`) and reads the answer (`answers`); the payment
//! window's two steps are in `window`.

use super::answers::{approval_of_charge, billing_key_of, inquiry_of, unix_of};
use super::client::Connector;
use super::codes;
use super::requests::{
    card_fields, check_order_id, check_payment_key, encode, idempotency_key, installment,
    order_name, split_billing_key, tax_free,
};
use super::wire::{self, kst, BillingAuth, Payment};
use crate::{
    Approval, AuthBegin, AuthComplete, AuthOutcome, AuthSession, BillingKey, CancelOutcome,
    CancelRequest, CardData, Inquiry, Mid, Order, Pg, PgError, PgResult, VbankIssued, VbankRequest,
    WindowReturn,
};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Toss: `cancelReason` at most 200 characters (listed under "to verify" in
/// docs/connectors/tosspayments.md: not on a page read).
const MAX_CANCEL_REASON_CHARS: usize = 200;
/// Sent when Pier has no reason: Toss requires `cancelReason`.
const DEFAULT_CANCEL_REASON: &str = "가맹점 요청";

/// Codes a charge gets when its order id was already used: the payment may be ours (a retry past
/// the idempotency window), so the connector asks by order id before refusing.
const ORDER_TAKEN: &[&str] = &["ALREADY_PROCESSED_PAYMENT", "DUPLICATED_ORDER_ID"];

impl Connector {
    /// A charge (key-in or billing) answered; on "order id already used", look the order up.
    async fn charge(
        &self,
        segments: &[&str],
        body: Vec<u8>,
        idempotency: &str,
        order_id: &str,
    ) -> PgResult<Approval> {
        match self.post::<Payment>(segments, body, idempotency).await {
            Ok(payment) => approval_of_charge(&payment, order_id),
            Err(PgError::Rejected { code, message }) if ORDER_TAKEN.contains(&code.as_str()) => {
                match self.inquire_order(order_id).await? {
                    Inquiry::Approved(approval) => Ok(approval),
                    _ => Err(PgError::Rejected { code, message }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn inquire_order(&self, order_id: &str) -> PgResult<Inquiry> {
        match self.payment_by_order(order_id).await? {
            None => Ok(Inquiry::NotFound),
            Some(payment) => inquiry_of(&payment),
        }
    }
}

#[async_trait]
impl Pg for Connector {
    async fn approve_keyed(&self, mid: &Mid, order: &Order, card: CardData) -> PgResult<Approval> {
        check_order_id(&order.order_id)?;
        let (year, month, identity) = card_fields(&card);
        let body = encode(&wire::KeyInRequest {
            amount: order.amount_krw,
            order_id: order.order_id.clone(),
            order_name: order_name(order),
            card_number: card.number.digits().to_owned(),
            card_expiration_year: year,
            card_expiration_month: month,
            customer_identity_number: identity,
            card_password: card.pwd_2digit.as_ref().map(|p| p.digits().to_owned()),
            card_installment_plan: installment(order)?,
            tax_free_amount: tax_free(order.tax_free_krw),
        })?;
        drop(card);
        let key = idempotency_key("approve_keyed", mid, &order.order_id);
        self.charge(&["v1", "payments", "key-in"], body, &key, &order.order_id)
            .await
    }

    /// The key Pier stores is `customerKey:billingKey`: Toss charges a billing key only together
    /// with the `customerKey` it was issued for, and the trait hands `pay_with_key` nothing but
    /// the stored key. Toss's `customerKey` allows no ':' (letters, digits, `-_=.@`), so the
    /// first ':' splits the two unambiguously.
    async fn issue_billing_key(
        &self,
        mid: &Mid,
        customer_uid: &str,
        card: CardData,
    ) -> PgResult<BillingKey> {
        let (year, month, identity) = card_fields(&card);
        let customer_key = self.customer_key(mid, customer_uid);
        let body = encode(&wire::BillingAuthRequest {
            customer_key: customer_key.clone(),
            card_number: card.number.digits().to_owned(),
            card_expiration_year: year,
            card_expiration_month: month,
            customer_identity_number: identity,
            card_password: card.pwd_2digit.as_ref().map(|p| p.digits().to_owned()),
        })?;
        drop(card);
        // The same customer may register another card later: the key covers the request too, so
        // only a retry of this very registration is "the same request".
        let digest = hex::encode(Sha256::digest(&body));
        let key = idempotency_key(
            "issue_billing_key",
            mid,
            &format!("{customer_uid}\0{digest}"),
        );
        let auth: BillingAuth = match self
            .post(&["v1", "billing", "authorizations", "card"], body, &key)
            .await
        {
            Ok(auth) => auth,
            // No key and nothing charged: an issuer's refusal of the card is a refusal of the
            // registration (as the test PG reports it).
            Err(PgError::Declined { code, message }) => {
                return Err(PgError::Rejected { code, message })
            }
            Err(e) => return Err(e),
        };
        billing_key_of(&auth, &customer_key)
    }

    /// Toss's v1 reference pages read for this connector document no way to delete a billing
    /// key: Pier forgets it (its own record is what `pay_with_key` needs) and Toss keeps it.
    async fn delete_billing_key(&self, _mid: &Mid, billing_key: &str) -> PgResult<()> {
        split_billing_key(billing_key).map(|_| ())
    }

    async fn pay_with_key(
        &self,
        mid: &Mid,
        order: &Order,
        billing_key: &str,
    ) -> PgResult<Approval> {
        check_order_id(&order.order_id)?;
        let (customer_key, toss_key) = split_billing_key(billing_key)?;
        let body = encode(&wire::BillingPayRequest {
            customer_key: customer_key.to_owned(),
            amount: order.amount_krw,
            order_id: order.order_id.clone(),
            order_name: order_name(order),
            customer_name: order.buyer_name.clone(),
            tax_free_amount: tax_free(order.tax_free_krw),
            card_installment_plan: installment(order)?,
        })?;
        let key = idempotency_key("pay_with_key", mid, &order.order_id);
        self.charge(&["v1", "billing", toss_key], body, &key, &order.order_id)
            .await
    }

    async fn cancel(&self, mid: &Mid, req: &CancelRequest) -> PgResult<CancelOutcome> {
        if req.amount_krw <= 0 {
            return Err(PgError::Rejected {
                code: "INVALID_CANCEL_AMOUNT".into(),
                message: "the cancel amount must be positive".into(),
            });
        }
        let reason: String = req
            .reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or(DEFAULT_CANCEL_REASON)
            .chars()
            .take(MAX_CANCEL_REASON_CHARS)
            .collect();
        let refund_receive_account = match &req.refund_account {
            None => None,
            Some(r) => Some(wire::RefundReceiveAccount {
                bank: codes::toss_bank_of_kftc(&r.bank_code)
                    .ok_or_else(|| PgError::Rejected {
                        code: "INVALID_REFUND_BANK".into(),
                        message: format!(
                            "토스페이먼츠가 환불할 수 없는 은행입니다. (bank {} has no Toss bank code)",
                            r.bank_code
                        ),
                    })?
                    .to_owned(),
                // Toss takes the number as digits.
                account_number: r.account_number.chars().filter(char::is_ascii_digit).collect(),
                holder_name: r.holder.clone(),
            }),
        };
        let body = encode(&wire::CancelBody {
            cancel_reason: reason,
            cancel_amount: Some(req.amount_krw),
            tax_free_amount: tax_free(req.tax_free_krw),
            refund_receive_account,
        })?;
        let key = idempotency_key("cancel", mid, &req.cancellation_id);
        let p: Payment = self
            .post(&["v1", "payments", &req.pg_tid, "cancel"], body, &key)
            .await?;
        // Toss appends each cancel to `cancels`; the answer to ours ends with ours.
        let Some(last) = p.cancels.as_ref().and_then(|c| c.last()) else {
            return Err(PgError::Unknown(
                "Toss answered a cancel without a cancel record".into(),
            ));
        };
        if p.payment_key != req.pg_tid || last.cancel_amount != req.amount_krw {
            return Err(PgError::Unknown(
                "Toss answered a cancel that is not ours".into(),
            ));
        }
        Ok(CancelOutcome {
            pg_cancel_tid: last
                .transaction_key
                .clone()
                .unwrap_or_else(|| p.last_transaction_key.clone().unwrap_or_default()),
            cancelled_at: unix_of(last.canceled_at.as_deref()).unwrap_or_default(),
            amount_krw: last.cancel_amount,
            receipt_url: p.receipt.as_ref().and_then(|r| r.url.clone()),
        })
    }

    async fn inquire(&self, _mid: &Mid, order_id: &str) -> PgResult<Inquiry> {
        check_order_id(order_id)?;
        self.inquire_order(order_id).await
    }

    /// By paymentKey (Toss's `pg_tid`): the payment Pier recorded, checked to be the order's.
    async fn inquire_tid(&self, _mid: &Mid, order_id: &str, pg_tid: &str) -> PgResult<Inquiry> {
        check_order_id(order_id)?;
        check_payment_key(pg_tid)?;
        match self.payment_by_key(pg_tid).await? {
            None => Ok(Inquiry::NotFound),
            Some(p) if p.order_id != order_id => Err(PgError::Rejected {
                code: "ORDER_MISMATCH".into(),
                message: format!("Toss's payment {pg_tid} is not order {order_id}'s"),
            }),
            Some(p) => inquiry_of(&p),
        }
    }

    fn unseen_order_grace(&self) -> Duration {
        self.unseen_order_grace
    }

    /// Toss has no separate void: look the order up and cancel what is left of it, under an
    /// idempotency key of its own so that repeated net-cancels are one cancel.
    async fn net_cancel(&self, mid: &Mid, order_id: &str) -> PgResult<()> {
        check_order_id(order_id)?;
        let Some(p) = self.payment_by_order(order_id).await? else {
            return Ok(());
        };
        // WAITING_FOR_DEPOSIT: a virtual account issued for an attempt Pier fails must be closed,
        // or a buyer could still pay into it.
        if !matches!(
            p.status.as_str(),
            "DONE" | "PARTIAL_CANCELED" | "WAITING_FOR_DEPOSIT"
        ) || p.balance_amount <= 0
        {
            return Ok(());
        }
        let body = encode(&wire::CancelBody {
            cancel_reason: "승인 응답 유실로 인한 망취소".into(),
            cancel_amount: None,
            tax_free_amount: None,
            // A net cancel voids an approval nobody was told of: never a deposited account.
            refund_receive_account: None,
        })?;
        let key = idempotency_key("net_cancel", mid, order_id);
        match self
            .post::<Payment>(&["v1", "payments", &p.payment_key, "cancel"], body, &key)
            .await
        {
            Ok(_) => Ok(()),
            Err(PgError::Rejected { code, .. }) if code == "ALREADY_CANCELED_PAYMENT" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn issue_vbank(&self, mid: &Mid, req: &VbankRequest) -> PgResult<VbankIssued> {
        let order = &req.order;
        check_order_id(&order.order_id)?;
        let bank =
            codes::toss_vbank_issuer_of_kftc(&req.bank_code).ok_or_else(|| PgError::Rejected {
                code: "INVALID_BANK".into(),
                message: format!("Toss issues no virtual account at bank {}", req.bank_code),
            })?;
        let due = chrono::DateTime::from_timestamp(req.due_unix, 0)
            .ok_or_else(|| PgError::Rejected {
                code: "INVALID_DUE".into(),
                message: "the deposit deadline is not a valid time".into(),
            })?
            .with_timezone(&kst());
        let customer = req
            .holder
            .clone()
            .or_else(|| order.buyer_name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "구매자".into());
        let body = encode(&wire::VirtualAccountRequest {
            amount: order.amount_krw,
            order_id: order.order_id.clone(),
            order_name: order_name(order),
            customer_name: customer,
            bank: bank.to_owned(),
            due_date: Some(due.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
            valid_hours: None,
            tax_free_amount: tax_free(order.tax_free_krw),
        })?;
        let key = idempotency_key("issue_vbank", mid, &order.order_id);
        let p: Payment = self.post(&["v1", "virtual-accounts"], body, &key).await?;
        let Some(va) = p
            .virtual_account
            .as_ref()
            .filter(|_| p.order_id == order.order_id)
        else {
            return Err(PgError::Unknown(
                "Toss answered a virtual-account issuance without the account".into(),
            ));
        };
        let bank_code = va
            .bank_code
            .as_deref()
            .and_then(codes::kftc_bank_of_toss)
            .unwrap_or(&req.bank_code);
        Ok(VbankIssued {
            pg_tid: p.payment_key.clone(),
            bank_code: bank_code.to_owned(),
            bank_name: pier_domain::codes::bank_name(bank_code)
                .unwrap_or_default()
                .to_owned(),
            account_num: va.account_number.clone(),
            holder: va.customer_name.clone().unwrap_or_default(),
            due_unix: unix_of(va.due_date.as_deref()).unwrap_or(req.due_unix),
            issued_at: unix_of(p.requested_at.as_deref()).unwrap_or_default(),
        })
    }

    async fn begin_auth(&self, mid: &Mid, req: &AuthBegin) -> PgResult<AuthSession> {
        self.window_begin(mid, req)
    }

    async fn complete_auth(&self, mid: &Mid, req: &AuthComplete) -> PgResult<AuthOutcome> {
        self.window_complete(mid, req).await
    }

    fn read_return(&self, params: &[(String, String)]) -> WindowReturn {
        super::window::read_return(params)
    }
}
