//! The edge's middlewares (the client's address, the anonymous limit) and its 429: they answer
//! in the i'mport envelope, so they sit in the HTTP layer; what they decide with is `crate::edge`.

use super::error::ApiError;
use super::AppState;
use crate::edge::{client_ip, client_of, ClientIp};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// Middleware (outermost of the routed stack): puts `ClientIp` in the request's extensions.
pub async fn client_addr(State(engine): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let ip = client_ip(peer, req.headers(), &engine.config().trusted_proxies);
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

/// 429 in the i'mport envelope, readable by the SDK cross-origin, with `Retry-After`.
pub fn too_many(what: &str) -> Response {
    let mut res = ApiError::too_many(format!(
        "요청이 너무 많습니다. 잠시 후 다시 시도해주세요. (too many requests: {what})"
    ))
    .into_response();
    let h = res.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

/// Middleware of the other anonymous endpoints: per client address.
pub async fn anon_limit(State(engine): State<AppState>, req: Request, next: Next) -> Response {
    if !engine.anon_limits().pages_addr_allows(client_of(&req)) {
        metrics::counter!("pier_rate_limited_total", "limit" => "anon_addr").increment(1);
        return too_many("anonymous endpoints per address");
    }
    next.run(req).await
}
