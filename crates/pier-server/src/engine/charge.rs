//! Charging a card without a window: `onetime` (card data) and `again` (billing key).
//!
//! The order of effects is the whole point:
//! 1. insert the attempt `ready` with the merchant_uid guard taken (`uid_lock`): a concurrent
//!    second attempt for the same merchant_uid fails on the unique index, before any PG call;
//! 2. call the PG with a deadline, outside any transaction;
//! 3. record the answer (paid → webhook row in the same transaction; declined → failed and the
//!    guard released; unknown → left for the reconciler, guard kept).
//!
//! Steps 2–3 run in a spawned task so a client that hangs up cannot strand an attempt between
//! the PG's answer and its record.

use super::prepare::check_prepared_amount;
use super::{Engine, Error, Result};
use pier_domain::PaymentStatus;
use pier_domain::{Amount, AmountPart, CustomerUid, MerchantUid};
use pier_pg::{Approval, CardData, Mid, Order, Pg, PgError};
use pier_store::{
    Channel, ChargeContext, Customer, OutboxEvent, Payment, Prepared, Settlement, StoreError,
};
use std::sync::Arc;

/// Delay before the reconciler first looks at an unknown outcome.
pub const FIRST_RECONCILE_DELAY_SECS: i64 = 5;
pub const MSG_ALREADY_PAID: &str = "이미 결제가 이루어진 거래건입니다.";
pub const MSG_IN_PROGRESS: &str = "이미 결제가 진행중인 거래건입니다. 결제 결과를 조회해주세요. (another attempt for this merchant_uid is in progress)";
pub const MSG_UNKNOWN: &str = "PG사로부터 결제 결과를 확인하지 못했습니다. 결제 결과는 자동으로 확인되며, 잠시 후 결제 내역을 조회해주세요. (the PG's answer is unknown; Pier will reconcile it)";
pub const MSG_SETTLED_ELSEWHERE: &str = "결제 결과가 이미 확정되었습니다. 결제 내역을 조회해주세요. (the attempt was already settled; look it up)";
pub const MSG_UNKNOWN_CUSTOMER: &str = "등록되지 않은 구매자입니다.";

/// Declared with the attempt rule that reads it (`attempt.rs`); named here too for the callers.
pub use super::attempt::Buyer;

/// The order part of a charge request, already validated.
#[derive(Debug, Clone)]
pub struct OrderInput {
    pub merchant_uid: MerchantUid,
    pub amount: Amount,
    pub currency: String,
    pub tax_free: AmountPart,
    pub vat_amount: Option<AmountPart>,
    pub name: Option<String>,
    pub buyer: Buyer,
    pub card_quota: i64,
    pub custom_data: Option<String>,
    pub notice_urls: Vec<String>,
    pub pg: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OnetimeInput {
    pub order: OrderInput,
    pub card: CardData,
    pub customer_uid: Option<CustomerUid>,
    pub customer_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AgainInput {
    pub order: OrderInput,
    pub customer_uid: CustomerUid,
    /// `payment` for API charges, `payment.scheduled` for the scheduler.
    pub usage: &'static str,
}

/// A charge that reached the PG: paid, or declined with the PG's reason.
#[derive(Debug, Clone)]
pub struct ChargeOutcome {
    pub payment: Payment,
    pub declined: Option<String>,
}

/// What the PG was asked to do.
enum Call {
    Keyed(CardData),
    BillingKey(String),
}

impl Engine {
    pub async fn onetime(
        self: &Arc<Self>,
        merchant_id: &str,
        input: OnetimeInput,
    ) -> Result<ChargeOutcome> {
        // The channel and the merchant_uid's pre-registration are independent reads: read them
        // at once (on PostgreSQL each is a batched round trip), then judge them in order.
        let (channel, prepared) = tokio::join!(
            self.select_channel(merchant_id, input.order.pg.as_deref()),
            self.store
                .get_prepare(merchant_id, input.order.merchant_uid.as_str()),
        );
        let (channel, prepared) = (channel?, prepared?);
        let mut p = self.new_attempt(merchant_id, &input.order, Some(&channel));
        p.card_number = Some(input.card.number.masked());
        if let Some(uid) = &input.customer_uid {
            p.customer_uid = Some(uid.to_string());
            p.customer_uid_usage = Some("issue".into());
        }
        let card = input.card.clone();
        let outcome = self
            .run_charge(
                p,
                input.order.amount,
                channel.clone(),
                Call::Keyed(card),
                prepared,
            )
            .await?;
        if let (Some(uid), None) = (&input.customer_uid, &outcome.declined) {
            // The card paid: store it as a billing key too (spec §9.3, on success only).
            let pg = self.pgs.for_channel(&channel);
            match self
                .issue_key_at_pg(&pg, &channel, uid.as_str(), input.card)
                .await
            {
                Ok(key) => {
                    let now = self.now();
                    let c = Customer {
                        merchant_id: merchant_id.to_owned(),
                        customer_uid: uid.to_string(),
                        channel_id: channel.id.clone(),
                        pg_provider: channel.pg_provider.clone(),
                        pg_id: channel.mid.clone(),
                        sandbox: channel.sandbox,
                        billing_key: key.billing_key,
                        customer_id: input.customer_id.clone(),
                        card_name: key.card_name,
                        card_code: key.card_code,
                        card_number: key.card_number,
                        card_type: key.card_type,
                        customer_name: input.order.buyer.name.clone(),
                        customer_tel: input.order.buyer.tel.clone(),
                        customer_email: input.order.buyer.email.clone(),
                        customer_addr: input.order.buyer.addr.clone(),
                        customer_postcode: input.order.buyer.postcode.clone(),
                        inserted: now,
                        updated: now,
                    };
                    self.store.upsert_customer(&c).await?;
                }
                Err(e) => {
                    tracing::warn!(imp_uid = %outcome.payment.imp_uid, error = %e, "paid, but the billing key was not issued")
                }
            }
        }
        Ok(outcome)
    }

    pub async fn again(
        self: &Arc<Self>,
        merchant_id: &str,
        input: AgainInput,
    ) -> Result<ChargeOutcome> {
        self.again_as(merchant_id, input, None).await
    }

    /// `again` with the attempt's imp_uid chosen by the caller (the scheduler fixes it on the
    /// schedule first, so a re-run finds the attempt instead of charging again).
    pub async fn again_as(
        self: &Arc<Self>,
        merchant_id: &str,
        input: AgainInput,
        imp_uid: Option<String>,
    ) -> Result<ChargeOutcome> {
        // One read for the key, its channel and the merchant_uid's pre-registration (batched
        // with concurrent charges' on PostgreSQL); the attempt is decided from it in Rust
        // (`attempt::keyed`) and the store only guards its insert.
        let ctx = self
            .store
            .charge_context(
                merchant_id,
                input.customer_uid.as_str(),
                input.order.merchant_uid.as_str(),
            )
            .await?;
        self.again_with(merchant_id, input, imp_uid, ctx).await
    }

    /// `again_as` with the charge context already read (`None`: the customer_uid is unknown).
    pub async fn again_with(
        self: &Arc<Self>,
        merchant_id: &str,
        input: AgainInput,
        imp_uid: Option<String>,
        ctx: Option<ChargeContext>,
    ) -> Result<ChargeOutcome> {
        let Some(ctx) = ctx else {
            return Err(Error::Refused(MSG_UNKNOWN_CUSTOMER.into()));
        };
        let Some(channel) = ctx.channel else {
            return Err(Error::Refused(super::attempt::MSG_KEY_CHANNEL_GONE.into()));
        };
        let mut template = self.new_attempt(merchant_id, &input.order, None);
        if let Some(id) = imp_uid {
            template.imp_uid = id;
        }
        template.customer_uid_usage = Some(input.usage.into());
        let p = super::attempt::keyed(
            template,
            input.order.amount,
            &ctx.customer,
            Some(&channel),
            ctx.prepared.as_ref(),
        )?;
        self.insert_guarded(&p).await?;
        self.charge_inserted(p, channel, Call::BillingKey(ctx.customer.billing_key))
            .await
    }

    /// The attempt of an API card charge of `o`, on `channel` (`None`: completed from the
    /// billing key, `attempt::keyed`).
    fn new_attempt(&self, merchant_id: &str, o: &OrderInput, channel: Option<&Channel>) -> Payment {
        let order = super::attempt::Order {
            merchant_uid: o.merchant_uid.as_str(),
            amount: Some(o.amount),
            currency: Some(&o.currency),
            tax_free: o.tax_free,
            vat_amount: o.vat_amount,
            name: &o.name,
            buyer: &o.buyer,
            custom_data: &o.custom_data,
            notice_urls: &o.notice_urls,
            escrow: false,
            card_quota: o.card_quota,
        };
        super::attempt::attempt(
            pier_domain::ImpUid::generate().into_string(),
            merchant_id,
            &order,
            &super::attempt::Flow::ApiCard,
            channel,
            self.now(),
        )
    }

    /// Inserts the attempt with the guard taken, or explains why the merchant_uid is not free.
    pub(crate) async fn insert_guarded(&self, p: &Payment) -> Result<()> {
        // The holder may release the guard between our insert and our look (an attempt that
        // just failed): then the merchant_uid is free, and we try again. Never report "already
        // paid" without seeing the paid holder (found by the chaos test).
        for _ in 0..3 {
            match self.store.insert_payment(p).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict(_)) => {
                    let holder = self
                        .store
                        .locked_payment(&p.merchant_id, &p.merchant_uid)
                        .await?;
                    match holder {
                        None => continue,
                        Some(h) if h.status == PaymentStatus::Ready => {
                            return Err(Error::Busy(MSG_IN_PROGRESS.into()))
                        }
                        // paid, or paid then cancelled: the merchant_uid is spent.
                        Some(_) => return Err(Error::Refused(MSG_ALREADY_PAID.into())),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Still changing hands: not final, the client retries.
        Err(Error::Busy(MSG_IN_PROGRESS.into()))
    }

    async fn run_charge(
        self: &Arc<Self>,
        p: Payment,
        amount: Amount,
        channel: Channel,
        call: Call,
        prepared: Option<Prepared>,
    ) -> Result<ChargeOutcome> {
        check_prepared_amount(prepared.as_ref(), &p.merchant_uid, Some(amount))?;
        self.insert_guarded(&p).await?;
        self.charge_inserted(p, channel, call).await
    }

    /// Steps 2–3 for an attempt inserted with its guard taken.
    async fn charge_inserted(
        self: &Arc<Self>,
        p: Payment,
        channel: Channel,
        call: Call,
    ) -> Result<ChargeOutcome> {
        let this = self.clone();
        // Detached: the attempt gets its record even if the client disconnects.
        let task = self.tasks.spawn(async move {
            let pg = this.pgs.for_channel(&channel);
            let order = order_of(&p);
            let mid = Mid(channel.mid.clone());
            let deadline = this.cfg.pg_deadline + std::time::Duration::from_secs(1);
            let answer = match call {
                Call::Keyed(card) => {
                    super::pg_call(
                        "approve_keyed",
                        deadline,
                        pg.approve_keyed(&mid, &order, card),
                    )
                    .await
                }
                Call::BillingKey(key) => {
                    super::pg_call(
                        "pay_with_key",
                        deadline,
                        pg.pay_with_key(&mid, &order, &key),
                    )
                    .await
                }
            };
            this.record_answer(&p, answer).await
        });
        match task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "charge task failed");
                Err(Error::Unavailable(
                    "결제 처리 중 오류가 발생했습니다. (internal error)".into(),
                ))
            }
        }
    }

    /// Records the PG's answer on an attempt and turns it into the API's outcome.
    async fn record_answer(
        &self,
        p: &Payment,
        answer: std::result::Result<Approval, PgError>,
    ) -> Result<ChargeOutcome> {
        let now = self.now();
        match answer {
            Ok(a) => {
                let paid = self.settle_paid(p, &a).await?;
                Ok(ChargeOutcome {
                    payment: paid,
                    declined: None,
                })
            }
            Err(PgError::Declined { code, message }) => {
                let reason = declined_reason(&code, &message);
                let failed = self
                    .store
                    .settle(
                        &p.imp_uid,
                        &Settlement::Failed {
                            reason: reason.clone(),
                            failed_at: now,
                        },
                        now,
                        &[],
                    )
                    .await?;
                Ok(ChargeOutcome {
                    payment: failed,
                    declined: Some(reason),
                })
            }
            Err(PgError::Rejected { code, message }) => {
                let reason = declined_reason(&code, &message);
                self.store
                    .settle(
                        &p.imp_uid,
                        &Settlement::Failed {
                            reason: reason.clone(),
                            failed_at: now,
                        },
                        now,
                        &[],
                    )
                    .await?;
                Err(Error::PgRefused(format!(
                    "카드정보 인증에 실패하였습니다. {reason}"
                )))
            }
            Err(PgError::Unreachable(why)) => {
                tracing::warn!(imp_uid = %p.imp_uid, %why, "PG unreachable");
                let reason =
                    "PG사 연결에 실패하였습니다. (PG unreachable; no payment was made)".to_string();
                self.store
                    .settle(
                        &p.imp_uid,
                        &Settlement::Failed {
                            reason: reason.clone(),
                            failed_at: now,
                        },
                        now,
                        &[],
                    )
                    .await?;
                Err(Error::PgRefused(reason))
            }
            Err(PgError::Unknown(why)) => {
                tracing::warn!(imp_uid = %p.imp_uid, %why, "PG outcome unknown; left for the reconciler");
                metrics::counter!("pier_pg_unknown_outcomes_total").increment(1);
                let s = Settlement::Unknown {
                    told_failed: false,
                    next_reconcile_at: now + FIRST_RECONCILE_DELAY_SECS,
                };
                match self.store.settle(&p.imp_uid, &s, now, &[]).await {
                    Ok(_) => {}
                    // The reconciler got there first (this call outlived the stale limit).
                    Err(StoreError::Stale(_)) => {
                        if let Some(cur) = self.store.get_payment(None, &p.imp_uid).await? {
                            if cur.status == PaymentStatus::Paid {
                                return Ok(ChargeOutcome {
                                    payment: cur,
                                    declined: None,
                                });
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                Err(Error::PgUnknown {
                    message: MSG_UNKNOWN.into(),
                    imp_uid: p.imp_uid.clone(),
                })
            }
        }
    }

    /// Records an approval with its `paid` webhook row, in one transaction.
    pub(crate) async fn settle_paid(&self, p: &Payment, a: &Approval) -> Result<Payment> {
        let now = self.now();
        let s = Settlement::Paid {
            pg_tid: a.pg_tid.clone(),
            apply_num: a.apply_num.clone(),
            paid_at: if a.approved_at > 0 {
                a.approved_at
            } else {
                now
            },
            card_code: a.card_code.clone(),
            card_name: a.card_name.clone(),
            card_number: a.card_number.clone(),
            card_type: a.card_type,
            card_quota: a.card_quota,
            bank_code: a.bank_code.clone(),
            bank_name: a.bank_name.clone(),
            receipt_url: a.receipt_url.clone(),
        };
        let ev = self.event_for(p, PaymentStatus::Paid, None);
        match self.store.settle(&p.imp_uid, &s, now, &[ev]).await {
            Ok(paid) => Ok(paid),
            // Settled concurrently (a live request and the reconciler both had the answer):
            // `settle` is guarded, so only one record and one webhook row exist.
            Err(StoreError::Stale(_)) => match self.store.get_payment(None, &p.imp_uid).await? {
                Some(cur) if cur.status == PaymentStatus::Paid => Ok(cur),
                // The reconciler recorded it failed, after voiding the order at the PG.
                _ => Err(Error::Refused(MSG_SETTLED_ELSEWHERE.into())),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// A webhook announcement for a payment (targets resolved at delivery).
    pub fn event_for(
        &self,
        p: &Payment,
        status: PaymentStatus,
        cancellation_id: Option<String>,
    ) -> OutboxEvent {
        OutboxEvent {
            id: pier_domain::ids::event_id(),
            merchant_id: p.merchant_id.clone(),
            imp_uid: p.imp_uid.clone(),
            merchant_uid: p.merchant_uid.clone(),
            status,
            cancellation_id,
            notice_urls: p.notice_url.clone(),
            created_at: self.now(),
        }
    }
}

/// The order as the PG sees it.
pub(crate) fn order_of(p: &Payment) -> Order {
    Order {
        order_id: p.imp_uid.clone(),
        merchant_uid: p.merchant_uid.clone(),
        amount_krw: p.amount,
        tax_free_krw: p.tax_free,
        name: p.name.clone(),
        buyer_name: p.buyer_name.clone(),
        card_quota: p.card_quota,
    }
}

fn declined_reason(code: &str, message: &str) -> String {
    if message.starts_with('[') || code.is_empty() {
        message.to_owned()
    } else {
        format!("[{code}] {message}")
    }
}

impl Engine {
    pub(crate) async fn issue_key_at_pg(
        &self,
        pg: &Arc<dyn Pg>,
        channel: &Channel,
        customer_uid: &str,
        card: CardData,
    ) -> std::result::Result<pier_pg::BillingKey, PgError> {
        let mid = Mid(channel.mid.clone());
        let deadline = self.cfg.pg_deadline + std::time::Duration::from_secs(1);
        super::pg_call(
            "issue_billing_key",
            deadline,
            pg.issue_billing_key(&mid, customer_uid, card),
        )
        .await
    }
}
