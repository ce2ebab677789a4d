//! `request_pay` as the SDK posts it, read into a `WindowRequest`: every field checked the way
//! the REST API checks it, a refusal in the window's own codes.

use super::pages::*;
use crate::engine::charge::Buyer;
use crate::engine::origins::MAX_ORIGIN_CHARS;
use crate::engine::window::{codes, WindowError, WindowMode, WindowRequest, PAY_METHODS};
use crate::http::error::ApiError;
use crate::http::params::Params;
use crate::http::subscribe::notice_urls;
use crate::http::window_result::prevalidation_result;
use crate::http::AppState;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use pier_domain::{Amount, AmountPart, CustomerUid, MerchantUid};
use serde_json::Value;

pub(crate) const MAX_URL_CHARS: usize = 2_000;

fn is_mobile_ua(ua: &str) -> bool {
    ["Mobi", "Android", "iPhone", "iPad", "iPod"]
        .iter()
        .any(|m| ua.contains(m))
}

pub(crate) fn http_url(
    field: &'static str,
    v: Option<String>,
) -> Result<Option<String>, WindowError> {
    let Some(v) = v else { return Ok(None) };
    let ok = v.len() <= MAX_URL_CHARS
        && url::Url::parse(&v)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .unwrap_or(false);
    if ok {
        Ok(Some(v))
    } else {
        Err(WindowError::new(
            codes::INVALID_PARAM,
            format!("{field} must be an absolute http(s) URL"),
        ))
    }
}

/// How the SDK opens a window (`mode`: iframe unless said) and where a redirect window returns
/// (`m_redirect_url`, required for one). Shared by the payment and certification windows.
pub(crate) fn window_mode(
    body: &Value,
    p: &Params,
) -> Result<(WindowMode, Option<String>), WindowError> {
    let mode = match &body["mode"] {
        Value::String(s) => WindowMode::parse(s).ok_or_else(|| {
            WindowError::new(
                codes::INVALID_PARAM,
                "mode must be iframe, popup or redirect",
            )
        })?,
        _ => WindowMode::Iframe,
    };
    let m_redirect_url = http_url(
        "m_redirect_url",
        p.str_opt("m_redirect_url", MAX_URL_CHARS)
            .map_err(invalid)?,
    )?;
    if mode == WindowMode::Redirect && m_redirect_url.is_none() {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "m_redirect_url is required for a redirect window",
        ));
    }
    Ok((mode, m_redirect_url))
}

fn invalid(e: ApiError) -> WindowError {
    WindowError::new(codes::INVALID_PARAM, e.message)
}

/// Parses and checks a `request_pay` sent by the SDK (it checked most of this already; a page
/// may skip the SDK, so everything is checked again here).
pub fn window_request(body: &Value, headers: &HeaderMap) -> Result<WindowRequest, WindowError> {
    let imp_code =
        match &body["user_code"] {
            Value::String(s) if !s.is_empty() && s.len() <= 40 => s.clone(),
            _ => return Err(WindowError::new(
                codes::UNKNOWN_MERCHANT,
                "IMP.init(userCode)로 가맹점 식별코드를 먼저 설정해주세요. (userCode is required)",
            )),
        };
    let Value::Object(raw) = &body["params"] else {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "request_pay params must be an object",
        ));
    };
    let p = Params::from_json(&serde_json::to_vec(raw).unwrap_or_default()).map_err(invalid)?;
    let merchant_uid = p
        .str_opt("merchant_uid", MerchantUid::MAX_CHARS)
        .map_err(invalid)?
        .ok_or_else(|| WindowError::new(codes::INVALID_PARAM, "merchant_uid is required"))?;
    let merchant_uid = MerchantUid::parse(&merchant_uid)
        .map_err(|e| WindowError::new(codes::INVALID_PARAM, e.to_string()))?;
    let customer_uid = p
        .str_opt("customer_uid", 80)
        .map_err(invalid)?
        .map(|u| CustomerUid::parse(&u))
        .transpose()
        .map_err(|e| WindowError::new(codes::INVALID_PARAM, e.to_string()))?;
    let amount = match p.raw("amount") {
        None => return Err(WindowError::new(codes::INVALID_PARAM, "amount is required")),
        Some(Value::String(_)) => {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "amount must be an integer (not string)",
            ))
        }
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            WindowError::new(
                codes::INVALID_PARAM,
                "amount must be an integer (KRW has no fractions)",
            )
        })?,
        Some(_) => {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "amount must be an integer",
            ))
        }
    };
    if !(0..=pier_domain::Amount::MAX_KRW).contains(&amount) {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "amount is out of range",
        ));
    }
    if amount == 0 && customer_uid.is_none() {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "amount must be greater than 0 (0 is only for issuing a billing key with customer_uid)",
        ));
    }
    let pay_method = p
        .str_opt("pay_method", 20)
        .map_err(invalid)?
        .unwrap_or_else(|| "card".into());
    if !PAY_METHODS.contains(&pay_method.as_str()) {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            format!(
                "pay_method {pay_method:?} is not offered (offered: {})",
                PAY_METHODS.join(", ")
            ),
        ));
    }
    let escrow = p.bool_opt("escrow").map_err(invalid)?.unwrap_or(false);
    // Escrow holds a sale's money until delivery; a billing key issue sells nothing.
    if escrow && customer_uid.is_some() {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "escrow cannot be combined with customer_uid (billing key issue)",
        ));
    }
    if customer_uid.is_some() && pay_method != "card" {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "customer_uid (billing key) needs pay_method card",
        ));
    }
    let currency = p
        .str_opt("currency", 3)
        .map_err(invalid)?
        .unwrap_or_else(|| "KRW".into());
    if !currency.eq_ignore_ascii_case("KRW") {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            format!("currency {currency} is not supported (KRW only)"),
        ));
    }
    let tax_free = p
        .part_opt("tax_free")
        .map_err(invalid)?
        .unwrap_or(AmountPart::ZERO);
    if tax_free.krw() > amount {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "tax_free must not exceed amount",
        ));
    }
    let vat_amount = match p.part_opt("vat_amount").map_err(invalid)? {
        Some(v) => Some(v),
        None => p.part_opt("vat").map_err(invalid)?,
    };
    // In range (checked above), so `None` is exactly 0: a billing-key-only window.
    let amount = Amount::new(amount, "amount").ok();
    let (mode, m_redirect_url) = window_mode(body, &p)?;
    let confirm_url = http_url(
        "confirm_url",
        p.str_opt("confirm_url", MAX_URL_CHARS).map_err(invalid)?,
    )?;
    let mut card_detail = Vec::new();
    if let Some(card) = p.raw("card") {
        let Value::Object(card) = card else {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "card must be an object",
            ));
        };
        match card.get("detail") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.len() <= 64 => {
                for it in items {
                    let code = it["card_code"].as_str().filter(|c| {
                        !c.is_empty()
                            && c.len() <= 8
                            && c.chars().all(|ch| ch == '*' || ch.is_ascii_alphanumeric())
                    });
                    let (Some(code), Some(enabled)) = (code, it["enabled"].as_bool()) else {
                        return Err(WindowError::new(
                            codes::INVALID_PARAM,
                            "card.detail items need card_code (string) and enabled (boolean)",
                        ));
                    };
                    card_detail.push((code.to_owned(), enabled));
                }
            }
            Some(_) => {
                return Err(WindowError::new(
                    codes::INVALID_PARAM,
                    "card.detail must be an array (at most 64 items)",
                ))
            }
        }
    }
    let mut card_quota = None;
    if let Some(display) = p.raw("display") {
        match &display["card_quota"] {
            Value::Null => {}
            Value::Array(items) if items.len() <= 36 => {
                let mut months = Vec::new();
                for m in items {
                    match m.as_i64() {
                        Some(m) if (0..=36).contains(&m) => months.push(m),
                        _ => {
                            return Err(WindowError::new(
                                codes::INVALID_PARAM,
                                "display.card_quota must be integers from 0 to 36",
                            ))
                        }
                    }
                }
                card_quota = Some(months);
            }
            _ => {
                return Err(WindowError::new(
                    codes::INVALID_PARAM,
                    "display.card_quota must be an array of months",
                ))
            }
        }
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect::<String>());
    let mobile = ua.as_deref().is_some_and(is_mobile_ua) || mode == WindowMode::Redirect;
    // A browser always sends `Origin` with the SDK's POST and a page cannot forge it; the body's
    // `origin` is a fallback for clients without the header only. An opaque origin ("null":
    // sandboxed frames, file: pages) has no origin to allow.
    let parent_origin = match headers.get(header::ORIGIN) {
        Some(v) => v.to_str().ok().filter(|o| *o != "null").map(str::to_owned),
        None => body["origin"].as_str().map(str::to_owned),
    }
    .filter(|o| o.len() <= MAX_ORIGIN_CHARS);
    Ok(WindowRequest {
        imp_code,
        mode,
        mobile,
        user_agent: ua,
        parent_origin,
        pay_method,
        pg: p
            .str_opt("pg", 80)
            .map_err(invalid)?
            .or(p.str_opt("channelKey", 80).map_err(invalid)?),
        merchant_uid,
        amount,
        tax_free,
        vat_amount,
        name: p.str_opt("name", 100).map_err(invalid)?,
        buyer: Buyer {
            name: p.str_opt("buyer_name", 40).map_err(invalid)?,
            email: p.str_opt("buyer_email", 100).map_err(invalid)?,
            tel: p.str_opt("buyer_tel", 30).map_err(invalid)?,
            addr: p.str_opt("buyer_addr", 200).map_err(invalid)?,
            postcode: p.str_opt("buyer_postcode", 10).map_err(invalid)?,
        },
        custom_data: p.json_text_opt("custom_data", 8 * 1024).map_err(invalid)?,
        notice_urls: notice_urls(&p).map_err(invalid)?,
        customer_uid,
        customer_id: p.str_opt("customer_id", 100).map_err(invalid)?,
        m_redirect_url,
        confirm_url,
        card_detail,
        card_quota,
        escrow,
    })
}

/// The start shared by the SDK's prepare calls (payment and certification windows): the
/// per-address limit (every call writes rows), then a JSON object body. `Err` is the answer.
pub(crate) fn prepare_body(
    engine: &AppState,
    client: std::net::IpAddr,
    body: &[u8],
    what: &str,
) -> Result<Value, Box<Response>> {
    if !engine.anon_limits().prepare_addr_allows(client) {
        metrics::counter!("pier_rate_limited_total", "limit" => "prepare_addr").increment(1);
        return Err(Box::new(crate::http::edge::too_many(&format!(
            "{what} per address"
        ))));
    }
    match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => {
            let e = WindowError::new(
                codes::INVALID_PARAM,
                "the request body must be a JSON object",
            );
            Err(Box::new(sdk_json(prevalidation_result(None, &e))))
        }
    }
}

/// The per-merchant limit of the SDK's prepare calls, once the request names a merchant.
pub(crate) fn prepare_merchant_limit(
    engine: &AppState,
    imp_code: &str,
    what: &str,
) -> Option<Response> {
    if engine.anon_limits().prepare_merchant_allows(imp_code) {
        return None;
    }
    metrics::counter!("pier_rate_limited_total", "limit" => "prepare_merchant").increment(1);
    Some(crate::http::edge::too_many(&format!("{what} per merchant")))
}
