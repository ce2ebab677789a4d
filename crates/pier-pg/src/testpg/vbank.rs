//! Virtual accounts: issuing one, and the buyer's (simulated) deposit into it.

use super::engine::Engine;
use super::ledger::{order_subject, Entry, OrderRec, OrderState, PayMethod, State};
use super::rules::{check_order, check_text, duplicate_order, rejected, EngineResult};
use crate::{Approval, Mid, Order, PgError, PgEvent, VbankIssued, VbankRequest};
use pier_domain::codes;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A deposit on a virtual account, as recorded by the PG.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Deposit {
    pub mid: Mid,
    pub order_id: String,
    pub merchant_uid: String,
    pub amount_krw: i64,
    pub pg_tid: String,
    pub deposited_at: i64,
}

impl From<Deposit> for PgEvent {
    fn from(d: Deposit) -> Self {
        PgEvent::VbankDeposited {
            mid: d.mid,
            order_id: d.order_id,
            merchant_uid: d.merchant_uid,
            amount_krw: d.amount_krw,
            pg_tid: d.pg_tid,
            deposited_at: d.deposited_at,
        }
    }
}

/// Which virtual account a simulated deposit goes to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DepositTarget {
    OrderId(String),
    Account(String),
}

impl Engine {
    pub(crate) fn issue_vbank(&self, mid: &Mid, req: &VbankRequest) -> EngineResult<VbankIssued> {
        check_order(&req.order, false)?;
        check_text("holder", req.holder.as_deref())?;
        let now = self.now();
        if req.due_unix <= now {
            return Err(rejected("INVALID_DUE", "입금기한이 현재 시각 이전입니다.").into());
        }
        let mut books = self.lock();
        let holder = req
            .holder
            .clone()
            .unwrap_or_else(|| self.inner.config.vbank_holder.clone());
        Ok(self.issue_vbank_locked(
            &mut books.ledger,
            mid,
            &req.order,
            &req.bank_code,
            req.due_unix,
            holder,
            now,
        )?)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn issue_vbank_locked(
        &self,
        st: &mut State,
        mid: &Mid,
        order: &Order,
        bank_code: &str,
        due_unix: i64,
        holder: String,
        now: i64,
    ) -> Result<VbankIssued, PgError> {
        let bank_name = codes::bank_name(bank_code)
            .ok_or_else(|| rejected("UNSUPPORTED_BANK", "지원하지 않는 은행입니다."))?;
        self.depends_on(|| order_subject(&order.order_id));
        if let Some(rec) = st.order(&order.order_id) {
            return match &rec.vbank {
                Some(v)
                    if rec.mid == mid.0
                        && rec.merchant_uid == order.merchant_uid
                        && rec.amount_krw == order.amount_krw
                        && v.bank_code == bank_code =>
                {
                    Ok(v.clone())
                }
                _ => Err(duplicate_order()),
            };
        }
        if st.tombstones.contains(&order.order_id) {
            return Err(rejected("ORDER_VOIDED", "망취소된 거래입니다."));
        }
        let account_num = loop {
            let n: u64 = rand::thread_rng().gen_range(0..100_000_000_000);
            let candidate = format!("{bank_code}{n:011}");
            if !st.accounts.contains_key(&candidate) {
                break candidate;
            }
        };
        let issued = VbankIssued {
            pg_tid: self.next_tid('V'),
            bank_code: bank_code.to_owned(),
            bank_name: bank_name.to_owned(),
            account_num,
            holder,
            due_unix,
            issued_at: now,
        };
        let rec = OrderRec {
            mid: mid.0.clone(),
            order_id: order.order_id.clone(),
            merchant_uid: order.merchant_uid.clone(),
            method: PayMethod::Vbank,
            amount_krw: order.amount_krw,
            tax_free_krw: order.tax_free_krw,
            state: OrderState::AwaitingDeposit,
            created_at: now,
            approval: None,
            vbank: Some(issued.clone()),
            billing_key: None,
            cancelled_krw: 0,
            cancelled_tax_free_krw: 0,
            voided_krw: 0,
            voided_at: None,
        };
        self.log(|| Entry::Order(rec.clone()));
        st.put_order(rec);
        Ok(issued)
    }

    /// Simulate the buyer's bank transfer into a virtual account. Refused after the due time (by
    /// the engine's clock), for a withdrawn account, a second deposit, or a wrong amount. On
    /// success the deposit is announced to subscribers as `PgEvent::VbankDeposited`.
    pub fn deposit(
        &self,
        target: &DepositTarget,
        amount_krw: Option<i64>,
    ) -> Result<Deposit, PgError> {
        self.outside_run()?;
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        let i = match target {
            DepositTarget::OrderId(id) => st.order_index(id),
            DepositTarget::Account(acct) => st.accounts.get(acct.as_str()),
        };
        let no_such = || rejected("NO_SUCH_ACCOUNT", "존재하지 않는 가상계좌입니다.");
        let i = i.ok_or_else(no_such)?;
        let rec = &mut st.orders[i];
        let vbank = rec.vbank.clone().ok_or_else(no_such)?;
        match rec.state {
            OrderState::AwaitingDeposit => {}
            OrderState::Approved => {
                return Err(rejected(
                    "ALREADY_DEPOSITED",
                    "이미 입금 완료된 가상계좌입니다.",
                ))
            }
            _ => return Err(rejected("ACCOUNT_CLOSED", "해지된 가상계좌입니다.")),
        }
        if now > vbank.due_unix {
            return Err(rejected(
                "DEPOSIT_EXPIRED",
                "입금기한이 지난 가상계좌입니다.",
            ));
        }
        if amount_krw.is_some_and(|a| a != rec.amount_krw) {
            return Err(rejected(
                "AMOUNT_MISMATCH",
                "입금액이 결제금액과 일치하지 않습니다.",
            ));
        }
        rec.state = OrderState::Approved;
        rec.approval = Some(Approval {
            pg_tid: vbank.pg_tid.clone(),
            approved_at: now,
            amount_krw: rec.amount_krw,
            bank_code: Some(vbank.bank_code.clone()),
            bank_name: Some(vbank.bank_name.clone()),
            receipt_url: Some(self.receipt_url(&vbank.pg_tid)),
            ..Approval::default()
        });
        let deposit = Deposit {
            mid: Mid(rec.mid.clone()),
            order_id: rec.order_id.clone(),
            merchant_uid: rec.merchant_uid.clone(),
            amount_krw: rec.amount_krw,
            pg_tid: vbank.pg_tid,
            deposited_at: now,
        };
        self.log(|| Entry::Order(rec.clone()));
        // Sent under the lock so that subscribers see deposits in ledger order. No receivers is
        // fine: the deposit is in the ledger and `inquire` reports it. With a shared journal it
        // is sent once the entry is committed (`deposit_shared`).
        if !self.is_shared() {
            let _ = self.inner.events.send(deposit.clone().into());
        }
        Ok(deposit)
    }
}
