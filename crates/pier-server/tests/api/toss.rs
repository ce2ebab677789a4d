//! The i'mport REST API through a `tosspayments` channel pointed at the Toss simulator
//! (`pier_pg::toss::sim`, in process on 127.0.0.1:0): keyed payments, declines, billing keys,
//! cancels, lookups, a lost answer settled by the reconciler, and the secret key sealed.

use crate::common::*;
use pier_pg::pgsim::Faults;
use pier_pg::toss::sim::{self, Sim, SimConfig};
use pier_server::engine::channels::TossChannel;
use pier_server::engine::charge::FIRST_RECONCILE_DELAY_SECS;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "test_sk_tosswire_sealed_4f1c9a";
const CLIENT_KEY: &str = "test_ck_tosswire_public";
const MID: &str = "toss_shop";
/// 신한 (Toss issuer `41`, i'mport `366`): approved.
const CARD_SHINHAN: &str = "4518-4200-0000-0000";
/// KB국민, declined `[2112]잔액부족`.
const CARD_DECLINED: &str = "5570-4200-0000-2112";

struct TossPier {
    t: TestPier,
    sim: Sim,
    /// The simulator's base URL.
    base: String,
    tok: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A Pier whose demo merchant has, next to its default test-PG channel, a `tosspayments`
/// channel on a fresh simulator.
async fn start() -> TossPier {
    // A generous PG deadline: the simulator shares this 2-core machine with the server.
    let t = TestPier::start_with(Opts {
        pg_deadline: Duration::from_secs(2),
        ..Opts::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = SimConfig::new(SECRET);
    cfg.base_url = format!("http://{addr}");
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
    assert_eq!(
        (c.pg_provider.as_str(), c.is_default),
        ("tosspayments", false)
    );
    let tok = t.token().await;
    TossPier {
        t,
        sim,
        base: format!("http://{addr}"),
        tok,
        _stop: stop,
    }
}

fn keyed(merchant_uid: &str, amount: i64, card: &str, pg: &str) -> Value {
    json!({"merchant_uid": merchant_uid, "amount": amount, "card_number": card,
           "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "name": "토스 주문",
           "pg": pg})
}

/// A `channels` row as text: id, merchant, pg, mid, target, api_base, client_key, sealed secret.
type ChannelText = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn code(b: &Value) -> i64 {
    b["code"].as_i64().unwrap()
}

/// A keyed charge through the Toss channel while the simulator has `faults`: asserts that its
/// outcome is unknown and returns the attempt's imp_uid. The faults stay set.
async fn unknown_charge(r: &TossPier, faults: Faults, merchant_uid: &str, amount: i64) -> String {
    r.sim.faults().set(faults).unwrap();
    let (s, b) =
        r.t.post(
            "/subscribe/payments/onetime",
            Some(&r.tok),
            keyed(merchant_uid, amount, CARD_SHINHAN, "tosspayments"),
        )
        .await;
    assert_eq!((s, code(&b)), (200, -1), "the outcome is unknown: {b}");
    imp_uid_of_unknown(&b)
}

#[tokio::test]
async fn toss_onetime_paid_declined_and_looked_up() {
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());

    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-1", 15_000, CARD_SHINHAN, "tosspayments"),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let p = &b["response"];
    assert_eq!(p["status"], "paid", "{b}");
    assert_eq!(p["pg_provider"], "tosspayments");
    assert_eq!(p["pg_id"], MID);
    let imp = p["imp_uid"].as_str().unwrap().to_owned();
    // pg_tid is Toss's paymentKey of the order Pier sent (orderId = imp_uid).
    let toss = r.sim.payment_of_order(&imp).expect("Toss has the order");
    assert_eq!(toss.status, "DONE");
    assert_eq!(toss.total_amount, 15_000);
    assert_eq!(p["pg_tid"], toss.payment_key.as_str());
    assert_eq!(p["amount"], 15_000);
    assert_eq!(
        p["card_code"], "366",
        "Toss issuer 41 is i'mport's 366: {p}"
    );
    assert!(
        p["card_name"].as_str().is_some_and(|n| n.contains("신한")),
        "{p}"
    );
    let masked = p["card_number"].as_str().unwrap();
    assert!(
        masked.starts_with("451842") && !masked.contains("42000000"),
        "{masked}"
    );
    assert!(
        p["apply_num"].as_str().is_some_and(|s| !s.is_empty()),
        "{p}"
    );
    assert!(
        p["receipt_url"].as_str().is_some_and(|s| !s.is_empty()),
        "{p}"
    );
    assert_eq!(r.sim.approved_charges(&imp), 1);

    // `tosspayments.{mid}` selects the same channel; no `pg` keeps the default (test PG).
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed(
                "toss-2",
                1_000,
                CARD_SHINHAN,
                &format!("tosspayments.{MID}"),
            ),
        )
        .await;
    assert_eq!(b["response"]["pg_provider"], "tosspayments", "{b}");
    let mut body = keyed("jt-1", 1_000, CARD_OK, "");
    body.as_object_mut().unwrap().remove("pg");
    let (_, b) = t.post("/subscribe/payments/onetime", Some(tok), body).await;
    assert_eq!(b["response"]["pg_provider"], "jtnet", "{b}");
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-x", 1_000, CARD_SHINHAN, "tosspayments.nope"),
        )
        .await;
    assert_eq!(code(&b), 1, "an unknown MID is refused: {b}");

    // A merchant whose default channel is a Toss channel pays through it without `pg`.
    let m = t
        .pier
        .engine
        .create_merchant("Toss Only", None, None, None, false)
        .await
        .unwrap();
    let c = t
        .pier
        .engine
        .add_toss_channel(TossChannel {
            merchant: m.imp_code.clone(),
            secret_key: SECRET.into(),
            client_key: CLIENT_KEY.into(),
            api_base: Some(r.base.clone()),
            mid: None,
            is_default: false,
        })
        .await
        .unwrap();
    assert!(c.is_default, "a merchant's first channel is its default");
    let other = t.token_for(&m.imp_key, &m.imp_secret).await;
    let mut body = keyed("toss-default-1", 2_000, CARD_SHINHAN, "");
    body.as_object_mut().unwrap().remove("pg");
    let (_, b) = t
        .post("/subscribe/payments/onetime", Some(&other), body)
        .await;
    assert_eq!(b["response"]["status"], "paid", "{b}");
    assert_eq!(b["response"]["pg_provider"], "tosspayments", "{b}");
    assert_eq!(b["response"]["pg_id"], c.mid.as_str());

    // A decline: code 0, status failed, Toss's message in fail_reason.
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-3", 5_000, CARD_DECLINED, "tosspayments"),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let d = &b["response"];
    assert_eq!(d["status"], "failed", "{b}");
    assert_eq!(d["pg_provider"], "tosspayments");
    assert!(
        d["fail_reason"]
            .as_str()
            .is_some_and(|m| m.contains("잔액부족")),
        "{b}"
    );
    let declined_imp = d["imp_uid"].as_str().unwrap();
    assert_eq!(
        r.sim.payment_of_order(declined_imp).map(|p| p.status),
        Some("ABORTED".to_owned())
    );

    // Lookups by imp_uid and by merchant_uid show the same Toss fields.
    let (s, b) = t.get(&format!("/payments/{imp}"), tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let g = &b["response"];
    for f in [
        "pg_provider",
        "pg_tid",
        "card_code",
        "card_name",
        "card_number",
        "apply_num",
        "status",
    ] {
        assert_eq!(g[f], p[f], "{f}: {g}");
    }
    let (s, b) = t.get("/payments/find/toss-1", tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["imp_uid"], imp.as_str());
    assert_eq!(b["response"]["pg_tid"], toss.payment_key.as_str());
    let (_, b) = t.get("/payments/find/toss-3", tok).await;
    assert_eq!(b["response"]["status"], "failed", "{b}");
}

#[tokio::test]
async fn toss_billing_key_again_and_cancels() {
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());

    let (s, b) = t
        .post(
            "/subscribe/customers/toss-cust-1",
            Some(tok),
            json!({"card_number": CARD_SHINHAN, "expiry": "2030-12", "birth": "880101",
                   "pwd_2digit": "12", "pg": "tosspayments"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let c = &b["response"];
    assert_eq!(c["customer_uid"], "toss-cust-1");
    assert_eq!(c["pg_provider"], "tosspayments", "{c}");
    assert_eq!(c["card_code"], "366", "{c}");

    // `again` charges through the key's channel (no `pg` in the request).
    let (s, b) = t
        .post(
            "/subscribe/payments/again",
            Some(tok),
            json!({"customer_uid": "toss-cust-1", "merchant_uid": "toss-again-1",
                   "amount": 10_000, "name": "월 구독"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let p = &b["response"];
    assert_eq!(p["status"], "paid", "{b}");
    assert_eq!(p["pg_provider"], "tosspayments");
    assert_eq!(p["customer_uid"], "toss-cust-1");
    let imp = p["imp_uid"].as_str().unwrap().to_owned();
    let toss = r
        .sim
        .payment_of_order(&imp)
        .expect("Toss has the key charge");
    assert_eq!(p["pg_tid"], toss.payment_key.as_str());
    assert_eq!(toss.total_amount, 10_000);

    // Partial, then the rest: Toss's balance follows, each cancel in the history.
    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(tok),
            json!({"imp_uid": imp, "amount": 3_000, "checksum": 10_000, "reason": "부분 환불"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let c1 = &b["response"];
    assert_eq!(c1["cancel_amount"], 3_000, "{b}");
    let h = c1["cancel_history"].as_array().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0]["amount"].as_i64(), h[0]["reason"].as_str()),
        (Some(3_000), Some("부분 환불"))
    );
    let toss = r.sim.payment_of_order(&imp).unwrap();
    assert_eq!(
        (toss.status.as_str(), toss.balance_amount),
        ("PARTIAL_CANCELED", 7_000)
    );
    let cancels = toss.cancels.clone().unwrap_or_default();
    assert_eq!(cancels.len(), 1);
    assert!(
        h[0]["pg_tid"].as_str().is_some_and(|s| !s.is_empty()),
        "{h:?}"
    );

    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(tok),
            json!({"imp_uid": imp, "reason": "전액 환불"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let c2 = &b["response"];
    assert_eq!(c2["status"], "cancelled");
    assert_eq!(c2["cancel_amount"], 10_000, "{b}");
    let h = c2["cancel_history"].as_array().unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[1]["amount"], 7_000);
    assert_ne!(h[0]["pg_tid"], h[1]["pg_tid"]);
    let toss = r.sim.payment_of_order(&imp).unwrap();
    assert_eq!((toss.status.as_str(), toss.balance_amount), ("CANCELED", 0));

    // Nothing left: Pier refuses without asking Toss for more.
    let (_, b) = t
        .post(
            "/payments/cancel",
            Some(tok),
            json!({"imp_uid": imp, "amount": 1}),
        )
        .await;
    assert_eq!(code(&b), 1, "{b}");
    assert_eq!(
        r.sim.payment_of_order(&imp).unwrap().cancels.unwrap().len(),
        2
    );
}

/// Toss cannot void an order id it has not seen, so "not found" is trusted only once no request
/// of the attempt can still arrive (`toss::UNSEEN_ORDER_GRACE` after it began); before that the
/// reconciler looks again later and the attempt stays in progress.
#[tokio::test]
async fn toss_not_found_is_trusted_only_after_the_late_request_grace() {
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());
    // The request never reaches Toss's processing and no answer comes.
    let no_answer = Faults {
        timeout_rate: 1.0,
        hang_ms: 2_500,
        ..Faults::default()
    };
    let imp = unknown_charge(&r, no_answer, "toss-unseen-1", 15_000).await;
    assert_eq!(r.sim.approved_charges(&imp), 0, "Toss saw nothing");
    r.sim.faults().set(Faults::default()).unwrap();

    // Toss says "not found", but inside the grace that may still mean "not yet".
    t.clock.advance(FIRST_RECONCILE_DELAY_SECS);
    t.pier.engine.reconcile_pass().await.unwrap();
    let (_, b) = t.get(&format!("/payments/{imp}"), tok).await;
    assert_eq!(b["response"]["status"], "ready", "not failed yet: {b}");

    // Past the grace the attempt fails and its merchant_uid is free again.
    let grace = pier_pg::toss::UNSEEN_ORDER_GRACE.as_secs() as i64;
    t.clock.advance(grace + 60);
    t.pier.engine.reconcile_pass().await.unwrap();
    let (_, b) = t.get(&format!("/payments/{imp}"), tok).await;
    assert_eq!(b["response"]["status"], "failed", "{b}");
    assert_eq!(r.sim.approved_charges(&imp), 0);
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-unseen-1", 15_000, CARD_SHINHAN, "tosspayments"),
        )
        .await;
    assert_eq!(code(&b), 0, "the merchant_uid can be paid now: {b}");
    assert_eq!(b["response"]["status"], "paid", "{b}");
}

#[tokio::test]
async fn toss_lost_answer_is_unknown_then_reconciled_to_one_payment() {
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());
    // Toss processes the charge and the answer never arrives.
    let answer_lost = Faults {
        drop_response_rate: 1.0,
        ..Faults::default()
    };
    let imp = unknown_charge(&r, answer_lost, "toss-lost-1", 20_000).await;
    assert_eq!(r.sim.approved_charges(&imp), 1, "Toss did charge");
    let (_, b) = t.get(&format!("/payments/{imp}"), tok).await;
    assert_eq!(b["response"]["status"], "ready", "{b}");

    // Toss answers again; the reconciler asks it and settles the attempt as paid.
    r.sim.faults().set(Faults::default()).unwrap();
    t.clock.advance(FIRST_RECONCILE_DELAY_SECS);
    t.pier.engine.reconcile_pass().await.unwrap();
    let (_, b) = t.get(&format!("/payments/{imp}"), tok).await;
    let p = &b["response"];
    assert_eq!(p["status"], "paid", "{b}");
    assert_eq!(p["pg_provider"], "tosspayments");
    let toss = r.sim.payment_of_order(&imp).unwrap();
    assert_eq!(p["pg_tid"], toss.payment_key.as_str());
    assert_eq!(p["amount"], 20_000);
    // Exactly one payment, one charge; another pass changes nothing.
    t.clock.advance(60);
    t.pier.engine.reconcile_pass().await.unwrap();
    let (_, b) = t.get("/payments/findAll/toss-lost-1", tok).await;
    let all = b["response"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let paid: Vec<_> = all.iter().filter(|p| p["status"] == "paid").collect();
    assert_eq!(paid.len(), 1, "{b}");
    assert_eq!(r.sim.approved_charges(&imp), 1);
    // A retry of the same merchant_uid is refused as already paid, and charges nothing.
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-lost-1", 20_000, CARD_SHINHAN, "tosspayments"),
        )
        .await;
    assert_ne!(code(&b), 0, "{b}");
    assert_eq!(r.sim.approved_charges(&imp), 1);
}

#[tokio::test]
async fn toss_secret_key_is_sealed_in_the_database() {
    let r = start().await;
    let t = &r.t;
    // Paying proves the sealed key opens (the simulator refuses any other key).
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&r.tok),
            keyed("toss-seal-1", 1_000, CARD_SHINHAN, "tosspayments"),
        )
        .await;
    assert_eq!(b["response"]["status"], "paid", "{b}");

    let url = t.pier.engine.config().database_url.clone();
    let sql = "SELECT id, merchant_id, pg_provider, mid, target, COALESCE(api_base, ''), \
               COALESCE(client_key, ''), COALESCE(secret_sealed, '') FROM channels";
    let rows: Vec<ChannelText> = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    };
    let text = format!("{rows:?}");
    assert!(
        !text.contains(SECRET),
        "secret key in the channels table: {text}"
    );
    let toss = rows
        .iter()
        .find(|r| r.2 == "tosspayments")
        .expect("the Toss channel");
    assert!(toss.7.starts_with("v1:"), "sealed: {}", toss.7);
    assert_eq!(toss.6, CLIENT_KEY);
    // SQLite: not in any byte of the database files either, and neither is the card number
    // the payment was made with (in either of the forms it was sent in).
    if let Some(path) = url.strip_prefix("sqlite:") {
        let dir = std::path::Path::new(path).parent().unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                for needle in [SECRET, CARD_SHINHAN, &CARD_SHINHAN.replace('-', "")] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                        "{needle} in {}",
                        p.display()
                    );
                }
            }
        }
    }
    // Debug of a channel does not show the sealed value either.
    let chans = t.pier.store().list_channels(Some(DEMO_CODE)).await.unwrap();
    let dbg = format!("{chans:?}");
    assert!(!dbg.contains(SECRET) && !dbg.contains(&toss.7), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");

    // A channel whose sealed key does not open (another server key) charges nothing and says so.
    let c = t
        .pier
        .store()
        .list_channels(Some(DEMO_CODE))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.pg_provider == "tosspayments")
        .unwrap();
    let mut moved = c.clone();
    moved.id = "ch_moved_0001".into();
    moved.mid = "toss_moved".into();
    t.pier.store().add_channel(&moved).await.unwrap();
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&r.tok),
            keyed(
                "toss-seal-2",
                1_000,
                CARD_SHINHAN,
                "tosspayments.toss_moved",
            ),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_ne!(b["response"]["status"], "paid", "{b}");
    assert!(!b.to_string().contains(SECRET));
    let imp = b["response"]["imp_uid"].as_str().map(str::to_owned);
    if let Some(imp) = imp {
        assert_eq!(r.sim.approved_charges(&imp), 0);
    }
}

#[tokio::test]
async fn toss_billing_key_deleted_at_pier_stays_at_toss() {
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());
    let (s, b) = t
        .post(
            "/subscribe/customers/toss-gone",
            Some(tok),
            json!({"card_number": CARD_SHINHAN, "expiry": "2030-12", "birth": "880101",
                   "pwd_2digit": "12", "pg": "tosspayments"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(r.sim.billing_keys(), 1);

    // i'mport's answer: the deleted key, code 0.
    let (s, b) = t.delete("/subscribe/customers/toss-gone", tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["customer_uid"], "toss-gone");
    assert_eq!(b["response"]["pg_provider"], "tosspayments");

    // Gone at Pier: not found, and `again` charges nothing at Toss.
    let (_, b) = t.get("/subscribe/customers/toss-gone", tok).await;
    assert_ne!(code(&b), 0, "{b}");
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(tok),
            json!({"customer_uid": "toss-gone", "merchant_uid": "toss-gone-1",
                   "amount": 1_000, "name": "월 구독"}),
        )
        .await;
    assert_ne!(code(&b), 0, "{b}");
    let (_, b) = t.get("/payments/findAll/toss-gone-1", tok).await;
    let tried = b["response"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        tried.iter().all(|p| p["status"] != "paid"),
        "nothing paid: {b}"
    );
    // Toss documents no deletion of a billing key: its record stays (Pier says so in
    // docs/connectors/tosspayments.md rather than pretending it revoked it).
    assert_eq!(r.sim.billing_keys(), 1);
}

#[tokio::test]
async fn toss_rotated_secret_takes_effect_without_a_restart() {
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());
    // A second Toss channel whose key the simulator does not accept (the merchant re-issued it
    // at Toss): its payments are refused with Toss's 401, and charge nothing.
    let b_channel = t
        .pier
        .engine
        .add_toss_channel(TossChannel {
            merchant: DEMO_CODE.into(),
            secret_key: "test_sk_revoked_at_toss_0000".into(),
            client_key: CLIENT_KEY.into(),
            api_base: Some(r.base.clone()),
            mid: Some("toss_b".into()),
            is_default: false,
        })
        .await
        .unwrap();
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-rot-1", 5_000, CARD_SHINHAN, "tosspayments.toss_b"),
        )
        .await;
    assert_ne!(code(&b), 0, "the old key is refused: {b}");
    assert!(r.sim.payment_of_order("toss-rot-1").is_none());

    // Rotation: a key of the other world is refused (that would be a new channel)...
    let e = t
        .pier
        .engine
        .rotate_channel_secret(&b_channel.id, "live_sk_other_world_0000")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("add a new channel"), "{e}");
    // ...the right one is sealed, and the running server uses it at the next payment.
    let c = t
        .pier
        .engine
        .rotate_channel_secret(&b_channel.id, SECRET)
        .await
        .unwrap();
    assert_ne!(c.secret_sealed, b_channel.secret_sealed);
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-rot-2", 5_000, CARD_SHINHAN, "tosspayments.toss_b"),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["status"], "paid", "{b}");
    // A channel without a PG secret has nothing to rotate.
    let testpg = t
        .pier
        .engine
        .select_channel(DEMO_CODE, Some("jtnet"))
        .await
        .unwrap();
    let e = t
        .pier
        .engine
        .rotate_channel_secret(&testpg.id, SECRET)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no secret key"), "{e}");
}

#[tokio::test]
async fn toss_channel_removal_waits_for_its_billing_keys_and_payments() {
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());
    let engine = &t.pier.engine;
    let toss = engine
        .select_channel(DEMO_CODE, Some("tosspayments"))
        .await
        .unwrap();

    // The default channel stays.
    let default = engine.select_channel(DEMO_CODE, None).await.unwrap();
    let e = engine.remove_channel(&default.id).await.unwrap_err();
    assert!(e.to_string().contains("default channel"), "{e}");

    // A billing key issued through it keeps it...
    let (_, b) = t
        .post(
            "/subscribe/customers/toss-keeps",
            Some(tok),
            json!({"card_number": CARD_SHINHAN, "expiry": "2030-12", "birth": "880101",
                   "pwd_2digit": "12", "pg": "tosspayments"}),
        )
        .await;
    assert_eq!(code(&b), 0, "{b}");
    let e = engine.remove_channel(&toss.id).await.unwrap_err();
    assert!(e.to_string().contains("1 billing key"), "{e}");
    let (_, b) = t.delete("/subscribe/customers/toss-keeps", tok).await;
    assert_eq!(code(&b), 0, "{b}");

    // ...and so does a paid payment, which may still be cancelled there.
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-keeps-1", 3_000, CARD_SHINHAN, "tosspayments"),
        )
        .await;
    assert_eq!(b["response"]["status"], "paid", "{b}");
    let imp = b["response"]["imp_uid"].as_str().unwrap().to_owned();
    let e = engine.remove_channel(&toss.id).await.unwrap_err();
    assert!(e.to_string().contains("1 payment"), "{e}");
    let (_, b) = t
        .post(
            "/payments/cancel",
            Some(tok),
            json!({"imp_uid": imp, "reason": "전액 환불"}),
        )
        .await;
    assert_eq!(b["response"]["status"], "cancelled", "{b}");

    // Nothing needs it now: removed, no longer selectable, and its history still reads.
    let gone = engine.remove_channel(&toss.id).await.unwrap();
    assert_eq!(gone.id, toss.id);
    assert!(engine
        .select_channel(DEMO_CODE, Some("tosspayments"))
        .await
        .is_err());
    let (_, b) = t.get(&format!("/payments/{imp}"), tok).await;
    assert_eq!(b["response"]["status"], "cancelled", "{b}");
    assert_eq!(b["response"]["pg_provider"], "tosspayments", "{b}");
    let e = engine.remove_channel(&toss.id).await.unwrap_err();
    assert!(e.to_string().contains("no channel"), "{e}");
}

/// Card data Pier sends to Toss never reaches its logs (trace level for Pier's crates; every
/// test of this process is captured, so the other Toss tests' requests are searched too): a
/// key-in payment, a billing key and its charge, a decline.
#[tokio::test]
async fn toss_card_data_is_never_logged() {
    let logs = crate::security::captured_logs();
    let r = start().await;
    let (t, tok) = (&r.t, r.tok.as_str());
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-log-1", 1_000, CARD_SHINHAN, "tosspayments"),
        )
        .await;
    assert_eq!(code(&b), 0, "{b}");
    let (_, b) = t
        .post(
            "/subscribe/customers/toss-log-cust",
            Some(tok),
            json!({"card_number": CARD_SHINHAN, "expiry": "2030-12", "birth": "880101",
                   "pwd_2digit": "12", "pg": "tosspayments"}),
        )
        .await;
    assert_eq!(code(&b), 0, "{b}");
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(tok),
            json!({"customer_uid": "toss-log-cust", "merchant_uid": "toss-log-2", "amount": 2_000}),
        )
        .await;
    assert_eq!(code(&b), 0, "{b}");
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(tok),
            keyed("toss-log-3", 1_000, CARD_DECLINED, "tosspayments"),
        )
        .await;
    assert_eq!(b["response"]["status"], "failed", "declined: {b}");
    let logged = logs.lock().unwrap().clone();
    assert!(!logged.is_empty(), "logs were captured");
    // The whole numbers (masking keeps the first 6 and last 4 digits), the birth date as a value
    // (quoted: six hex digits of a random id could spell it), the password field.
    for needle in [
        "4518420000000000",
        "4518-4200-0000-0000",
        "5570420000002112",
        "5570-4200-0000-2112",
        "\"880101\"",
        "pwd_2digit",
    ] {
        let hit = logged.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!hit, "{needle} in the logs");
    }
}
