//! A merchant's allowed origins: the web origins its checkout pages (and its redirect, confirm
//! and notice targets) live on. Set with `pier merchant set-origins`; see docs/security/origins.md.
//!
//! When set they gate every window request (`POST /checkout/prepare`): the page's origin, the
//! origin of `m_redirect_url`, `confirm_url` and every `notice_url` must be among them, and they
//! are the `frame-ancestors` of every window page. When unset the merchant is open as before
//! (any page, any http(s) redirect target), except that a browser-supplied `notice_url` is
//! refused: otherwise any page could send the merchant's webhooks elsewhere.

use super::window::types::{codes, WindowError, WindowRequest};
use super::{Engine, Error, Result};
use pier_store::Merchant;

/// At most this many allowed origins per merchant. Every window page carries all of them in its
/// `frame-ancestors` header and every prepare compares against them: 20 origins of at most
/// `MAX_ORIGIN_CHARS` keep that header under ~4.2 KiB, well inside the 8 KiB header lines that
/// common proxies accept, and a shop's sites (www, m., checkout., an app's webview host) fit.
pub const MAX_ALLOWED_ORIGINS: usize = 20;
/// Longest origin accepted (`https://` + host + `:port`). 200 leaves room for any host name a
/// shop uses in practice (DNS allows 253, but such names do not serve shops) and bounds the page
/// origin a window request may carry.
pub const MAX_ORIGIN_CHARS: usize = 200;

/// Normalizes one origin: `http` or `https`, a host, an optional port, nothing else (no user,
/// path, query or fragment). The result is what browsers send in `Origin`: scheme and host
/// lowercase, an IDN host in punycode, the scheme's default port dropped.
pub fn normalize_origin(text: &str) -> std::result::Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an origin is empty".into());
    }
    if t.len() > MAX_ORIGIN_CHARS {
        return Err(format!(
            "origin {t:.40?}… is longer than {MAX_ORIGIN_CHARS} characters"
        ));
    }
    let u = url::Url::parse(t).map_err(|e| format!("{t:?} is not an origin ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "{t:?}: an origin's scheme must be http or https, not {:?}",
            u.scheme()
        ));
    }
    if u.host().is_none() {
        return Err(format!("{t:?}: an origin needs a host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{t:?}: an origin has no user name or password"));
    }
    // `https://a.example` and `https://a.example/` both parse with the path "/".
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "{t:?}: an origin is scheme://host[:port] only (no path, query or fragment)"
        ));
    }
    Ok(u.origin().ascii_serialization())
}

/// Parses a list of origins separated by spaces or commas. Empty text → `None` (unset).
pub fn parse_origin_list(text: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let mut list: Vec<String> = Vec::new();
    for part in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let o = normalize_origin(part)?;
        if !list.contains(&o) {
            list.push(o);
        }
        if list.len() > MAX_ALLOWED_ORIGINS {
            return Err(format!(
                "at most {MAX_ALLOWED_ORIGINS} allowed origins per merchant"
            ));
        }
    }
    Ok((!list.is_empty()).then_some(list))
}

/// The origins stored for a merchant; `None` = unset (open). Entries that do not parse (written
/// by hand into the database) are skipped, so they can never reach a header.
pub fn stored_origins(m: &Merchant) -> Option<Vec<String>> {
    let list: Vec<String> = m
        .allowed_origins
        .as_deref()?
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|s| normalize_origin(s).ok())
        .take(MAX_ALLOWED_ORIGINS)
        .collect();
    (!list.is_empty()).then_some(list)
}

/// The origin of an http(s) URL, normalized as `normalize_origin`; `None` for anything else.
pub fn url_origin(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return None;
    }
    Some(u.origin().ascii_serialization())
}

/// Whether `url`'s origin is one of `allowed`.
pub fn url_allowed(allowed: &[String], url: &str) -> bool {
    url_origin(url).is_some_and(|o| allowed.contains(&o))
}

fn refused(message: String) -> WindowError {
    WindowError::new(codes::ORIGIN_NOT_ALLOWED, message)
}

/// The origin gate of a window request: `allowed` is the merchant's list (`None` = unset).
pub fn gate_window(
    allowed: Option<&[String]>,
    req: &WindowRequest,
) -> std::result::Result<(), WindowError> {
    let Some(allowed) = allowed else {
        if !req.notice_urls.is_empty() {
            return Err(refused(
                "notice_url은 허용 도메인이 설정된 가맹점만 결제창에서 지정할 수 있습니다. \
                 (a browser-supplied notice_url is accepted only for merchants with allowed \
                 origins: pier merchant set-origins; or set the webhook URL with pier merchant \
                 set-webhook)"
                    .into(),
            ));
        }
        return Ok(());
    };
    let page_ok = req
        .parent_origin
        .as_deref()
        .and_then(|o| normalize_origin(o).ok())
        .is_some_and(|o| allowed.contains(&o));
    if !page_ok {
        return Err(refused(
            "허용되지 않은 도메인에서의 결제 요청입니다. (origin not allowed)".into(),
        ));
    }
    let targets = [
        ("m_redirect_url", req.m_redirect_url.as_deref()),
        ("confirm_url", req.confirm_url.as_deref()),
    ];
    for (field, url) in targets {
        if let Some(u) = url {
            if !url_allowed(allowed, u) {
                return Err(refused(format!(
                    "{field}의 도메인이 허용되지 않았습니다. ({field} must be on one of the \
                     merchant's allowed origins)"
                )));
            }
        }
    }
    if req.notice_urls.iter().any(|u| !url_allowed(allowed, u)) {
        return Err(refused(
            "notice_url의 도메인이 허용되지 않았습니다. (notice_url must be on one of the \
             merchant's allowed origins)"
                .into(),
        ));
    }
    Ok(())
}

impl Engine {
    /// Sets (or with empty text clears) a merchant's allowed origins; returns the normalized
    /// list (`None` = cleared).
    pub async fn set_allowed_origins(
        &self,
        imp_code: &str,
        text: &str,
    ) -> Result<Option<Vec<String>>> {
        let list = parse_origin_list(text).map_err(Error::Invalid)?;
        let stored = list.as_ref().map(|l| l.join(" "));
        if !self
            .store
            .set_allowed_origins(imp_code, stored.as_deref())
            .await?
        {
            return Err(Error::NotFound(format!("no merchant {imp_code}")));
        }
        Ok(list)
    }

    /// Non-demo merchants with no allowed origins (open to any page): warned about at start.
    pub async fn merchants_without_origins(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list_merchants()
            .await?
            .into_iter()
            .filter(|m| !m.is_demo && stored_origins(m).is_none())
            .map(|m| m.imp_code)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalize() {
        assert_eq!(
            normalize_origin("HTTPS://Shop.Example:443/").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "shop.example",
            "ftp://shop.example",
            "javascript:alert(1)",
            "https://shop.example/path",
            "https://shop.example?q",
            "https://shop.example#f",
            "https://u:p@shop.example",
            "https://",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_origin_list("  ").unwrap(), None);
        assert_eq!(
            parse_origin_list("https://a.example, https://A.example http://b.example:81").unwrap(),
            Some(vec![
                "https://a.example".to_owned(),
                "http://b.example:81".to_owned()
            ])
        );
        let many: Vec<String> = (0..=MAX_ALLOWED_ORIGINS)
            .map(|i| format!("https://s{i}.example"))
            .collect();
        assert!(parse_origin_list(&many.join(" ")).is_err());
        assert!(url_allowed(
            &["https://a.example".to_owned()],
            "https://A.example/done?x=1"
        ));
        assert!(!url_allowed(
            &["https://a.example".to_owned()],
            "https://a.example.evil.example/"
        ));
    }
}
