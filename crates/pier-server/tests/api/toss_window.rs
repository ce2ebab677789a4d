//! Window (authenticated) payments through a `tosspayments` channel on the Toss simulator,
//! driven hop by hop without a browser: `POST /checkout/prepare` → Pier's window page (the
//! stored call of Toss's SDK) → the simulator's window (what its SDK opens) → its form → Pier's
//! return URL → `POST /v1/payments/confirm` (or the billing issue) → REST lookups. Toss's
//! webhooks for a deposit, forged and real. The browser runs of the same flows are in
//! `e2e/tests/toss.test.js`.

use crate::common::*;
use crate::webhooks::{fast_jobs, set_hook, Receiver};
use pier_pg::toss::sim::{self, Sim, SimConfig};
use pier_server::engine::channels::TossChannel;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "test_sk_tosswindow_9b2e";
const CLIENT_KEY: &str = "test_ck_tosswindow_public";
const MID: &str = "toss_window_shop";
/// 신한 (Toss issuer `41`, i'mport `366`): approved.
const CARD_SHINHAN: &str = "4518-4200-0000-0000";
/// KB국민, declined `[2112]잔액부족`.
const CARD_DECLINED: &str = "5570-4200-0000-2112";

struct Rig {
    t: TestPier,
    sim: Sim,
    channel_id: String,
    tok: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Rig {
    let t = TestPier::start_cfg(
        Opts {
            pg_deadline: Duration::from_secs(2),
            ..Opts::default()
        },
        fast_jobs,
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = SimConfig::new(SECRET);
    cfg.base_url = format!("http://{addr}");
    cfg.client_key = Some(CLIENT_KEY.into());
    let sim = Sim::new(cfg).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim::serve(sim.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let c = t
        .pier
        .engine
        .add_toss_channel(TossChannel {
            merchant: DEMO_CODE.into(),
            secret_key: SECRET.into(),
            client_key: CLIENT_KEY.into(),
            api_base: Some(format!("http://{addr}")),
            mid: Some(MID.into()),
            is_default: false,
        })
        .await
        .unwrap();
    let tok = t.token().await;
    Rig {
        t,
        sim,
        channel_id: c.id,
        tok,
        _stop: stop,
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// An attribute's value in a page.
fn attr(html: &str, name: &str) -> String {
    let needle = format!("{name}=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    unescape(&html[start..end])
}

/// `request_pay` through the SDK's endpoint, then Pier's window page: the imp_uid and the call of
/// Toss's SDK the page makes.
async fn open(r: &Rig, params: Value) -> (String, Value) {
    let res =
        r.t.http
            .post(r.t.url("/checkout/prepare"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", "http://shop.example")
            .body(json!({"user_code": DEMO_CODE, "params": params}).to_string())
            .send()
            .await
            .unwrap();
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["success"], true, "{b}");
    let imp = b["imp_uid"].as_str().unwrap().to_owned();
    let res = no_redirects()
        .get(b["window_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "Pier's own page opens Toss's window");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = res.text().await.unwrap();
    assert!(
        html.contains("data-testid=\"checkout-pg-handoff\""),
        "{html}"
    );
    let call: Value = serde_json::from_str(&attr(&html, "data-call")).unwrap();
    let script = call["script_url"].as_str().unwrap();
    assert!(
        html.contains(&format!("<script src=\"{script}\">")),
        "the page loads Toss's SDK: {html}"
    );
    let origin = script.trim_end_matches("/v1/payment");
    assert!(
        csp.contains(&format!("script-src 'self' {origin};")),
        "only the SDK's origin is a foreign script source: {csp}"
    );
    assert_eq!(call["init"], "TossPayments");
    assert_eq!(call["init_arg"], CLIENT_KEY, "the channel's client key");
    (imp, call)
}

/// What Toss's SDK does with the call: the simulator's window URL with the call's parameters.
fn window_url(call: &Value) -> String {
    let base = call["script_url"]
        .as_str()
        .unwrap()
        .trim_end_matches("/v1/payment")
        .to_owned();
    let kind = match call["method"].as_str().unwrap() {
        "requestPayment" => "payment",
        "requestBillingAuth" => "billing",
        other => panic!("unexpected SDK method {other}"),
    };
    let mut u = reqwest::Url::parse(&format!("{base}/sim/window")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("clientKey", call["init_arg"].as_str().unwrap());
        q.append_pair("kind", kind);
        q.append_pair("method", call["args"][0].as_str().unwrap());
        for (k, v) in call["args"][1].as_object().unwrap() {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            q.append_pair(k, &v);
        }
    }
    u.to_string()
}

/// Opens the simulator's window and posts its form with the buyer's `inputs` (and the window's
/// own hidden fields, with `overrides` applied). Returns where Toss redirects the browser.
async fn toss_redirect(
    call: &Value,
    inputs: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> String {
    let client = no_redirects();
    let url = window_url(call);
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-testid=\"toss-window\""), "{html}");
    let u = reqwest::Url::parse(&url).unwrap();
    let mut form: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (k, v) in overrides {
        form.retain(|(n, _)| n != k);
        form.push((k.to_string(), v.to_string()));
    }
    for (k, v) in inputs {
        form.push((k.to_string(), v.to_string()));
    }
    let post_to = format!("{}://{}/sim/window", u.scheme(), u.authority());
    let res = client.post(post_to).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 303, "{:?}", res.text().await);
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        !to.contains(&CARD_SHINHAN.replace('-', "")) && !to.contains(CARD_SHINHAN),
        "no card number in a URL: {to}"
    );
    to
}

/// `toss_redirect`, then Pier's return URL: the redirect target and Pier's result page.
async fn through_toss(
    call: &Value,
    inputs: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> (String, String) {
    let to = toss_redirect(call, inputs, overrides).await;
    let page = no_redirects().get(&to).send().await.unwrap();
    assert_eq!(page.status(), 200, "Pier's result page");
    (to, page.text().await.unwrap())
}

fn card_inputs(number: &str) -> Vec<(&str, &str)> {
    vec![
        ("action", "pay"),
        ("cardNumber", number),
        ("cardExpiry", "12/30"),
    ]
}

async fn payment(r: &Rig, imp: &str) -> Value {
    let (s, b) = r.t.get(&format!("/payments/{imp}"), &r.tok).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    b["response"].clone()
}

fn query_of(url: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn q<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn toss_window_card_is_confirmed_with_the_recorded_amount() {
    let r = start().await;
    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "card", "merchant_uid": "tw-card-1",
               "amount": 60_000, "name": "토스 창 주문", "buyer_name": "홍길동",
               "card": {"detail": [{"card_code": "*", "enabled": false},
                                    {"card_code": "366", "enabled": true}]},
               "display": {"card_quota": [3]}}),
    )
    .await;
    // Toss's window is asked as its SDK documents it, with the display options mapped.
    assert_eq!(call["method"], "requestPayment");
    assert_eq!(call["args"][0], "카드");
    let a = &call["args"][1];
    assert_eq!(a["amount"], 60_000);
    assert_eq!(
        a["orderId"],
        imp.as_str(),
        "orderId is the attempt's imp_uid"
    );
    assert_eq!(a["orderName"], "토스 창 주문");
    assert_eq!(a["customerName"], "홍길동");
    assert_eq!(
        (a["cardCompany"].as_str(), a["flowMode"].as_str()),
        (Some("41"), Some("DIRECT"))
    );
    assert_eq!(a["cardInstallmentPlan"], 3);
    let success = a["successUrl"].as_str().unwrap();
    assert!(
        // Built by whichever instance opened the window (each has its own base URL here).
        r.t.urls("/checkout/return/")
            .iter()
            .any(|u| success.starts_with(u.as_str())),
        "{success}"
    );
    let (to, page) = through_toss(&call, &card_inputs(CARD_SHINHAN), &[]).await;
    let back = query_of(&to);
    assert_eq!(q(&back, "orderId"), Some(imp.as_str()));
    assert_eq!(q(&back, "amount"), Some("60000"));
    let payment_key = q(&back, "paymentKey").unwrap().to_owned();
    assert!(page.contains("checkout-done"), "{page}");
    let result: Value = serde_json::from_str(&attr(&page, "data-result")).unwrap();
    assert_eq!(result["success"], true, "{result}");

    let p = payment(&r, &imp).await;
    assert_eq!(p["status"], "paid", "{p}");
    assert_eq!(p["pg_provider"], "tosspayments");
    assert_eq!(p["pg_id"], MID);
    assert_eq!(
        p["pg_tid"],
        payment_key.as_str(),
        "pg_tid is Toss's paymentKey"
    );
    assert_eq!(p["amount"], 60_000);
    assert_eq!(p["card_code"], "366");
    assert_eq!(p["card_quota"], 3);
    assert!(
        p["apply_num"].as_str().is_some_and(|n| !n.is_empty()),
        "{p}"
    );
    let masked = p["card_number"].as_str().unwrap();
    assert!(
        masked.starts_with("451842") && masked.contains('*'),
        "{masked}"
    );
    let toss = r.sim.payment_of_order(&imp).unwrap();
    assert_eq!((toss.status.as_str(), toss.total_amount), ("DONE", 60_000));
    assert_eq!(r.sim.approved_charges(&imp), 1);

    // The buyer alters the amount on Toss's side (form field): Toss authenticates 100 KRW and
    // says so in the URL; Pier compares with its record, refuses and confirms nothing.
    let (imp2, call2) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "card", "merchant_uid": "tw-card-2",
               "amount": 15_000, "name": "변조 주문"}),
    )
    .await;
    let (to2, page2) = through_toss(&call2, &card_inputs(CARD_SHINHAN), &[("amount", "100")]).await;
    assert_eq!(q(&query_of(&to2), "amount"), Some("100"));
    let result: Value = serde_json::from_str(&attr(&page2, "data-result")).unwrap();
    assert_eq!(result["success"], false, "{result}");
    let p2 = payment(&r, &imp2).await;
    assert_eq!(p2["status"], "failed", "{p2}");
    assert!(
        p2["fail_reason"]
            .as_str()
            .unwrap()
            .contains("AMOUNT_MISMATCH"),
        "{p2}"
    );
    let toss2 = r.sim.payment_of_order(&imp2).unwrap();
    assert_eq!(toss2.status, "IN_PROGRESS", "never confirmed at Toss");
    assert_eq!(r.sim.approved_charges(&imp2), 0);

    // A decline at confirmation: failed, Toss's message in fail_reason.
    let (imp3, call3) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "card", "merchant_uid": "tw-card-3",
               "amount": 15_000}),
    )
    .await;
    let (_, page3) = through_toss(&call3, &card_inputs(CARD_DECLINED), &[]).await;
    let result: Value = serde_json::from_str(&attr(&page3, "data-result")).unwrap();
    assert_eq!(result["success"], false, "{result}");
    let p3 = payment(&r, &imp3).await;
    assert_eq!(p3["status"], "failed");
    assert!(
        p3["fail_reason"].as_str().unwrap().contains("잔액부족"),
        "{p3}"
    );
    assert_eq!(r.sim.payment_of_order(&imp3).unwrap().status, "ABORTED");
}

#[tokio::test]
async fn toss_window_trans_phone_and_a_cancel() {
    let r = start().await;
    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "trans", "merchant_uid": "tw-trans-1",
               "amount": 12_000, "name": "계좌이체 주문"}),
    )
    .await;
    assert_eq!(call["args"][0], "계좌이체");
    through_toss(&call, &[("action", "pay"), ("bank", "88")], &[]).await;
    let p = payment(&r, &imp).await;
    assert_eq!(p["status"], "paid", "{p}");
    assert_eq!(p["pay_method"], "trans");
    assert_eq!(p["bank_code"], "088", "Toss bank 88 is i'mport's 088: {p}");
    assert!(
        p["bank_name"].as_str().is_some_and(|n| n.contains("신한")),
        "{p}"
    );

    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "phone", "merchant_uid": "tw-phone-1",
               "amount": 5_000, "name": "휴대폰 주문"}),
    )
    .await;
    assert_eq!(call["args"][0], "휴대폰");
    through_toss(&call, &[("action", "pay"), ("phone", "010-1234-5678")], &[]).await;
    let p = payment(&r, &imp).await;
    assert_eq!(p["status"], "paid", "{p}");
    assert_eq!(p["pay_method"], "phone");
    assert!(p["receipt_url"].as_str().is_some(), "{p}");

    // The buyer cancels in Toss's window: Toss's fail URL, recorded as a user cancel.
    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "card", "merchant_uid": "tw-cancel-1",
               "amount": 5_000}),
    )
    .await;
    let (to, page) = through_toss(&call, &[("action", "cancel")], &[]).await;
    assert_eq!(q(&query_of(&to), "code"), Some("PAY_PROCESS_CANCELED"));
    let result: Value = serde_json::from_str(&attr(&page, "data-result")).unwrap();
    assert_eq!(result["error_code"], "F400", "{result}");
    let p = payment(&r, &imp).await;
    assert_eq!(p["status"], "failed");
    assert!(r.sim.payment_of_order(&imp).is_none(), "nothing at Toss");
}

#[tokio::test]
async fn toss_window_vbank_deposit_arrives_by_a_checked_webhook() {
    let r = start().await;
    let rx = Receiver::start().await;
    set_hook(&r.t, &rx.url("/hook"), "json").await;
    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "vbank", "merchant_uid": "tw-vbank-1",
               "amount": 33_000, "name": "가상계좌 주문", "buyer_name": "홍길동"}),
    )
    .await;
    assert_eq!(call["args"][0], "가상계좌");
    let (_, page) = through_toss(&call, &[("action", "pay"), ("bank", "20")], &[]).await;
    let result: Value = serde_json::from_str(&attr(&page, "data-result")).unwrap();
    assert_eq!(
        result["success"], true,
        "an issued account is a success: {result}"
    );
    let p = payment(&r, &imp).await;
    assert_eq!(p["status"], "ready", "{p}");
    assert_eq!(p["vbank_code"], "020", "Toss bank 20 is 우리 (020): {p}");
    let account = p["vbank_num"].as_str().unwrap().to_owned();
    let toss = r.sim.payment_of_order(&imp).unwrap();
    assert_eq!(toss.status, "WAITING_FOR_DEPOSIT");
    assert_eq!(toss.virtual_account.unwrap().account_number, account);

    let hook =
        r.t.url(&format!("/pg/tosspayments/{}/webhook", r.channel_id));
    // A forged "deposit" (Toss has none): read, checked with Toss, nothing changes.
    let forged = json!({"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-01-01T00:00:00.000",
                        "data": {"paymentKey": toss.payment_key, "orderId": imp, "status": "DONE",
                                 "totalAmount": 33_000}});
    let res = r.t.http.post(&hook).json(&forged).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["result"], "ignored", "{b}");
    assert_eq!(payment(&r, &imp).await["status"], "ready");
    // Another channel id, or garbage: refused without effect.
    let res =
        r.t.http
            .post(r.t.url("/pg/tosspayments/nochannel/webhook"))
            .json(&forged)
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 404);
    let res = r.t.http.post(&hook).body("not json").send().await.unwrap();
    assert_eq!(res.status(), 400);

    // The real deposit: the simulator announces it to the channel's webhook URL.
    r.sim.set_webhook_url(Some(hook.clone()));
    assert!(r.sim.deposit(&imp));
    let mut paid = Value::Null;
    for _ in 0..300 {
        paid = payment(&r, &imp).await;
        if paid["status"] == "paid" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["amount"], 33_000);
    let got = rx
        .wait_for("the paid webhook", |all| {
            all.iter()
                .any(|w| w.json()["imp_uid"] == imp.as_str() && w.json()["status"] == "paid")
        })
        .await;
    assert!(got.iter().any(|w| w.json()["merchant_uid"] == "tw-vbank-1"));
    // The same webhook again changes nothing more.
    let res = r.t.http.post(&hook).json(&forged).send().await.unwrap();
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["result"], "ignored", "{b}");
}

#[tokio::test]
async fn toss_window_billing_key_with_and_without_a_first_payment() {
    let r = start().await;
    // Amount 0: the key only.
    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "card", "merchant_uid": "tw-bk-0",
               "amount": 0, "customer_uid": "tw-customer-0"}),
    )
    .await;
    assert_eq!(call["method"], "requestBillingAuth");
    assert_eq!(call["args"][0], "카드");
    let customer_key = call["args"][1]["customerKey"].as_str().unwrap().to_owned();
    assert!(
        !customer_key.contains("tw-customer-0"),
        "customerKey does not reveal the customer_uid"
    );
    let (to, _) = through_toss(&call, &card_inputs(CARD_SHINHAN), &[]).await;
    let back = query_of(&to);
    assert_eq!(q(&back, "customerKey"), Some(customer_key.as_str()));
    assert!(q(&back, "authKey").is_some());
    let p = payment(&r, &imp).await;
    assert_eq!(
        (p["status"].as_str(), p["amount"].as_i64()),
        (Some("paid"), Some(0)),
        "{p}"
    );
    let (s, b) = r.t.get("/subscribe/customers/tw-customer-0", &r.tok).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["card_code"], "366", "{b}");
    assert_eq!(b["response"]["pg_provider"], "tosspayments", "{b}");
    // The key charges through Toss.
    let (s, b) =
        r.t.post(
            "/subscribe/payments/again",
            Some(&r.tok),
            json!({"customer_uid": "tw-customer-0", "merchant_uid": "tw-again-1",
                   "amount": 9_900, "name": "정기결제"}),
        )
        .await;
    assert_eq!(
        (s, b["response"]["status"].as_str()),
        (200, Some("paid")),
        "{b}"
    );
    let again_imp = b["response"]["imp_uid"].as_str().unwrap();
    assert_eq!(r.sim.approved_charges(again_imp), 1);

    // Amount > 0: the key, then the first payment with it.
    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "card", "merchant_uid": "tw-bk-1",
               "amount": 20_000, "customer_uid": "tw-customer-1"}),
    )
    .await;
    through_toss(&call, &card_inputs(CARD_SHINHAN), &[]).await;
    let p = payment(&r, &imp).await;
    assert_eq!(p["status"], "paid", "{p}");
    assert_eq!(p["amount"], 20_000);
    assert_eq!(r.sim.approved_charges(&imp), 1);
    let (s, _) = r.t.get("/subscribe/customers/tw-customer-1", &r.tok).await;
    assert_eq!(s, 200);

    // A return naming another customer (altered on the way back) issues nothing.
    let (imp, call) = open(
        &r,
        json!({"pg": "tosspayments", "pay_method": "card", "merchant_uid": "tw-bk-2",
               "amount": 0, "customer_uid": "tw-customer-2"}),
    )
    .await;
    let to = toss_redirect(&call, &card_inputs(CARD_SHINHAN), &[]).await;
    let real = q(&query_of(&to), "customerKey").unwrap().to_owned();
    let forged = to.replace(&real, "pier_forged_customer");
    let page = no_redirects()
        .get(&forged)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let result: Value = serde_json::from_str(&attr(&page, "data-result")).unwrap();
    assert_eq!(result["success"], false, "{result}");
    let p = payment(&r, &imp).await;
    assert_eq!(p["status"], "failed", "{p}");
    assert!(
        p["fail_reason"]
            .as_str()
            .unwrap()
            .contains("CUSTOMER_KEY_MISMATCH"),
        "{p}"
    );
    let (s, b) = r.t.get("/subscribe/customers/tw-customer-2", &r.tok).await;
    assert_eq!(
        (s, b["code"].as_i64()),
        (200, Some(1)),
        "no key stored: {b}"
    );
}

/// A virtual account issued through REST (`POST /vbanks`) on the Toss channel, paid by a
/// deposit, then refunded in part: Toss refunds a deposit by transfer, so the cancel carries the
/// buyer's account (`refund_bank` in i'mport's code, sent as Toss's `refundReceiveAccount`), and
/// a cancel without one is refused by Pier before Toss is asked.
#[tokio::test]
async fn toss_rest_vbank_deposit_then_a_refund_to_the_buyers_account() {
    let mut r = start().await;
    // The simulator keeps real time (Toss checks dueDate against its own clock): the test's
    // manual clock is moved to it so that a due date one day ahead is one for both.
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    r.t.clock.set(real_now);
    r.tok = r.t.token().await; // the old one expired with the jump
    let due = real_now + 86_400;
    let (s, b) =
        r.t.post(
            "/vbanks",
            Some(&r.tok),
            json!({"merchant_uid": "tv-rest-1", "amount": 21_000, "vbank_code": "020",
                   "vbank_due": due, "vbank_holder": "홍길동", "name": "가상계좌 주문",
                   "buyer_name": "홍길동", "pg": "tosspayments"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let imp = b["response"]["imp_uid"].as_str().unwrap().to_owned();
    assert_eq!(b["response"]["pg_provider"], "tosspayments", "{b}");
    assert_eq!(b["response"]["vbank_code"], "020", "{b}");
    let toss = r.sim.payment_of_order(&imp).unwrap();
    assert_eq!(toss.status, "WAITING_FOR_DEPOSIT");

    let hook =
        r.t.url(&format!("/pg/tosspayments/{}/webhook", r.channel_id));
    r.sim.set_webhook_url(Some(hook));
    assert!(r.sim.deposit(&imp));
    let mut paid = Value::Null;
    for _ in 0..300 {
        paid = payment(&r, &imp).await;
        if paid["status"] == "paid" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(paid["status"], "paid", "{paid}");

    // Without the refund account: Pier refuses, Toss is not asked.
    let (s, b) =
        r.t.post(
            "/payments/cancel",
            Some(&r.tok),
            json!({"imp_uid": imp, "amount": 1_000}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("refund_"), "{b}");
    assert!(r.sim.payment_of_order(&imp).unwrap().cancels.is_none());

    // With it: refunded at Toss to that account, recorded by Pier.
    let (s, b) =
        r.t.post(
            "/payments/cancel",
            Some(&r.tok),
            json!({"imp_uid": imp, "amount": 1_000, "reason": "부분 환불",
                   "refund_holder": "홍길동", "refund_bank": "088",
                   "refund_account": "110-123-456789"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["cancel_amount"], 1_000, "{b}");
    // V1 has no partial state: any cancel makes it `cancelled` (cancel_amount < amount).
    assert_eq!(b["response"]["status"], "cancelled", "{b}");
    let toss = r.sim.payment_of_order(&imp).unwrap();
    assert_eq!(toss.status, "PARTIAL_CANCELED");
    assert_eq!(toss.balance_amount, 20_000);
    let cancels = toss.cancels.unwrap();
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].cancel_amount, 1_000);
    // The rest, fully.
    let (s, b) =
        r.t.post(
            "/payments/cancel",
            Some(&r.tok),
            json!({"imp_uid": imp, "refund_holder": "홍길동", "refund_bank": "088",
                   "refund_account": "110123456789"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["cancel_amount"], 21_000, "{b}");
    assert_eq!(r.sim.payment_of_order(&imp).unwrap().status, "CANCELED");
}
