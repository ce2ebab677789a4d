//! Three `pier serve` processes on one fresh PostgreSQL database, each started in its own empty
//! directory with the default (in-process) test PG, act as one Pier (issue #20): a billing key
//! issued through A is charged through B and by the scheduler of another instance; a partial
//! cancel through B is seen (and continued) through A; a payment window opened through A
//! completes through B, with pages served by both; a virtual-account deposit received by B lands
//! for A; every webhook goes out once although two instances dispatch. Instance A runs no jobs,
//! so whatever a job did was done by another instance. Needs PostgreSQL
//! (`PIER_TEST_DATABASE_URL`); skipped without it.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CODE: &str = "imp10000002";
const KEY: &str = "mi_key";
const SECRET: &str = "mi_secret_0123456789abcdef";
const CARD: &str = "4518-4200-0000-0000";

mod common;
use common::free_port;

/// A child process killed when dropped, so a failing test leaves nothing running.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < end, "{base} did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// The value of the hidden form field `field` in a page.
fn hidden(html: &str, field: &str) -> String {
    let needle = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {field} in {html}"))
        + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// Webhook receiver: counts deliveries per `(imp_uid, status)`.
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<HashMap<(String, String), usize>>>);

impl Hooks {
    async fn start() -> (Hooks, String) {
        let hooks = Hooks::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let h = hooks.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then as much body as Content-Length says (bounded: test traffic).
                    let body = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break buf[end + 4..end + 4 + len].to_vec();
                            }
                        }
                    };
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        let key = (
                            v["imp_uid"].as_str().unwrap_or_default().to_owned(),
                            v["status"].as_str().unwrap_or_default().to_owned(),
                        );
                        *h.0.lock().unwrap().entry(key).or_default() += 1;
                    }
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (hooks, url)
    }

    fn count(&self, imp_uid: &str, status: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .get(&(imp_uid.to_owned(), status.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// `url` (an address of instance `from`) at instance `to`.
fn at(url: &str, from: &str, to: &str) -> String {
    assert!(url.starts_with(from), "{url} is not at {from}");
    format!("{to}{}", &url[from.len()..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_postgres_act_as_one() {
    let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
        eprintln!("note: PIER_TEST_DATABASE_URL not set: the multi-instance test needs PostgreSQL; skipped");
        return;
    };
    let schema = format!("mi_{:016x}", rand::random::<u64>());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let server_key = hex::encode(rand::random::<[u8; 32]>());
    let http = reqwest::Client::new();
    let (hooks, hook_url) = Hooks::start().await;

    // Each instance in its own empty directory; one server key (as an operator passes it).
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports = [free_port(), free_port(), free_port()];
    let serve = |i: usize| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
        c.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", ports[i]),
            "--jobs-poll-ms",
            "100",
            "--outbound-allow-private",
        ])
        .env("RUST_LOG", "warn")
        .env("PIER_DATABASE_URL", &url)
        .env("PIER_SERVER_KEY", &server_key)
        .env("PIER_DATA_DIR", dirs[i].path().join("data"))
        .env("PIER_DEMO_IMP_CODE", CODE)
        .env("PIER_DEMO_IMP_KEY", KEY)
        .env("PIER_DEMO_IMP_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if i == 0 {
            // A serves requests only: every job below runs in B or C.
            c.arg("--no-jobs");
        } else {
            c.arg("--no-demo");
        }
        Proc(c.spawn().unwrap())
    };
    let _a = serve(0);
    let a = format!("http://127.0.0.1:{}", ports[0]);
    wait_healthy(&http, &a).await;
    let _b = serve(1);
    let _c = serve(2);
    let b = format!("http://127.0.0.1:{}", ports[1]);
    let c = format!("http://127.0.0.1:{}", ports[2]);
    wait_healthy(&http, &b).await;
    wait_healthy(&http, &c).await;
    for d in &dirs {
        assert!(
            !d.path().join("data").exists(),
            "on PostgreSQL with a server key nothing is written to the data dir"
        );
    }

    // A token minted by A works on B.
    let token = json_of(
        http.post(format!("{a}/users/getToken"))
            .json(&json!({"imp_key": KEY, "imp_secret": SECRET})),
    )
    .await;
    let token = token["response"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let post = |base: &str, path: &str, body: Value| {
        json_of(
            http.post(format!("{base}{path}"))
                .header("Authorization", format!("Bearer {token}"))
                .json(&body),
        )
    };
    let get = |base: &str, path: &str| {
        json_of(
            http.get(format!("{base}{path}"))
                .header("Authorization", format!("Bearer {token}")),
        )
    };

    // A billing key issued through A is charged through B.
    let key = post(
        &a,
        "/subscribe/customers/mi-cu",
        json!({"card_number": CARD, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"}),
    )
    .await;
    assert_eq!(key["code"], 0, "{key}");
    let again = post(
        &b,
        "/subscribe/payments/again",
        json!({"customer_uid": "mi-cu", "merchant_uid": "mi-again-1", "amount": 5000,
               "name": "again through B", "notice_url": hook_url}),
    )
    .await;
    assert_eq!(again["code"], 0, "{again}");
    assert_eq!(again["response"]["status"], "paid", "{again}");
    let again_uid = again["response"]["imp_uid"].as_str().unwrap().to_owned();

    // A partial cancel through B is seen through A, and A's test PG continues from it.
    let cancel = post(
        &b,
        "/payments/cancel",
        json!({"imp_uid": again_uid, "amount": 2000, "reason": "partial through B"}),
    )
    .await;
    assert_eq!(cancel["code"], 0, "{cancel}");
    let seen = get(&a, &format!("/payments/{again_uid}")).await;
    assert_eq!(seen["response"]["cancel_amount"], 2000, "{seen}");
    let too_much = post(
        &a,
        "/payments/cancel",
        json!({"imp_uid": again_uid, "amount": 3001, "reason": "more than is left"}),
    )
    .await;
    assert_ne!(too_much["code"], 0, "{too_much}");
    let rest = post(
        &a,
        "/payments/cancel",
        json!({"imp_uid": again_uid, "amount": 3000, "reason": "the rest through A"}),
    )
    .await;
    assert_eq!(rest["code"], 0, "{rest}");
    assert_eq!(rest["response"]["status"], "cancelled", "{rest}");

    // A schedule registered through A is charged by B's or C's scheduler (A runs none).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sched = post(
        &a,
        "/subscribe/payments/schedule",
        json!({"customer_uid": "mi-cu", "schedules": [
            {"merchant_uid": "mi-sched-1", "schedule_at": now + 1, "amount": 3000}]}),
    )
    .await;
    assert_eq!(sched["code"], 0, "{sched}");
    let end = Instant::now() + Duration::from_secs(60);
    let paid = loop {
        let p = get(&a, "/payments/find/mi-sched-1").await;
        if p["response"]["status"] == "paid" {
            break p;
        }
        assert_ne!(p["response"]["status"], "failed", "{p}");
        assert!(Instant::now() < end, "the schedule was not charged: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(paid["response"]["amount"], 3000);

    // A payment window opened through A completes through B (no sticky sessions): Pier's and
    // the PG's pages come from both, the card form is posted to B with A's CSRF token.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened: Value = http
        .post(format!("{a}/checkout/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.example")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/120 Safari/537.36",
        )
        .body(
            json!({"user_code": CODE, "mode": "redirect", "params": {
                "pg": "jtnet", "pay_method": "card", "merchant_uid": "mi-window-1",
                "amount": 14000, "m_redirect_url": "https://shop.example/done"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(opened["success"], true, "{opened}");
    let window_uid = opened["imp_uid"].as_str().unwrap().to_owned();
    let res = no_redirects
        .get(opened["window_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let pg_url = res.headers()["location"].to_str().unwrap().to_owned();
    let html = no_redirects
        .get(&pg_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let form_at_b = at(pg_url.split('?').next().unwrap(), &a, &b);
    let html = no_redirects
        .post(format!("{form_at_b}/card"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("card_code", "366"),
            ("card_number", CARD),
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
    let form_at_c = at(pg_url.split('?').next().unwrap(), &a, &c);
    let html = no_redirects
        .post(format!("{form_at_c}/approve"))
        .form(&[("csrf", csrf.as_str()), ("auth_token", auth_token.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let needle = "content=\"0;url=";
    let start = html.find(needle).expect("meta refresh") + needle.len();
    let stop = html[start..].find('"').unwrap() + start;
    let back = html[start..stop].replace("&amp;", "&");
    let res = no_redirects
        .get(at(&back, &a, &b))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "Pier's return step on B");
    let done = get(&a, &format!("/payments/{window_uid}")).await;
    assert_eq!(done["response"]["status"], "paid", "{done}");
    assert_eq!(done["response"]["amount"], 14000);

    // A virtual account issued through A; the deposit is received by B and lands for A.
    let due = now + 3 * 24 * 3600;
    let vbank = post(
        &a,
        "/vbanks",
        json!({"merchant_uid": "mi-vbank-1", "amount": 25000, "vbank_code": "004",
               "vbank_due": due, "vbank_holder": "홍길동", "name": "vbank order",
               "notice_url": hook_url}),
    )
    .await;
    assert_eq!(vbank["code"], 0, "{vbank}");
    let vbank_uid = vbank["response"]["imp_uid"].as_str().unwrap().to_owned();
    let dep = post(&b, "/testpg/vbank/deposit", json!({"imp_uid": vbank_uid})).await;
    assert_eq!(dep["code"], 0, "{dep}");
    let seen = get(&a, &format!("/payments/{vbank_uid}")).await;
    assert_eq!(seen["response"]["status"], "paid", "{seen}");
    // A second deposit, through C, is refused by the one test PG.
    let twice = post(&c, "/testpg/vbank/deposit", json!({"imp_uid": vbank_uid})).await;
    assert_ne!(twice["code"], 0, "{twice}");

    // Webhooks: every event was delivered, and once, though B and C both dispatch.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {schema}.outbox WHERE state = 'pending'"
        ))
        .fetch_one(&admin)
        .await
        .unwrap();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < end, "{pending} webhooks still pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT imp_uid, status, COUNT(*) FROM {schema}.outbox \
         WHERE notice_urls IS NOT NULL GROUP BY imp_uid, status"
    ))
    .fetch_all(&admin)
    .await
    .unwrap();
    for (uid, status) in [(&again_uid, "paid"), (&vbank_uid, "paid")] {
        assert!(
            events.iter().any(|e| &e.0 == uid && e.1 == status),
            "a {status} event for {uid}: {events:?}"
        );
    }
    for (uid, status, n) in &events {
        assert_eq!(
            hooks.count(uid, status) as i64,
            *n,
            "{status} webhooks for {uid} delivered once each: {:?}",
            hooks.0.lock().unwrap()
        );
    }

    drop((_a, _b, _c));
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
