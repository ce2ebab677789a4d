//! The verification of a run against the PG's own books (`GET /admin/ledger`), Pier's view of
//! every merchant_uid, what the clients were told and the webhooks announced; prints the summary.

use crate::client::{Client, Outcome};
use crate::drive::Refunds;
use crate::procs::Pier;
use crate::{Args, MID};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Starts the webhook receiver; returns the set of announced paid imp_uids and its URL.
pub async fn webhook_receiver() -> anyhow::Result<(Arc<Mutex<HashSet<String>>>, String)> {
    // A webhook receiver: every `paid` announcement is remembered (duplicates allowed).
    let announced_paid: Arc<Mutex<HashSet<String>>> = Arc::default();
    let hook_url = {
        let seen = announced_paid.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        if v["status"] == "paid" {
                            if let Some(id) = v["imp_uid"].as_str() {
                                seen.lock().unwrap().insert(id.to_owned());
                            }
                        }
                    }
                    "ok"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/hook")
    };
    Ok((announced_paid, hook_url))
}

/// Everything the verification needs from the run.
pub struct Run<'a> {
    pub a: &'a Args,
    pub started: Instant,
    pub drive_secs: f64,
    pub client: &'a Arc<Client>,
    pub http: &'a reqwest::Client,
    pub pg_url: &'a str,
    pub outcomes: &'a Mutex<HashMap<String, Outcome>>,
    pub announced_paid: &'a Mutex<HashSet<String>>,
    pub piers: &'a [Arc<Mutex<Pier>>],
    pub kills_done: &'a AtomicU64,
    pub refunds: &'a Refunds,
    pub reconcile_out: &'a str,
    pub work: &'a Path,
}

/// Checks the invariants, prints the summary (JSON on stdout) and returns whether they hold.
pub async fn verify(run: Run<'_>) -> anyhow::Result<bool> {
    let Run {
        a,
        started,
        drive_secs,
        client,
        http,
        pg_url,
        outcomes,
        announced_paid,
        piers,
        kills_done,
        refunds,
        reconcile_out,
        work,
    } = run;
    let n = a.instances as usize;
    // ---- Verification ------------------------------------------------------------------------
    let outcomes = outcomes.lock().unwrap().clone();
    // Pier's view: every attempt of every merchant_uid.
    let mut pier_paid: HashMap<String, (String, i64)> = HashMap::new(); // imp_uid -> (uid, amount)
    let mut pier_paid_per_uid: HashMap<String, u32> = HashMap::new();
    let mut pier_unsettled = 0u64;
    let mut attempts_total = 0u64;
    let mut pier_refunded: HashMap<String, i64> = HashMap::new(); // imp_uid -> cancel_amount
    let uids: Vec<String> = outcomes.keys().cloned().collect();
    let views = Arc::new(Mutex::new(Vec::new()));
    let mut lookups = Vec::new();
    for chunk in uids.chunks(uids.len().div_ceil(16).max(1)) {
        let (client, chunk, views) = (client.clone(), chunk.to_vec(), views.clone());
        lookups.push(tokio::spawn(async move {
            for uid in chunk {
                for _ in 0..20 {
                    let r = client
                        .send(
                            reqwest::Method::GET,
                            &format!("/payments/findAll/{uid}?limit=100"),
                            None,
                            None,
                        )
                        .await;
                    match r {
                        Some((200, _, _, v)) => {
                            views
                                .lock()
                                .unwrap()
                                .push((uid.clone(), v["response"]["list"].clone()));
                            break;
                        }
                        Some((404, _, _, _)) => {
                            views.lock().unwrap().push((uid.clone(), json!([])));
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
        }));
    }
    for l in lookups {
        l.await?;
    }
    let views = views.lock().unwrap().clone();
    let looked_up = views.len();
    // Every attempt's order id (imp_uid) -> merchant_uid: Toss's books know only the order id.
    let uid_of: HashMap<String, String> = views
        .iter()
        .flat_map(|(uid, list)| {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["imp_uid"].as_str())
                .map(|id| (id.to_owned(), uid.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (uid, list) in &views {
        for p in list.as_array().into_iter().flatten() {
            attempts_total += 1;
            let imp_uid = p["imp_uid"].as_str().unwrap_or_default().to_owned();
            let net = p["amount"].as_i64().unwrap_or(0) - p["cancel_amount"].as_i64().unwrap_or(0);
            pier_refunded.insert(imp_uid.clone(), p["cancel_amount"].as_i64().unwrap_or(0));
            match p["status"].as_str() {
                Some("paid") | Some("cancelled")
                    if p["paid_at"].as_i64().unwrap_or(0) > 0 && net > 0 =>
                {
                    pier_paid.insert(imp_uid, (uid.clone(), net));
                    *pier_paid_per_uid.entry(uid.clone()).or_default() += 1;
                }
                Some("ready") => pier_unsettled += 1,
                _ => {}
            }
        }
    }
    let pier_total: i64 = pier_paid.values().map(|(_, a)| *a).sum();

    // The PG's view.
    let ledger: Value = http
        .get(format!("{pg_url}/admin/ledger"))
        .send()
        .await?
        .json()
        .await?;
    let orders = ledger["orders"].as_array().cloned().unwrap_or_default();
    let mine = |o: &&Value| o["mid"] == MID;
    let mut live_per_uid: HashMap<String, u32> = HashMap::new();
    let mut live_orders: HashSet<String> = HashSet::new();
    let mut pg_net: i64 = 0;
    let mut pg_refunded: i64 = 0;
    let mut refund_mismatches = 0u64;
    let (mut pg_voided, mut pg_declined, mut pg_approved_ever) = (0u64, 0u64, 0u64);
    for o in orders.iter().filter(mine) {
        let net = o["net_krw"].as_i64().unwrap_or(0);
        pg_net += net;
        match o["status"].as_str() {
            Some("voided") => pg_voided += 1,
            Some("declined") => pg_declined += 1,
            _ => {}
        }
        if o["pg_tid"].is_string() && o["status"] != "declined" {
            pg_approved_ever += 1;
        }
        let refunded_at_pg = o["cancelled_krw"].as_i64().unwrap_or(0);
        pg_refunded += refunded_at_pg;
        let order_id = o["order_id"].as_str().unwrap_or_default();
        if refunded_at_pg != pier_refunded.get(order_id).copied().unwrap_or(0) {
            refund_mismatches += 1;
        }
        if net > 0 {
            let uid = match o["merchant_uid"].as_str() {
                Some(u) => u.to_owned(),
                None => uid_of
                    .get(o["order_id"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_else(|| o["order_id"].as_str().unwrap_or_default().to_owned()),
            };
            *live_per_uid.entry(uid).or_default() += 1;
            live_orders.insert(o["order_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let duplicates = live_per_uid.values().filter(|n| **n > 1).count()
        + pier_paid_per_uid.values().filter(|n| **n > 1).count();
    let orphans = live_orders
        .iter()
        .filter(|id| !pier_paid.contains_key(*id))
        .count();
    let ghosts = pier_paid
        .keys()
        .filter(|id| !live_orders.contains(*id))
        .count();
    // What clients were told, against the books.
    let mut told_paid_not_paid = 0u64;
    let mut told_failed_but_charged = 0u64;
    let (mut n_paid, mut n_failed, mut gave_up) = (0u64, 0u64, 0u64);
    let mut fail_reasons: HashMap<String, u64> = HashMap::new();
    for (uid, o) in &outcomes {
        match o {
            Outcome::Paid { imp_uid } => {
                n_paid += 1;
                let ok = match imp_uid {
                    Some(id) => pier_paid.contains_key(id),
                    None => pier_paid_per_uid.get(uid).copied().unwrap_or(0) == 1,
                };
                if !ok {
                    told_paid_not_paid += 1;
                }
            }
            Outcome::Failed { message } => {
                n_failed += 1;
                let short: String = message.chars().take(40).collect();
                *fail_reasons.entry(short).or_default() += 1;
                if live_per_uid.get(uid).copied().unwrap_or(0) > 0 {
                    told_failed_but_charged += 1;
                }
            }
            Outcome::GaveUp => gave_up += 1,
        }
    }
    // EXTENSION POINT (cancels): compare Pier's cancel_amount per payment with the ledger's
    // cancels (`ledger.cancels`, `orders[].cancelled_krw`); the totals check above already uses
    // net amounts once Pier's paid total subtracts cancel_amount.
    // Webhooks: every paid payment announced at least once (duplicates allowed). Deliveries cut
    // by a kill come back when their lease runs out, so allow a while.
    let webhook_wait = Instant::now();
    let webhooks_missing = loop {
        let missing = {
            let seen = announced_paid.lock().unwrap();
            pier_paid.keys().filter(|id| !seen.contains(*id)).count()
        };
        if missing == 0 || webhook_wait.elapsed() > Duration::from_secs(180) {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let webhooks_announced = announced_paid.lock().unwrap().len();

    let c = &client.c;
    let ok = duplicates == 0
        && orphans == 0
        && ghosts == 0
        && pier_total == pg_net
        && told_paid_not_paid == 0
        && told_failed_but_charged == 0
        && gave_up == 0
        && pier_unsettled == 0
        && webhooks_missing == 0
        && refund_mismatches == 0
        && pier_refunded.values().sum::<i64>() == 500 * refunds.ok as i64
        && refunds.pending == 0
        && refunds.gave_up == 0
        && looked_up == outcomes.len();
    let log_count = |needle: &str| -> u64 {
        let mut n = 0;
        for p in piers {
            let p = p.lock().unwrap();
            for s in 1..=p.starts {
                if let Ok(t) = std::fs::read_to_string(p.log_path(s)) {
                    n += t.matches(needle).count() as u64;
                }
            }
        }
        n
    };
    let summary = json!({
        "ok": ok,
        "payments": a.payments,
        "kills": kills_done.load(Ordering::Relaxed),
        "instances": n,
        "pier_starts": piers.iter().map(|p| p.lock().unwrap().starts).sum::<u64>(),
        "seconds": {"drive": drive_secs, "total": started.elapsed().as_secs_f64()},
        "faults": {
            "pg": a.pg,
            "pgsim": {"timeout_rate": a.timeout_rate, "error_rate": a.error_rate, "drop_response_rate": a.drop_response_rate,
                      "latency_ms": a.latency_ms, "latency_jitter_ms": a.latency_jitter_ms},
            "pier_log_unknown_outcomes": log_count("PG outcome unknown"),
            "pier_log_net_cancels": log_count("net-cancelled at the PG"),
            "pier_log_reconciled_paid": log_count("reconciled: paid"),
            "pier_log_reconciled_failed": log_count("reconciled: failed"),
        },
        "client": {
            "requests": c.requests.load(Ordering::Relaxed),
            "transport_errors": c.conn_errors.load(Ordering::Relaxed),
            "unknown_answers": c.unknown_answers.load(Ordering::Relaxed),
            "in_progress_answers": c.in_progress_answers.load(Ordering::Relaxed),
            "server_errors": c.server_errors.load(Ordering::Relaxed),
            "idempotency_409": c.idem_conflicts.load(Ordering::Relaxed),
            "idempotent_replays": c.replays.load(Ordering::Relaxed),
            "told_paid": n_paid, "told_failed": n_failed, "gave_up": gave_up,
            "fail_reasons": fail_reasons,
        },
        "pier": {"attempts": attempts_total, "paid": pier_paid.len(), "paid_total_krw": pier_total, "unsettled": pier_unsettled},
        "pg": {"orders": orders.iter().filter(mine).count(), "approved_ever": pg_approved_ever, "voided": pg_voided,
               "declined": pg_declined, "live_approvals": live_orders.len(), "net_total_krw": pg_net},
        "violations": {
            "duplicates": duplicates, "orphans": orphans, "ghosts": ghosts,
            "totals_equal": pier_total == pg_net,
            "told_paid_not_paid": told_paid_not_paid, "told_failed_but_charged": told_failed_but_charged,
            "paid_without_webhook": webhooks_missing,
            "refund_mismatches": refund_mismatches, "refunds_pending": refunds.pending,
            "refunded_as_asked": pier_refunded.values().sum::<i64>() == 500 * refunds.ok as i64,
        },
        "refunds": {"asked": refunds.paid_uids.len(), "ok": refunds.ok,
                    "refused": refunds.refused, "gave_up": refunds.gave_up,
                    "pier_total_krw": pier_refunded.values().sum::<i64>(), "pg_total_krw": pg_refunded,
                    "wait_secs": refunds.wait.elapsed().as_secs_f64()},
        "webhooks": {"paid_announced": webhooks_announced, "wait_secs": webhook_wait.elapsed().as_secs_f64()},
        "final_reconcile": serde_json::from_str::<Value>(reconcile_out.trim()).unwrap_or(Value::Null),
        "workdir": work.display().to_string(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ok)
}
