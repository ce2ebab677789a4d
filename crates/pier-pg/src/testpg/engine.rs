//! The engine: one simulated acquirer with its ledger, billing-key vault and virtual accounts.
//!
//! All state sits behind one mutex, held for a few microseconds per call and never across an
//! `.await`: every operation is "check, decide, record" in one critical section, which is what
//! makes the PG-side idempotency hold under concurrency (two approvals of one `order_id` cannot
//! both pass the duplicate check). Outcomes are decided by the card number before the lock is
//! taken (see `cards`), so the critical section is only map lookups and one record write.

use super::auth::Sessions;
use super::cards::{self, Behaviour, Decline, Issuer};
use super::crypto::Sealer;
use super::journal::Journal;
use super::ledger::{
    CancelRec, Entry, KeyRec, LedgerSnapshot, OrderRec, OrderState, PayMethod, State,
};
use crate::{
    Approval, BillingKey, CancelOutcome, CancelRequest, CardData, Inquiry, Mid, Order, PgError,
    PgEvent, VbankIssued, VbankRequest,
};
use pier_domain::{codes, ids::random_hex, Clock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Amounts above this are refused before any attempt (everything is bounded).
pub const MAX_AMOUNT_KRW: i64 = 10_000_000_000;
/// Longest id (order id, merchant_uid, customer_uid, cancellation id) the PG accepts.
const MAX_ID_CHARS: usize = 128;
const MAX_TEXT_CHARS: usize = 1_000;
const KEY_CHECK: &[u8] = b"pier testpg journal";

/// How the engine is set up. `Debug` hides the key.
#[derive(Clone)]
pub struct EngineConfig {
    /// AES-256-GCM key sealing card data (billing keys, window sessions), here and in the journal.
    pub encryption_key: [u8; 32],
    /// Append-only journal, replayed at start; `None` keeps everything in memory.
    pub journal_path: Option<PathBuf>,
    /// Public base URL of the test PG's pages: windows are `{base_url}/testpg/window/{id}`,
    /// receipts `{base_url}/testpg/receipts/{pg_tid}`.
    pub base_url: String,
    /// Account holder shown on virtual accounts issued without one.
    pub vbank_holder: String,
    /// Deposit deadline of virtual accounts issued from the payment window (which has no due).
    pub vbank_due_secs: i64,
    /// How long a payment-window session stays usable.
    pub session_ttl_secs: i64,
    /// Open payment-window sessions kept at most; beyond that `begin_auth` is refused.
    pub max_sessions: usize,
    /// Events buffered per subscriber before a slow one starts losing them.
    pub event_capacity: usize,
}

impl EngineConfig {
    pub fn new(encryption_key: [u8; 32], base_url: impl Into<String>) -> Self {
        Self {
            encryption_key,
            journal_path: None,
            base_url: base_url.into(),
            vbank_holder: "(주)피어테스트".into(),
            vbank_due_secs: 3 * 24 * 3600,
            session_ttl_secs: 30 * 60,
            max_sessions: 100_000,
            event_capacity: 4_096,
        }
    }

    /// A fresh random key and no journal: for tests, benchmarks and throwaway demos.
    pub fn ephemeral(base_url: impl Into<String>) -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill(&mut key);
        Self::new(key, base_url)
    }

    pub fn with_journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal_path = Some(path.into());
        self
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("encryption_key", &"<redacted>")
            .field("journal_path", &self.journal_path)
            .field("base_url", &self.base_url)
            .field("vbank_holder", &self.vbank_holder)
            .field("vbank_due_secs", &self.vbank_due_secs)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("max_sessions", &self.max_sessions)
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

/// Parse an encryption key given as 64 hex digits or as base64 of 32 bytes (CLI flags, env).
pub fn parse_encryption_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "expected 64 hex digits or base64 of 32 bytes".to_owned())?
    };
    bytes
        .try_into()
        .map_err(|_| "the key must be exactly 32 bytes".to_owned())
}

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

/// A connector-facing failure: a PG answer, or no answer at all (the timeout and lost-response
/// cards). Each transport turns `NoAnswer` into its own silence: the in-process connector waits
/// out its deadline, pgsim holds the HTTP request open.
#[derive(Debug)]
pub(crate) enum Fail {
    Pg(PgError),
    NoAnswer,
}

impl From<PgError> for Fail {
    fn from(e: PgError) -> Self {
        Fail::Pg(e)
    }
}

pub(crate) type EngineResult<T> = Result<T, Fail>;

/// What the issuer decided about one charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not processed and not answered.
    Hang,
    Decline(Decline),
    /// Approved; with `lose_answer` the answer never leaves the PG.
    Approve {
        lose_answer: bool,
    },
}

pub(crate) fn verdict(behaviour: Behaviour, holder: Option<Decline>, with_key: bool) -> Verdict {
    match (behaviour, holder) {
        (Behaviour::Timeout, _) => Verdict::Hang,
        (Behaviour::Decline { decline, .. }, _) => Verdict::Decline(decline),
        (Behaviour::KeyChargesDecline { decline }, _) if with_key => Verdict::Decline(decline),
        (_, Some(decline)) => Verdict::Decline(decline),
        (Behaviour::LoseResponse, None) => Verdict::Approve { lose_answer: true },
        _ => Verdict::Approve { lose_answer: false },
    }
}

/// Why a billing key cannot be issued for this card, if it cannot.
pub(crate) fn issue_refusal(behaviour: Behaviour, holder: Option<Decline>) -> Option<PgError> {
    match behaviour {
        Behaviour::InvalidNumber => Some(cards::invalid_number()),
        Behaviour::Decline {
            decline,
            issue_ok: false,
        } => Some(decline.issue_rejected()),
        Behaviour::IssueFails => Some(cards::NO_RECURRING.issue_rejected()),
        _ => holder.map(Decline::issue_rejected),
    }
}

/// The card facts a charge reports back.
#[derive(Clone, Debug)]
pub(crate) struct CardFacts {
    pub code: String,
    pub name: String,
    pub masked: String,
    pub card_type: i64,
}

impl CardFacts {
    pub fn new(issuer: Issuer, masked: String) -> Self {
        Self {
            code: issuer.card_code.to_owned(),
            name: issuer.card_name().to_owned(),
            masked,
            card_type: issuer.card_type,
        }
    }

    fn from_key(key: &BillingKey) -> Self {
        Self {
            code: key.card_code.clone().unwrap_or_default(),
            name: key.card_name.clone().unwrap_or_default(),
            masked: key.card_number.clone().unwrap_or_default(),
            card_type: key.card_type.unwrap_or(0),
        }
    }
}

/// What is being charged, beyond the order.
pub(crate) struct ChargeSpec {
    pub method: PayMethod,
    pub card: Option<CardFacts>,
    pub bank_code: Option<String>,
    pub quota: i64,
    /// The billing key charged (or issued together with this payment).
    pub billing_key: Option<String>,
    /// Report `billing_key` in the approval (window billing with a first payment).
    pub report_key: bool,
}

#[derive(Default)]
pub(crate) struct Books {
    pub ledger: State,
    pub sessions: Sessions,
}

impl Books {
    /// Replay one entry of a shared journal (ledger records and window sessions).
    pub fn apply(&mut self, entry: Entry, sealer: &Sealer) {
        match entry {
            Entry::Session { id, sealed } => self.sessions.apply_sealed(id, &sealed, sealer),
            other => self.ledger.apply(other),
        }
    }
}

pub(crate) struct Inner {
    pub base_url: String,
    pub config: EngineConfig,
    pub clock: Arc<dyn Clock>,
    pub sealer: Sealer,
    pub books: Mutex<Books>,
    pub journal: Option<Journal>,
    pub events: broadcast::Sender<PgEvent>,
    /// Random per engine start, so transaction ids never repeat across restarts.
    pub tid_prefix: u32,
    pub seq: AtomicU64,
    /// The journal in Pier's database that every instance shares (`Engine::new_shared`).
    pub shared: Option<super::shared::Shared>,
}

/// The simulated acquirer. Cheap to clone (an `Arc` inside); all clones share one ledger.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

fn rejected(code: &str, message: impl Into<String>) -> PgError {
    PgError::Rejected {
        code: code.into(),
        message: message.into(),
    }
}

pub(crate) fn check_id(field: &str, value: &str) -> Result<(), PgError> {
    if value.trim().is_empty() || value.chars().count() > MAX_ID_CHARS {
        return Err(rejected(
            "INVALID_REQUEST",
            format!("{field}: must be 1 to {MAX_ID_CHARS} characters"),
        ));
    }
    Ok(())
}

fn check_text(field: &str, value: Option<&str>) -> Result<(), PgError> {
    match value {
        Some(v) if v.chars().count() > MAX_TEXT_CHARS => Err(rejected(
            "INVALID_REQUEST",
            format!("{field}: must be at most {MAX_TEXT_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

/// Checks every order carries before the PG looks at it. `allow_zero` only for window billing-key
/// issuance, the one place an amount of 0 exists.
pub(crate) fn check_order(order: &Order, allow_zero: bool) -> Result<(), PgError> {
    check_id("order_id", &order.order_id)?;
    check_id("merchant_uid", &order.merchant_uid)?;
    check_text("name", order.name.as_deref())?;
    check_text("buyer_name", order.buyer_name.as_deref())?;
    let min = if allow_zero { 0 } else { 1 };
    if !(min..=MAX_AMOUNT_KRW).contains(&order.amount_krw) {
        return Err(rejected("INVALID_AMOUNT", "결제금액이 올바르지 않습니다."));
    }
    if !(0..=order.amount_krw).contains(&order.tax_free_krw) {
        return Err(rejected(
            "INVALID_TAX_FREE",
            "면세금액이 올바르지 않습니다.",
        ));
    }
    Ok(())
}

fn duplicate_order() -> PgError {
    rejected("DUPLICATE_ORDER_ID", "이미 사용된 주문번호입니다.")
}

fn unknown_key() -> PgError {
    rejected("UNKNOWN_BILLING_KEY", "등록되지 않은 빌링키입니다.")
}

fn cancel_exceeds() -> PgError {
    PgError::Declined {
        code: "CANCEL_AMOUNT_EXCEEDED".into(),
        message:
            "결제취소에 실패하였습니다.(requested cancel amount is bigger than cancelable amount)"
                .into(),
    }
}

/// The answer to a charge whose `order_id` the PG already processed: the same answer again, never
/// a second charge. A different order under the same id is refused.
fn replay_charge(rec: &OrderRec, mid: &Mid, order: &Order) -> Result<Approval, PgError> {
    if rec.mid != mid.0
        || rec.merchant_uid != order.merchant_uid
        || rec.amount_krw != order.amount_krw
        || rec.method == PayMethod::Vbank
    {
        return Err(duplicate_order());
    }
    match (&rec.state, &rec.approval) {
        (OrderState::Approved, Some(approval)) => Ok(approval.clone()),
        (OrderState::Declined { code, message }, _) => Err(PgError::Declined {
            code: code.clone(),
            message: message.clone(),
        }),
        (OrderState::Voided, _) => Err(rejected("ORDER_VOIDED", "망취소된 거래입니다.")),
        _ => Err(duplicate_order()),
    }
}

impl Engine {
    /// Build an engine. With a journal this reads and replays it (blocking file IO: call it at
    /// start-up, not per request) and fails if it was written under another key.
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>) -> io::Result<Self> {
        let sealer = Sealer::new(&config.encryption_key);
        let (journal, ledger) = match &config.journal_path {
            Some(path) => {
                let key_check = sealer.seal(KEY_CHECK, b"journal-header");
                let check =
                    |blob: &str| sealer.open(blob, b"journal-header").as_deref() == Some(KEY_CHECK);
                let (journal, state) = Journal::open(path, key_check, check)?;
                (Some(journal), state)
            }
            None => (None, State::default()),
        };
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                base_url,
                clock,
                sealer,
                books: Mutex::new(Books {
                    ledger,
                    sessions: Sessions::default(),
                }),
                journal,
                events,
                tid_prefix: rand::thread_rng().gen(),
                seq: AtomicU64::new(1),
                config,
                shared: None,
            }),
        })
    }

    /// An engine with no state yet, around an optional shared journal (`shared::new_shared`).
    pub(crate) fn bare(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        shared: Option<super::shared::Shared>,
    ) -> Self {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                base_url,
                clock,
                sealer: Sealer::new(&config.encryption_key),
                books: Mutex::new(Books::default()),
                journal: None,
                events,
                tid_prefix: rand::thread_rng().gen(),
                seq: AtomicU64::new(1),
                config,
                shared,
            }),
        }
    }

    /// The key check a journal's header carries (sealed, so only the same key opens it).
    pub(crate) fn key_check(&self) -> String {
        self.inner.sealer.seal(KEY_CHECK, b"journal-header")
    }

    pub(crate) fn key_matches(&self, key_check: &str) -> bool {
        self.inner
            .sealer
            .open(key_check, b"journal-header")
            .as_deref()
            == Some(KEY_CHECK)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Base URL of the test PG's pages, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Events the PG sends on its own (virtual-account deposits). A receiver that falls more than
    /// `event_capacity` behind loses the oldest ones (`RecvError::Lagged`); see `PgEvent`.
    pub fn subscribe(&self) -> broadcast::Receiver<PgEvent> {
        self.inner.events.subscribe()
    }

    pub fn ledger_snapshot(&self) -> LedgerSnapshot {
        let now = self.now();
        self.lock().ledger.snapshot(now)
    }

    /// Wait until every change so far is written to the journal file (no-op without one).
    pub async fn flush_journal(&self) -> io::Result<()> {
        match &self.inner.journal {
            Some(j) => j.flush().await,
            None => Ok(()),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now_unix()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Books> {
        // A panic while holding the lock leaves records whole (each change is one assignment), so
        // a poisoned lock is still usable.
        self.inner.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn log(&self, entry: impl FnOnce() -> Entry) {
        if let Some(sh) = &self.inner.shared {
            sh.capture(entry());
        } else if let Some(j) = &self.inner.journal {
            j.append(entry());
        }
    }

    /// The refusal of a public change method called directly on an engine with a shared journal:
    /// its change could not be journalled (the `*_shared` methods and the window pages are).
    pub(crate) fn outside_run(&self) -> Result<(), PgError> {
        match &self.inner.shared {
            Some(sh) if !sh.capturing() => Err(rejected(
                "JOURNALLED_ONLY",
                "with a shared journal, changes go through the journalled entry points",
            )),
            _ => Ok(()),
        }
    }

    /// Whether the state lives in a shared journal (see `shared`).
    pub(crate) fn is_shared(&self) -> bool {
        self.inner.shared.is_some()
    }

    /// An entry that could not be journalled: with a shared journal the local state is no longer
    /// the journal's, so it is rebuilt from the journal before the next operation.
    pub(crate) fn lost_entry(&self, why: &str) {
        tracing::error!(error = why, "testpg journal: an entry was lost");
        if let Some(sh) = &self.inner.shared {
            sh.mark_dirty();
        }
    }

    fn next_tid(&self, kind: char) -> String {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        format!("TPG{kind}{:08X}{seq:010}", self.inner.tid_prefix)
    }

    fn receipt_url(&self, tid: &str) -> String {
        format!("{}/testpg/receipts/{tid}", self.inner.base_url)
    }

    /// Record and answer one charge. The caller holds the lock, so the duplicate check and the
    /// write are one step.
    pub(crate) fn charge_locked(
        &self,
        st: &mut State,
        mid: &Mid,
        order: &Order,
        spec: ChargeSpec,
        verdict: Verdict,
        now: i64,
    ) -> EngineResult<Approval> {
        if let Some(rec) = st.order(&order.order_id) {
            // Even for the lost-response card: only the first answer is lost.
            return Ok(replay_charge(rec, mid, order)?);
        }
        if st.tombstones.contains(&order.order_id) {
            return Err(rejected("ORDER_VOIDED", "망취소된 거래입니다.").into());
        }
        let mut rec = OrderRec {
            mid: mid.0.clone(),
            order_id: order.order_id.clone(),
            merchant_uid: order.merchant_uid.clone(),
            method: spec.method,
            amount_krw: order.amount_krw,
            tax_free_krw: order.tax_free_krw,
            state: OrderState::Approved,
            created_at: now,
            approval: None,
            vbank: None,
            billing_key: spec.billing_key.clone(),
            cancelled_krw: 0,
            cancelled_tax_free_krw: 0,
            voided_krw: 0,
            voided_at: None,
        };
        let lose_answer = match verdict {
            Verdict::Hang => return Err(Fail::NoAnswer),
            Verdict::Decline(d) => {
                rec.state = OrderState::Declined {
                    code: d.code.into(),
                    message: d.message.into(),
                };
                self.log(|| Entry::Order(rec.clone()));
                st.put_order(rec);
                return Err(d.declined().into());
            }
            Verdict::Approve { lose_answer } => lose_answer,
        };
        let pg_tid = self.next_tid('A');
        let bank_name = spec
            .bank_code
            .as_deref()
            .and_then(codes::bank_name)
            .map(str::to_owned);
        let is_card = spec.method == PayMethod::Card;
        let approval = Approval {
            receipt_url: Some(self.receipt_url(&pg_tid)),
            pg_tid,
            apply_num: is_card
                .then(|| format!("{:08}", rand::thread_rng().gen_range(0..100_000_000))),
            approved_at: now,
            amount_krw: order.amount_krw,
            card_code: spec.card.as_ref().map(|c| c.code.clone()),
            card_name: spec.card.as_ref().map(|c| c.name.clone()),
            card_number: spec.card.as_ref().map(|c| c.masked.clone()),
            card_type: spec.card.as_ref().map(|c| c.card_type),
            card_quota: if is_card { spec.quota } else { 0 },
            bank_code: spec.bank_code,
            bank_name,
            billing_key: if spec.report_key {
                spec.billing_key
            } else {
                None
            },
        };
        rec.approval = Some(approval.clone());
        self.log(|| Entry::Order(rec.clone()));
        st.put_order(rec);
        if lose_answer {
            return Err(Fail::NoAnswer);
        }
        Ok(approval)
    }

    /// Store a new billing key for a card (already checked by the caller).
    pub(crate) fn store_key_locked(&self, st: &mut State, key: KeyRec) -> BillingKey {
        let facts = key.facts.clone();
        self.log(|| Entry::Key(key.clone()));
        st.put_key(key);
        facts
    }

    pub(crate) fn new_key(
        &self,
        mid: &Mid,
        customer_uid: Option<&str>,
        number: &pier_domain::CardNumber,
        expiry: &pier_domain::Expiry,
        now: i64,
    ) -> KeyRec {
        let billing_key = format!("tbk_{}", random_hex(16));
        let issuer = cards::issuer_of(number);
        let sealed_card = self
            .inner
            .sealer
            .seal_card(number, expiry, billing_key.as_bytes());
        KeyRec {
            mid: mid.0.clone(),
            customer_uid: customer_uid.map(str::to_owned),
            facts: BillingKey {
                card_code: Some(issuer.card_code.to_owned()),
                card_name: Some(issuer.card_name().to_owned()),
                card_number: Some(number.masked()),
                card_type: Some(issuer.card_type),
                billing_key,
            },
            sealed_card,
            issued_at: now,
            deleted_at: None,
        }
    }

    // ---- the connector operations (used by `InProcess` and the pgsim server) ----

    pub(crate) fn approve_keyed(
        &self,
        mid: &Mid,
        order: &Order,
        card: CardData,
    ) -> EngineResult<Approval> {
        check_order(order, false)?;
        let quota = cards::applied_quota(order.amount_krw, order.card_quota)?;
        let now = self.now();
        let behaviour = cards::behaviour_of(&card.number);
        if behaviour == Behaviour::InvalidNumber {
            return Err(cards::invalid_number().into());
        }
        if card.expiry.is_expired_at(now) {
            return Err(cards::expired_input().into());
        }
        let holder = cards::holder_check(&card, behaviour);
        let facts = CardFacts::new(cards::issuer_of(&card.number), card.number.masked());
        // Checked; now forgotten.
        drop(card);
        let spec = ChargeSpec {
            method: PayMethod::Card,
            card: Some(facts),
            bank_code: None,
            quota,
            billing_key: None,
            report_key: false,
        };
        let mut books = self.lock();
        self.charge_locked(
            &mut books.ledger,
            mid,
            order,
            spec,
            verdict(behaviour, holder, false),
            now,
        )
    }

    pub(crate) fn issue_billing_key(
        &self,
        mid: &Mid,
        customer_uid: &str,
        card: CardData,
    ) -> EngineResult<BillingKey> {
        check_id("customer_uid", customer_uid)?;
        let now = self.now();
        let behaviour = cards::behaviour_of(&card.number);
        if behaviour == Behaviour::InvalidNumber {
            return Err(cards::invalid_number().into());
        }
        if card.expiry.is_expired_at(now) {
            return Err(cards::expired_input().into());
        }
        if let Some(err) = issue_refusal(behaviour, cards::holder_check(&card, behaviour)) {
            return Err(err.into());
        }
        let key = self.new_key(mid, Some(customer_uid), &card.number, &card.expiry, now);
        drop(card);
        let mut books = self.lock();
        Ok(self.store_key_locked(&mut books.ledger, key))
    }

    pub(crate) fn delete_billing_key(&self, mid: &Mid, billing_key: &str) -> EngineResult<()> {
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        let i = match st.key_ix.get(billing_key) {
            Some(i) if st.keys[i].mid == mid.0 && st.keys[i].deleted_at.is_none() => i,
            _ => return Err(unknown_key().into()),
        };
        st.keys[i].deleted_at = Some(now);
        self.log(|| Entry::Key(st.keys[i].clone()));
        Ok(())
    }

    pub(crate) fn pay_with_key(
        &self,
        mid: &Mid,
        order: &Order,
        billing_key: &str,
    ) -> EngineResult<Approval> {
        check_order(order, false)?;
        let quota = cards::applied_quota(order.amount_krw, order.card_quota)?;
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        if let Some(rec) = st.order(&order.order_id) {
            // Answered from the ledger even if the key was deleted since.
            return Ok(replay_charge(rec, mid, order)?);
        }
        let key = st.live_key(&mid.0, billing_key).ok_or_else(unknown_key)?;
        let (number, expiry) = self
            .inner
            .sealer
            .open_card(&key.sealed_card, billing_key.as_bytes())
            .ok_or_else(|| {
                rejected(
                    "BILLING_KEY_UNREADABLE",
                    "빌링키의 카드정보를 읽을 수 없습니다.",
                )
            })?;
        let behaviour = cards::behaviour_of(&number);
        let v = if expiry.is_expired_at(now) {
            Verdict::Decline(cards::EXPIRED_CARD)
        } else {
            verdict(behaviour, None, true)
        };
        let spec = ChargeSpec {
            method: PayMethod::Card,
            card: Some(CardFacts::from_key(&key.facts)),
            bank_code: None,
            quota,
            billing_key: Some(billing_key.to_owned()),
            report_key: false,
        };
        drop((number, expiry));
        self.charge_locked(st, mid, order, spec, v, now)
    }

    pub(crate) fn cancel(&self, mid: &Mid, req: &CancelRequest) -> EngineResult<CancelOutcome> {
        check_id("order_id", &req.order_id)?;
        check_id("cancellation_id", &req.cancellation_id)?;
        check_text("reason", req.reason.as_deref())?;
        if !(1..=MAX_AMOUNT_KRW).contains(&req.amount_krw) {
            return Err(rejected("INVALID_AMOUNT", "취소금액이 올바르지 않습니다.").into());
        }
        if !(0..=req.amount_krw).contains(&req.tax_free_krw) {
            return Err(rejected("INVALID_TAX_FREE", "취소 면세금액이 올바르지 않습니다.").into());
        }
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        if let Some(i) = st.cancel_index(&req.order_id, &req.cancellation_id) {
            let done = &st.cancels[i];
            if done.mid == mid.0 && done.outcome.amount_krw == req.amount_krw {
                return Ok(done.outcome.clone());
            }
            return Err(rejected(
                "DUPLICATE_CANCELLATION_ID",
                "이미 사용된 취소 요청번호입니다.",
            )
            .into());
        }
        let no_such = || rejected("NO_SUCH_TRANSACTION", "취소할 거래건이 존재하지 않습니다.");
        let i = st.order_index(&req.order_id).ok_or_else(no_such)?;
        let rec = &mut st.orders[i];
        let tid = rec.approval.as_ref().map(|a| a.pg_tid.as_str());
        let vbank_tid = rec.vbank.as_ref().map(|v| v.pg_tid.as_str());
        if rec.mid != mid.0
            || (tid != Some(req.pg_tid.as_str()) && vbank_tid != Some(req.pg_tid.as_str()))
        {
            return Err(no_such().into());
        }
        match rec.state {
            OrderState::Declined { .. } => return Err(no_such().into()),
            OrderState::AwaitingDeposit => {
                return Err(PgError::Declined {
                    code: "NOT_DEPOSITED".into(),
                    message: "결제취소에 실패하였습니다.(가상계좌 입금 전 거래입니다)".into(),
                }
                .into())
            }
            OrderState::Voided | OrderState::Approved => {}
        }
        if req.amount_krw > rec.cancelable_krw() {
            return Err(cancel_exceeds().into());
        }
        if req.tax_free_krw > rec.tax_free_krw - rec.cancelled_tax_free_krw {
            return Err(PgError::Declined {
                code: "CANCEL_TAX_FREE_EXCEEDED".into(),
                message: "결제취소에 실패하였습니다.(requested tax free amount is bigger than cancelable tax free amount)".into(),
            }
            .into());
        }
        rec.cancelled_krw += req.amount_krw;
        rec.cancelled_tax_free_krw += req.tax_free_krw;
        debug_assert!(rec.cancelled_krw <= rec.amount_krw);
        let pg_cancel_tid = self.next_tid('C');
        let outcome = CancelOutcome {
            receipt_url: Some(self.receipt_url(&pg_cancel_tid)),
            pg_cancel_tid,
            cancelled_at: now,
            amount_krw: req.amount_krw,
        };
        let cancel = CancelRec {
            mid: mid.0.clone(),
            order_id: req.order_id.clone(),
            cancellation_id: req.cancellation_id.clone(),
            tax_free_krw: req.tax_free_krw,
            reason: req.reason.clone(),
            outcome: outcome.clone(),
        };
        self.log(|| Entry::Order(rec.clone()));
        self.log(|| Entry::Cancel(cancel.clone()));
        st.put_cancel(cancel);
        Ok(outcome)
    }

    pub(crate) fn inquire(&self, mid: &Mid, order_id: &str) -> EngineResult<Inquiry> {
        let books = self.lock();
        let Some(rec) = books.ledger.order(order_id).filter(|r| r.mid == mid.0) else {
            return Ok(Inquiry::NotFound);
        };
        let pg_tid = || {
            rec.approval
                .as_ref()
                .map(|a| a.pg_tid.clone())
                .or_else(|| rec.vbank.as_ref().map(|v| v.pg_tid.clone()))
                .unwrap_or_default()
        };
        Ok(match (&rec.state, &rec.approval) {
            (OrderState::Declined { code, message }, _) => Inquiry::Declined {
                code: code.clone(),
                message: message.clone(),
            },
            (OrderState::Voided, _) => Inquiry::Voided { pg_tid: pg_tid() },
            (OrderState::Approved, Some(_)) if rec.cancelled_krw >= rec.amount_krw => {
                Inquiry::Voided { pg_tid: pg_tid() }
            }
            (OrderState::Approved, Some(approval)) => Inquiry::Approved(approval.clone()),
            // A virtual account without its deposit: no money moved yet.
            _ => Inquiry::NotFound,
        })
    }

    pub(crate) fn net_cancel(&self, mid: &Mid, order_id: &str) -> EngineResult<()> {
        check_id("order_id", order_id)?;
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        let Some(i) = st.order_index(order_id) else {
            // Not seen (yet): remember, so that a late approval of this order is refused.
            if st.tombstones.insert(order_id.to_owned()) {
                self.log(|| Entry::Tombstone {
                    mid: mid.0.clone(),
                    order_id: order_id.to_owned(),
                });
            }
            return Ok(());
        };
        let rec = &mut st.orders[i];
        if rec.mid != mid.0 {
            // Another merchant's order: not ours to touch, and nothing of ours to void.
            return Ok(());
        }
        match rec.state {
            OrderState::Approved => {
                rec.voided_krw = rec.amount_krw - rec.cancelled_krw;
            }
            OrderState::AwaitingDeposit => {}
            OrderState::Declined { .. } | OrderState::Voided => return Ok(()),
        }
        rec.state = OrderState::Voided;
        rec.voided_at = Some(now);
        self.log(|| Entry::Order(rec.clone()));
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_hex_or_base64() {
        let hex_key = "00".repeat(31) + "ff";
        assert_eq!(parse_encryption_key(&hex_key).unwrap()[31], 0xff);
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(parse_encryption_key(b64).unwrap(), [0u8; 32]);
        assert!(parse_encryption_key("abcd").is_err());
        assert!(parse_encryption_key(&"00".repeat(31)).is_err());
    }

    #[test]
    fn config_debug_hides_the_key() {
        let config = EngineConfig::new([0xab; 32], "http://x");
        let shown = format!("{config:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("171"),
            "{shown}"
        );
    }
}
