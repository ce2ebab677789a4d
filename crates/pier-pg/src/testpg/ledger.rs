//! The test PG's ledger: its own truth about money, independent of Pier's database.
//!
//! Records are kept in insertion order (a `Vec` plus an index) so a snapshot is cheap and stable,
//! and every change is an upsert of a whole record, so that the journal can replay a change by
//! writing the record again. Reliability tests compare `LedgerSnapshot` with Pier's payments: for
//! every `merchant_uid` the PG's net total must equal what Pier says was paid and refunded.

use super::table::{Chunked, Index};
use crate::{Approval, BillingKey, CancelOutcome, VbankIssued};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    Card,
    Trans,
    Phone,
    Vbank,
}

impl PayMethod {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "card" => Some(Self::Card),
            "trans" => Some(Self::Trans),
            "phone" => Some(Self::Phone),
            "vbank" => Some(Self::Vbank),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Trans => "trans",
            Self::Phone => "phone",
            Self::Vbank => "vbank",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum OrderState {
    Approved,
    Declined {
        code: String,
        message: String,
    },
    /// A virtual account waiting for its deposit.
    AwaitingDeposit,
    /// Net-cancelled (an approval voided, or a waiting virtual account withdrawn).
    Voided,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct OrderRec {
    pub mid: String,
    pub order_id: String,
    pub merchant_uid: String,
    pub method: PayMethod,
    pub amount_krw: i64,
    pub tax_free_krw: i64,
    pub state: OrderState,
    pub created_at: i64,
    /// Set once money moved: a card/trans/phone approval, or a virtual-account deposit.
    pub approval: Option<Approval>,
    pub vbank: Option<VbankIssued>,
    pub billing_key: Option<String>,
    pub cancelled_krw: i64,
    pub cancelled_tax_free_krw: i64,
    /// What was left of the approval when a net-cancel voided it.
    pub voided_krw: i64,
    pub voided_at: Option<i64>,
}

impl OrderRec {
    /// What can still be refunded.
    pub fn cancelable_krw(&self) -> i64 {
        match (&self.state, &self.approval) {
            (OrderState::Approved, Some(_)) => self.amount_krw - self.cancelled_krw,
            _ => 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CancelRec {
    pub mid: String,
    pub order_id: String,
    pub cancellation_id: String,
    pub tax_free_krw: i64,
    pub reason: Option<String>,
    pub outcome: CancelOutcome,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyRec {
    pub mid: String,
    pub customer_uid: Option<String>,
    pub facts: BillingKey,
    /// The card, sealed with AES-256-GCM (see `crypto`); never in clear, here or in the journal.
    pub sealed_card: String,
    pub issued_at: i64,
    pub deleted_at: Option<i64>,
}

/// One journal line: a record in its new state. Replaying the lines in order rebuilds the state.
// Entries are built, queued (boxed) and written once; their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// First line of a journal: proves the key that sealed its cards.
    Header {
        version: u32,
        key_check: String,
    },
    Order(OrderRec),
    Cancel(CancelRec),
    Key(KeyRec),
    /// A net-cancel of an order the PG had not seen: a late approval of it must be refused.
    Tombstone {
        mid: String,
        order_id: String,
    },
    /// A payment-window session in its new state, sealed whole (it holds the one-time token and
    /// the sealed card): written only to a shared journal (`shared`), so that a window opened
    /// through one Pier instance completes through another.
    Session {
        id: String,
        sealed: String,
    },
}

impl Entry {
    /// The record this entry writes. Two instances writing one subject concurrently conflict
    /// (`shared`); a tombstone shares its order's subject, so it conflicts with a charge of it.
    pub fn subject(&self) -> String {
        match self {
            Entry::Header { .. } => "h".to_owned(),
            Entry::Order(rec) => order_subject(&rec.order_id),
            Entry::Cancel(rec) => format!("c:{}:{}", rec.order_id, rec.cancellation_id),
            Entry::Key(rec) => key_subject(&rec.facts.billing_key),
            Entry::Tombstone { order_id, .. } => order_subject(order_id),
            Entry::Session { id, .. } => format!("s:{id}"),
        }
    }
}

/// The journal subject of an order (its record and its tombstone, `Entry::subject`).
pub(crate) fn order_subject(order_id: &str) -> String {
    format!("o:{order_id}")
}

/// The journal subject of a billing key (`Entry::subject`); a charge with the key reads it.
pub(crate) fn key_subject(billing_key: &str) -> String {
    format!("k:{billing_key}")
}

#[derive(Default)]
pub(crate) struct State {
    pub orders: Chunked<OrderRec>,
    pub order_ix: Index<String>,
    pub cancels: Chunked<CancelRec>,
    /// `(order_id, cancellation_id)` → position in `cancels`: Pier's cancel ids are per payment.
    pub cancel_ix: Index<(String, String)>,
    pub keys: Chunked<KeyRec>,
    pub key_ix: Index<String>,
    /// Virtual account number → position in `orders`.
    pub accounts: Index<String>,
    pub tombstones: HashSet<String>,
}

impl State {
    pub fn order(&self, order_id: &str) -> Option<&OrderRec> {
        self.order_ix.get(order_id).map(|i| &self.orders[i])
    }

    pub fn order_index(&self, order_id: &str) -> Option<usize> {
        self.order_ix.get(order_id)
    }

    pub fn put_order(&mut self, rec: OrderRec) -> usize {
        let account = rec.vbank.as_ref().map(|v| v.account_num.clone());
        let i = match self.order_ix.get(&rec.order_id) {
            Some(i) => {
                self.orders[i] = rec;
                i
            }
            None => {
                let id = rec.order_id.clone();
                let i = self.orders.push(rec);
                self.order_ix.insert(id, i);
                i
            }
        };
        if let Some(account) = account {
            self.accounts.insert(account, i);
        }
        i
    }

    pub fn cancel_index(&self, order_id: &str, cancellation_id: &str) -> Option<usize> {
        self.cancel_ix
            .get(&(order_id.to_owned(), cancellation_id.to_owned()))
    }

    pub fn put_cancel(&mut self, rec: CancelRec) {
        let key = (rec.order_id.clone(), rec.cancellation_id.clone());
        match self.cancel_ix.get(&key) {
            Some(i) => self.cancels[i] = rec,
            None => {
                let i = self.cancels.push(rec);
                self.cancel_ix.insert(key, i);
            }
        }
    }

    pub fn put_key(&mut self, rec: KeyRec) {
        match self.key_ix.get(&rec.facts.billing_key) {
            Some(i) => self.keys[i] = rec,
            None => {
                let id = rec.facts.billing_key.clone();
                let i = self.keys.push(rec);
                self.key_ix.insert(id, i);
            }
        }
    }

    pub fn live_key(&self, mid: &str, billing_key: &str) -> Option<&KeyRec> {
        let key = &self.keys[self.key_ix.get(billing_key)?];
        (key.mid == mid && key.deleted_at.is_none()).then_some(key)
    }

    /// Removes the record(s) of `entry`'s subject, so that the journal's entries of that subject
    /// can be replayed on a clean slate (`shared::repair`). An order's subject is its record and
    /// its tombstone. Other records keep their contents; at most one moves (`swap_remove`).
    pub fn forget(&mut self, entry: &Entry) {
        match entry {
            Entry::Header { .. } | Entry::Session { .. } => {}
            Entry::Order(OrderRec { order_id, .. }) | Entry::Tombstone { order_id, .. } => {
                self.tombstones.remove(order_id);
                let Some(i) = self.order_ix.remove(order_id.as_str()) else {
                    return;
                };
                if let Some(v) = self.orders.swap_remove(i).and_then(|r| r.vbank) {
                    self.accounts.remove(v.account_num.as_str());
                }
                if i < self.orders.len() {
                    let moved = &self.orders[i];
                    self.order_ix.insert(moved.order_id.clone(), i);
                    if let Some(v) = &moved.vbank {
                        self.accounts.insert(v.account_num.clone(), i);
                    }
                }
            }
            Entry::Cancel(rec) => {
                let key = (rec.order_id.clone(), rec.cancellation_id.clone());
                let Some(i) = self.cancel_ix.remove(&key) else {
                    return;
                };
                self.cancels.swap_remove(i);
                if i < self.cancels.len() {
                    let moved = &self.cancels[i];
                    let key = (moved.order_id.clone(), moved.cancellation_id.clone());
                    self.cancel_ix.insert(key, i);
                }
            }
            Entry::Key(rec) => {
                let Some(i) = self.key_ix.remove(rec.facts.billing_key.as_str()) else {
                    return;
                };
                self.keys.swap_remove(i);
                if i < self.keys.len() {
                    let moved = self.keys[i].facts.billing_key.clone();
                    self.key_ix.insert(moved, i);
                }
            }
        }
    }

    /// Replay one journal entry.
    pub fn apply(&mut self, entry: Entry) {
        match entry {
            // Sessions are applied by `Books::apply` (they need the sealer), never from a file.
            Entry::Header { .. } | Entry::Session { .. } => {}
            Entry::Order(rec) => {
                self.put_order(rec);
            }
            Entry::Cancel(rec) => self.put_cancel(rec),
            Entry::Key(rec) => self.put_key(rec),
            Entry::Tombstone { order_id, .. } => {
                self.tombstones.insert(order_id);
            }
        }
    }

    pub fn snapshot(&self, now: i64) -> LedgerSnapshot {
        let mut orders = Vec::with_capacity(self.orders.len());
        let mut vbanks = Vec::new();
        let mut totals: BTreeMap<(String, String), MerchantTotal> = BTreeMap::new();
        for o in self.orders.iter() {
            let status = match (&o.state, o.cancelled_krw) {
                (OrderState::Declined { .. }, _) => LedgerStatus::Declined,
                (OrderState::Voided, _) => LedgerStatus::Voided,
                (OrderState::AwaitingDeposit, _) => match &o.vbank {
                    Some(v) if now > v.due_unix => LedgerStatus::Expired,
                    _ => LedgerStatus::AwaitingDeposit,
                },
                (OrderState::Approved, 0) => LedgerStatus::Approved,
                (OrderState::Approved, c) if c < o.amount_krw => LedgerStatus::PartiallyCancelled,
                (OrderState::Approved, _) => LedgerStatus::Cancelled,
            };
            let approved_krw = if o.approval.is_some() {
                o.amount_krw
            } else {
                0
            };
            let net_krw = approved_krw - o.cancelled_krw - o.voided_krw;
            let (decline_code, decline_message) = match &o.state {
                OrderState::Declined { code, message } => {
                    (Some(code.clone()), Some(message.clone()))
                }
                _ => (None, None),
            };
            let pg_tid = o
                .approval
                .as_ref()
                .map(|a| a.pg_tid.clone())
                .or_else(|| o.vbank.as_ref().map(|v| v.pg_tid.clone()));
            orders.push(LedgerOrder {
                mid: o.mid.clone(),
                order_id: o.order_id.clone(),
                merchant_uid: o.merchant_uid.clone(),
                method: o.method,
                status,
                amount_krw: o.amount_krw,
                cancelled_krw: o.cancelled_krw,
                voided_krw: o.voided_krw,
                net_krw,
                pg_tid,
                approved_at: o.approval.as_ref().map(|a| a.approved_at),
                billing_key: o.billing_key.clone(),
                decline_code,
                decline_message,
            });
            if let Some(v) = &o.vbank {
                let status = match o.state {
                    OrderState::Voided => LedgerVbankStatus::Voided,
                    _ if o.approval.is_some() => LedgerVbankStatus::Deposited,
                    _ if now > v.due_unix => LedgerVbankStatus::Expired,
                    _ => LedgerVbankStatus::AwaitingDeposit,
                };
                vbanks.push(LedgerVbank {
                    mid: o.mid.clone(),
                    order_id: o.order_id.clone(),
                    merchant_uid: o.merchant_uid.clone(),
                    amount_krw: o.amount_krw,
                    pg_tid: v.pg_tid.clone(),
                    bank_code: v.bank_code.clone(),
                    bank_name: v.bank_name.clone(),
                    account_num: v.account_num.clone(),
                    holder: v.holder.clone(),
                    due_unix: v.due_unix,
                    issued_at: v.issued_at,
                    status,
                    deposited_at: o.approval.as_ref().map(|a| a.approved_at),
                });
            }
            if approved_krw > 0 {
                let t = totals
                    .entry((o.mid.clone(), o.merchant_uid.clone()))
                    .or_insert_with(|| MerchantTotal {
                        mid: o.mid.clone(),
                        merchant_uid: o.merchant_uid.clone(),
                        ..MerchantTotal::default()
                    });
                t.approved_krw += approved_krw;
                t.refunded_krw += o.cancelled_krw + o.voided_krw;
                t.net_krw += net_krw;
                t.approvals += 1;
                if net_krw > 0 {
                    t.live_approvals += 1;
                }
            }
        }
        let cancels = self
            .cancels
            .iter()
            .map(|c| LedgerCancel {
                mid: c.mid.clone(),
                order_id: c.order_id.clone(),
                cancellation_id: c.cancellation_id.clone(),
                pg_cancel_tid: c.outcome.pg_cancel_tid.clone(),
                amount_krw: c.outcome.amount_krw,
                tax_free_krw: c.tax_free_krw,
                cancelled_at: c.outcome.cancelled_at,
                reason: c.reason.clone(),
            })
            .collect();
        let billing_keys = self
            .keys
            .iter()
            .map(|k| LedgerBillingKey {
                mid: k.mid.clone(),
                billing_key: k.facts.billing_key.clone(),
                customer_uid: k.customer_uid.clone(),
                card_code: k.facts.card_code.clone(),
                card_name: k.facts.card_name.clone(),
                card_number: k.facts.card_number.clone(),
                card_type: k.facts.card_type,
                issued_at: k.issued_at,
                deleted_at: k.deleted_at,
            })
            .collect();
        LedgerSnapshot {
            taken_at: now,
            orders,
            cancels,
            billing_keys,
            vbanks,
            totals: totals.into_values().collect(),
        }
    }
}

/// A serializable copy of the test PG's ledger (`Engine::ledger_snapshot`, `GET /admin/ledger`).
/// Card data never appears in it, sealed or not: billing keys show the masked number only.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerSnapshot {
    pub taken_at: i64,
    /// Every attempt the PG processed (approved, declined, voided, virtual accounts), oldest first.
    pub orders: Vec<LedgerOrder>,
    pub cancels: Vec<LedgerCancel>,
    pub billing_keys: Vec<LedgerBillingKey>,
    pub vbanks: Vec<LedgerVbank>,
    /// Money per `(mid, merchant_uid)`, for every merchant_uid with at least one approval.
    pub totals: Vec<MerchantTotal>,
}

impl LedgerSnapshot {
    pub fn order(&self, order_id: &str) -> Option<&LedgerOrder> {
        self.orders.iter().find(|o| o.order_id == order_id)
    }

    pub fn total(&self, mid: &str, merchant_uid: &str) -> Option<&MerchantTotal> {
        self.totals
            .iter()
            .find(|t| t.mid == mid && t.merchant_uid == merchant_uid)
    }

    /// Net money the PG holds for one MID (approvals minus refunds and voids).
    pub fn net_krw(&self, mid: &str) -> i64 {
        self.totals
            .iter()
            .filter(|t| t.mid == mid)
            .map(|t| t.net_krw)
            .sum()
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    Approved,
    PartiallyCancelled,
    /// Fully refunded by cancels.
    Cancelled,
    /// Net-cancelled.
    Voided,
    Declined,
    AwaitingDeposit,
    /// A virtual account whose due time passed without a deposit.
    Expired,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerOrder {
    pub mid: String,
    pub order_id: String,
    pub merchant_uid: String,
    pub method: PayMethod,
    pub status: LedgerStatus,
    pub amount_krw: i64,
    pub cancelled_krw: i64,
    pub voided_krw: i64,
    /// Money the PG holds for this order now (0 unless approved).
    pub net_krw: i64,
    pub pg_tid: Option<String>,
    pub approved_at: Option<i64>,
    pub billing_key: Option<String>,
    pub decline_code: Option<String>,
    pub decline_message: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerCancel {
    pub mid: String,
    pub order_id: String,
    pub cancellation_id: String,
    pub pg_cancel_tid: String,
    pub amount_krw: i64,
    pub tax_free_krw: i64,
    pub cancelled_at: i64,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerBillingKey {
    pub mid: String,
    pub billing_key: String,
    pub customer_uid: Option<String>,
    pub card_code: Option<String>,
    pub card_name: Option<String>,
    /// Masked.
    pub card_number: Option<String>,
    pub card_type: Option<i64>,
    pub issued_at: i64,
    pub deleted_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LedgerVbankStatus {
    AwaitingDeposit,
    Deposited,
    Expired,
    Voided,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LedgerVbank {
    pub mid: String,
    pub order_id: String,
    pub merchant_uid: String,
    pub amount_krw: i64,
    pub pg_tid: String,
    pub bank_code: String,
    pub bank_name: String,
    pub account_num: String,
    pub holder: String,
    pub due_unix: i64,
    pub issued_at: i64,
    pub status: LedgerVbankStatus,
    pub deposited_at: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MerchantTotal {
    pub mid: String,
    pub merchant_uid: String,
    /// Orders of this merchant_uid that were ever approved (or deposited).
    pub approvals: u32,
    /// Approved orders still holding money. More than one is a double charge.
    pub live_approvals: u32,
    pub approved_krw: i64,
    /// Cancels plus net-cancel voids.
    pub refunded_krw: i64,
    pub net_krw: i64,
}
