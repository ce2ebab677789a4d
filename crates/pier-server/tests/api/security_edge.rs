//! The network edge through the real server: getToken lockout and client addresses behind
//! trusted proxies, limits on the anonymous endpoints, connection timeouts and the connection
//! cap, headers of every answer, /metrics on its own listener, and the test PG's pages inside
//! the API's middleware. Clients bind 127.0.0.x source addresses to be different clients.

use crate::common::*;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client whose connections come from `ip` (any 127.0.0.0/8 address works on loopback).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get_token(
    t: &TestPier,
    c: &reqwest::Client,
    xff: Option<&str>,
    key: &str,
    secret: &str,
) -> (u16, Value) {
    let mut rb = c
        .post(t.url("/users/getToken"))
        .json(&json!({"imp_key": key, "imp_secret": secret}));
    if let Some(x) = xff {
        rb = rb.header("x-forwarded-for", x);
    }
    t.send(rb).await
}

/// 25 wrong secrets for the demo key; returns the last status.
async fn fail_25(t: &TestPier, c: &reqwest::Client, xff: Option<&str>) -> u16 {
    let mut last = 0;
    for _ in 0..25 {
        let (s, b) = get_token(t, c, xff, DEMO_KEY, "wrong-wrong-wrong-wrong").await;
        assert_eq!(b["code"], -1, "{b}");
        last = s;
    }
    last
}

#[tokio::test]
async fn wrong_secrets_from_one_address_do_not_lock_the_merchant_out() {
    // One instance: the getToken failure limiter is per instance (docs/ARCHITECTURE.md, "Several
    // instances on one PostgreSQL": N instances allow N × the bound), and this asserts the bound.
    let t = TestPier::start_one_cfg(Opts::default(), |_| {}).await;
    let attacker = client_from("127.0.0.2");
    assert_eq!(
        fail_25(&t, &attacker, None).await,
        429,
        "the attacker is limited"
    );
    // The merchant, from its own address, with the right secret: a token.
    let (s, b) = get_token(&t, &client_from("127.0.0.3"), None, DEMO_KEY, DEMO_SECRET).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert!(b["response"]["access_token"].is_string());
    // The attacker's address stays limited, for the right secret too (it cannot test guesses).
    let (s, b) = get_token(&t, &attacker, None, DEMO_KEY, DEMO_SECRET).await;
    assert_eq!((s, b["code"].as_i64()), (429, Some(-1)), "{b}");
    assert!(b["response"].is_null());
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    // One instance: the getToken failure limiter is per instance (docs/ARCHITECTURE.md, "Several
    // instances on one PostgreSQL": N instances allow N × the bound), and this asserts the bound.
    let t = TestPier::start_one_cfg(Opts::default(), |c| {
        c.trusted_proxies = vec![pier_server::edge::parse_cidr("127.0.0.2/32").unwrap()];
    })
    .await;
    let proxy = client_from("127.0.0.2");
    // Behind the trusted proxy: an attacker at 198.51.100.1 is limited...
    assert_eq!(fail_25(&t, &proxy, Some("198.51.100.1")).await, 429);
    // ...also when it prepends its own spoofed hops (the proxy appends the real one).
    let (s, _) = get_token(
        &t,
        &proxy,
        Some("203.0.113.77, 198.51.100.1"),
        DEMO_KEY,
        DEMO_SECRET,
    )
    .await;
    assert_eq!(s, 429, "the rightmost untrusted hop is the client");
    // ...while the merchant at 198.51.100.2 behind the same proxy gets its token.
    let (s, b) = get_token(&t, &proxy, Some("198.51.100.2"), DEMO_KEY, DEMO_SECRET).await;
    assert_eq!(s, 200, "{b}");

    // From an untrusted peer the header is ignored: its failures count against its own
    // address, and a new X-Forwarded-For does not buy fresh attempts.
    let direct = client_from("127.0.0.3");
    assert_eq!(fail_25(&t, &direct, Some("198.51.100.9")).await, 429);
    let (s, _) = get_token(&t, &direct, Some("198.51.100.10"), DEMO_KEY, DEMO_SECRET).await;
    assert_eq!(
        s, 429,
        "a spoofed X-Forwarded-For from an untrusted peer is ignored"
    );
}

#[tokio::test]
async fn failures_per_address_are_still_limited_across_keys_and_expire() {
    // One instance: the getToken failure limiter is per instance (docs/ARCHITECTURE.md, "Several
    // instances on one PostgreSQL": N instances allow N × the bound), and this asserts the bound.
    let t = TestPier::start_one_cfg(Opts::default(), |_| {}).await;
    let c = client_from("127.0.0.4");
    let mut statuses = Vec::new();
    for i in 0..25 {
        let (s, _) = get_token(&t, &c, None, &format!("guess-{i}"), "guess-secret").await;
        statuses.push(s);
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    let (s, _) = get_token(&t, &c, None, DEMO_KEY, DEMO_SECRET).await;
    assert_eq!(s, 429);
    // The limit refills on the engine clock.
    t.clock.advance(61);
    let (s, _) = get_token(&t, &c, None, DEMO_KEY, DEMO_SECRET).await;
    assert_eq!(s, 200);
}

fn prepare_body(merchant_uid: &str) -> String {
    json!({"user_code": DEMO_CODE, "params": {"pg": "jtnet", "pay_method": "card", "merchant_uid": merchant_uid, "amount": 1000}})
        .to_string()
}

async fn prepare_from(t: &TestPier, c: &reqwest::Client, merchant_uid: &str) -> (u16, Value, bool) {
    let res = c
        .post(t.url("/checkout/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.example")
        .body(prepare_body(merchant_uid))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    let cors = res
        .headers()
        .get("access-control-allow-origin")
        .is_some_and(|v| v == "*");
    (s, res.json().await.unwrap(), cors)
}

#[tokio::test]
async fn prepare_flood_is_answered_429_while_other_addresses_get_through() {
    // One instance: the prepare limiter (per address and per merchant) is per instance
    // (docs/ARCHITECTURE.md, "Several instances on one PostgreSQL": N instances allow N × the
    // bound), and this asserts the bound.
    let t = TestPier::start_one_cfg(Opts::default(), |c| {
        c.prepare_per_addr_per_sec = 1;
        c.prepare_per_addr_burst = 5;
    })
    .await;
    let flood = client_from("127.0.0.5");
    let mut ok = 0;
    let mut limited = None;
    for i in 0..20 {
        let (s, b, cors) = prepare_from(&t, &flood, &format!("flood-{i}")).await;
        match s {
            200 => {
                assert_eq!(b["success"], true, "{b}");
                ok += 1;
            }
            429 => {
                assert!(cors, "the SDK can read the refusal cross-origin");
                limited = Some(b);
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    // The burst, plus a refill per second the loop ran (well under a second unloaded).
    assert!((5..=10).contains(&ok), "{ok} went through");
    let b = limited.expect("the flood was refused");
    assert_eq!(b["code"], -1, "{b}");
    assert!(b["message"].as_str().unwrap().contains("too many"), "{b}");
    assert!(b["response"].is_null());
    // Another address is not affected.
    let (s, b, _) = prepare_from(&t, &client_from("127.0.0.6"), "other-addr").await;
    assert_eq!((s, &b["success"]), (200, &json!(true)), "{b}");
}

#[tokio::test]
async fn prepare_is_limited_per_merchant_across_addresses() {
    // One instance: the prepare limiter (per address and per merchant) is per instance
    // (docs/ARCHITECTURE.md, "Several instances on one PostgreSQL": N instances allow N × the
    // bound), and this asserts the bound.
    let t = TestPier::start_one_cfg(Opts::default(), |c| {
        c.prepare_per_merchant_per_sec = 1;
        c.prepare_per_merchant_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let c = client_from(&format!("127.0.1.{}", i + 1));
        let (s, b, _) = prepare_from(&t, &c, &format!("m-{i}")).await;
        if s == 429 {
            assert_eq!(b["code"], -1);
        }
        statuses.push(s);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
}

/// Reads until EOF (or a reset); true if that happened within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // e.g. a 408 before the close
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn half_sent_headers_and_silent_connections_are_closed() {
    let t = TestPier::start_cfg(Opts::default(), |c| {
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut half = tokio::net::TcpStream::connect(t.pier.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: pier\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(t.pier.addr).await.unwrap();
    // A liveness bound, not a timing assertion: before the fix neither ever closed.
    assert!(
        closed_within(&mut half, Duration::from_secs(15)).await,
        "half-sent headers"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(15)).await,
        "a connection that never sends"
    );
    // Whole requests are still served.
    let (s, _) = t.send(t.http.get(t.url("/healthz"))).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let t = TestPier::start_cfg(Opts::default(), |c| {
        c.max_connections = 2;
    })
    .await;
    let a = tokio::net::TcpStream::connect(t.pier.addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(t.pier.addr).await.unwrap();
    // Give the server a moment to accept both (they now hold the two slots).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let r = third.get(t.url("/healthz")).send().await;
    assert!(r.is_err(), "a third connection was served: {r:?}");
    drop(a);
    let fourth = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let r = fourth.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "served once a slot is free");
}

#[tokio::test]
async fn every_answer_says_nosniff_and_names_no_server() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let c = client_from("127.0.0.1");
    let reqs = vec![
        c.get(t.url("/healthz")),
        c.get(t.url("/readyz")),
        c.get(t.url("/openapi.json")),
        c.get(t.url("/no/such/path")),
        c.get(t.url("/users/pg")).header("Authorization", &tok),
        c.get(t.url("/payments/nope")).header("Authorization", &tok),
        c.post(t.url("/users/getToken"))
            .json(&json!({"imp_key": "x", "imp_secret": "y"})),
        c.post(t.url("/checkout/prepare"))
            .body(prepare_body("hdr-1")),
    ];
    for rb in reqs {
        let res = rb.send().await.unwrap();
        let what = format!("{} {}", res.status(), res.url().path());
        assert_eq!(
            res.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
        assert!(res.headers().get("server").is_none(), "{what}");
    }
}

#[tokio::test]
async fn metrics_can_move_to_their_own_listener() {
    let t = TestPier::start_cfg(Opts::default(), |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (s, b) = t.send(t.http.get(t.url("/metrics"))).await;
    assert_eq!((s, b["code"].as_i64()), (404, Some(-1)), "{b}");
    let addr = t.pier.metrics_addr.expect("a metrics listener");
    assert_ne!(addr, t.pier.addr);
    let res = t
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("pier_http_requests_total"), "{text}");
}

/// Opens a window and returns the test PG's page URL it redirects to.
async fn pg_page(t: &TestPier, c: &reqwest::Client, merchant_uid: &str) -> String {
    let (s, b, _) = prepare_from(t, c, merchant_uid).await;
    assert_eq!(s, 200, "{b}");
    let res = c
        .get(b["window_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.contains("/testpg/window/"), "{loc}");
    if loc.starts_with("http") {
        loc
    } else {
        t.url(&loc)
    }
}

#[tokio::test]
async fn test_pg_pages_run_inside_the_api_middleware_and_limits() {
    let t = TestPier::start_cfg(Opts::default(), |c| {
        c.anon_per_addr_per_sec = 1;
        c.anon_per_addr_burst = 4;
    })
    .await;
    let c = client_from("127.0.0.7");
    let page = pg_page(&t, &c, "pg-page-1").await; // the window: 1 of 4
    let res = c.get(&page).send().await.unwrap(); // 2 of 4
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert!(h.get("x-request-id").is_some(), "request ids: {h:?}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.get("server").is_none());
    // Counted by the metrics middleware under its route template.
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("route=\"/testpg/window/{sid}\""),
        "the test PG page is not in /metrics"
    );
    // The per-address limit of anonymous endpoints covers them.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(c.get(&page).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // Another address still gets the page.
    let res = client_from("127.0.0.8").get(&page).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn shutdown_still_finishes_in_flight_requests_and_does_not_wait_for_idle_ones() {
    let t = TestPier::start().await;
    // An idle keep-alive connection in the client's pool.
    let (s, _) = t.send(t.http.get(t.url("/healthz"))).await;
    assert_eq!(s, 200);
    // A request in flight: headers sent, half of the body.
    let body = json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut slow = tokio::net::TcpStream::connect(t.pier.addr).await.unwrap();
    let head = format!(
        "POST /users/getToken HTTP/1.1\r\nHost: pier\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let TestPier { pier, .. } = t;
    let shutdown = tokio::spawn(pier.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the request");
    slow.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut answer))
        .await
        .expect("the connection closes after its answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("access_token"), "{answer}");
    tokio::time::timeout(Duration::from_secs(15), shutdown)
        .await
        .expect("shutdown ends (the idle connection does not hold it)")
        .unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let t = TestPier::start_cfg(Opts::default(), |c| {
        c.header_read_timeout = Duration::from_secs(60);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(t.pier.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: pier\r\n\r\n")
        .await
        .unwrap();
    // The answer arrives, then (keep-alive, nothing more sent) the close: a liveness bound.
    assert!(closed_within(&mut conn, Duration::from_secs(15)).await);
}

/// A TCP forwarder on loopback in front of the test PostgreSQL that can be cut: every open
/// connection through it is dropped and new ones are refused, as when the database host goes away.
struct CutProxy {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

async fn cut_proxy(target: std::net::SocketAddr) -> CutProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut stop = rx.clone();
        loop {
            tokio::select! {
                _ = stop.wait_for(|v| *v) => break, // drops the listener: connections refused
                accepted = listener.accept() => {
                    let Ok((mut inbound, _)) = accepted else { break };
                    let mut stop = rx.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = stop.wait_for(|v| *v) => {}
                        }
                    });
                }
            }
        }
    });
    CutProxy { addr, cut }
}

/// `/readyz` says the database is unreachable without the driver's text (host, port, OS error):
/// the detail goes to the log. Needs the test PostgreSQL (`PIER_TEST_DATABASE_URL`, set in CI);
/// a SQLite file cannot be taken away from a running server.
#[tokio::test]
async fn readyz_hides_the_database_error_text() {
    let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
        eprintln!("skipped: PIER_TEST_DATABASE_URL is not set");
        return;
    };
    let mut url = url::Url::parse(&base).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(5432);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let schema = format!("t_{}", pier_domain::ids::random_hex(6));
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let proxy = cut_proxy(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    url.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={schema}"));
    let dir = tempfile::tempdir().unwrap();
    let clock = pier_domain::ManualClock::new(Opts::default().start_unix);
    let pier = start_pier(url.as_str(), dir.path(), &clock, &Opts::default(), |_| {}).await;
    let ready = format!("{}/readyz", pier.base_url());
    let res = reqwest::get(&ready).await.unwrap();
    assert_eq!(res.status(), 200);

    let _ = proxy.cut.send(true);
    let res = reqwest::get(&ready).await.unwrap();
    assert_eq!(res.status(), 503);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["message"], "database unreachable", "{text}");
    for leak in [
        proxy.addr.port().to_string().as_str(),
        "os error",
        "communicating",
        "refused",
        "127.0.0.1",
    ] {
        assert!(!text.contains(leak), "`{leak}` in {text}");
    }
    // Shutting down would wait on a pool that can no longer reach its database.
    drop(pier);
}
