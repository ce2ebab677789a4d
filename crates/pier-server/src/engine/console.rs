//! The merchant console's use cases (docs/console.md): operators and their sign-in, sessions,
//! the payments an operator may see, refunds, settings and the audit log.
//!
//! Every use case takes the `Actor` a session resolved to and reads or changes only that
//! actor's merchant; what a role may do is decided here, not in the HTTP layer.

use super::{Engine, Error, Result};
use crate::edge::buckets::KeyedBuckets;
use crate::edge::{limit_key, LIMITER_MAX_KEYS};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use pier_domain::ids::random_hex;
use pier_store::{
    AuditEntry, ConsoleFilter, ConsoleSession, DayTotals, Delivery, Merchant, Operator, Payment,
    StoreError,
};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

mod admin;
pub use admin::{mask_card, BillingKey};

/// A session ends after this long without a request (30 minutes, the idle limit PCI DSS 8.2.8
/// asks of consoles that show payment data).
pub const SESSION_IDLE_SECS: i64 = 30 * 60;
/// …and this long after sign-in whatever happens (a working day).
pub const SESSION_ABSOLUTE_SECS: i64 = 12 * 3600;
/// `last_seen_at` is written at most once a minute per session: a page view is then a read,
/// and the idle limit is still exact to within a minute.
pub const SESSION_TOUCH_SECS: i64 = 60;
/// Expired sessions deleted per sign-in (keeps the table bounded without a job).
const SESSION_SWEEP: i64 = 100;
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer passwords are refused before hashing (Argon2 would take them, but a megabyte
/// "password" is a way to spend the server's CPU).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// RFC 5321 bounds a path at 256 octets; an address is shorter.
pub const MAX_EMAIL_BYTES: usize = 254;
/// Failed sign-ins allowed per account and per client address before the limit answers, and
/// refilled over `SIGN_IN_PERIOD_MS`: 5 per account per 15 minutes stops guessing (a 12+
/// character password is out of reach at 480 tries a day), 20 per address leaves room for an
/// office behind one NAT address.
pub const SIGN_IN_FAILURES_PER_ACCOUNT: u32 = 5;
pub const SIGN_IN_FAILURES_PER_ADDR: u32 = 20;
pub const SIGN_IN_PERIOD_MS: u64 = 15 * 60 * 1000;
/// Rows per page of the payments list and the audit log.
pub const PAGE_SIZE: i64 = 50;
/// Longest search text and refund reason accepted.
pub const MAX_SEARCH_CHARS: usize = 100;
pub const MAX_REASON_CHARS: usize = 200;
/// Korea Standard Time (UTC+9, no daylight saving): days of the dashboard and the date filter.
pub const KST_OFFSET_SECS: i64 = 9 * 3600;
const DAY_SECS: i64 = 86_400;

/// The same answer for an unknown email and a wrong password (and a disabled operator).
pub const MSG_SIGN_IN_FAILED: &str =
    "이메일 또는 비밀번호가 올바르지 않습니다. (wrong email or password)";
pub const MSG_SIGN_IN_LIMITED: &str =
    "로그인 시도가 너무 많습니다. 잠시 후 다시 시도해주세요. (too many sign-in attempts; try again later)";
pub const MSG_FORBIDDEN: &str = "권한이 없습니다. (your role does not allow this)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Viewer => "조회자",
            Self::Operator => "운영자",
            Self::Admin => "관리자",
        }
    }
    /// Refunds and webhook redeliveries.
    pub fn can_operate(self) -> bool {
        matches!(self, Self::Operator | Self::Admin)
    }
    /// Settings and operators.
    pub fn can_admin(self) -> bool {
        self == Self::Admin
    }
}

/// Who is acting: the operator a session resolved to.
#[derive(Clone, Debug)]
pub struct Actor {
    pub operator_id: String,
    pub email: String,
    pub merchant_id: String,
    pub role: Role,
    /// The session's CSRF token (every form carries it).
    pub csrf: String,
}

/// Sign-in limits (in memory, per instance: the bound is per instance, documented in
/// docs/console.md).
pub struct ConsoleState {
    per_account: KeyedBuckets<String>,
    per_addr: KeyedBuckets<IpAddr>,
    /// A hash to verify against when the email names no operator, so both failures cost the
    /// same time.
    dummy_hash: OnceLock<String>,
    /// The dashboard's totals of the 29 days before today, per merchant: (today's day number,
    /// computed at, totals). Today is always read live.
    past_days: dashmap::DashMap<String, (i64, i64, Arc<PastDays>)>,
}

/// The dashboard's figures of the 29 days before today: per-day totals and the count of every
/// failure reason (merged with today's at each view).
pub struct PastDays {
    days: Vec<DayTotals>,
    failures: Vec<(String, i64)>,
}

/// Distinct failure reasons kept per merchant for the past days. PG failure texts repeat (a
/// code and its message); past this many the rarest are dropped, which can only misrank
/// reasons that are each rarer than the 1,000th.
const PAST_FAILURE_REASONS: i64 = 1_000;

/// How long the dashboard's past days are reused: refunds of older payments and late PG
/// answers show within 5 minutes, and a dashboard view reads only today's payments (at 100,000
/// payments a month, reading all 30 days took ~0.5 s; docs/PERFORMANCE.md).
pub const PAST_DAYS_TTL_SECS: i64 = 300;
/// Merchants whose past days are kept; past it the cache starts over (bounded memory).
const PAST_DAYS_MAX_MERCHANTS: usize = 10_000;

impl Default for ConsoleState {
    fn default() -> Self {
        Self {
            per_account: KeyedBuckets::new(
                SIGN_IN_FAILURES_PER_ACCOUNT,
                SIGN_IN_PERIOD_MS,
                SIGN_IN_FAILURES_PER_ACCOUNT,
                LIMITER_MAX_KEYS,
            ),
            per_addr: KeyedBuckets::new(
                SIGN_IN_FAILURES_PER_ADDR,
                SIGN_IN_PERIOD_MS,
                SIGN_IN_FAILURES_PER_ADDR,
                LIMITER_MAX_KEYS,
            ),
            dummy_hash: OnceLock::new(),
            past_days: dashmap::DashMap::new(),
        }
    }
}

/// Argon2id with the crate's defaults (m = 19 MiB, t = 2, p = 1: OWASP's recommended minimum).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Unavailable(format!("password hashing failed: {e}")))
}

fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn normalize_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= MAX_EMAIL_BYTES
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::Invalid(format!(
            "{email:.60?} is not an email address"
        )));
    }
    Ok(e)
}

/// Midnight KST of a `YYYY-MM-DD` date, as unix seconds.
pub fn kst_day_start(date: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    let utc = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(utc - KST_OFFSET_SECS)
}

/// `YYYY-MM-DD HH:MM:SS` in KST ("-" for 0).
pub fn kst_time(unix: i64) -> String {
    if unix <= 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp(unix + KST_OFFSET_SECS, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `MM-DD` of a day number (days since the epoch, KST).
pub fn kst_day_label(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * DAY_SECS, 0)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_default()
}

/// Totals over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub paid_count: i64,
    pub paid_amount: i64,
    pub cancel_amount: i64,
    pub failed_count: i64,
}

impl Totals {
    /// Failed attempts per 1,000 settled attempts (paid + failed), for a "12.3%" display.
    pub fn failure_permille(&self) -> i64 {
        let n = self.paid_count + self.failed_count;
        if n == 0 {
            0
        } else {
            self.failed_count * 1000 / n
        }
    }
}

pub struct Dashboard {
    pub today: Totals,
    pub week: Totals,
    pub month: Totals,
    /// 30 entries, oldest first: (day number, paid amount).
    pub chart: Vec<(i64, i64)>,
    pub top_failures: Vec<(String, i64)>,
}

/// One page of the payments list and the cursor of the next (`None`: last page).
pub struct PaymentPage {
    pub items: Vec<Payment>,
    pub next: Option<(i64, String)>,
}

impl Engine {
    fn console_forbidden() -> Error {
        Error::Unauthorized
    }

    async fn audit(&self, a: &Actor, action: &str, target: Option<&str>, detail: Option<String>) {
        let e = AuditEntry {
            id: format!("aud_{}", random_hex(12)),
            merchant_id: a.merchant_id.clone(),
            operator_id: a.operator_id.clone(),
            actor: a.email.clone(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            detail,
            at: self.now(),
        };
        // The change is made; an audit row that cannot be written is logged loudly rather than
        // reported as a failed change (which would invite a second refund).
        if let Err(err) = self.store.insert_audit(&e).await {
            tracing::error!(error = %err, action, "audit entry not written");
        }
    }

    /// `pier operator create`: returns the new operator's id.
    pub async fn create_operator(
        &self,
        imp_code: &str,
        email: &str,
        role: &str,
        password: &str,
    ) -> Result<String> {
        self.add_operator(imp_code, email, role, password, None)
            .await
    }

    /// One rule for `pier operator create` (`by` = None, audited as `cli`) and the console's
    /// operator form (`by` = the admin).
    async fn add_operator(
        &self,
        imp_code: &str,
        email: &str,
        role: &str,
        password: &str,
        by: Option<&Actor>,
    ) -> Result<String> {
        let email = normalize_email(email)?;
        let role = Role::parse(role)
            .ok_or_else(|| Error::Invalid("role must be admin, operator or viewer".into()))?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Error::Invalid(format!(
                "a password needs at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::Invalid(format!(
                "a password has at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        if self.store.get_merchant(imp_code).await?.is_none() {
            return Err(Error::NotFound(format!("no merchant {imp_code}")));
        }
        let pw = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))??;
        let o = Operator {
            id: format!("op_{}", random_hex(12)),
            merchant_id: imp_code.to_owned(),
            email: email.clone(),
            role: role.as_str().to_owned(),
            password_hash: hash,
            disabled: false,
            created_at: self.now(),
        };
        self.store.insert_operator(&o).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("an operator with the email {email} exists"))
            }
            other => other.into(),
        })?;
        let entry = AuditEntry {
            id: format!("aud_{}", random_hex(12)),
            merchant_id: o.merchant_id.clone(),
            operator_id: by.map_or_else(|| o.id.clone(), |a| a.operator_id.clone()),
            actor: by.map_or_else(|| "cli".into(), |a| a.email.clone()),
            action: "operator.create".into(),
            target: Some(o.email.clone()),
            detail: Some(format!("role={}", o.role)),
            at: o.created_at,
        };
        self.store.insert_audit(&entry).await?;
        Ok(o.id)
    }

    fn session_hash(&self, token: &str) -> String {
        self.auth
            .keyed_hash(format!("console-session\n{token}").as_bytes())
    }

    /// The CSRF token of a session: derived from its cookie token, so nothing more is stored.
    fn session_csrf(&self, token: &str) -> String {
        let mut h = self
            .auth
            .keyed_hash(format!("console-csrf\n{token}").as_bytes());
        h.truncate(32);
        h
    }

    /// The CSRF token of the sign-in form, bound to the pre-session cookie's value.
    pub fn sign_in_csrf(&self, pre: &str) -> String {
        let mut h = self
            .auth
            .keyed_hash(format!("console-login\n{pre}").as_bytes());
        h.truncate(32);
        h
    }

    /// Checks an email and password; returns a new session's cookie token.
    pub async fn console_sign_in(
        &self,
        email: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<String> {
        let now = self.now();
        let now_ms = now.saturating_mul(1000);
        let addr = limit_key(client);
        let account = email.trim().to_lowercase();
        let st = &self.console;
        if !st.per_addr.allows(&addr, now_ms) || !st.per_account.allows(&account, now_ms) {
            return Err(Error::RateLimited(MSG_SIGN_IN_LIMITED.into()));
        }
        let op = if password.len() > MAX_PASSWORD_BYTES || account.len() > MAX_EMAIL_BYTES {
            None
        } else {
            self.store.operator_by_email(&account).await?
        };
        let stored = match &op {
            Some(o) => o.password_hash.clone(),
            None => match st.dummy_hash.get() {
                Some(h) => h.clone(),
                None => {
                    let h = tokio::task::spawn_blocking(|| hash_password("pier-console-dummy"))
                        .await
                        .map_err(|e| Error::Unavailable(e.to_string()))??;
                    st.dummy_hash.get_or_init(|| h).clone()
                }
            },
        };
        let pw = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&pw, &stored))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let op = match op {
            Some(o) if matches && !o.disabled => o,
            _ => {
                st.per_addr.charge(&addr, now_ms);
                st.per_account.charge(&account, now_ms);
                return Err(Error::Unauthorized);
            }
        };
        let token = random_hex(32);
        let s = ConsoleSession {
            id_hash: self.session_hash(&token),
            operator_id: op.id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_ABSOLUTE_SECS,
        };
        self.store.insert_session(&s).await?;
        self.store
            .delete_expired_sessions(now, now - SESSION_IDLE_SECS, SESSION_SWEEP)
            .await?;
        let a = Actor {
            operator_id: op.id,
            email: op.email,
            merchant_id: op.merchant_id,
            role: Role::parse(&op.role).unwrap_or(Role::Viewer),
            csrf: String::new(),
        };
        self.audit(&a, "sign_in", None, None).await;
        Ok(token)
    }

    /// The actor of a session cookie; `Unauthorized` when there is none or it expired.
    pub async fn console_session(&self, token: &str) -> Result<Actor> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Unauthorized);
        }
        let now = self.now();
        let id_hash = self.session_hash(token);
        let s = self
            .store
            .get_session(&id_hash)
            .await?
            .ok_or(Error::Unauthorized)?;
        if s.expires_at <= now || s.last_seen_at + SESSION_IDLE_SECS <= now {
            self.store.delete_session(&id_hash).await?;
            return Err(Error::Unauthorized);
        }
        let op = self
            .store
            .get_operator(&s.operator_id)
            .await?
            .filter(|o| !o.disabled)
            .ok_or(Error::Unauthorized)?;
        if now - s.last_seen_at >= SESSION_TOUCH_SECS {
            self.store.touch_session(&id_hash, now).await?;
        }
        Ok(Actor {
            operator_id: op.id,
            email: op.email,
            merchant_id: op.merchant_id,
            role: Role::parse(&op.role).unwrap_or(Role::Viewer),
            csrf: self.session_csrf(token),
        })
    }

    pub async fn console_sign_out(&self, token: &str) -> Result<()> {
        self.store.delete_session(&self.session_hash(token)).await?;
        Ok(())
    }

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
            c.target == "inprocess" && c.pg_provider != super::channels::TOSS
        };
        Ok(match chans.iter().find(|c| c.is_default) {
            Some(c) => is_test(c),
            None => chans.iter().any(is_test),
        })
    }

    pub async fn console_payments(&self, a: &Actor, f: &ConsoleFilter) -> Result<PaymentPage> {
        if f.search
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(Error::Invalid(format!(
                "검색어는 {MAX_SEARCH_CHARS}자 이하입니다. (search text too long)"
            )));
        }
        let mut items = self
            .store
            .console_payments(&a.merchant_id, f, PAGE_SIZE + 1)
            .await?;
        let next = if items.len() as i64 > PAGE_SIZE {
            items.truncate(PAGE_SIZE as usize);
            items.last().map(|p| (p.started_at, p.imp_uid.clone()))
        } else {
            None
        };
        Ok(PaymentPage { items, next })
    }

    /// A payment of the actor's merchant (another merchant's is `NotFound`, as a missing one),
    /// with its webhook deliveries.
    pub async fn console_payment(
        &self,
        a: &Actor,
        imp_uid: &str,
    ) -> Result<(Payment, Vec<Delivery>)> {
        let p = self.payment(&a.merchant_id, imp_uid).await?;
        let d = self
            .webhook_deliveries(&a.merchant_id, Some(imp_uid), 0, 20)
            .await?;
        Ok((p, d.items))
    }

    /// A refund through the REST cancel use case; `nonce` (from the confirmation form) makes a
    /// repeated submit the same cancel.
    pub async fn console_refund(
        self: &Arc<Self>,
        a: &Actor,
        imp_uid: &str,
        amount: Option<i64>,
        reason: &str,
        nonce: &str,
    ) -> Result<Payment> {
        if !a.role.can_operate() {
            return Err(Self::console_forbidden());
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::Invalid(
                "환불 사유를 입력해주세요. (a reason is required)".into(),
            ));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::Invalid(format!(
                "환불 사유는 {MAX_REASON_CHARS}자 이하입니다. (reason too long)"
            )));
        }
        if amount.is_some_and(|x| x <= 0) {
            return Err(Error::Invalid(
                "환불 금액은 0보다 커야 합니다. (amount must be positive)".into(),
            ));
        }
        if nonce.len() != 24 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid("invalid confirmation".into()));
        }
        // Another merchant's payment is "not found", as on the detail page.
        self.payment(&a.merchant_id, imp_uid).await?;
        let input = super::refunds::CancelInput {
            imp_uid: Some(imp_uid.to_owned()),
            amount,
            reason: Some(reason.to_owned()),
            idempotency_key: Some(format!("console:{nonce}")),
            ..Default::default()
        };
        let p = self.cancel_payment(&a.merchant_id, input).await?;
        let shown = amount.map_or_else(|| "전액".to_owned(), |x| x.to_string());
        self.audit(
            a,
            "payment.refund",
            Some(imp_uid),
            Some(format!("amount={shown} reason={reason}")),
        )
        .await;
        Ok(p)
    }

    pub async fn console_set_origins(&self, a: &Actor, text: &str) -> Result<Option<Vec<String>>> {
        if !a.role.can_admin() {
            return Err(Self::console_forbidden());
        }
        let list = self.set_allowed_origins(&a.merchant_id, text).await?;
        let shown = list
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), |l| l.join(" "));
        self.audit(a, "settings.allowed_origins", None, Some(shown))
            .await;
        Ok(list)
    }

    pub async fn console_deliveries(&self, a: &Actor, offset: i64) -> Result<Vec<Delivery>> {
        Ok(self
            .webhook_deliveries(&a.merchant_id, None, offset.max(0), PAGE_SIZE)
            .await?
            .items)
    }

    pub async fn console_redeliver(&self, a: &Actor, event_id: &str) -> Result<()> {
        if !a.role.can_operate() {
            return Err(Self::console_forbidden());
        }
        let row = self.redeliver(&a.merchant_id, event_id).await?;
        self.audit(
            a,
            "webhook.redeliver",
            Some(&row.event.imp_uid),
            Some(event_id.to_owned()),
        )
        .await;
        Ok(())
    }

    pub async fn console_audit(
        &self,
        a: &Actor,
        before: Option<(i64, String)>,
    ) -> Result<Vec<AuditEntry>> {
        Ok(self
            .store
            .list_audit(&a.merchant_id, before, PAGE_SIZE)
            .await?)
    }

    pub async fn console_operators(&self, a: &Actor) -> Result<Vec<Operator>> {
        if !a.role.can_admin() {
            return Err(Self::console_forbidden());
        }
        Ok(self.store.list_operators(&a.merchant_id).await?)
    }

    pub async fn console_dashboard(&self, a: &Actor) -> Result<Dashboard> {
        let now = self.now();
        let today = (now + KST_OFFSET_SECS).div_euclid(DAY_SECS);
        let first = today - 29;
        let since = first * DAY_SECS - KST_OFFSET_SECS;
        let today_start = today * DAY_SECS - KST_OFFSET_SECS;
        let cached = self
            .console
            .past_days
            .get(&a.merchant_id)
            .filter(|e| e.0 == today && now - e.1 < PAST_DAYS_TTL_SECS && e.1 <= now)
            .map(|e| e.2.clone());
        let past = match cached {
            Some(p) => p,
            None => {
                let (days, failures) = tokio::try_join!(
                    self.store
                        .day_totals(&a.merchant_id, since, today_start, KST_OFFSET_SECS),
                    self.store.top_failures(
                        &a.merchant_id,
                        since,
                        today_start,
                        PAST_FAILURE_REASONS
                    )
                )?;
                let p = Arc::new(PastDays { days, failures });
                let cache = &self.console.past_days;
                if cache.len() >= PAST_DAYS_MAX_MERCHANTS {
                    cache.clear();
                }
                cache.insert(a.merchant_id.clone(), (today, now, p.clone()));
                p
            }
        };
        // Only today's payments are read per view: an index range of (merchant_id,
        // started_at), ~3,300 rows at 100,000 payments a month.
        let (today_totals, today_failures) = tokio::try_join!(
            self.store
                .day_totals(&a.merchant_id, today_start, i64::MAX, KST_OFFSET_SECS),
            self.store
                .top_failures(&a.merchant_id, today_start, i64::MAX, PAST_FAILURE_REASONS)
        )?;
        let mut days: Vec<DayTotals> = past.days.clone();
        days.extend(today_totals);
        let mut failures: std::collections::HashMap<String, i64> =
            past.failures.iter().cloned().collect();
        for (reason, n) in today_failures {
            *failures.entry(reason).or_default() += n;
        }
        let mut top_failures: Vec<(String, i64)> = failures.into_iter().collect();
        top_failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top_failures.truncate(5);
        let sum = |from_day: i64| {
            days.iter()
                .filter(|d| d.day >= from_day)
                .fold(Totals::default(), |t, d| Totals {
                    paid_count: t.paid_count + d.paid_count,
                    paid_amount: t.paid_amount + d.paid_amount,
                    cancel_amount: t.cancel_amount + d.cancel_amount,
                    failed_count: t.failed_count + d.failed_count,
                })
        };
        let chart = (first..=today)
            .map(|day| {
                let amt = days
                    .iter()
                    .find(|d| d.day == day)
                    .map_or(0, |d| d.paid_amount);
                (day, amt)
            })
            .collect();
        Ok(Dashboard {
            today: sum(today),
            week: sum(today - 6),
            month: sum(first),
            chart,
            top_failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_dates() {
        assert_eq!(
            normalize_email(" Ops@Shop.Example ").unwrap(),
            "ops@shop.example"
        );
        for bad in ["", "a", "@x.y", "a@b", "a b@c.d", "a@.c"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        // 2026-01-01 00:00 KST = 2025-12-31 15:00 UTC.
        assert_eq!(kst_day_start("2026-01-01"), Some(1_767_225_600 - 9 * 3600));
        assert_eq!(kst_day_start("2026-13-01"), None);
        assert_eq!(kst_time(1_767_225_600), "2026-01-01 09:00:00");
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn roles() {
        assert!(!Role::Viewer.can_operate());
        assert!(Role::Operator.can_operate() && !Role::Operator.can_admin());
        assert!(Role::Admin.can_admin());
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn failure_rate() {
        let t = Totals {
            paid_count: 3,
            failed_count: 1,
            ..Default::default()
        };
        assert_eq!(t.failure_permille(), 250);
        assert_eq!(Totals::default().failure_permille(), 0);
    }
}
