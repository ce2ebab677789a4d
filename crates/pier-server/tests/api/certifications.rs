//! Identity verification: the REST OTP flow (`/certifications/otp/request`, `/otp/confirm`),
//! lookups and deletion, and the test identity provider's window behind `IMP.certification`
//! driven over HTTP (the Chromium run is e2e/tests/certification.test.js).

use crate::common::*;
use pier_domain::Clock;
use serde_json::{json, Value};

fn code(b: &Value) -> i64 {
    b["code"].as_i64().unwrap()
}

fn person() -> Value {
    json!({"name": "홍길동", "phone": "010-1234-5678", "birth": "880101", "gender_digit": "1",
           "carrier": "SKT", "merchant_uid": "cert-1", "company": "Pier 상점"})
}

async fn request(t: &TestPier, tok: &str, body: Value) -> String {
    let (s, b) = t.post("/certifications/otp/request", Some(tok), body).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    b["response"]["imp_uid"].as_str().unwrap().to_owned()
}

async fn confirm(t: &TestPier, tok: &str, imp: &str, otp: &str) -> (u16, Value) {
    t.post(
        &format!("/certifications/otp/confirm/{imp}"),
        Some(tok),
        json!({ "otp": otp }),
    )
    .await
}

async fn certify(t: &TestPier, tok: &str, body: Value) -> Value {
    let imp = request(t, tok, body).await;
    let (s, b) = confirm(t, tok, &imp, "123456").await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    b["response"].clone()
}

#[tokio::test]
async fn otp_request_and_confirm_certify_once() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let imp = request(&t, &tok, person()).await;

    // Before the code: a record, nothing certified, no personal data in the answer.
    let (s, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["certified"], false);
    assert_eq!(b["response"]["certified_at"], 0);
    assert!(b["response"]["name"].is_null() && b["response"]["unique_key"].is_null());

    // A wrong code: refused (the provider refused: 200, -1), nothing certified.
    let (s, b) = confirm(&t, &tok, &imp, "654321").await;
    assert_eq!((s, code(&b)), (200, -1), "{b}");
    assert!(b["message"].as_str().unwrap().contains("wrong code"), "{b}");
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);

    t.clock.advance(30);
    let (s, b) = confirm(&t, &tok, &imp, "123456").await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let r = &b["response"];
    assert_eq!(r["imp_uid"], imp.as_str());
    assert_eq!(r["merchant_uid"], "cert-1");
    assert_eq!(r["name"], "홍길동");
    assert_eq!(r["gender"], "male");
    assert_eq!(r["birthday"], "1988-01-01");
    assert_eq!(r["phone"], "01012345678");
    assert_eq!(r["carrier"], "SKT");
    assert_eq!(r["foreigner"], false);
    assert_eq!(r["certified"], true);
    assert_eq!(r["certified_at"], t.clock.now_unix());
    assert!(r["certified_at"].is_i64());
    assert_eq!(r["pg_provider"], "danal");
    assert!(r["pg_tid"].as_str().unwrap().starts_with("testid_"));
    let ci = r["unique_key"].as_str().unwrap();
    let di = r["unique_in_site"].as_str().unwrap();
    assert_eq!((ci.len(), di.len()), (88, 64), "{r}");
    // Keyed hashes, not the inputs.
    for raw in ["홍길동", "880101", "01012345678"] {
        assert!(!ci.contains(raw) && !di.contains(raw));
    }

    // A second confirm is refused and changes nothing.
    t.clock.advance(10);
    let (s, b) = confirm(&t, &tok, &imp, "123456").await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    assert!(b["message"].as_str().unwrap().contains("already"), "{b}");
    let (s, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!((s, code(&b)), (200, 0));
    assert_eq!(&b["response"], r);

    // At rest the person is sealed: the stored row holds none of it in clear.
    let row = t
        .pier
        .store()
        .get_certification(DEMO_CODE, &imp)
        .await
        .unwrap()
        .unwrap();
    let sealed = row.sealed.unwrap();
    assert!(sealed.starts_with("v1:"));
    for raw in ["홍길동", "880101", "19880101", "01012345678", "1234-5678"] {
        assert!(!sealed.contains(raw), "{raw} in clear");
    }
}

#[tokio::test]
async fn ci_is_stable_per_person_and_di_per_merchant() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let a = certify(&t, &tok, person()).await;
    // Same person, another phone and carrier, YYYYMMDD, a form body: same CI and DI.
    let res = t
        .http
        .post(t.url("/certifications/otp/request"))
        .header("Authorization", &tok)
        .form(&[
            ("name", "홍길동"),
            ("phone", "010.9999.8888"),
            ("birth", "1988-01-01"),
            ("gender_digit", "1"),
            ("carrier", "KT"),
            ("is_mvno", "true"),
        ])
        .send()
        .await
        .unwrap();
    let b: Value = res.json().await.unwrap();
    assert_eq!(code(&b), 0, "{b}");
    let imp = b["response"]["imp_uid"].as_str().unwrap().to_owned();
    let (_, b) = confirm(&t, &tok, &imp, "123456").await;
    let same = &b["response"];
    assert_eq!(same["carrier"], "KT_MVNO");
    assert_eq!(same["phone"], "01099998888");
    assert!(same["merchant_uid"].is_null());
    assert_eq!(same["unique_key"], a["unique_key"]);
    assert_eq!(same["unique_in_site"], a["unique_in_site"]);

    // Another person: another CI.
    let mut p = person();
    p["birth"] = json!("880102");
    let other_person = certify(&t, &tok, p).await;
    assert_ne!(other_person["unique_key"], a["unique_key"]);
    assert_ne!(other_person["unique_in_site"], a["unique_in_site"]);

    // A foreign woman born in 2005.
    let f = certify(
        &t,
        &tok,
        json!({"name": "Jane Doe", "phone": "01055556666", "birth": "050315", "gender_digit": 8,
               "carrier": "LGT", "pg": "danal.A010002002"}),
    )
    .await;
    assert_eq!(
        (&f["gender"], &f["foreigner"], &f["birthday"]),
        (&json!("female"), &json!(true), &json!("2005-03-15"))
    );
    assert_eq!(f["pg_provider"], "danal");

    // Another merchant: the same CI, another DI; and it sees none of the first one's records.
    let other = t.other_merchant().await;
    let o = certify(&t, &other, person()).await;
    assert_eq!(o["unique_key"], a["unique_key"]);
    assert_ne!(o["unique_in_site"], a["unique_in_site"]);
    let imp_a = a["imp_uid"].as_str().unwrap();
    let (s, b) = t.get(&format!("/certifications/{imp_a}"), &other).await;
    assert_eq!((s, code(&b)), (404, -1), "{b}");
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("인증결과가 존재하지 않습니다"));
    let (s, _) = t.delete(&format!("/certifications/{imp_a}"), &other).await;
    assert_eq!(s, 404);
    let (s, _) = confirm(&t, &other, imp_a, "123456").await;
    assert_eq!(s, 404);
    let (s, b) = t.get(&format!("/certifications/{imp_a}"), &tok).await;
    assert_eq!((s, b["response"]["certified"].clone()), (200, json!(true)));
}

#[tokio::test]
async fn bad_requests_are_refused_cleanly() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let with = |k: &str, v: Value| {
        let mut p = person();
        p[k] = v;
        p
    };
    let without = |k: &str| {
        let mut p = person();
        p.as_object_mut().unwrap().remove(k);
        p
    };
    for body in [
        json!({}),
        without("name"),
        without("phone"),
        without("birth"),
        without("gender_digit"),
        without("carrier"),
        with("carrier", json!("KTF")),
        with("carrier", json!(["SKT"])),
        with("birth", json!("abcdef")),
        with("birth", json!("881301")),
        with("birth", json!("8801")),
        with("birth", json!("20880101")),
        with("birth", json!("19880101"))
            .as_object()
            .cloned()
            .map(|mut o| {
                o.insert("gender_digit".into(), json!("3"));
                Value::Object(o)
            })
            .unwrap(),
        with("gender_digit", json!("9")),
        with("gender_digit", json!("12")),
        with("phone", json!("02-123-4567")),
        with("phone", json!("010-1234-567a")),
        with("name", json!("홍".repeat(41))),
        with("name", json!("<script>")),
        with("is_mvno", json!("maybe")),
        with("pg", json!("nicepay")),
        with("merchant_uid", json!("m".repeat(41))),
        with("company", json!("c".repeat(101))),
        with("verification_method", json!("APP")),
    ] {
        let (s, b) = t
            .post("/certifications/otp/request", Some(&tok), body.clone())
            .await;
        assert_eq!((s, code(&b)), (400, -1), "{body}: {b}");
        // The refusal never echoes a personal value.
        let msg = b["message"].as_str().unwrap();
        assert!(!msg.contains("홍길동") && !msg.contains("1234"), "{msg}");
    }
    // Not JSON at all.
    let (s, b) = t
        .send(
            t.http
                .post(t.url("/certifications/otp/request"))
                .header("Authorization", &tok)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");

    // Confirm: unknown, missing code, no token.
    let (s, b) = confirm(&t, &tok, "imp_000000000000", "123456").await;
    assert_eq!((s, code(&b)), (404, -1), "{b}");
    let imp = request(&t, &tok, person()).await;
    let (s, b) = t
        .post(
            &format!("/certifications/otp/confirm/{imp}"),
            Some(&tok),
            json!({}),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    let (s, _) = t
        .post(
            &format!("/certifications/otp/confirm/{imp}"),
            None,
            json!({"otp": "123456"}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = t
        .send(t.http.get(t.url(&format!("/certifications/{imp}"))))
        .await;
    assert_eq!(s, 401);
    let (s, _) = t.get("/certifications/imp_000000000000", &tok).await;
    assert_eq!(s, 404);
    // Still waiting for its code after all that.
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);
}

#[tokio::test]
async fn expired_and_exhausted_codes_certify_nothing() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    // The code lives 180 s.
    let imp = request(&t, &tok, person()).await;
    t.clock.advance(181);
    let (s, b) = confirm(&t, &tok, &imp, "123456").await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    assert!(b["message"].as_str().unwrap().contains("expired"), "{b}");
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);

    // Five wrong codes end the request; the right one afterwards certifies nothing.
    let imp = request(&t, &tok, person()).await;
    for left in (0..5).rev() {
        let (s, b) = confirm(&t, &tok, &imp, "000000").await;
        assert_eq!((s, code(&b)), (200, -1), "{b}");
        if left > 0 {
            assert!(
                b["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{left} attempts left")),
                "{b}"
            );
        } else {
            assert!(b["message"].as_str().unwrap().contains("too many"), "{b}");
        }
    }
    let (s, b) = confirm(&t, &tok, &imp, "123456").await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);
    assert!(b["response"]["unique_key"].is_null());
}

#[tokio::test]
async fn delete_removes_the_personal_data() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let c = certify(&t, &tok, person()).await;
    let imp = c["imp_uid"].as_str().unwrap();
    let (s, b) = t.delete(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["imp_uid"], imp);
    assert_eq!(b["response"]["name"], "홍길동");
    let (s, _) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(s, 404);
    let (s, _) = t.delete(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(s, 404);
    assert!(t
        .pier
        .store()
        .get_certification(DEMO_CODE, imp)
        .await
        .unwrap()
        .is_none());
    // A confirm after deletion finds nothing.
    let (s, _) = confirm(&t, &tok, imp, "123456").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn otp_request_is_idempotent_with_a_key() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let send = || {
        t.send(
            t.http
                .post(t.url("/certifications/otp/request"))
                .header("Authorization", &tok)
                .header("Idempotency-Key", "cert-key-1")
                .json(&person()),
        )
    };
    let (s1, b1) = send().await;
    let (s2, b2) = send().await;
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(b1["response"]["imp_uid"], b2["response"]["imp_uid"]);
}

// ---------------------------------------------------------------------------------------------
// The window behind IMP.certification, driven over HTTP.

async fn prepare(t: &TestPier, mode: &str, params: Value) -> Value {
    let res = t
        .http
        .post(t.url("/checkout/certification/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.example")
        .body(json!({"user_code": DEMO_CODE, "mode": mode, "params": params}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The window's form through to the code page; returns (CSRF token, binding cookie).
async fn enter_person(client: &reqwest::Client, window_url: &str, birth: &str) -> (String, String) {
    let res = client.get(window_url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .unwrap_or_default();
    let html = res.text().await.unwrap();
    for id in [
        "testid-form",
        "testid-carrier",
        "testid-mvno",
        "testid-name",
        "testid-birth",
        "testid-gender-digit",
        "testid-phone",
        "testid-request",
        "testid-cancel",
        "testid-banner",
    ] {
        assert!(html.contains(&format!("data-testid=\"{id}\"")), "{id}");
    }
    assert!(
        !html.contains("<script") && !html.contains("style="),
        "{html}"
    );
    let csrf = hidden(&html, "csrf");
    let html = client
        .post(format!("{window_url}/request"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("carrier", "LGT"),
            ("name", "김철수"),
            ("birth", birth),
            ("gender_digit", "3"),
            ("phone", "01077778888"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("data-testid=\"testid-sms-code\">123456<"),
        "{html}"
    );
    assert!(html.contains("data-testid=\"testid-otp\""), "{html}");
    (csrf, cookie)
}

#[tokio::test]
async fn window_certifies_in_an_iframe() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let client = no_redirects();
    let opened = prepare(
        &t,
        "iframe",
        json!({"merchant_uid": "cert-w1", "name": "김철수"}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    let imp = opened["imp_uid"].as_str().unwrap().to_owned();
    let url = opened["window_url"].as_str().unwrap().to_owned();
    // The prefilled name is on the form.
    let html = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("value=\"김철수\""), "{html}");

    let (csrf, _) = enter_person(&client, &url, "20010203").await;
    // A wrong code: the code page again, with an error; nothing certified.
    let res = client
        .post(format!("{url}/confirm"))
        .form(&[("csrf", csrf.as_str()), ("otp", "111111")])
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(html.contains("data-testid=\"testid-error\""), "{html}");
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);
    // A forged form (no CSRF token) is refused.
    let res = client
        .post(format!("{url}/confirm"))
        .form(&[("otp", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let html = client
        .post(format!("{url}/confirm"))
        .form(&[("csrf", csrf.as_str()), ("otp", "123456")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "url=/testid/{}/result",
            url.rsplit('/').next().unwrap()
        )),
        "{html}"
    );
    let res = client.get(format!("{url}/result")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-testid=\"testid-done\""), "{html}");
    assert!(
        html.contains("data-origin=\"http://shop.example\""),
        "{html}"
    );
    assert!(html.contains("&quot;success&quot;:true"), "{html}");

    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    let r = &b["response"];
    assert_eq!(r["certified"], true, "{b}");
    assert_eq!(r["name"], "김철수");
    assert_eq!(r["birthday"], "2001-02-03");
    assert_eq!(r["gender"], "male");
    assert_eq!(r["carrier"], "LGT");
    assert_eq!(r["merchant_uid"], "cert-w1");
    assert_eq!(r["origin"], "http://shop.example");

    // The same person through the REST flow: the same CI and DI.
    let rest = certify(
        &t,
        &tok,
        json!({"name": "김철수", "phone": "01077778888", "birth": "010203", "gender_digit": "3", "carrier": "LGT"}),
    )
    .await;
    assert_eq!(rest["unique_key"], r["unique_key"]);
    assert_eq!(rest["unique_in_site"], r["unique_in_site"]);
}

#[tokio::test]
async fn window_redirects_to_m_redirect_url_for_its_browser() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let client = no_redirects();
    let opened = prepare(
        &t,
        "redirect",
        json!({"merchant_uid": "cert-r1", "m_redirect_url": "https://shop.example/cert/done?x=1"}),
    )
    .await;
    assert_eq!(opened["success"], true, "{opened}");
    let imp = opened["imp_uid"].as_str().unwrap().to_owned();
    let url = opened["window_url"].as_str().unwrap().to_owned();
    let (csrf, cookie) = enter_person(&client, &url, "040506").await;
    assert!(cookie.starts_with("pier_cert_"), "{cookie}");
    client
        .post(format!("{url}/confirm"))
        .form(&[("csrf", csrf.as_str()), ("otp", "123456")])
        .send()
        .await
        .unwrap();
    // Without the browser's cookie: the result page, no redirect (no open redirect).
    let res = client.get(format!("{url}/result")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{url}/result"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let to = res.headers()["location"].to_str().unwrap();
    assert_eq!(
        to,
        format!(
            "https://shop.example/cert/done?x=1&imp_uid={imp}&merchant_uid=cert-r1&success=true"
        )
    );
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], true);
    assert_eq!(b["response"]["birthday"], "2004-05-06");
}

#[tokio::test]
async fn window_cancel_min_age_and_bad_params() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let client = no_redirects();
    // Closed by the SDK: cancelled, the callback's failure object.
    let opened = prepare(&t, "popup", json!({"merchant_uid": "cert-c1"})).await;
    let imp = opened["imp_uid"].as_str().unwrap().to_owned();
    let id = opened["checkout_id"].as_str().unwrap();
    let res = t
        .http
        .post(t.url(&format!("/checkout/certification/cancel/{id}")))
        .send()
        .await
        .unwrap();
    let r: Value = res.json().await.unwrap();
    assert_eq!(
        (&r["success"], &r["error_code"], &r["imp_uid"]),
        (&json!(false), &json!("F400"), &json!(imp)),
        "{r}"
    );
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);
    // The window is over: its page hands back the same result.
    let url = opened["window_url"].as_str().unwrap();
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("F400"), "{html}");

    // min_age 19, a person born in 2010: certification fails (F1300), nothing certified.
    let opened = prepare(&t, "iframe", json!({"min_age": 19})).await;
    let imp = opened["imp_uid"].as_str().unwrap().to_owned();
    let url = opened["window_url"].as_str().unwrap().to_owned();
    let (csrf, _) = enter_person(&client, &url, "100101").await;
    client
        .post(format!("{url}/confirm"))
        .form(&[("csrf", csrf.as_str()), ("otp", "123456")])
        .send()
        .await
        .unwrap();
    let html = client
        .get(format!("{url}/result"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("F1300") && html.contains("min_age"), "{html}");
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);

    // Bad window input: the form again with an error, nothing requested.
    let opened = prepare(&t, "iframe", json!({})).await;
    let url = opened["window_url"].as_str().unwrap().to_owned();
    let html = client.get(&url).send().await.unwrap().text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    let res = client
        .post(format!("{url}/request"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("carrier", "SKT"),
            ("name", "김철수"),
            ("birth", "991399"),
            ("gender_digit", "1"),
            ("phone", "01077778888"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-testid=\"testid-error\"") && html.contains("testid-form"));

    // Bad IMP.certification parameters: failure objects, never an error page.
    for (mode, params, code) in [
        ("iframe", json!({"min_age": "adult"}), "F1000"),
        ("iframe", json!({"min_age": 200}), "F1000"),
        ("iframe", json!({"carrier": "XX"}), "F1000"),
        ("iframe", json!({"pg": "nicepay"}), "F1001"),
        ("redirect", json!({}), "F1000"),
        (
            "iframe",
            json!({"m_redirect_url": "javascript:alert(1)"}),
            "F1000",
        ),
    ] {
        let r = prepare(&t, mode, params.clone()).await;
        assert_eq!(
            (&r["success"], &r["error_code"]),
            (&json!(false), &json!(code)),
            "{params}: {r}"
        );
    }
    let res = t
        .http
        .post(t.url("/checkout/certification/prepare"))
        .body(json!({"user_code": "imp99999999", "params": {}}).to_string())
        .send()
        .await
        .unwrap();
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["error_code"], "F0001", "{r}");
    // Unknown windows.
    let res = client
        .get(t.url("/testid/00000000000000000000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = client.get(t.url("/testid/nothex")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn served_openapi_lists_the_operations() {
    let t = TestPier::start().await;
    let doc: Value = t
        .http
        .get(t.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/certifications/{imp_uid}", "get"),
        ("/certifications/{imp_uid}", "delete"),
        ("/certifications/otp/request", "post"),
        ("/certifications/otp/confirm/{imp_uid}", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    let vbank = &paths["/vbanks"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(vbank["properties"]["escrow"]["type"], "boolean");
    let cert = &doc["components"]["schemas"]["Certification"]["properties"];
    assert_eq!(cert["unique_key"]["maxLength"], 88);
    assert_eq!(cert["unique_in_site"]["maxLength"], 64);
}

#[tokio::test]
async fn abandoned_certifications_are_deleted_by_retention() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let abandoned = request(&t, &tok, person()).await;
    let kept = certify(&t, &tok, person()).await;
    let kept = kept["imp_uid"].as_str().unwrap();
    // Not yet: the request is recent.
    let r = pier_server::jobs::retention::retention_pass(&t.pier.engine)
        .await
        .unwrap();
    assert_eq!(r.certifications_deleted, 0, "{r:?}");
    t.clock
        .advance(t.pier.engine.config().checkout_retention_secs + 3600);
    let r = pier_server::jobs::retention::retention_pass(&t.pier.engine)
        .await
        .unwrap();
    assert_eq!(r.certifications_deleted, 1, "{r:?}");
    // The old token expired meanwhile.
    let tok = t.token().await;
    let (s, _) = t.get(&format!("/certifications/{abandoned}"), &tok).await;
    assert_eq!(s, 404);
    let (s, b) = t.get(&format!("/certifications/{kept}"), &tok).await;
    assert_eq!((s, b["response"]["certified"].clone()), (200, json!(true)));
}

#[tokio::test]
async fn window_code_expires_and_a_new_one_can_be_requested() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let client = no_redirects();
    let opened = prepare(&t, "iframe", json!({"merchant_uid": "cert-x1"})).await;
    let imp = opened["imp_uid"].as_str().unwrap().to_owned();
    let url = opened["window_url"].as_str().unwrap().to_owned();
    let (csrf, _) = enter_person(&client, &url, "20010203").await;
    // The code lives 180 s; the window (30 min) lives on.
    t.clock.advance(181);
    let res = client
        .post(format!("{url}/confirm"))
        .form(&[("csrf", csrf.as_str()), ("otp", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("testid-form") && html.contains("the code expired"),
        "{html}"
    );
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], false);
    let html = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("testid-form") && html.contains("the code expired"));
    // A new request, a new code: certified.
    let (csrf, _) = enter_person(&client, &url, "20010203").await;
    let html = client
        .post(format!("{url}/confirm"))
        .form(&[("csrf", csrf.as_str()), ("otp", "123456")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("testid-returning"), "{html}");
    let (_, b) = t.get(&format!("/certifications/{imp}"), &tok).await;
    assert_eq!(b["response"]["certified"], true, "{b}");
    // Past the window's own lifetime, an unfinished window is expired.
    let opened = prepare(&t, "iframe", json!({})).await;
    let url = opened["window_url"].as_str().unwrap().to_owned();
    t.clock
        .advance(t.pier.engine.config().checkout_ttl_secs + 1);
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("testid-expired"));
}
