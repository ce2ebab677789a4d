//! Origins and redirects of the payment window (docs/security/origins.md): no open redirect
//! through a finished window, a merchant's allowed origins gate `POST /checkout/prepare` (page,
//! m_redirect_url, confirm_url, notice_url) and frame every window page, and a browser-supplied
//! notice_url cannot redirect the webhooks of a merchant without allowed origins.

use crate::common::*;
use serde_json::{json, Value};

const SHOP: &str = "https://shop.example";
const SHOP_M: &str = "https://m.shop.example:8443";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `POST /checkout/prepare` as a page on `origin` sends it; the answer and its CORS header.
async fn prepare_from(t: &TestPier, origin: &str, body: Value) -> (Value, Option<String>) {
    let res = t
        .http
        .post(t.url("/checkout/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", origin)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let acao = res
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.json().await.unwrap(), acao)
}

fn params(merchant_uid: &str) -> Value {
    json!({"pg": "jtnet", "pay_method": "card", "merchant_uid": merchant_uid, "amount": 5000})
}

/// A non-demo merchant with a channel; returns (imp_code, token).
async fn merchant(t: &TestPier) -> (String, String) {
    let c = t
        .pier
        .engine
        .create_merchant("Shop", None, None, None, false)
        .await
        .unwrap();
    t.pier
        .engine
        .add_channel(&c.imp_code, "jtnet", None, true, None)
        .await
        .unwrap();
    let token = t.token_for(&c.imp_key, &c.imp_secret).await;
    (c.imp_code, token)
}

fn csp_frame_ancestors(res: &reqwest::Response) -> String {
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    csp.split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("frame-ancestors "))
        .unwrap_or_else(|| panic!("no frame-ancestors in {csp}"))
        .to_owned()
}

fn location(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn set_cookie(res: &reqwest::Response) -> String {
    let c = res.headers()["set-cookie"].to_str().unwrap();
    c.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_cancelled_window_is_no_open_redirect() {
    let t = TestPier::start().await;
    let anyone = no_redirects();
    // Anonymous, on the demo merchant (whose code the demo shop publishes).
    let mut p = params("or_1");
    p["m_redirect_url"] = json!("https://evil.example/x");
    let (opened, _) = prepare_from(
        &t,
        "https://evil.example",
        json!({"user_code": DEMO_CODE, "mode": "redirect", "params": p}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    let window = opened["window_url"].as_str().unwrap().to_owned();
    let id = opened["checkout_id"].as_str().unwrap();
    // The attacker opens the window once (learning the PG session) and cancels it.
    let res = anyone.get(&window).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let pg_url = location(&res).unwrap();
    let session = pg_url
        .split("/testpg/window/")
        .nth(1)
        .unwrap()
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned();
    let r: Value = anyone
        .post(t.url(&format!("/checkout/cancel/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["error_code"], "F400", "{r}");

    // A victim following the window URL or the return URL is not sent to evil.example.
    let victim = no_redirects();
    let res = victim.get(&window).send().await.unwrap();
    assert_ne!(res.status(), 302, "{:?}", location(&res));
    assert_eq!(res.status(), 200);
    assert!(location(&res).is_none());
    let back = t.url(&format!(
        "/checkout/return/{id}?auth_session_id={session}&cancel=1"
    ));
    let res = victim.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 200, "{:?}", location(&res));

    // javascript: (and any scheme but http(s)) is refused before any window exists.
    for bad in [
        "javascript:alert(document.domain)",
        "JavaScript:alert(1)",
        "data:text/html,hi",
        "//evil.example/x",
    ] {
        let mut p = params("or_js");
        p["m_redirect_url"] = json!(bad);
        let (r, _) = prepare_from(
            &t,
            "https://evil.example",
            json!({"user_code": DEMO_CODE, "mode": "redirect", "params": p}),
        )
        .await;
        assert_eq!(r["success"], false, "{bad}: {r}");
        assert_eq!(r["error_code"], "F1000", "{bad}: {r}");
        assert!(
            r["error_msg"].as_str().unwrap().contains("http(s)"),
            "{bad}: {r}"
        );
        assert_eq!(r["imp_uid"], Value::Null);
        assert!(r.get("redirect_url").is_none(), "{bad}: {r}");
    }
}

#[tokio::test]
async fn the_browser_that_opened_a_window_is_redirected_only_while_it_lives() {
    let t = TestPier::start().await;
    let browser = no_redirects();
    let mut p = params("or_2");
    p["m_redirect_url"] = json!("https://shop.example/done?o=1");
    let (opened, _) = prepare_from(
        &t,
        SHOP,
        json!({"user_code": DEMO_CODE, "mode": "redirect", "params": p}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    let window = opened["window_url"].as_str().unwrap().to_owned();
    let id = opened["checkout_id"].as_str().unwrap();
    let res = browser.get(&window).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let cookie = set_cookie(&res);
    assert!(cookie.starts_with(&format!("pier_rd_{id}=")), "{cookie}");
    let attrs = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax"),
        "{attrs}"
    );
    browser
        .post(t.url(&format!("/checkout/cancel/{id}")))
        .send()
        .await
        .unwrap();

    // That browser is sent back to the shop with the result…
    let res = browser
        .get(&window)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let to = url::Url::parse(&location(&res).unwrap()).unwrap();
    assert_eq!(to.host_str(), Some("shop.example"));
    assert!(to
        .query_pairs()
        .any(|(k, v)| k == "error_code" && v == "F400"));
    // …a forged cookie is not that browser…
    let res = browser
        .get(&window)
        .header(
            "cookie",
            format!("pier_rd_{id}=00000000000000000000000000000000"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // …and once the window's session has expired, nobody is redirected anywhere.
    t.clock.advance(30 * 60 + 1);
    let res = browser
        .get(&window)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "{:?}", location(&res));
    assert!(location(&res).is_none());
    let html = res.text().await.unwrap();
    assert!(html.contains("expired"), "{html}");
}

#[tokio::test]
async fn allowed_origins_gate_the_window_and_frame_its_pages() {
    let t = TestPier::start().await;
    let (code, token) = merchant(&t).await;
    let e = &t.pier.engine;

    // Validation: http(s) origins only, normalized, bounded; unknown merchants are refused.
    for bad in [
        "shop.example",
        "ftp://shop.example",
        "https://shop.example/path",
        "https://shop.example?x=1",
        "javascript:alert(1)",
    ] {
        let err = e.set_allowed_origins(&code, bad).await.unwrap_err();
        assert!(
            matches!(err, pier_server::engine::Error::Invalid(_)),
            "{bad}: {err}"
        );
    }
    let many: Vec<String> = (0..21).map(|i| format!("https://s{i}.example")).collect();
    assert!(e.set_allowed_origins(&code, &many.join(" ")).await.is_err());
    assert!(matches!(
        e.set_allowed_origins("imp_nobody", SHOP).await,
        Err(pier_server::engine::Error::NotFound(_))
    ));
    let set = e
        .set_allowed_origins(&code, "HTTPS://Shop.Example/ , https://m.shop.example:8443")
        .await
        .unwrap();
    assert_eq!(set, Some(vec![SHOP.to_owned(), SHOP_M.to_owned()]));

    // A foreign page may not open a window; an allowed one may, and only it reads the answer.
    let (r, acao) = prepare_from(
        &t,
        "https://evil.example",
        json!({"user_code": code, "params": params("og_1")}),
    )
    .await;
    assert_eq!(r["error_code"], "F1005", "{r}");
    assert_ne!(acao.as_deref(), Some(SHOP));
    // An opaque origin cannot claim an allowed one through the body.
    let (r, _) = prepare_from(
        &t,
        "null",
        json!({"user_code": code, "origin": SHOP, "params": params("og_1")}),
    )
    .await;
    assert_eq!(r["error_code"], "F1005", "{r}");
    let (s, b) = t.get("/payments/findAll/og_1", &token).await;
    assert!(s == 404 || b["response"]["list"].as_array().unwrap().is_empty());

    // Redirect, confirm and notice targets must be on an allowed origin.
    for (field, value) in [
        ("m_redirect_url", json!("https://evil.example/done")),
        (
            "m_redirect_url",
            json!("https://shop.example.evil.example/"),
        ),
        ("confirm_url", json!("https://evil.example/confirm")),
        ("notice_url", json!("https://evil.example/hook")),
        (
            "notice_url",
            json!(["https://shop.example/hook", "https://evil.example/hook"]),
        ),
    ] {
        let mut p = params("og_2");
        p["m_redirect_url"] = json!("https://shop.example/done");
        p[field] = value.clone();
        let (r, _) = prepare_from(
            &t,
            SHOP,
            json!({"user_code": code, "mode": "redirect", "params": p}),
        )
        .await;
        assert_eq!(r["error_code"], "F1005", "{field}={value}: {r}");
        assert!(r.get("redirect_url").is_none(), "{r}");
    }

    let mut p = params("og_3");
    p["m_redirect_url"] = json!("https://m.shop.example:8443/done");
    p["notice_url"] = json!("https://shop.example/hook");
    let (opened, acao) = prepare_from(
        &t,
        SHOP_M,
        json!({"user_code": code, "mode": "redirect", "params": p}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    assert_eq!(acao.as_deref(), Some(SHOP_M));

    // Every window page is framed by the allowed origins only: the PG's pages and Pier's.
    let client = no_redirects();
    let window = opened["window_url"].as_str().unwrap();
    let res = client.get(window).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let res = client.get(location(&res).unwrap()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(csp_frame_ancestors(&res), format!("{SHOP} {SHOP_M}"));
    let id = opened["checkout_id"].as_str().unwrap();
    let res = client
        .post(t.url(&format!("/checkout/cancel/{id}")))
        .header("origin", SHOP_M)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        SHOP_M,
        "only the opening page reads the cancel"
    );
    // An allowed redirect target is redirected to (no browser binding needed)…
    let res = client.get(window).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert!(location(&res)
        .unwrap()
        .starts_with("https://m.shop.example:8443/done?"));
    // …and a non-redirect window's result page carries the same frame-ancestors.
    let (opened, _) = prepare_from(
        &t,
        SHOP,
        json!({"user_code": code, "params": params("og_4")}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    let id = opened["checkout_id"].as_str().unwrap();
    client
        .post(t.url(&format!("/checkout/cancel/{id}")))
        .send()
        .await
        .unwrap();
    let res = client
        .get(opened["window_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fa = csp_frame_ancestors(&res);
    assert_eq!(fa, format!("{SHOP} {SHOP_M}"));
    assert!(!fa.contains('*'));

    // Cleared: open again (any page), frame-ancestors back to any.
    assert_eq!(e.set_allowed_origins(&code, "").await.unwrap(), None);
    let (r, acao) = prepare_from(
        &t,
        "https://other.example",
        json!({"user_code": code, "params": params("og_5")}),
    )
    .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(acao.as_deref(), Some("*"));
}

#[tokio::test]
async fn a_browser_notice_url_needs_allowed_origins() {
    let t = TestPier::start().await;
    let (code, token) = merchant(&t).await;
    for user_code in [code.as_str(), DEMO_CODE] {
        let mut p = params("on_1");
        p["notice_url"] = json!("https://evil.example/steal");
        let (r, _) = prepare_from(
            &t,
            "https://evil.example",
            json!({"user_code": user_code, "params": p}),
        )
        .await;
        assert_eq!(r["success"], false, "{r}");
        assert_eq!(r["error_code"], "F1005", "{r}");
        assert!(
            r["error_msg"].as_str().unwrap().contains("allowed origins"),
            "{r}"
        );
        assert_eq!(r["imp_uid"], Value::Null);
    }
    let (s, b) = t.get("/payments/findAll/on_1", &token).await;
    assert!(s == 404 || b["response"]["list"].as_array().unwrap().is_empty());
    // Without a notice_url the same merchant's window opens as before.
    let (r, _) = prepare_from(
        &t,
        "https://evil.example",
        json!({"user_code": code, "params": params("on_1")}),
    )
    .await;
    assert_eq!(r["success"], true, "{r}");
}
