//! `POST /users/getToken`, the token check on every other route, and `GET /users/pg`.

use super::error::{ApiError, ApiResult, Envelope};
use super::params::Body;
use super::{AppState, Merchant};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::Extension;
use serde_json::json;

pub async fn get_token(
    State(engine): State<AppState>,
    ClientAddr(client): ClientAddr,
    Body(p): Body,
) -> ApiResult<Envelope<crate::engine::auth::IssuedToken>> {
    let key = p.str_opt("imp_key", 200)?;
    let secret = p.str_opt("imp_secret", 200)?;
    let (Some(key), Some(secret)) = (key, secret) else {
        return Err(ApiError::bad_request("imp_key and imp_secret are required"));
    };
    let t = engine
        .get_token(&key, &secret, client)
        .await
        .map_err(|e| match e {
            crate::engine::Error::Unauthorized => ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                -1,
                "imp_key, imp_secret 파라메터가 올바르지 않습니다. (invalid imp_key or imp_secret)",
            ),
            other => other.into(),
        })?;
    Ok(Envelope::ok(t))
}

/// The caller's address (`edge::client_ip`, set by the `edge::client_addr` middleware).
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<crate::edge::ClientIp>()
            .map(|c| c.0)
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(ip))
    }
}

/// The token, from `Authorization: Bearer T`, `Authorization: T` or `X-ImpTokenHeader: T`.
pub fn token_from(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get("x-imptokenheader")
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if !v.is_empty() {
            return Some(v);
        }
    }
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let v = if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
        v[7..].trim()
    } else {
        v
    };
    (!v.is_empty()).then_some(v)
}

pub async fn require_token(
    State(engine): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = token_from(req.headers()).ok_or_else(ApiError::unauthorized)?;
    let principal = engine.authenticate(token).await?;
    // The request span (http/mod.rs) names the merchant from here on, for the logs.
    tracing::Span::current().record("merchant", principal.merchant_id.as_str());
    req.extensions_mut().insert(Merchant(principal.merchant_id));
    Ok(next.run(req).await)
}

/// `GET /users/pg`: the merchant's PG channels.
pub async fn list_pg(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
) -> ApiResult<Envelope<serde_json::Value>> {
    let channels = engine.merchant_channels(&m).await?;
    let list: Vec<_> = channels
        .iter()
        .map(|c| {
            json!({
                "pg_provider": c.pg_provider,
                "pg_id": c.mid,
                "sandbox": c.sandbox,
                "type": "payment",
                "default": c.is_default,
                "channel_key": c.id,
            })
        })
        .collect();
    Ok(Envelope::ok(json!(list)))
}
