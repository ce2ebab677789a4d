//! The merchant console (docs/console.md) through the real server: sign-in, sessions, CSRF and
//! cross-site refusals, roles, tenant isolation, refunds seen through REST.

use crate::common::*;
use pier_server::engine::console::{MSG_SIGN_IN_FAILED, MSG_SIGN_IN_LIMITED};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A browser-like client of the console: keeps the cookies it is given, never follows
/// redirects (each hop is checked).
pub(crate) struct Console {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

pub(crate) struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Console {
    pub fn new(t: &TestPier) -> Self {
        Self {
            base: t.pier.base_url(),
            http: no_redirects(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn run(&mut self, rb: reqwest::RequestBuilder) -> Page {
        let rb = if self.cookies.is_empty() {
            rb
        } else {
            rb.header("Cookie", self.cookie_header())
        };
        let res = rb.send().await.expect("request");
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            assert!(
                v.contains("HttpOnly") && v.contains("SameSite=Strict"),
                "{v}"
            );
            let (k, rest) = v.split_once('=').unwrap();
            let val = rest.split(';').next().unwrap().to_owned();
            self.cookies.retain(|(n, _)| n != k);
            if !val.is_empty() {
                self.cookies.push((k.to_owned(), val));
            }
        }
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: res.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let rb = self.http.get(format!("{}{path}", self.base));
        self.run(rb).await
    }

    /// A same-origin form post, as a browser sends it.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Origin", self.base.clone())
            .header("Sec-Fetch-Site", "same-origin")
            .form(form);
        self.run(rb).await
    }

    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let login = self.get("/console/login").await;
        assert_eq!(login.status, 200);
        let csrf = hidden(&login.body, "csrf");
        self.post(
            "/console/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// The CSRF token of the signed-in session (from a page's logout form).
    pub async fn csrf(&mut self) -> String {
        let p = self.get("/console/dashboard").await;
        assert_eq!(p.status, 200, "{}", p.body);
        hidden(&p.body, "csrf")
    }
}

pub(crate) async fn operator(t: &TestPier, merchant: &str, email: &str, role: &str) -> Console {
    t.pier
        .engine
        .create_operator(merchant, email, role, PASSWORD)
        .await
        .unwrap();
    let mut c = Console::new(t);
    let p = c.sign_in(email, PASSWORD).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/console/dashboard"));
    c
}

async fn allowed_origins(t: &TestPier) -> Option<String> {
    t.pier
        .store()
        .get_merchant(DEMO_CODE)
        .await
        .unwrap()
        .unwrap()
        .allowed_origins
}

#[tokio::test]
async fn console_sign_in_same_answer_for_unknown_email_and_wrong_password() {
    let t = TestPier::start().await;
    t.pier
        .engine
        .create_operator(DEMO_CODE, "Ops@Shop.example", "admin", PASSWORD)
        .await
        .unwrap();
    // Short passwords are refused at creation.
    assert!(t
        .pier
        .engine
        .create_operator(DEMO_CODE, "short@shop.example", "admin", "elevenchars")
        .await
        .is_err());

    let mut c = Console::new(&t);
    // Signed out: pages send to the sign-in form.
    let p = c.get("/console/payments").await;
    assert_eq!(
        (p.status, p.location.as_deref()),
        (303, Some("/console/login"))
    );

    let wrong = c.sign_in("ops@shop.example", "correct horse batterx").await;
    let unknown = c.sign_in("nobody@shop.example", PASSWORD).await;
    for p in [&wrong, &unknown] {
        assert_eq!(p.status, 401);
        assert!(
            p.body.contains("data-testid=\"console-login-error\""),
            "{}",
            p.body
        );
        assert!(p.body.contains(MSG_SIGN_IN_FAILED), "{}", p.body);
    }
    let error_of = |b: &str| {
        let start = b.find("console-login-error").unwrap();
        b[start..start + b[start..].find("</p>").unwrap()].to_owned()
    };
    assert_eq!(error_of(&wrong.body), error_of(&unknown.body));

    // The email is case-insensitive; success sets the session cookie and opens the dashboard.
    let ok = c.sign_in("OPS@shop.example", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(c.cookies.iter().any(|(k, _)| k == "pier_console"));
    let d = c.get("/console/dashboard").await;
    assert_eq!(d.status, 200);
    for id in [
        "console-dashboard",
        "console-chart",
        "console-nav-payments",
        "console-logout",
    ] {
        assert!(d.body.contains(&format!("data-testid=\"{id}\"")), "{id}");
    }
    // The demo merchant's channel is the test PG: the banner shows.
    assert!(d.body.contains("console-test-mode"));

    // Sign out ends the session in the database: the old cookie no longer works.
    let old = c.cookies.clone();
    let csrf = hidden(&d.body, "csrf");
    let out = c.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (out.status, out.location.as_deref()),
        (303, Some("/console/login"))
    );
    c.cookies = old;
    let p = c.get("/console/dashboard").await;
    assert_eq!(p.status, 303);
}

#[tokio::test]
async fn console_sign_in_is_limited_per_account() {
    let t = TestPier::start().await;
    t.pier
        .engine
        .create_operator(DEMO_CODE, "ops@shop.example", "viewer", PASSWORD)
        .await
        .unwrap();
    let mut c = Console::new(&t);
    for _ in 0..5 {
        assert_eq!(
            c.sign_in("ops@shop.example", "wrong password!!")
                .await
                .status,
            401
        );
    }
    // Even the right password is refused now, with the limit's answer.
    let p = c.sign_in("ops@shop.example", PASSWORD).await;
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(p.body.contains(MSG_SIGN_IN_LIMITED));
    // After the refill period (15 minutes for 5) it signs in.
    t.clock.advance(15 * 60);
    assert_eq!(c.sign_in("ops@shop.example", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn console_sessions_expire_when_idle() {
    let t = TestPier::start().await;
    let mut c = operator(&t, DEMO_CODE, "ops@shop.example", "viewer").await;
    t.clock.advance(29 * 60);
    assert_eq!(c.get("/console/payments").await.status, 200);
    // The request above renewed the idle clock; 29 more minutes are still inside it.
    t.clock.advance(29 * 60);
    assert_eq!(c.get("/console/payments").await.status, 200);
    t.clock.advance(31 * 60);
    let p = c.get("/console/payments").await;
    assert_eq!(
        (p.status, p.location.as_deref()),
        (303, Some("/console/login"))
    );
}

#[tokio::test]
async fn console_posts_without_csrf_or_from_another_site_are_refused() {
    let t = TestPier::start().await;
    let mut c = operator(&t, DEMO_CODE, "admin@shop.example", "admin").await;
    let csrf = c.csrf().await;
    let origins = "https://shop.example";

    // No token, a wrong token.
    for form in [
        vec![("origins", origins)],
        vec![("origins", origins), ("csrf", "0123")],
    ] {
        let p = c.post("/console/settings/origins", &form).await;
        assert_eq!(p.status, 403, "{}", p.body);
    }
    // The right token, but posted by another site.
    let cookie = c.cookie_header();
    for (name, value) in [
        ("Origin", "https://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
    ] {
        let res = c
            .http
            .post(t.url("/console/settings/origins"))
            .header("Cookie", &cookie)
            .header(name, value)
            .form(&[("origins", origins), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{name}: {value}");
    }
    // The sign-in form refuses a cross-site post too (login CSRF).
    let res = c
        .http
        .post(t.url("/console/login"))
        .header("Origin", "https://evil.example")
        .form(&[("email", "admin@shop.example"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(allowed_origins(&t).await, None, "nothing changed");

    // Same origin with the token: saved, normalized, and in the audit log.
    let p = c
        .post(
            "/console/settings/origins",
            &[
                ("origins", "HTTPS://Shop.Example\nhttps://m.shop.example"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        (p.status, p.location.as_deref()),
        (303, Some("/console/settings?saved=1"))
    );
    assert_eq!(
        allowed_origins(&t).await.as_deref(),
        Some("https://shop.example https://m.shop.example")
    );
    let s = c.get("/console/settings").await;
    assert!(s.body.contains("data-testid=\"console-allowed-origins\""));
    assert!(s.body.contains("https://m.shop.example"));
    let a = c.get("/console/audit").await;
    assert!(a.body.contains("settings.allowed_origins"), "{}", a.body);
    assert!(a.body.contains("admin@shop.example"));
    // A bad origin is a clear 400, nothing stored.
    let p = c
        .post(
            "/console/settings/origins",
            &[("origins", "ftp://x.example"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(allowed_origins(&t).await.is_some());
}

#[tokio::test]
async fn console_viewer_reads_but_cannot_refund_or_change_settings() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let paid = t.pay(&token, "view-1", 10_000).await;
    let imp_uid = paid["imp_uid"].as_str().unwrap();
    let mut c = operator(&t, DEMO_CODE, "viewer@shop.example", "viewer").await;
    let csrf = c.csrf().await;

    let d = c.get(&format!("/console/payments/{imp_uid}")).await;
    assert_eq!(d.status, 200);
    assert!(d.body.contains("data-testid=\"console-payment-detail\""));
    assert!(
        !d.body.contains("console-refund-submit"),
        "no refund form for a viewer"
    );

    let p = c
        .post(
            &format!("/console/payments/{imp_uid}/refund"),
            &[
                ("csrf", &csrf),
                ("amount", "1000"),
                ("reason", "test"),
                ("nonce", "0123456789abcdef01234567"),
            ],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    let (_, b) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(b["response"]["cancel_amount"], 0);

    let s = c.get("/console/settings").await;
    assert!(!s.body.contains("console-settings-save"));
    let p = c
        .post(
            "/console/settings/origins",
            &[("origins", "https://a.example"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 403);
    assert_eq!(allowed_origins(&t).await, None);
}

#[tokio::test]
async fn console_partial_refund_is_seen_through_rest() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let paid = t.pay(&token, "refund-1", 10_000).await;
    let imp_uid = paid["imp_uid"].as_str().unwrap();
    let mut c = operator(&t, DEMO_CODE, "ops@shop.example", "operator").await;
    let csrf = c.csrf().await;

    // Found by search (merchant_uid), listed with its row id.
    let list = c.get("/console/payments?q=refund-1").await;
    assert_eq!(list.status, 200);
    assert!(list
        .body
        .contains(&format!("data-testid=\"console-payment-row-{imp_uid}\"")));

    let d = c.get(&format!("/console/payments/{imp_uid}")).await;
    assert!(d.body.contains("data-testid=\"console-refund-submit\""));
    assert!(d.body.contains("10,000원"));

    // Step 1: the confirmation; nothing refunded yet.
    let path = format!("/console/payments/{imp_uid}/refund");
    let confirm = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("amount", "3,000"),
                ("reason", "고객 요청"),
            ],
        )
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm
        .body
        .contains("data-testid=\"console-refund-confirm\""));
    let nonce = hidden(&confirm.body, "nonce");
    let (_, b) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(b["response"]["cancel_amount"], 0);

    // Step 2: refunded through the engine's cancel.
    let form = [
        ("csrf", csrf.as_str()),
        ("amount", "3000"),
        ("reason", "고객 요청"),
        ("nonce", nonce.as_str()),
    ];
    let done = c.post(&path, &form).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let (_, b) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    // i'mport marks a payment `cancelled` from its first (even partial) cancel.
    assert_eq!(b["response"]["status"], "cancelled", "{b}");
    assert_eq!(b["response"]["cancel_amount"], 3000, "{b}");
    assert_eq!(b["response"]["cancel_history"].as_array().unwrap().len(), 1);
    assert_eq!(b["response"]["cancel_reason"], "고객 요청");

    // A repeated submit of the same confirmation is the same cancel, not a second one.
    let again = c.post(&path, &form).await;
    assert_eq!(again.status, 303, "{}", again.body);
    let (_, b) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(b["response"]["cancel_amount"], 3000, "{b}");

    let d = c
        .get(&format!("/console/payments/{imp_uid}?refunded=1"))
        .await;
    assert_eq!(
        d.body.matches("data-testid=\"console-cancel-row\"").count(),
        1
    );
    assert!(d.body.contains("7,000원"), "remaining shown");
    let a = c.get("/console/audit").await;
    assert!(a.body.contains("payment.refund") && a.body.contains(imp_uid));

    // More than what remains: a clear refusal, nothing changes.
    let confirm = c
        .post(
            &path,
            &[("csrf", &csrf), ("amount", "8000"), ("reason", "x")],
        )
        .await;
    let nonce = hidden(&confirm.body, "nonce");
    let p = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("amount", "8000"),
                ("reason", "x"),
                ("nonce", &nonce),
            ],
        )
        .await;
    assert!(p.status >= 400 && p.status < 500, "{} {}", p.status, p.body);
    let (_, b) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(b["response"]["cancel_amount"], 3000);
}

#[tokio::test]
async fn console_operator_never_sees_another_merchants_payments() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let mine = t.pay(&token, "shared-uid", 1_000).await;
    let other = t
        .pier
        .engine
        .create_merchant("Other", None, None, None, false)
        .await
        .unwrap();
    t.pier
        .engine
        .add_channel(&other.imp_code, "jtnet", None, true, None)
        .await
        .unwrap();
    let other_token = t.token_for(&other.imp_key, &other.imp_secret).await;
    let theirs = t.pay(&other_token, "shared-uid", 2_000).await;
    let theirs_uid = theirs["imp_uid"].as_str().unwrap();
    let mine_uid = mine["imp_uid"].as_str().unwrap();

    let mut c = operator(&t, DEMO_CODE, "ops@shop.example", "operator").await;
    let csrf = c.csrf().await;
    for path in [
        "/console/payments".to_owned(),
        "/console/payments?q=shared-uid".to_owned(),
        format!("/console/payments?q={theirs_uid}"),
    ] {
        let p = c.get(&path).await;
        assert_eq!(p.status, 200);
        assert!(
            !p.body
                .contains(&format!("console-payment-row-{theirs_uid}")),
            "{path}"
        );
        assert!(
            !p.body.contains(&format!("/console/payments/{theirs_uid}")),
            "{path}"
        );
    }
    let p = c.get("/console/payments?q=shared-uid").await;
    assert!(p.body.contains(mine_uid));
    let p = c.get(&format!("/console/payments/{theirs_uid}")).await;
    assert_eq!(p.status, 404);
    let p = c
        .post(
            &format!("/console/payments/{theirs_uid}/refund"),
            &[
                ("csrf", &csrf),
                ("amount", "100"),
                ("reason", "x"),
                ("nonce", "0123456789abcdef01234567"),
            ],
        )
        .await;
    assert_eq!(p.status, 404, "{}", p.body);
    let (_, b) = t
        .get(&format!("/payments/{theirs_uid}"), &other_token)
        .await;
    assert_eq!(b["response"]["cancel_amount"], 0);
    let csv = c.get("/console/payments.csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.body.starts_with("imp_uid,"));
    assert!(csv.body.contains(mine_uid) && !csv.body.contains(theirs_uid));
    let d = c.get("/console/dashboard").await;
    assert!(
        d.body.contains("1,000원") && !d.body.contains("3,000원"),
        "only my volume"
    );
}

#[tokio::test]
async fn console_payments_filter_and_page_newest_first() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let mut uids = Vec::new();
    // One more than a page (50), a second apart so the order is by time.
    for i in 0..51 {
        let p = t.pay(&token, &format!("page-{i}"), 100 + i).await;
        uids.push(p["imp_uid"].as_str().unwrap().to_owned());
        t.clock.advance(1);
    }
    let mut c = operator(&t, DEMO_CODE, "ops@shop.example", "viewer").await;
    let first = c.get("/console/payments").await;
    let newest = first.body.find(&uids[50]).unwrap();
    let older = first.body.find(&uids[49]).unwrap();
    assert!(newest < older, "newest first");
    assert!(!first
        .body
        .contains(&format!("console-payment-row-{}\"", uids[0])));
    let next = first
        .body
        .split("href=\"")
        .find_map(|s| {
            s.strip_prefix("/console/payments?")
                .filter(|s| s.contains("before="))
        })
        .map(|s| format!("/console/payments?{}", &s[..s.find('"').unwrap()]))
        .expect("a next-page link");
    let second = c
        .get(&next.replace("&#38;", "&").replace("&amp;", "&"))
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        second
            .body
            .matches("data-testid=\"console-payment-row-")
            .count(),
        1,
        "{next}: {}",
        second.body
    );
    assert!(second
        .body
        .contains(&format!("console-payment-row-{}\"", uids[0])));
    assert_eq!(
        second
            .body
            .matches("data-testid=\"console-payment-row-")
            .count(),
        1
    );

    for (q, n) in [
        ("status=failed", 0),
        ("status=paid&pay_method=card", 50),
        ("q=page-7", 1),
        ("from=2025-12-01&to=2025-12-31", 0),
        ("from=2026-01-01&to=2026-01-01", 50),
        ("pg=jtnet", 50),
        ("pg=jtnet.jtnet_demo", 50),
        ("pg=jtnet.other_mid", 0),
        ("pg=kcp", 0),
    ] {
        let p = c.get(&format!("/console/payments?{q}")).await;
        assert_eq!(p.status, 200, "{q}: {}", p.body);
        assert_eq!(
            p.body.matches("data-testid=\"console-payment-row-").count(),
            n,
            "{q}"
        );
    }
    for bad in ["status=paidd", "from=2026-13-01", "before=x"] {
        assert_eq!(
            c.get(&format!("/console/payments?{bad}")).await.status,
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn console_redelivery_needs_the_operator_role() {
    let t = TestPier::start().await;
    let mut viewer = operator(&t, DEMO_CODE, "viewer@shop.example", "viewer").await;
    let csrf = viewer.csrf().await;
    let p = viewer
        .post(
            "/console/webhooks/evt_missing/redeliver",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    let w = viewer.get("/console/webhooks").await;
    assert_eq!(w.status, 200);
    assert!(!w.body.contains("console-webhook-redeliver"));

    let mut ops = operator(&t, DEMO_CODE, "ops@shop.example", "operator").await;
    let csrf = ops.csrf().await;
    let p = ops
        .post(
            "/console/webhooks/evt_missing/redeliver",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 404, "{}", p.body);
    // Operators do not change settings.
    let p = ops
        .post(
            "/console/settings/origins",
            &[("origins", "https://a.example"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 403);
}

#[tokio::test]
async fn console_dashboard_counts_today_live_and_past_days() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let mut c = operator(&t, DEMO_CODE, "ops@shop.example", "viewer").await;
    t.pay(&token, "dash-1", 1_100).await;
    decline(&t, &token, "dash-f1").await;
    let d = c.get("/console/dashboard").await;
    assert_eq!(d.status, 200);
    assert!(d.body.contains("1,100원"), "{}", d.body);
    // A payment made after the first view is counted at once (today is read live).
    t.pay(&token, "dash-2", 2_200).await;
    let d = c.get("/console/dashboard").await;
    assert!(d.body.contains("3,300원"), "today live: {}", d.body);
    // The next day (KST): today is empty, the 7 and 30 days still hold both.
    t.clock.advance(24 * 3600);
    // (The session ended meanwhile: idle and absolute limits.)
    assert_eq!(c.get("/console/dashboard").await.status, 303);
    assert_eq!(c.sign_in("ops@shop.example", PASSWORD).await.status, 303);
    let d = c.get("/console/dashboard").await;
    assert_eq!(d.status, 200);
    assert!(d.body.contains("<dd>0원</dd>"), "{}", d.body);
    // The 7 and 30 days' volume, and yesterday's bar in the chart.
    assert_eq!(d.body.matches("<dd>3,300원</dd>").count(), 2, "{}", d.body);
    assert!(
        d.body.contains("<title>01-01 3,300원</title>"),
        "{}",
        d.body
    );
    assert_eq!(d.body.matches("<rect class=\"bar\"").count(), 30);
    // Failure reasons: yesterday's (kept with the past days) and today's are added up.
    let reason_row = |body: &str| {
        body.split("<tr><td>")
            .find(|r| r.contains("2112"))
            .and_then(|r| r.split("</td><td>").nth(1))
            .and_then(|n| n.split('<').next())
            .map(str::to_owned)
    };
    assert_eq!(reason_row(&d.body).as_deref(), Some("1"), "{}", d.body);
    decline(&t, &t.token().await, "dash-f2").await;
    let d = c.get("/console/dashboard").await;
    assert_eq!(reason_row(&d.body).as_deref(), Some("2"), "{}", d.body);
}

/// A payment the test PG declines (its failure reason names code 2112).
async fn decline(t: &TestPier, token: &str, merchant_uid: &str) {
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(token),
            serde_json::json!({"merchant_uid": merchant_uid, "amount": 1000, "card_number": "5570-4200-0000-2112", "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "name": "test order"}),
        )
        .await;
    assert_eq!(b["response"]["status"], "failed", "{b}");
}
