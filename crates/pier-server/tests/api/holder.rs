//! `GET /vbanks/holder`: the test PG's account table, derived names, refusals, authentication.

use crate::common::*;

#[tokio::test]
async fn holder_known_derived_and_refused() {
    let t = TestPier::start().await;
    let tok = t.token().await;

    // Fixed account (hyphens ignored). Before the route existed this path answered 405.
    let (s, b) = t
        .get(
            "/vbanks/holder?bank_code=004&bank_num=123-456-7890123",
            &tok,
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["bank_holder"], "홍길동");

    // Unknown well-formed account: a deterministic derived name.
    let (s, a) = t
        .get("/vbanks/holder?bank_code=088&bank_num=99998888777", &tok)
        .await;
    assert_eq!(s, 200, "{a}");
    let name = a["response"]["bank_holder"].as_str().unwrap().to_owned();
    assert!(name.chars().count() >= 2, "{a}");
    let (_, again) = t
        .get("/vbanks/holder?bank_code=088&bank_num=99998888777", &tok)
        .await;
    assert_eq!(again["response"]["bank_holder"], name.as_str());

    // The closed test account.
    let (s, b) = t
        .get("/vbanks/holder?bank_code=011&bank_num=3020000000000", &tok)
        .await;
    assert_eq!((s, b["code"].as_i64()), (404, Some(-1)), "{b}");

    // Malformed input: 400 / code -1, never a 405 or 500.
    for q in [
        "bank_code=004",
        "bank_num=1234567890",
        "bank_code=999&bank_num=1234567890",
        "bank_code=004&bank_num=12345",
        "bank_code=004&bank_num=12345678901234567",
        "bank_code=004&bank_num=12345abcde12",
        "bank_code=00444&bank_num=1234567890",
        "bank_code=004&bank_num=1234-5678-9012-3456-78",
    ] {
        let (s, b) = t.get(&format!("/vbanks/holder?{q}"), &tok).await;
        assert_eq!((s, b["code"].as_i64()), (400, Some(-1)), "{q}: {b}");
        assert!(b["response"].is_null());
    }

    // Authenticated like the rest.
    let (s, _) = t
        .send(
            t.http
                .get(t.url("/vbanks/holder?bank_code=004&bank_num=1234567890123")),
        )
        .await;
    assert_eq!(s, 401);
}
