//! Request parameters from JSON bodies, form bodies (PHP-style brackets) and query strings.
//!
//! Clients send both encodings (spec §1.1): Python/Java/PHP/Node JSON, iamporter and Go forms.
//! Fields are read one by one through typed accessors so every error names its field. In a JSON
//! body a number must be a JSON number (`"amount": "14000"` is refused); in a form or a query
//! string everything is text, so numbers and booleans are parsed from strings.

use super::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use pier_domain::{Amount, AmountPart};
use serde_json::{Map, Value};

/// Most pairs a form or query may carry, and the deepest bracket nesting.
const MAX_PAIRS: usize = 1000;
const MAX_DEPTH: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Params {
    map: Map<String, Value>,
    /// Values came as text (form or query), not typed JSON.
    textual: bool,
}

impl Params {
    pub fn from_json(bytes: &[u8]) -> ApiResult<Self> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self {
                map,
                textual: false,
            }),
            Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!("malformed JSON body: {e}"))),
        }
    }

    pub fn from_form(text: &str) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("malformed form body: {e}")))?;
        if pairs.len() > MAX_PAIRS {
            return Err(ApiError::bad_request(format!(
                "too many parameters (max {MAX_PAIRS})"
            )));
        }
        let mut root = Value::Object(Map::new());
        for (k, v) in pairs {
            insert_bracketed(&mut root, &k, v)?;
        }
        let root = arrays_from_indexes(root);
        match root {
            Value::Object(map) => Ok(Self { map, textual: true }),
            _ => Ok(Self {
                map: Map::new(),
                textual: true,
            }),
        }
    }

    pub fn from_query(q: Option<&str>) -> ApiResult<Self> {
        Self::from_form(q.unwrap_or(""))
    }

    /// A nested object parameter (e.g. `card`, or one item of `schedules`).
    pub fn nested(&self, v: &Value) -> Option<Params> {
        match v {
            Value::Object(m) => Some(Params {
                map: m.clone(),
                textual: self.textual,
            }),
            _ => None,
        }
    }

    pub fn raw(&self, k: &str) -> Option<&Value> {
        match self.map.get(k) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn has(&self, k: &str) -> bool {
        self.raw(k).is_some()
    }

    /// A string of at most `max_chars` characters. Numbers are accepted and rendered (clients
    /// send numeric ids as numbers). An empty string is treated as absent.
    pub fn str_opt(&self, k: &'static str, max_chars: usize) -> ApiResult<Option<String>> {
        let s = match self.raw(k) {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => return Err(ApiError::bad_request(format!("{k} must be a string"))),
        };
        if s.is_empty() {
            return Ok(None);
        }
        if s.chars().count() > max_chars {
            return Err(ApiError::bad_request(format!(
                "{k} must be at most {max_chars} characters"
            )));
        }
        Ok(Some(s))
    }

    pub fn str_req(&self, k: &'static str, max_chars: usize) -> ApiResult<String> {
        self.str_opt(k, max_chars)?
            .ok_or_else(|| ApiError::bad_request(format!("{k} is required")))
    }

    /// An integer. In JSON it must be an integral number; in text, decimal digits.
    pub fn int_opt(&self, k: &'static str) -> ApiResult<Option<i64>> {
        let not_int = || {
            ApiError::bad_request(format!(
                "{k} must be an integer (not a string or a fraction)"
            ))
        };
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                // 14000.0 or 1.4e4 is refused too: KRW amounts are JSON integers.
                n.as_i64().map(Some).ok_or_else(not_int)
            }
            Some(Value::String(s)) if self.textual => {
                let t = s.trim();
                if t.is_empty() {
                    return Ok(None);
                }
                t.parse::<i64>().map(Some).map_err(|_| not_int())
            }
            Some(_) => Err(not_int()),
        }
    }

    /// A payment amount: an integer greater than 0.
    pub fn amount_req(&self, k: &'static str) -> ApiResult<Amount> {
        let v = self
            .int_opt(k)?
            .ok_or_else(|| ApiError::bad_request(format!("{k} is required")))?;
        Ok(Amount::new(v, k)?)
    }

    /// A non-negative amount where 0 or absence mean "default".
    pub fn money_opt(&self, k: &'static str) -> ApiResult<Option<i64>> {
        match self.int_opt(k)? {
            Some(v) if v < 0 => Err(ApiError::bad_request(format!("{k} must not be negative"))),
            Some(v) if v > Amount::MAX_KRW => {
                Err(ApiError::bad_request(format!("{k} is too large")))
            }
            other => Ok(other),
        }
    }

    /// `money_opt` as a part of an amount (tax-free, VAT); same checks, same answers.
    pub fn part_opt(&self, k: &'static str) -> ApiResult<Option<AmountPart>> {
        match self.money_opt(k)? {
            Some(v) => Ok(Some(AmountPart::new(v, k)?)),
            None => Ok(None),
        }
    }

    pub fn bool_opt(&self, k: &'static str) -> ApiResult<Option<bool>> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" | "TRUE" | "True" => Ok(Some(true)),
                "false" | "0" | "FALSE" | "False" | "" => Ok(Some(false)),
                _ => Err(ApiError::bad_request(format!("{k} must be a boolean"))),
            },
            Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Some(n.as_i64() == Some(1)))
            }
            Some(_) => Err(ApiError::bad_request(format!("{k} must be a boolean"))),
        }
    }

    /// A string or an array of strings (`notice_url`, `merchant_uid` of unschedule); also
    /// `name[]` spellings.
    pub fn str_list(&self, k: &'static str, max_items: usize) -> ApiResult<Vec<String>> {
        let mut out = Vec::new();
        let bracketed = format!("{k}[]");
        for key in [k, bracketed.as_str()] {
            match self.map.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if !s.is_empty() => out.push(s.clone()),
                Some(Value::String(_)) => {}
                Some(Value::Number(n)) => out.push(n.to_string()),
                Some(Value::Array(a)) => {
                    for v in a {
                        match v {
                            Value::String(s) if !s.is_empty() => out.push(s.clone()),
                            Value::Number(n) => out.push(n.to_string()),
                            Value::String(_) | Value::Null => {}
                            _ => {
                                return Err(ApiError::bad_request(format!(
                                    "{k} must be a string or an array of strings"
                                )))
                            }
                        }
                    }
                }
                Some(_) => {
                    return Err(ApiError::bad_request(format!(
                        "{k} must be a string or an array of strings"
                    )))
                }
            }
        }
        if out.len() > max_items {
            return Err(ApiError::bad_request(format!(
                "{k}: at most {max_items} values"
            )));
        }
        Ok(out)
    }

    /// `custom_data`: objects are stored as JSON text, strings as sent.
    pub fn json_text_opt(&self, k: &'static str, max_bytes: usize) -> ApiResult<Option<String>> {
        let s = match self.raw(k) {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        };
        if s.len() > max_bytes {
            return Err(ApiError::bad_request(format!(
                "{k} must be at most {max_bytes} bytes"
            )));
        }
        Ok(Some(s))
    }

    pub fn array_opt(&self, k: &'static str) -> ApiResult<Option<Vec<Value>>> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(Value::Object(o)) => Ok(Some(vec![Value::Object(o.clone())])),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be an array"))),
        }
    }
}

/// Puts `a[b][]=v` into a JSON tree. Repeated plain keys become arrays.
fn insert_bracketed(root: &mut Value, key: &str, val: String) -> ApiResult<()> {
    let (base, rest) = match key.find('[') {
        Some(i) if key.ends_with(']') => (&key[..i], &key[i..]),
        _ => (key, ""),
    };
    let mut segs: Vec<&str> = vec![base];
    let mut r = rest;
    while let Some(stripped) = r.strip_prefix('[') {
        let Some(end) = stripped.find(']') else { break };
        segs.push(&stripped[..end]);
        r = &stripped[end + 1..];
    }
    if segs.len() > MAX_DEPTH + 1 {
        return Err(ApiError::bad_request(format!(
            "parameter {key} is nested too deeply"
        )));
    }
    let mut cur = root;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if seg.is_empty() && i > 0 {
            // `name[]`: append
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            let arr = cur.as_array_mut().expect("just made an array");
            if last {
                arr.push(Value::String(val));
                return Ok(());
            }
            arr.push(Value::Object(Map::new()));
            cur = arr.last_mut().expect("just pushed");
            continue;
        }
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("just made an object");
        if last {
            match obj.get_mut(*seg) {
                Some(Value::Array(a)) => a.push(Value::String(val)),
                Some(existing @ Value::String(_)) => {
                    let prev = existing.take();
                    *existing = Value::Array(vec![prev, Value::String(val)]);
                }
                _ => {
                    obj.insert((*seg).to_owned(), Value::String(val));
                }
            }
            return Ok(());
        }
        cur = obj.entry((*seg).to_owned()).or_insert(Value::Null);
    }
    Ok(())
}

/// `schedules[0][x]` arrives as an object keyed "0", "1"…: make it an array in index order.
fn arrays_from_indexes(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let all_idx = !m.is_empty() && m.keys().all(|k| k.parse::<usize>().is_ok());
            let mut m2: Vec<(String, Value)> = m
                .into_iter()
                .map(|(k, v)| (k, arrays_from_indexes(v)))
                .collect();
            if all_idx {
                m2.sort_by_key(|(k, _)| k.parse::<usize>().unwrap_or(usize::MAX));
                Value::Array(m2.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(m2.into_iter().collect())
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(arrays_from_indexes).collect()),
        other => other,
    }
}

/// Parses a request body by its Content-Type. An empty body is an empty parameter set.
pub fn parse_body(content_type: Option<&str>, bytes: &[u8]) -> ApiResult<Params> {
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Params {
            map: Map::new(),
            textual: ct != "application/json",
        });
    }
    match ct.as_str() {
        "application/json" => Params::from_json(bytes),
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("form body is not UTF-8"))?;
            Params::from_form(text)
        }
        "" => {
            // No Content-Type: accept what the body plainly is.
            if bytes.first() == Some(&b'{') {
                Params::from_json(bytes)
            } else {
                let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
                Params::from_form(text)
            }
        }
        other => Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -1,
            format!("Content-Type {other} is not supported: send application/json or application/x-www-form-urlencoded"),
        )),
    }
}

/// Body parameters, as an extractor. Oversized bodies become a 413 envelope.
pub struct Body(pub Params);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    -1,
                    "request body is too large (max 64 KiB)",
                )
            } else {
                ApiError::bad_request(format!("could not read the request body: {e}"))
            }
        })?;
        Ok(Body(parse_body(ct.as_deref(), &bytes)?))
    }
}

/// Query parameters, as an extractor (text semantics, brackets understood).
pub struct Query(pub Params);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Query(Params::from_query(parts.uri.query())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_amount_must_be_integer() {
        let p =
            Params::from_json(br#"{"amount":"14000","a2":14000,"a3":14000.5,"a4":-1}"#).unwrap();
        assert!(p
            .amount_req("amount")
            .unwrap_err()
            .message
            .contains("amount"));
        assert_eq!(p.amount_req("a2").unwrap().krw(), 14000);
        assert!(p.amount_req("a3").is_err());
        assert!(p.amount_req("a4").is_err());
    }

    #[test]
    fn form_brackets() {
        let p = Params::from_form("imp_uid[]=a&imp_uid[]=b&extra[requester]=customer&schedules[0][merchant_uid]=m0&schedules[1][merchant_uid]=m1&amount=1000").unwrap();
        assert_eq!(p.str_list("imp_uid", 10).unwrap(), vec!["a", "b"]);
        assert_eq!(p.amount_req("amount").unwrap().krw(), 1000);
        let s = p.array_opt("schedules").unwrap().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            p.nested(&s[1])
                .unwrap()
                .str_req("merchant_uid", 40)
                .unwrap(),
            "m1"
        );
        let extra = p.raw("extra").unwrap();
        assert_eq!(extra["requester"], "customer");
    }

    #[test]
    fn repeated_plain_keys() {
        let p = Params::from_form("merchant_uid=a&merchant_uid=b").unwrap();
        assert_eq!(p.str_list("merchant_uid", 10).unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn content_types() {
        assert!(parse_body(Some("text/xml"), b"<a/>").is_err());
        assert!(parse_body(Some("application/json"), b"[1]").is_err());
        assert!(parse_body(Some("application/json"), b"{").is_err());
        assert!(parse_body(Some("application/json; charset=utf-8"), b"{\"a\":1}").is_ok());
        assert!(parse_body(None, b"").is_ok());
    }

    proptest! {
        #[test]
        fn form_parser_never_panics(s in "[a-z\\[\\]=&%0-9]{0,80}") {
            let _ = Params::from_form(&s);
        }

        #[test]
        fn json_parser_never_panics(s in ".{0,80}") {
            if let Ok(p) = parse_body(Some("application/json"), s.as_bytes()) {
                let _ = p.amount_req("amount");
                let _ = p.str_list("x", 3);
            }
        }
    }
}
