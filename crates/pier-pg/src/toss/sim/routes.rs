//! The simulator's HTTP routes: Toss's endpoints behind auth and faults, with
//! `Idempotency-Key` handling, and the unauthenticated admin routes.

use super::answer::{not_found_payment, parse, After, Outcome};
use super::books::{Books, Stored};
use super::window::http_url;
use super::{confirm, window_page, window_submit};
use super::{Inner, Sim, MAX_BODY_BYTES, MAX_IDEMPOTENCY_KEY_CHARS};
use crate::pgsim::{faults, Faults};
use crate::toss::wire;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use sha2::{Digest, Sha256};

impl Sim {
    /// Every Toss endpoint the connector uses (behind auth and faults), the admin routes and
    /// `/healthz`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route(wire::KEY_IN, post(key_in))
            .route(wire::BILLING_AUTH_CARD, post(billing_auth))
            .route("/v1/billing/{billing_key}", post(billing_pay))
            .route("/v1/payments/{payment_key}/cancel", post(cancel))
            .route("/v1/payments/orders/{order_id}", get(by_order))
            .route("/v1/payments/{payment_key}", get(by_key))
            .route(wire::VIRTUAL_ACCOUNTS, post(virtual_account))
            .route(wire::CONFIRM, post(confirm::confirm))
            .route(wire::BILLING_AUTH_ISSUE, post(confirm::billing_issue))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                authorize,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                self.inner.faults.clone(),
                faults::inject,
            ));
        let admin = Router::new()
            .route("/admin/faults", get(get_faults).put(put_faults))
            .route("/admin/orders/{order_id}", get(admin_order))
            .route("/admin/orders/{order_id}/deposit", put(admin_deposit))
            .route("/admin/webhook", put(put_webhook))
            .route("/admin/ledger", get(ledger))
            .route("/healthz", get(|| async { "ok" }))
            .route("/v1/payment", get(window_page::sdk_js))
            .route(
                "/sim/window",
                get(window_page::page).post(window_submit::submit),
            );
        api.merge(admin)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

    /// One POST: idempotency, then the handler under the books' lock, then the answer's fate.
    pub(super) async fn post(
        &self,
        route: &str,
        headers: &HeaderMap,
        body: &[u8],
        handle: impl FnOnce(&mut Books, &Inner) -> Outcome,
    ) -> Response {
        let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
            None => None,
            Some(Ok(k)) if !k.is_empty() && k.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS => {
                Some(k.to_owned())
            }
            Some(_) => {
                return Outcome::invalid("잘못된 요청입니다. (Idempotency-Key)").into_response()
            }
        };
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(body);
        let digest: [u8; 32] = h.finalize().into();
        let outcome = {
            let mut books = self.books();
            if let Some(stored) = key.as_ref().and_then(|k| books.idempotent.get(k)) {
                // A replay is answered, never re-processed and never lost again.
                return if stored.digest == digest {
                    (
                        stored.status,
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        stored.body.clone(),
                    )
                        .into_response()
                } else {
                    Outcome::err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "IDEMPOTENCY_KEY_REUSED",
                        "같은 멱등키로 다른 요청을 보낼 수 없습니다.",
                    )
                    .into_response()
                };
            }
            if books.full() {
                return Outcome::err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "FAILED_INTERNAL_SYSTEM_PROCESSING",
                    "simulator record limit reached",
                )
                .into_response();
            }
            let outcome = handle(&mut books, &self.inner);
            if let (Some(k), After::Answer | After::Lose) = (key, outcome.after) {
                books.idempotent.insert(
                    k,
                    Stored {
                        digest,
                        status: outcome.status,
                        body: outcome.body.clone(),
                    },
                );
            }
            outcome
        };
        match outcome.after {
            After::Answer => outcome.into_response(),
            After::Hang | After::Lose => {
                self.inner.faults.hang().await;
                StatusCode::GATEWAY_TIMEOUT.into_response()
            }
        }
    }
}

/// 401 in Toss's shape unless the request carries the configured secret key.
async fn authorize(State(sim): State<Sim>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let ok = given.is_some_and(|g| {
        // Constant-time comparison: the simulator may run where timing is observable.
        let (a, b) = (g.as_bytes(), sim.inner.auth.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if ok {
        next.run(req).await
    } else {
        Outcome::err(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED_KEY",
            "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
        )
        .into_response()
    }
}

async fn key_in(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.post(wire::KEY_IN, &headers, &body, |b, s| b.key_in(s, &body))
        .await
}

async fn billing_auth(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.post(wire::BILLING_AUTH_CARD, &headers, &body, |b, s| {
        b.billing_auth(s, &body)
    })
    .await
}

async fn billing_pay(
    State(sim): State<Sim>,
    Path(billing_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/v1/billing/{billing_key}");
    sim.post(&route, &headers, &body, |b, s| {
        b.billing_pay(s, &billing_key, &body)
    })
    .await
}

async fn cancel(
    State(sim): State<Sim>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/v1/payments/{payment_key}/cancel");
    sim.post(&route, &headers, &body, |b, _| {
        b.cancel(&payment_key, &body)
    })
    .await
}

async fn virtual_account(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.post(wire::VIRTUAL_ACCOUNTS, &headers, &body, |b, s| {
        b.virtual_account(s, &body)
    })
    .await
}

async fn by_order(State(sim): State<Sim>, Path(order_id): Path<String>) -> Response {
    match sim.payment_of_order(&order_id) {
        Some(p) => Outcome::ok(&p).into_response(),
        None => not_found_payment().into_response(),
    }
}

async fn by_key(State(sim): State<Sim>, Path(payment_key): Path<String>) -> Response {
    let found = sim.books().payments.get(&payment_key).cloned();
    match found {
        Some(p) => Outcome::ok(&p).into_response(),
        None => not_found_payment().into_response(),
    }
}

async fn get_faults(State(sim): State<Sim>) -> Response {
    Json(sim.inner.faults.get()).into_response()
}

async fn put_faults(State(sim): State<Sim>, body: Bytes) -> Response {
    let faults: Faults = match parse(&body) {
        Ok(f) => f,
        Err(o) => return o.into_response(),
    };
    match sim.inner.faults.set(faults) {
        Ok(()) => Json(faults).into_response(),
        Err(e) => Outcome::invalid(e.0).into_response(),
    }
}

async fn admin_order(State(sim): State<Sim>, Path(order_id): Path<String>) -> Response {
    by_order(State(sim), Path(order_id)).await
}

async fn admin_deposit(State(sim): State<Sim>, Path(order_id): Path<String>) -> Response {
    if sim.deposit(&order_id) {
        by_order(State(sim), Path(order_id)).await
    } else {
        Outcome::bad(
            "NOT_WAITING_FOR_DEPOSIT",
            "no virtual account waiting for a deposit",
        )
        .into_response()
    }
}

/// `PUT /admin/webhook` `{"url": "http://…" | null}`: where deposits are announced.
async fn put_webhook(State(sim): State<Sim>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Hook {
        url: Option<String>,
    }
    let hook: Hook = match parse(&body) {
        Ok(h) => h,
        Err(o) => return o.into_response(),
    };
    if let Some(u) = &hook.url {
        if http_url(Some(u)).is_none() {
            return Outcome::invalid("잘못된 요청입니다. (url)").into_response();
        }
    }
    sim.set_webhook_url(hook.url.clone());
    axum::Json(serde_json::json!({ "url": hook.url })).into_response()
}

/// `GET /admin/ledger`: every payment as the chaos run reads a PG's books (pgsim's shape):
/// `status` `approved` / `voided` / `declined` / `pending`, `net_krw` (what is still charged),
/// `cancelled_krw`. Toss knows no `merchant_uid` (`null`): the reader maps `order_id` (Pier's
/// `imp_uid`) to it.
async fn ledger(State(sim): State<Sim>) -> Response {
    let books = sim.books();
    let orders: Vec<serde_json::Value> = books
        .payments
        .values()
        .map(|p| {
            let (status, net) = match p.status.as_str() {
                "DONE" | "PARTIAL_CANCELED" => ("approved", p.balance_amount),
                "CANCELED" => ("voided", 0),
                "ABORTED" | "EXPIRED" => ("declined", 0),
                _ => ("pending", 0),
            };
            let cancelled = p
                .cancels
                .iter()
                .flatten()
                .map(|c| c.cancel_amount)
                .sum::<i64>();
            serde_json::json!({
                "mid": p.m_id,
                "order_id": p.order_id,
                "merchant_uid": null,
                "status": status,
                "net_krw": net,
                "cancelled_krw": cancelled,
                "pg_tid": if status == "declined" || status == "pending" { None } else { Some(&p.payment_key) },
            })
        })
        .collect();
    drop(books);
    axum::Json(serde_json::json!({ "orders": orders })).into_response()
}
