//! The browser's side of a window result: the callback object of a recorded result, the refusal
//! before any payment existed, and the result merged into `m_redirect_url` (spec §3).

use crate::engine::certifications::CERT_FAILED;
use crate::engine::window::{codes, WindowError, WindowResult};
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
    merged(m_redirect_url, "imp_success", result)
}

/// The query keys a result puts in `m_redirect_url`: `imp_uid`, `merchant_uid`, the success key
/// (`imp_success` for payments, `success` for certifications), and on failure `error_code`,
/// `error_msg`. The merchant's own keys and the fragment are kept.
fn merged(m_redirect_url: &str, success_key: &str, result: &Value) -> Option<String> {
    let mut u = url::Url::parse(m_redirect_url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let ours = [
        "imp_uid",
        "merchant_uid",
        success_key,
        "error_code",
        "error_msg",
    ];
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !ours.contains(&k.as_ref()))
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
        q.append_pair(success_key, if success { "true" } else { "false" });
        if !success {
            q.append_pair("error_code", &text("error_code"));
            q.append_pair("error_msg", &text("error_msg"));
        }
    }
    Some(u.to_string())
}

/// The callback object (spec §3) of a window's recorded result: what the merchant page's
/// `request_pay` callback gets, and what is merged into `m_redirect_url`.
pub fn window_callback(r: &WindowResult) -> Value {
    json!({
        "success": r.success,
        "imp_success": r.success,
        "imp_uid": r.imp_uid,
        "merchant_uid": r.merchant_uid,
        "pay_method": r.pay_method,
        "paid_amount": r.paid_amount,
        "currency": r.currency,
        "status": r.status,
        "name": r.name,
        "pg_provider": r.pg_provider,
        "pg_tid": r.pg_tid,
        "pg_type": "payment",
        "buyer_name": r.buyer_name,
        "buyer_email": r.buyer_email,
        "buyer_tel": r.buyer_tel,
        "buyer_addr": r.buyer_addr,
        "buyer_postcode": r.buyer_postcode,
        "custom_data": r.custom_data,
        "paid_at": r.paid_at,
        "receipt_url": r.receipt_url,
        "apply_num": r.apply_num,
        "card_name": r.card_name,
        "card_number": r.card_number,
        "card_quota": r.card_quota,
        "bank_name": r.bank_name,
        "vbank_num": r.vbank_num,
        "vbank_name": r.vbank_name,
        "vbank_holder": r.vbank_holder,
        "vbank_date": r.vbank_date,
        "error_code": r.error_code,
        "error_msg": r.error_msg,
    })
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
    merged(m_redirect_url, "success", result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::window::MSG_USER_CANCEL;
    use pier_domain::PaymentStatus;
    use pier_store::Payment;

    /// The callback object as the engine built and stored it before the result was typed.
    fn untyped_result(p: &Payment, error: Option<(&str, &str)>) -> Value {
        let vbank_issued = p.status == PaymentStatus::Ready && p.vbank_num.is_some();
        let success = error.is_none() && (p.status == PaymentStatus::Paid || vbank_issued);
        let mut r = json!({
            "success": success,
            "imp_success": success,
            "imp_uid": p.imp_uid,
            "merchant_uid": p.merchant_uid,
            "pay_method": p.pay_method,
            "paid_amount": if p.status == PaymentStatus::Paid { p.amount } else { 0 },
            "currency": p.currency,
            "status": p.status,
            "name": p.name,
            "pg_provider": p.pg_provider,
            "pg_tid": p.pg_tid,
            "pg_type": "payment",
            "buyer_name": p.buyer_name,
            "buyer_email": p.buyer_email,
            "buyer_tel": p.buyer_tel,
            "buyer_addr": p.buyer_addr,
            "buyer_postcode": p.buyer_postcode,
            "custom_data": p.custom_data,
            "paid_at": p.paid_at,
            "receipt_url": p.receipt_url,
            "apply_num": p.apply_num,
            "card_name": p.card_name,
            "card_number": p.card_number,
            "card_quota": p.card_quota,
            "bank_name": p.bank_name,
            "vbank_num": p.vbank_num,
            "vbank_name": p.vbank_name,
            "vbank_holder": p.vbank_holder,
            "vbank_date": p.vbank_date,
            "error_code": Value::Null,
            "error_msg": Value::Null,
        });
        if let Some((code, msg)) = error {
            r["error_code"] = json!(code);
            r["error_msg"] = json!(msg);
        }
        r
    }

    fn payments() -> Vec<Payment> {
        let mut paid = Payment::new("imp_1".into(), "imp_m".into(), "o 1".into(), 1000, 10);
        paid.status = PaymentStatus::Paid;
        paid.paid_at = 20;
        paid.pay_method = Some("card".into());
        paid.pg_provider = Some("nice".into());
        paid.pg_tid = Some("tid_1".into());
        paid.card_name = Some("신한카드".into());
        paid.card_number = Some("4092-****-****-1234".into());
        paid.buyer_name = Some("홍길동".into());
        paid.custom_data = Some("{\"a\":1}".into());
        let mut failed = Payment::new("imp_2".into(), "imp_m".into(), "o2".into(), 500, 10);
        failed.status = PaymentStatus::Failed;
        let mut vbank = Payment::new("imp_3".into(), "imp_m".into(), "o3".into(), 700, 10);
        vbank.vbank_num = Some("123-456".into());
        vbank.vbank_date = 99;
        let mut cancelled = paid.clone();
        cancelled.status = PaymentStatus::Cancelled;
        vec![paid, failed, vbank, cancelled]
    }

    #[test]
    fn the_callback_is_the_one_the_engine_used_to_build() {
        let errors = [None, Some((codes::USER_CANCEL, MSG_USER_CANCEL))];
        for p in payments() {
            for e in errors {
                let typed = WindowResult::of(&p, e);
                let want = untyped_result(&p, e);
                assert_eq!(window_callback(&typed), want);
                assert_eq!(window_callback(&typed).to_string(), want.to_string());
                // A row recorded before the result was typed reads as the same result.
                let old_row: WindowResult = serde_json::from_value(want).unwrap();
                assert_eq!(old_row, typed);
                // And the row recorded now reads back as itself.
                let row: WindowResult = serde_json::from_str(&typed.stored()).unwrap();
                assert_eq!(row, typed);
            }
        }
    }

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
