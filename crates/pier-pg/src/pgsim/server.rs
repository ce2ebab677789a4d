//! pgsim's HTTP side: one handler per connector operation, each parsing its wire request, calling
//! the engine once and wrapping the answer in the envelope; plus the admin API.
//!
//! Handlers never log request bodies, and malformed bodies are refused with a fixed message rather
//! than the parser's (which could quote a card number back).

use super::faults::{self, FaultControl, Faults};
use super::wire::{self, Done, Reply};
use crate::testpg::{DepositTarget, Engine, EngineResult, Fail};
use crate::PgError;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Requests are a few hundred bytes; anything near this is not a pgsim client.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub faults: FaultControl,
}

/// `Json` with a rejection that says nothing about the body's content.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                let status = rejection.status();
                let body: Reply<()> = Reply::Rejected {
                    code: "MALFORMED_REQUEST".into(),
                    message: format!("malformed request body (HTTP {})", status.as_u16()),
                };
                Err((status, Json(body)).into_response())
            }
        }
    }
}

fn reply<T: Serialize>(result: Result<T, PgError>) -> Response {
    match result {
        Ok(value) => (StatusCode::OK, Json(Reply::Ok { value })).into_response(),
        Err(PgError::Declined { code, message }) => (
            StatusCode::PAYMENT_REQUIRED,
            Json(Reply::<()>::Declined { code, message }),
        )
            .into_response(),
        Err(PgError::Rejected { code, message }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(Reply::<()>::Rejected { code, message }),
        )
            .into_response(),
        // The engine never answers these; if it ever did, "unknown" is the only safe wire form.
        Err(e @ (PgError::Unknown(_) | PgError::Unreachable(_))) => {
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

/// Turn an engine result into the HTTP answer; the engine's silence becomes a held request.
async fn answer<T: Serialize>(st: &AppState, result: EngineResult<T>) -> Response {
    match result {
        Ok(v) => reply(Ok(v)),
        Err(Fail::Pg(e)) => reply::<()>(Err(e)),
        Err(Fail::NoAnswer) => {
            st.faults.hang().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn approve_keyed(
    State(st): State<AppState>,
    Body(req): Body<wire::ApproveKeyed>,
) -> Response {
    let card = match req.card.into_card() {
        Ok(card) => card,
        Err(e) => return reply::<()>(Err(e)),
    };
    answer(&st, st.engine.approve_keyed(&req.mid, &req.order, card)).await
}

async fn issue_billing_key(
    State(st): State<AppState>,
    Body(req): Body<wire::IssueBillingKey>,
) -> Response {
    let card = match req.card.into_card() {
        Ok(card) => card,
        Err(e) => return reply::<()>(Err(e)),
    };
    answer(
        &st,
        st.engine
            .issue_billing_key(&req.mid, &req.customer_uid, card),
    )
    .await
}

async fn delete_billing_key(
    State(st): State<AppState>,
    Body(req): Body<wire::DeleteBillingKey>,
) -> Response {
    let result = st
        .engine
        .delete_billing_key(&req.mid, &req.billing_key)
        .map(|()| Done {});
    answer(&st, result).await
}

async fn pay_with_key(State(st): State<AppState>, Body(req): Body<wire::PayWithKey>) -> Response {
    answer(
        &st,
        st.engine
            .pay_with_key(&req.mid, &req.order, &req.billing_key),
    )
    .await
}

async fn cancel(State(st): State<AppState>, Body(req): Body<wire::Cancel>) -> Response {
    answer(&st, st.engine.cancel(&req.mid, &req.request)).await
}

async fn inquire(State(st): State<AppState>, Body(req): Body<wire::OrderRef>) -> Response {
    answer(&st, st.engine.inquire(&req.mid, &req.order_id)).await
}

async fn net_cancel(State(st): State<AppState>, Body(req): Body<wire::OrderRef>) -> Response {
    answer(
        &st,
        st.engine
            .net_cancel(&req.mid, &req.order_id)
            .map(|()| Done {}),
    )
    .await
}

async fn issue_vbank(State(st): State<AppState>, Body(req): Body<wire::IssueVbank>) -> Response {
    answer(&st, st.engine.issue_vbank(&req.mid, &req.request)).await
}

async fn begin_auth(State(st): State<AppState>, Body(req): Body<wire::BeginAuth>) -> Response {
    answer(&st, st.engine.begin_auth(&req.mid, &req.request)).await
}

async fn complete_auth(
    State(st): State<AppState>,
    Body(req): Body<wire::CompleteAuth>,
) -> Response {
    answer(&st, st.engine.complete_auth(&req.mid, &req.request)).await
}

/// The connector endpoints, behind the fault injector.
pub fn payment_router(engine: Engine, faults: FaultControl) -> Router {
    let st = AppState {
        engine,
        faults: faults.clone(),
    };
    Router::new()
        .route(wire::APPROVE_KEYED, post(approve_keyed))
        .route(wire::PAY_WITH_KEY, post(pay_with_key))
        .route(wire::ISSUE_BILLING_KEY, post(issue_billing_key))
        .route(wire::DELETE_BILLING_KEY, post(delete_billing_key))
        .route(wire::CANCEL, post(cancel))
        .route(wire::INQUIRE, post(inquire))
        .route(wire::NET_CANCEL, post(net_cancel))
        .route(wire::ISSUE_VBANK, post(issue_vbank))
        .route(wire::BEGIN_AUTH, post(begin_auth))
        .route(wire::COMPLETE_AUTH, post(complete_auth))
        .route_layer(axum::middleware::from_fn_with_state(faults, faults::inject))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(st)
}

async fn get_ledger(State(st): State<AppState>) -> Response {
    Json(st.engine.ledger_snapshot()).into_response()
}

async fn get_faults(State(st): State<AppState>) -> Response {
    Json(st.faults.get()).into_response()
}

async fn put_faults(State(st): State<AppState>, Body(faults): Body<Faults>) -> Response {
    match st.faults.set(faults) {
        Ok(()) => {
            tracing::info!(?faults, "pgsim faults changed");
            Json(faults).into_response()
        }
        Err(e) => {
            let body: Reply<()> = Reply::Rejected {
                code: "INVALID_FAULTS".into(),
                message: e.0,
            };
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

async fn deposit(State(st): State<AppState>, Body(req): Body<wire::DepositRequest>) -> Response {
    let target = match (req.order_id, req.account_num) {
        (Some(order_id), None) => DepositTarget::OrderId(order_id),
        (None, Some(account)) => DepositTarget::Account(account),
        _ => {
            return reply::<()>(Err(PgError::Rejected {
                code: "INVALID_REQUEST".into(),
                message: "give exactly one of order_id and account_num".into(),
            }))
        }
    };
    match st.engine.deposit(&target, req.amount_krw) {
        Ok(deposit) => Json(deposit).into_response(),
        Err(e) => reply::<()>(Err(e)),
    }
}

/// `GET /admin/ledger`, `GET`/`PUT /admin/faults`, `POST /admin/vbank/deposit`, `GET /healthz`.
/// Never subject to faults. Unauthenticated: mount it only where the network is trusted.
pub fn admin_router(engine: Engine, faults: FaultControl) -> Router {
    Router::new()
        .route("/admin/ledger", get(get_ledger))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/vbank/deposit", post(deposit))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState { engine, faults })
}
