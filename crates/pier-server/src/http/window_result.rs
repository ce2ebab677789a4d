//! The browser's side of a window result: the refusal before any payment existed, and the
//! result merged into `m_redirect_url` (spec §3).

use crate::engine::certifications::CERT_FAILED;
use crate::engine::window::{codes, WindowError};
use pier_store::{Certification, CertificationStatus};
use serde_json::{json, Value};

/// The result of a request refused before any payment row existed (`imp_uid` null).
pub fn prevalidation_result(merchant_uid: Option<&str>, e: &WindowError) -> Value {
    json!({
        "success": false,
        "imp_success": false,
        "imp_uid": e.imp_uid,
        "merchant_uid": merchant_uid,
        "error_code": e.code,
        "error_msg": e.message,
    })
}

/// `m_redirect_url` with the result merged into its query (existing keys of ours replaced, the
/// merchant's own kept in order) and its fragment kept. `None` if it is not an http(s) URL.
pub fn merge_redirect(m_redirect_url: &str, result: &Value) -> Option<String> {
    let mut u = url::Url::parse(m_redirect_url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    const OURS: &[&str] = &[
        "imp_uid",
        "merchant_uid",
        "imp_success",
        "error_code",
        "error_msg",
    ];
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !OURS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let text = |k: &str| match &result[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let success = result["success"].as_bool().unwrap_or(false);
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("imp_uid", &text("imp_uid"));
        q.append_pair("merchant_uid", &text("merchant_uid"));
        q.append_pair("imp_success", if success { "true" } else { "false" });
        if !success {
            q.append_pair("error_code", &text("error_code"));
            q.append_pair("error_msg", &text("error_msg"));
        }
    }
    Some(u.to_string())
}

/// The result handed to the callback or merged into `m_redirect_url`; `None` while the window
/// is still in progress.
pub fn cert_result(c: &Certification) -> Option<Value> {
    let (success, code, msg) = match c.status {
        CertificationStatus::Certified => (true, None, None),
        CertificationStatus::Cancelled => (false, Some(codes::USER_CANCEL), c.fail_reason.clone()),
        CertificationStatus::Failed => (false, Some(CERT_FAILED), c.fail_reason.clone()),
        CertificationStatus::Window | CertificationStatus::Requested => return None,
    };
    Some(json!({
        "success": success,
        "imp_uid": c.imp_uid,
        "merchant_uid": c.merchant_uid,
        "error_code": code,
        "error_msg": msg,
    }))
}

/// `m_redirect_url` with a certification's result in its query (`imp_uid`, `merchant_uid`,
/// `success`, and on failure `error_code`, `error_msg`; i'mport's certification redirect keys),
/// the merchant's own keys and fragment kept. `None` unless it is an http(s) URL.
pub fn cert_redirect(m_redirect_url: &str, result: &Value) -> Option<String> {
    let mut u = url::Url::parse(m_redirect_url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    const OURS: &[&str] = &[
        "imp_uid",
        "merchant_uid",
        "success",
        "error_code",
        "error_msg",
    ];
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !OURS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let text = |k: &str| result[k].as_str().unwrap_or("").to_owned();
    let success = result["success"].as_bool().unwrap_or(false);
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("imp_uid", &text("imp_uid"));
        q.append_pair("merchant_uid", &text("merchant_uid"));
        q.append_pair("success", if success { "true" } else { "false" });
        if !success {
            q.append_pair("error_code", &text("error_code"));
            q.append_pair("error_msg", &text("error_msg"));
        }
    }
    Some(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::window::MSG_USER_CANCEL;

    #[test]
    fn redirect_merge_keeps_query_and_fragment() {
        let r = json!({"success": false, "imp_uid": "imp_1", "merchant_uid": "m 1", "error_code": "F400", "error_msg": "사용자가 결제를 취소하였습니다"});
        let u =
            merge_redirect("https://shop.example/done?orderId=7&imp_uid=old#result", &r).unwrap();
        let parsed = url::Url::parse(&u).unwrap();
        assert_eq!(parsed.fragment(), Some("result"));
        let q: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
        assert_eq!(q[0], ("orderId".into(), "7".into()));
        assert!(q.contains(&("imp_uid".into(), "imp_1".into())));
        assert!(q.contains(&("merchant_uid".into(), "m 1".into())));
        assert!(q.contains(&("imp_success".into(), "false".into())));
        assert!(q.contains(&("error_msg".into(), MSG_USER_CANCEL.into())));
        assert_eq!(q.iter().filter(|(k, _)| k == "imp_uid").count(), 1);
        let ok = json!({"success": true, "imp_uid": "imp_2", "merchant_uid": "m2"});
        let s = merge_redirect("http://detectchangingwebview/iamport/rn", &ok).unwrap();
        assert_eq!(s, "http://detectchangingwebview/iamport/rn?imp_uid=imp_2&merchant_uid=m2&imp_success=true");
        assert!(merge_redirect("javascript:alert(1)", &ok).is_none());
    }

    #[test]
    fn redirects_carry_the_certification_keys() {
        let r = json!({"success": true, "imp_uid": "imp_1", "merchant_uid": "m1"});
        let u = cert_redirect("https://shop.example/done?x=1&success=no#top", &r).unwrap();
        assert_eq!(
            u,
            "https://shop.example/done?x=1&imp_uid=imp_1&merchant_uid=m1&success=true#top"
        );
        assert!(cert_redirect("javascript:alert(1)", &r).is_none());
    }
}
