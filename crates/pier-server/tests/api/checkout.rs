//! The payment window without a browser: pre-validation of `POST /checkout/prepare`, the whole
//! window flow driven form by form (redirect mode), result merging into `m_redirect_url`,
//! cancel, and the headers of the pages. The browser tests live in `e2e/`.

use crate::common::*;
use serde_json::{json, Value};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn prepare(t: &TestPier, body: Value) -> Value {
    let res = t
        .http
        .post(t.url("/checkout/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.example")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/120 Safari/537.36",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "*",
        "the SDK reads it cross-origin"
    );
    res.json().await.unwrap()
}

fn pay_params(merchant_uid: &str, amount: Value) -> Value {
    json!({"pg": "jtnet", "pay_method": "card", "merchant_uid": merchant_uid, "amount": amount})
}

async fn count_payments(t: &TestPier, token: &str, merchant_uid: &str) -> usize {
    let (s, b) = t
        .get(&format!("/payments/findAll/{merchant_uid}"), token)
        .await;
    if s == 404 {
        return 0;
    }
    b["response"]["list"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn prepare_prevalidation_refusals() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"user_code": DEMO_CODE, "params": pay_params("v1", json!("14000"))}),
            "F1000",
            "amount must be an integer (not string)",
        ),
        (
            json!({"user_code": DEMO_CODE, "params": {"pg": "jtnet", "amount": 1000}}),
            "F1000",
            "merchant_uid is required",
        ),
        (
            json!({"user_code": "imp99999999", "params": pay_params("v2", json!(1000))}),
            "F0001",
            "등록되지 않은 가맹점",
        ),
        (
            json!({"params": pay_params("v3", json!(1000))}),
            "F0001",
            "userCode",
        ),
        (
            json!({"user_code": DEMO_CODE, "params": {"pg": "kcp", "merchant_uid": "v4", "amount": 1000}}),
            "F1001",
            "kcp",
        ),
        (
            json!({"user_code": DEMO_CODE, "params": {"pay_method": "kakaopay", "merchant_uid": "v5", "amount": 1000}}),
            "F1000",
            "not offered",
        ),
        (
            json!({"user_code": DEMO_CODE, "params": pay_params("v6", json!(0))}),
            "F1000",
            "customer_uid",
        ),
        (
            json!({"user_code": DEMO_CODE, "params": pay_params("v7", json!(1000.5))}),
            "F1000",
            "integer",
        ),
        (
            json!({"user_code": DEMO_CODE, "mode": "redirect", "params": pay_params("v8", json!(1000))}),
            "F1000",
            "m_redirect_url",
        ),
        (
            json!({"user_code": DEMO_CODE, "params": {"pay_method": "trans", "merchant_uid": "v9", "amount": 1000, "customer_uid": "c1"}}),
            "F1000",
            "customer_uid",
        ),
        (
            json!({"user_code": DEMO_CODE, "params": {"merchant_uid": "v10", "amount": 1000, "card": {"detail": [{"card_code": "366"}]}}}),
            "F1000",
            "card.detail",
        ),
    ];
    for (body, code, msg) in cases {
        let r = prepare(&t, body.clone()).await;
        assert_eq!(r["success"], false, "{body} → {r}");
        assert_eq!(r["error_code"], code, "{body} → {r}");
        assert!(
            r["error_msg"].as_str().unwrap().contains(msg),
            "{body} → {r}"
        );
        assert_eq!(r["imp_uid"], Value::Null, "no payment row for {body}");
    }
    for uid in ["v1", "v2", "v4", "v5", "v6", "v7"] {
        assert_eq!(count_payments(&t, &token, uid).await, 0, "{uid}");
    }
}

#[tokio::test]
async fn prepare_refuses_a_paid_merchant_uid_and_redirects_the_failure() {
    let t = TestPier::start().await;
    let token = t.token().await;
    t.pay(&token, "paid_once", 1000).await;
    let mut params = pay_params("paid_once", json!(1000));
    params["m_redirect_url"] = json!("http://detectchangingwebview/iamport/rn?x=1#frag");
    let r = prepare(
        &t,
        json!({"user_code": DEMO_CODE, "mode": "redirect", "params": params}),
    )
    .await;
    assert_eq!(r["success"], false);
    assert_eq!(r["error_code"], "F1002");
    assert_eq!(r["error_msg"], "이미 결제가 이루어진 거래건입니다.");
    let redirect = url::Url::parse(r["redirect_url"].as_str().unwrap()).unwrap();
    assert_eq!(redirect.host_str(), Some("detectchangingwebview"));
    assert_eq!(redirect.fragment(), Some("frag"));
    let q: std::collections::HashMap<String, String> =
        redirect.query_pairs().into_owned().collect();
    assert_eq!(q["x"], "1");
    assert_eq!(q["merchant_uid"], "paid_once");
    assert_eq!(q["imp_success"], "false");
    assert_eq!(q["error_code"], "F1002");
    assert_eq!(count_payments(&t, &token, "paid_once").await, 1);
}

/// Pulls `name="{field}" value="…"` out of a page.
fn hidden(html: &str, field: &str) -> String {
    let needle = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {field} in {html}"))
        + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

fn meta_refresh(html: &str) -> String {
    let needle = "content=\"0;url=";
    let start = html.find(needle).expect("meta refresh") + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn window_flow_in_redirect_mode_merges_the_result_into_m_redirect_url() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let client = no_redirects();
    let mut params = pay_params("win_1", json!(14000));
    params["m_redirect_url"] = json!("https://shop.example/done?orderId=7&imp_uid=stale#result");
    params["buyer_name"] = json!("홍길동");
    params["card"] = json!({"detail": [{"card_code": "*", "enabled": false}, {"card_code": "366", "enabled": true}]});
    let opened = prepare(
        &t,
        json!({"user_code": DEMO_CODE, "mode": "redirect", "params": params}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    let imp_uid = opened["imp_uid"].as_str().unwrap().to_owned();
    let (_, ready) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(ready["response"]["status"], "ready");
    assert_eq!(ready["response"]["channel"], "mobile");

    // Pier's window URL sends the browser on to the PG's window.
    let res = client
        .get(opened["window_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    // The browser that opened the window is the one sent back to m_redirect_url (the demo
    // merchant has no allowed origins; docs/security/origins.md).
    let binding = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let pg_url = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(pg_url.contains("/testpg/window/"), "{pg_url}");
    let res = client.get(&pg_url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'none'") && csp.contains("frame-ancestors *"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("data-testid=\"card-issuer-366\""));
    assert!(
        !html.contains("data-testid=\"card-issuer-381\""),
        "whitelist"
    );
    let csrf = hidden(&html, "csrf");
    let form_url = pg_url.split('?').next().unwrap().to_owned();

    // A forged form (no CSRF token) is refused.
    let forged = client
        .post(format!("{form_url}/card"))
        .form(&[("card_code", "366"), ("card_number", "4518420000000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let res = client
        .post(format!("{form_url}/card"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("card_detail", "*:0,366:1"),
            ("card_code", "366"),
            ("card_number", "4518-4200-0000-0000"),
            ("expiry", "12/30"),
            ("birth", "880101"),
            ("pwd_2digit", "12"),
            ("quota", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("4518-4200-0000-0000") && !html.contains("4518420000000000"),
        "no card data echoed"
    );
    let auth_token = hidden(&html, "auth_token");
    let res = client
        .post(format!("{form_url}/approve"))
        .form(&[("csrf", csrf.as_str()), ("auth_token", auth_token.as_str())])
        .send()
        .await
        .unwrap();
    let back = meta_refresh(&res.text().await.unwrap());
    assert!(back.contains("/checkout/return/"), "{back}");

    let res = client
        .get(&back)
        .header("cookie", &binding)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(to.host_str(), Some("shop.example"));
    assert_eq!(to.fragment(), Some("result"));
    let q: Vec<(String, String)> = to.query_pairs().into_owned().collect();
    assert_eq!(q[0], ("orderId".into(), "7".into()));
    assert_eq!(q.iter().filter(|(k, _)| k == "imp_uid").count(), 1);
    assert!(q.contains(&("imp_uid".into(), imp_uid.clone())));
    assert!(q.contains(&("merchant_uid".into(), "win_1".into())));
    assert!(q.contains(&("imp_success".into(), "true".into())));

    let (_, paid) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    let p = &paid["response"];
    assert_eq!(p["status"], "paid");
    assert_eq!(p["amount"], 14000);
    assert_eq!(p["card_code"], "366");
    assert_eq!(p["buyer_name"], "홍길동");
    assert_eq!(p["pay_method"], "card");

    // Returning again replays the stored result, never a second charge.
    let res = client
        .get(&back)
        .header("cookie", &binding)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let again = prepare(
        &t,
        json!({"user_code": DEMO_CODE, "params": pay_params("win_1", json!(14000))}),
    )
    .await;
    assert_eq!(again["error_code"], "F1002");
}

#[tokio::test]
async fn sdk_close_cancels_with_f400_and_the_done_page_is_locked_down() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let client = no_redirects();
    let opened = prepare(
        &t,
        json!({"user_code": DEMO_CODE, "params": pay_params("win_c", json!(5000))}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    let id = opened["checkout_id"].as_str().unwrap();
    let res = client
        .post(t.url(&format!("/checkout/cancel/{id}")))
        .send()
        .await
        .unwrap();
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["success"], false);
    assert_eq!(r["error_code"], "F400");
    assert_eq!(r["error_msg"], "사용자가 결제를 취소하였습니다");
    let imp_uid = opened["imp_uid"].as_str().unwrap();
    let (_, p) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(p["response"]["status"], "failed");
    assert_eq!(
        p["response"]["fail_reason"],
        "사용자가 결제를 취소하였습니다"
    );

    // The window now shows the stored result to the merchant's origin only.
    let res = client
        .get(opened["window_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(
        html.contains("data-origin=\"http://shop.example\""),
        "{html}"
    );
    assert!(html.contains("/checkout/static/done.js"));

    // The merchant_uid is free again after a cancelled window.
    let reopened = prepare(
        &t,
        json!({"user_code": DEMO_CODE, "params": pay_params("win_c", json!(5000))}),
    )
    .await;
    assert_eq!(reopened["success"], true, "{reopened}");
}

#[tokio::test]
async fn sdk_and_demo_are_served() {
    let t = TestPier::start().await;
    let res = t.http.get(t.url("/v1/iamport.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/javascript"));
    let js = res.text().await.unwrap();
    assert!(js.contains("request_pay") && js.contains("window.IMP") || js.contains("global.IMP"));
    let res = t.http.get(t.url("/demo")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(DEMO_CODE) && html.contains("data-testid=\"demo-buy\""));
    let res = t
        .http
        .post(t.url("/demo/verify"))
        .json(&json!({"imp_uid": "imp_000000000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let token = t.token().await;
    let paid = t.pay(&token, "demo_v", 14000).await;
    let v: Value = t
        .http
        .post(t.url("/demo/verify"))
        .json(&json!({"imp_uid": paid["imp_uid"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["verified"], true, "{v}");
}
