//! The drive of a run: billing keys, the plan of payments, the clients that pay under faults,
//! the killer, the wait for Pier to settle, and the refunds under the same faults.

use crate::client::{Client, Outcome, Rng};
use crate::procs::{wait_healthy, Pier};
use crate::{Args, CARD_APPROVE, CARD_APPROVE_2, CARD_DECLINE, CUSTOMERS};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// One payment of the run: which merchant_uid, through which endpoint, with which body.
pub struct Plan {
    merchant_uid: String,
    path: &'static str,
    body: Value,
}

/// Issues the billing keys that `again` payments use.
pub async fn billing_keys(client: &Client) -> anyhow::Result<()> {
    // Billing keys for `again` (issued before the kills; a fault just means another try).
    for i in 0..CUSTOMERS {
        let mut ok = false;
        for _ in 0..20 {
            let r = client
                .send(
                    reqwest::Method::POST,
                    &format!("/subscribe/customers/chaos-cust-{i}"),
                    Some(&json!({"card_number": CARD_APPROVE, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"})),
                    None,
                )
                .await;
            if let Some((200, _, _, v)) = r {
                if v["code"] == 0 {
                    ok = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(ok, "could not issue billing key {i}");
    }
    Ok(())
}

/// Decides every payment of the run from the seed.
pub fn plan(a: &Args) -> Vec<Plan> {
    // The plan: which payment is what. EXTENSION POINT (cancels): add partial/full cancels of
    // some paid payments here (with their own Idempotency-Keys), and check them below.
    let mut rng = Rng::new(a.seed);
    let mut plans = Vec::with_capacity(a.payments as usize);
    for i in 0..a.payments {
        let merchant_uid = format!("chaos-{}-{i}", a.seed);
        let amount = 1000 + 100 * rng.below(990) as i64;
        if rng.chance(a.again_share) {
            plans.push(Plan {
                body: json!({"merchant_uid": merchant_uid, "amount": amount, "customer_uid": format!("chaos-cust-{}", rng.below(CUSTOMERS)), "name": "chaos again"}),
                merchant_uid,
                path: "/subscribe/payments/again",
            });
        } else {
            let card = match rng.below(100) {
                0..=4 => CARD_DECLINE,
                5..=14 => CARD_APPROVE_2,
                _ => CARD_APPROVE,
            };
            plans.push(Plan {
                body: json!({"merchant_uid": merchant_uid, "amount": amount, "card_number": card, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "name": "chaos onetime"}),
                merchant_uid,
                path: "/subscribe/payments/onetime",
            });
        }
    }
    plans
}

/// Starts the killer; returns the count of kills done and its task.
pub fn killer(
    a: &Args,
    piers: &[Arc<Mutex<Pier>>],
    client: &Arc<Client>,
    http: &reqwest::Client,
    bases: &[String],
) -> (Arc<AtomicU64>, JoinHandle<()>) {
    // The killer: SIGKILL at random moments spread over the run, restart right after. With
    // several instances kill j hits instance j mod N while the others keep serving.
    let kills_done = Arc::new(AtomicU64::new(0));
    let killer = {
        let (piers, client, http, bases, kills_done) = (
            piers.to_vec(),
            client.clone(),
            http.clone(),
            bases.to_vec(),
            kills_done.clone(),
        );
        let (n, k) = (a.payments, a.kills);
        let mut krng = Rng::new(a.seed ^ 0xDEAD);
        tokio::spawn(async move {
            for j in 1..=k {
                let at = j * n / (k + 1);
                while client.c.done.load(Ordering::Relaxed) < at {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(krng.below(400))).await;
                let victim = (j as usize - 1) % piers.len();
                let (pier, base) = (&piers[victim], &bases[victim]);
                pier.lock().unwrap().kill();
                kills_done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(krng.below(1000))).await;
                if let Err(e) = pier.lock().unwrap().start() {
                    eprintln!("restart failed: {e}");
                }
                if let Err(e) = wait_healthy(&http, base, Duration::from_secs(60)).await {
                    eprintln!("{e}");
                }
                eprintln!(
                    "[chaos] kill {j}/{k} ({}) done at {} payments",
                    pier.lock().unwrap().name,
                    client.c.done.load(Ordering::Relaxed)
                );
            }
        })
    };
    (kills_done, killer)
}

/// Runs every planned payment to a final answer (or the give-up) and returns what each client
/// was told, per merchant_uid.
pub async fn clients(
    a: &Args,
    client: &Arc<Client>,
    plans: Vec<Plan>,
) -> anyhow::Result<Arc<Mutex<HashMap<String, Outcome>>>> {
    // The clients.
    let outcomes: Arc<Mutex<HashMap<String, Outcome>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::with_capacity(plans.len());
    for (i, plan) in plans.into_iter().enumerate() {
        let (client, outcomes) = (client.clone(), outcomes.clone());
        let give_up = Duration::from_secs(a.payment_timeout_secs);
        let idem = format!("chaos-idem-{}-{i}", a.seed);
        tasks.push(tokio::spawn(async move {
            let o = client.pay(plan.path, plan.body, idem, give_up).await;
            outcomes.lock().unwrap().insert(plan.merchant_uid, o);
            let d = client.c.done.fetch_add(1, Ordering::Relaxed) + 1;
            if d % 1000 == 0 {
                eprintln!("[chaos] {d} payments answered");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(outcomes)
}

/// Waits until nothing is unsettled at Pier (at most 120 s), then runs `pier reconcile --json`
/// and returns its output.
pub async fn settle(client: &Client, pier: &Mutex<Pier>) -> anyhow::Result<String> {
    // Let Pier finish reconciling, then one explicit pass (`pier reconcile`) for good measure.
    let settle_started = Instant::now();
    loop {
        let r = client
            .send(reqwest::Method::GET, "/admin/unsettled", None, None)
            .await;
        let open = r.map(|(_, _, _, v)| v["response"]["total"].as_i64().unwrap_or(-1));
        if open == Some(0) || settle_started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reconcile_out = pier.lock().unwrap().run(&["reconcile", "--json"])?;
    Ok(reconcile_out)
}

/// What became of the refunds.
pub struct Refunds {
    /// The merchant_uids asked for a refund (every fifth paid payment).
    pub paid_uids: Vec<String>,
    pub ok: u64,
    pub refused: u64,
    pub gave_up: u64,
    /// Refunds still pending at Pier after the wait.
    pub pending: u64,
    /// When the wait for pending refunds began.
    pub wait: Instant,
}

pub async fn refunds(
    client: &Arc<Client>,
    outcomes: &Mutex<HashMap<String, Outcome>>,
) -> anyhow::Result<Refunds> {
    // Cancels under the same PG faults: a 500 KRW partial refund of every fifth paid payment,
    // retried with its own Idempotency-Key until Pier answers finally; then wait until no refund
    // is pending at Pier (an unknown PG answer is retried by Pier with the same cancellation_id).
    let paid_uids: Vec<String> = {
        let o = outcomes.lock().unwrap();
        let mut v: Vec<String> = o
            .iter()
            .filter(|(_, x)| matches!(x, Outcome::Paid { .. }))
            .map(|(u, _)| u.clone())
            .collect();
        v.sort();
        v.into_iter().step_by(5).collect()
    };
    let cancels_ok = Arc::new(AtomicU64::new(0));
    let cancels_refused = Arc::new(AtomicU64::new(0));
    let cancels_gave_up = Arc::new(AtomicU64::new(0));
    let mut cancel_tasks = Vec::new();
    for uid in paid_uids.clone() {
        let client = client.clone();
        let (ok, refused, gave_up) = (
            cancels_ok.clone(),
            cancels_refused.clone(),
            cancels_gave_up.clone(),
        );
        cancel_tasks.push(tokio::spawn(async move {
            let body = json!({"merchant_uid": uid, "amount": 500, "reason": "chaos refund"});
            let idem = format!("chaos-cancel-{uid}");
            // Pier retries an unknown cancel with backoff (5 s, 10 s, 20 s …): keep asking ~3 min.
            for _ in 0..600 {
                match client
                    .send(
                        reqwest::Method::POST,
                        "/payments/cancel",
                        Some(&body),
                        Some(&idem),
                    )
                    .await
                {
                    Some((200, false, _, v)) if v["code"] == 0 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Some((200, false, _, _)) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
            gave_up.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in cancel_tasks {
        t.await?;
    }
    let refunds_wait = Instant::now();
    let mut refunds_pending = 0u64;
    for uid in &paid_uids {
        let imp_uid = match client
            .send(
                reqwest::Method::GET,
                &format!("/payments/find/{uid}"),
                None,
                None,
            )
            .await
        {
            Some((200, _, _, v)) => v["response"]["imp_uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            _ => continue,
        };
        loop {
            let pending = match client
                .send(
                    reqwest::Method::GET,
                    &format!("/payments/{imp_uid}/balance"),
                    None,
                    None,
                )
                .await
            {
                Some((200, _, _, v)) => {
                    v["response"]["cancel_pending_amount"].as_i64().unwrap_or(0)
                }
                _ => 1,
            };
            if pending == 0 {
                break;
            }
            if refunds_wait.elapsed() > Duration::from_secs(180) {
                refunds_pending += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(Refunds {
        paid_uids,
        ok: cancels_ok.load(Ordering::Relaxed),
        refused: cancels_refused.load(Ordering::Relaxed),
        gave_up: cancels_gave_up.load(Ordering::Relaxed),
        pending: refunds_pending,
        wait: refunds_wait,
    })
}
