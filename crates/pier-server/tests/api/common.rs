//! Test harness: a real Pier on 127.0.0.1:0 with a fresh database (a new SQLite file, or a new
//! PostgreSQL schema when `PIER_TEST_STORE=postgres` and `PIER_TEST_DATABASE_URL` are set), and
//! a small HTTP client.

use pier_domain::{Clock, ManualClock};
use pier_server::{Config, Pier};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const DEMO_CODE: &str = "imp00000001";
pub const DEMO_KEY: &str = "1234567890123456";
pub const DEMO_SECRET: &str = "demo-secret-0123456789abcdef0123456789abcdef";
/// A card the test PG approves.
pub const CARD_OK: &str = "1111-2222-3333-4444";

pub struct TestPier {
    pub pier: Pier,
    /// More instances on the same PostgreSQL database (`PIER_TEST_INSTANCES`), for running the
    /// suite against a round-robin of instances: `url` takes them in turn.
    pub others: Vec<Pier>,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    /// The instances' base URLs, the first one's first.
    bases: Vec<String>,
    turn: std::sync::atomic::AtomicUsize,
    _dir: tempfile::TempDir,
    /// Declared after the instances, so it is dropped after them.
    _db: TestDb,
}

/// How many Pier instances a test runs on its database: `PIER_TEST_INSTANCES` (default 1) with
/// `PIER_TEST_STORE=postgres`; always 1 on SQLite (one process owns a SQLite file).
fn instances() -> usize {
    if std::env::var("PIER_TEST_STORE").as_deref() != Ok("postgres") {
        return 1;
    }
    std::env::var("PIER_TEST_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .clamp(1, 4)
}

/// The database for one test: a fresh SQLite file, or a fresh PostgreSQL database cloned from
/// the migrated template (`pier_store::testdb`; dropped with this handle).
pub struct TestDb {
    pub url: String,
    _pg: Option<pier_store::testdb::FreshPostgres>,
}

pub async fn fresh_database(dir: &std::path::Path) -> TestDb {
    if std::env::var("PIER_TEST_STORE").as_deref() == Ok("postgres") {
        let base = std::env::var("PIER_TEST_DATABASE_URL")
            .expect("PIER_TEST_STORE=postgres needs PIER_TEST_DATABASE_URL");
        let pg = pier_store::testdb::fresh_postgres(&base)
            .await
            .expect("a fresh database on the test PostgreSQL");
        TestDb {
            url: pg.url().to_owned(),
            _pg: Some(pg),
        }
    } else {
        TestDb {
            url: format!("sqlite:{}", dir.join("pier.db").display()),
            _pg: None,
        }
    }
}

pub struct Opts {
    pub pg_deadline: Duration,
    pub start_unix: i64,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            pg_deadline: Duration::from_millis(300),
            start_unix: 1_767_225_600,
        } // 2026-01-01
    }
}

/// A Pier on `url` configured as the tests expect (demo merchant, private webhook targets
/// allowed), adjusted by `tweak`.
pub async fn start_pier(
    url: &str,
    dir: &std::path::Path,
    clock: &ManualClock,
    o: &Opts,
    tweak: impl FnOnce(&mut Config),
) -> Pier {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = Config::new(listener.local_addr().unwrap(), url, [7u8; 32]);
    cfg.pg_deadline = o.pg_deadline;
    cfg.demo.imp_code = Some(DEMO_CODE.into());
    cfg.demo.imp_key = Some(DEMO_KEY.into());
    cfg.demo.imp_secret = Some(DEMO_SECRET.into());
    cfg.webhook_allow_private = true;
    cfg.testpg_journal = Some(dir.join("testpg.jsonl"));
    tweak(&mut cfg);
    let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
    Pier::start(cfg, clock_dyn, listener)
        .await
        .expect("pier starts")
}

impl TestPier {
    pub async fn start() -> Self {
        Self::start_with(Opts::default()).await
    }

    pub async fn start_with(o: Opts) -> Self {
        Self::start_cfg(o, |_| {}).await
    }

    /// Starts with a configuration adjusted by `tweak` (e.g. job intervals, retry delays).
    pub async fn start_cfg(o: Opts, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = fresh_database(dir.path()).await;
        let clock = ManualClock::new(o.start_unix);
        Self::start_on(dir, db, clock, o, tweak, instances()).await
    }

    /// One instance even under `PIER_TEST_INSTANCES`: for a test of a per-instance bound (the
    /// limiters and shares docs/ARCHITECTURE.md lists as per instance), which N instances
    /// enforce N times over by design. Each caller says which bound.
    pub async fn start_one_cfg(o: Opts, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = fresh_database(dir.path()).await;
        let clock = ManualClock::new(o.start_unix);
        Self::start_on(dir, db, clock, o, tweak, 1).await
    }

    async fn start_on(
        dir: tempfile::TempDir,
        db: TestDb,
        clock: ManualClock,
        o: Opts,
        tweak: impl FnOnce(&mut Config),
        instances: usize,
    ) -> Self {
        let pier = start_pier(&db.url, dir.path(), &clock, &o, tweak).await;
        let base = pier.base_url();
        let mut others = Vec::new();
        for _ in 1..instances {
            // The same configuration (as the first one's tweak left it) on another port.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut cfg = pier.engine.config().clone();
            cfg.create_demo = false;
            let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
            others.push(
                Pier::start(cfg, clock_dyn, listener)
                    .await
                    .expect("another pier starts"),
            );
        }
        let mut bases = vec![base];
        bases.extend(others.iter().map(Pier::base_url));
        Self {
            pier,
            others,
            clock,
            http: reqwest::Client::new(),
            bases,
            turn: std::sync::atomic::AtomicUsize::new(0),
            _dir: dir,
            _db: db,
        }
    }

    /// Shuts this Pier down and starts a new one on the same database, clock and test PG
    /// journal (a restart, or a crash after the last commit).
    pub async fn restart(self, o: Opts, tweak: impl FnOnce(&mut Config)) -> Self {
        let TestPier {
            pier,
            others,
            clock,
            _dir,
            _db,
            ..
        } = self;
        let n = 1 + others.len();
        pier.shutdown().await;
        for p in others {
            p.shutdown().await;
        }
        Self::start_on(_dir, _db, clock, o, tweak, n).await
    }

    /// `path` on the first instance (`pier`), for a request that must reach the instance a test
    /// manipulates directly (its store, its clock-driven jobs).
    pub fn first_url(&self, path: &str) -> String {
        format!("{}{}", self.bases[0], path)
    }

    /// `path` on every instance: what a URL one of them built may start with.
    pub fn urls(&self, path: &str) -> Vec<String> {
        self.bases.iter().map(|b| format!("{b}{path}")).collect()
    }

    pub fn url(&self, path: &str) -> String {
        let n = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}{}", self.bases[n % self.bases.len()], path)
    }

    pub async fn token_for(&self, key: &str, secret: &str) -> String {
        let (s, b) = self
            .post(
                "/users/getToken",
                None,
                json!({"imp_key": key, "imp_secret": secret}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["response"]["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn token(&self) -> String {
        self.token_for(DEMO_KEY, DEMO_SECRET).await
    }

    /// A second merchant with its own channel; returns its token.
    pub async fn other_merchant(&self) -> String {
        let c = self
            .pier
            .engine
            .create_merchant("Other", None, None, None, false)
            .await
            .unwrap();
        self.pier
            .engine
            .add_channel(&c.imp_code, "jtnet", None, true, None)
            .await
            .unwrap();
        self.token_for(&c.imp_key, &c.imp_secret).await
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let res = rb.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        assert!(
            v.get("code").is_some() && v.get("message").is_some() && v.get("response").is_some(),
            "not an envelope: {v}"
        );
        (status, v)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut rb = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        self.send(rb).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)).header("Authorization", token))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(
            self.http
                .delete(self.url(path))
                .header("Authorization", token),
        )
        .await
    }

    /// A paid keyed payment; returns the Payment.
    pub async fn pay(&self, token: &str, merchant_uid: &str, amount: i64) -> Value {
        let (s, b) = self
            .post(
                "/subscribe/payments/onetime",
                Some(token),
                json!({"merchant_uid": merchant_uid, "amount": amount, "card_number": CARD_OK, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "name": "test order"}),
            )
            .await;
        assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
        assert_eq!(b["response"]["status"], "paid", "{b}");
        b["response"].clone()
    }
}

/// Minimal join_all (no extra crate): runs the futures concurrently on this task.
pub async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, std::pin::Pin<Box<F>>)> =
        handles.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                out[*i] = Some(v);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// A client that does not follow redirects (to look at each hop of a window).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden form field `field` in a page.
pub fn hidden(html: &str, field: &str) -> String {
    let needle = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {field} in {html}"))
        + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// Drives an opened payment window (`window_url` from `/checkout/prepare`) through the test PG's
/// card form with an approved card, up to the PG's answer. Returns the URL of Pier's return step
/// the PG sends the browser to, and the cookie that marks the browser that opened the window (only
/// that browser is redirected to m_redirect_url for a merchant without allowed origins).
pub async fn card_window_through_pg(window_url: &str) -> (String, String) {
    let client = no_redirects();
    let res = client.get(window_url).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let pg_url = res.headers()["location"].to_str().unwrap().to_owned();
    let html = client
        .get(&pg_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let form_url = pg_url.split('?').next().unwrap().to_owned();
    let html = client
        .post(format!("{form_url}/card"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("card_code", "366"),
            ("card_number", "4518-4200-0000-0000"),
            ("expiry", "12/30"),
            ("birth", "880101"),
            ("pwd_2digit", "12"),
            ("quota", "0"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let auth_token = hidden(&html, "auth_token");
    let html = client
        .post(format!("{form_url}/approve"))
        .form(&[("csrf", csrf.as_str()), ("auth_token", auth_token.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let needle = "content=\"0;url=";
    let start = html.find(needle).expect("meta refresh") + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    (html[start..end].replace("&amp;", "&"), cookie)
}

/// The imp_uid an "outcome unknown" answer (code -1) names in its message.
pub fn imp_uid_of_unknown(b: &Value) -> String {
    let m = b["message"].as_str().unwrap();
    let start = m
        .find("imp_uid: ")
        .expect("unknown answer names the imp_uid")
        + "imp_uid: ".len();
    m[start..].trim_end_matches(')').to_owned()
}
