//! Toss's payment window and billing-authorization window (authenticated payments).
//!
//! Toss opens its window from its browser SDK (`TossPayments(clientKey).requestPayment(method,
//! {amount, orderId, orderName, successUrl, failUrl, …})`, or `requestBillingAuth('카드',
//! {customerKey, successUrl, failUrl})`), not from a URL the server creates. So `begin_auth`
//! answers a `BrowserCall` that Pier's window page performs, with Pier's return URL as both
//! `successUrl` and `failUrl`. Toss sends the buyer back with `paymentKey`, `orderId`, `amount`
//! (or `customerKey`, `authKey`; on failure `code`, `message`), and `complete_auth` approves
//! server to server: `POST /v1/payments/confirm` with the amount **Pier recorded** (an `amount`
//! or `orderId` in the URL that differs is refused and nothing is confirmed: Toss lets an
//! unconfirmed payment expire), or `POST /v1/billing/authorizations/issue` and, for an amount
//! above 0, a first charge on the new key. docs/connectors/tosspayments.md cites the pages.

use super::answers::{approval_of, billing_key_of, declined_of, unix_of};
use super::client::Connector;
use super::codes;
use super::requests::{check_order_id, encode, idempotency_key, order_name, tax_free};
use super::wire::{self, BillingAuth, Payment};
use crate::{
    AuthBegin, AuthComplete, AuthOutcome, AuthSession, BrowserCall, Mid, Pg, PgError, PgResult,
    VbankIssued, WindowDisplay, WindowReturn,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Toss's fail codes for a buyer who closed or cancelled the window (SDK and fail URL).
const CANCEL_CODES: &[&str] = &["PAY_PROCESS_CANCELED", "USER_CANCEL"];
/// Installments Toss's window offers: 2 to 12 months (see `MAX_INSTALLMENT_MONTHS` in
/// `requests`; listed under "to verify").
const MAX_PLAN: i64 = 12;

/// Toss's name of a Pier pay method, as `requestPayment` takes it.
fn toss_method(pay_method: &str) -> Option<&'static str> {
    Some(match pay_method {
        "card" => "카드",
        "trans" => "계좌이체",
        "phone" => "휴대폰",
        "vbank" => "가상계좌",
        _ => return None,
    })
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> PgResult<String> {
    let mut u = reqwest::Url::parse(url).map_err(|_| PgError::Rejected {
        code: "INVALID_RETURN_URL".into(),
        message: "the window's return URL is not a URL".into(),
    })?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(u.to_string())
}

/// `card.detail` and `display.card_quota` as Toss's card options of `requestPayment`.
///
/// - `card.detail` enabling exactly one card company (all others disabled, e.g. `*` off and one
///   code on) → `cardCompany` (Toss's code) with `flowMode: "DIRECT"` (that company's own
///   window). Any other shape (several companies, exclusions) has no Toss equivalent: not sent.
/// - `display.card_quota`: one month from 2 → `cardInstallmentPlan` (fixed); several →
///   `maxCardInstallmentPlan` (their maximum; Toss offers every month up to it); lump sum only
///   (`[]`, `[0]`, `[1]`) → `maxCardInstallmentPlan: 1`. Months above 12 are capped at 12.
pub(super) fn card_options(display: &WindowDisplay, out: &mut Map<String, Value>) {
    let on: Vec<&str> = display
        .card_detail
        .iter()
        .filter(|(c, e)| *e && c != "*")
        .map(|(c, _)| c.as_str())
        .collect();
    let others_off = display.card_detail.iter().any(|(c, e)| c == "*" && !*e)
        || display.card_detail.iter().all(|(_, e)| *e);
    if let ([code], true) = (on.as_slice(), others_off) {
        if let Some(toss) = codes::toss_card_of_kftc(code) {
            out.insert("cardCompany".into(), json!(toss));
            out.insert("flowMode".into(), json!("DIRECT"));
        }
    }
    if let Some(quota) = &display.card_quota {
        let months: Vec<i64> = quota
            .iter()
            .filter(|m| **m >= 2)
            .map(|m| (*m).min(MAX_PLAN))
            .collect();
        match months.as_slice() {
            [] => {
                out.insert("maxCardInstallmentPlan".into(), json!(1));
            }
            [one] => {
                out.insert("cardInstallmentPlan".into(), json!(one));
            }
            many => {
                let max = many.iter().copied().max().unwrap_or(MAX_PLAN);
                out.insert("maxCardInstallmentPlan".into(), json!(max));
            }
        }
    }
}

/// The Toss window's return parameters (success or fail URL) read as Pier's `WindowReturn`.
pub(super) fn read_return(params: &[(String, String)]) -> WindowReturn {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if let Some(key) = get("paymentKey").or_else(|| get("authKey")) {
        return WindowReturn::Authenticated {
            token: key.to_owned(),
        };
    }
    match get("code") {
        Some(code) if CANCEL_CODES.contains(&code) => WindowReturn::Cancelled,
        Some(code) => WindowReturn::Failed {
            code: code.to_owned(),
            message: get("message")
                .unwrap_or("결제에 실패하였습니다.")
                .chars()
                .take(200)
                .collect(),
        },
        None => WindowReturn::Failed {
            code: "INVALID_RETURN".into(),
            message: "Toss's window came back without a payment or an error".into(),
        },
    }
}

impl Connector {
    /// The window's session id: keyed by the secret key, so that no one without it can forge a
    /// return to the window, and stable for the order (32 hex digits, 128 bits).
    fn session_id(&self, mid: &Mid, order_id: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key_salt);
        h.update(b"window\0");
        h.update(mid.as_str().as_bytes());
        h.update([0]);
        h.update(order_id.as_bytes());
        hex::encode(h.finalize())[..32].to_owned()
    }

    /// The `customerKey` of a window billing authorization: one per attempt, unguessable (the
    /// same derivation as card-data billing keys, over the attempt's order id).
    fn window_customer_key(&self, mid: &Mid, order_id: &str) -> String {
        self.customer_key(mid, &format!("window\0{order_id}"))
    }

    pub(super) fn window_begin(&self, mid: &Mid, req: &AuthBegin) -> PgResult<AuthSession> {
        let order = &req.order;
        check_order_id(&order.order_id)?;
        let client_key = self.client_key.clone().ok_or_else(|| PgError::Rejected {
            code: "NO_CLIENT_KEY".into(),
            message: "this Toss channel has no client key (pier channel add --client-key)".into(),
        })?;
        let sid = self.session_id(mid, &order.order_id);
        let success_url = with_query(&req.return_url, &[("auth_session_id", &sid)])?;
        let fail_url = with_query(
            &req.return_url,
            &[("auth_session_id", &sid), ("pg_result", "fail")],
        )?;
        let script_url = format!("{}/v1/payment", self.sdk_base);
        let (method, args) = if req.issue_billing_key {
            if req.pay_method != "card" {
                return Err(PgError::Rejected {
                    code: "INVALID_PAY_METHOD".into(),
                    message: "Toss issues billing keys for cards only".into(),
                });
            }
            let customer_key = self.window_customer_key(mid, &order.order_id);
            (
                "requestBillingAuth",
                vec![
                    json!("카드"),
                    json!({
                        "customerKey": customer_key,
                        "successUrl": success_url,
                        "failUrl": fail_url,
                    }),
                ],
            )
        } else {
            let method = toss_method(&req.pay_method).ok_or_else(|| PgError::Rejected {
                code: "INVALID_PAY_METHOD".into(),
                message: format!("Toss has no window for pay_method {:?}", req.pay_method),
            })?;
            let mut p = Map::new();
            p.insert("amount".into(), json!(order.amount_krw));
            p.insert("orderId".into(), json!(order.order_id));
            p.insert("orderName".into(), json!(order_name(order)));
            if let Some(name) = order.buyer_name.as_deref().filter(|n| !n.trim().is_empty()) {
                p.insert("customerName".into(), json!(name));
            }
            if let Some(t) = tax_free(order.tax_free_krw) {
                p.insert("taxFreeAmount".into(), json!(t));
            }
            if req.pay_method == "card" {
                card_options(&req.display, &mut p);
            }
            p.insert("successUrl".into(), json!(success_url));
            p.insert("failUrl".into(), json!(fail_url));
            ("requestPayment", vec![json!(method), Value::Object(p)])
        };
        Ok(AuthSession {
            redirect_url: script_url.clone(),
            auth_session_id: sid,
            browser_call: Some(BrowserCall {
                script_url,
                init: "TossPayments".into(),
                init_arg: client_key,
                method: method.into(),
                args,
                fail_url,
            }),
        })
    }

    pub(super) async fn window_complete(
        &self,
        mid: &Mid,
        req: &AuthComplete,
    ) -> PgResult<AuthOutcome> {
        let order = &req.order;
        check_order_id(&order.order_id)?;
        let param = |k: &str| {
            req.params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        if param("authKey").is_some() {
            return self.window_billing(mid, req).await;
        }
        // The order and amount in the URL are the buyer's browser's word: they must be ours,
        // and the confirmation sends Pier's recorded amount whatever they say.
        if param("orderId") != Some(order.order_id.as_str()) {
            return Err(PgError::Rejected {
                code: "ORDER_MISMATCH".into(),
                message: "Toss's window came back for another order; not confirmed".into(),
            });
        }
        if param("amount").and_then(|a| a.parse::<i64>().ok()) != Some(order.amount_krw) {
            return Err(PgError::Rejected {
                code: "AMOUNT_MISMATCH".into(),
                message: "결제 금액이 주문 금액과 다릅니다. (the amount in the return URL is not the recorded amount; not confirmed)".into(),
            });
        }
        let body = encode(&wire::ConfirmRequest {
            payment_key: req.auth_token.clone(),
            order_id: order.order_id.clone(),
            amount: order.amount_krw,
        })?;
        let key = idempotency_key("confirm", mid, &order.order_id);
        let p: Payment = match self.post(&["v1", "payments", "confirm"], body, &key).await {
            Ok(p) => p,
            // Confirmed before (a retry past the idempotency window): read it back.
            Err(PgError::Rejected { code, message }) if code == "ALREADY_PROCESSED_PAYMENT" => self
                .payment_by_order(&order.order_id)
                .await?
                .ok_or(PgError::Rejected { code, message })?,
            Err(e) => return Err(e),
        };
        if p.order_id != order.order_id || p.payment_key != req.auth_token {
            return Err(PgError::Unknown(
                "Toss answered a confirmation with another payment".into(),
            ));
        }
        if p.total_amount != order.amount_krw {
            return Err(PgError::Unknown(
                "Toss confirmed another amount than the recorded one".into(),
            ));
        }
        match p.status.as_str() {
            "DONE" => Ok(AuthOutcome::Paid(approval_of(&p))),
            "WAITING_FOR_DEPOSIT" => vbank_of(&p).map(AuthOutcome::Vbank),
            "ABORTED" | "EXPIRED" => Err(declined_of(&p)),
            other => Err(PgError::Unknown(format!(
                "Toss answered a confirmation with status {other}"
            ))),
        }
    }

    async fn window_billing(&self, mid: &Mid, req: &AuthComplete) -> PgResult<AuthOutcome> {
        let order = &req.order;
        let customer_key = self.window_customer_key(mid, &order.order_id);
        let given = req
            .params
            .iter()
            .find(|(n, _)| n == "customerKey")
            .map(|(_, v)| v.as_str());
        if given != Some(customer_key.as_str()) {
            return Err(PgError::Rejected {
                code: "CUSTOMER_KEY_MISMATCH".into(),
                message: "Toss's billing window came back for another customer; no key issued"
                    .into(),
            });
        }
        let body = encode(&wire::BillingIssueRequest {
            auth_key: req.auth_token.clone(),
            customer_key: customer_key.clone(),
        })?;
        let key = idempotency_key("issue_billing_window", mid, &order.order_id);
        let auth: BillingAuth = match self
            .post(&["v1", "billing", "authorizations", "issue"], body, &key)
            .await
        {
            Ok(a) => a,
            Err(PgError::Declined { code, message }) => {
                return Err(PgError::Rejected { code, message })
            }
            Err(e) => return Err(e),
        };
        let issued = billing_key_of(&auth, &customer_key)?;
        if order.amount_krw == 0 {
            return Ok(AuthOutcome::BillingKeyOnly(issued));
        }
        let mut paid = self.pay_with_key(mid, order, &issued.billing_key).await?;
        paid.billing_key = Some(issued.billing_key);
        Ok(AuthOutcome::Paid(paid))
    }
}

/// A confirmed virtual-account payment (`WAITING_FOR_DEPOSIT`) as Pier's `VbankIssued`.
fn vbank_of(p: &Payment) -> PgResult<VbankIssued> {
    let va = p.virtual_account.as_ref().ok_or_else(|| {
        PgError::Unknown("Toss answered a virtual account without its account".into())
    })?;
    let bank_code = va
        .bank_code
        .as_deref()
        .and_then(codes::kftc_bank_of_toss)
        .ok_or_else(|| PgError::Unknown("Toss issued an account at an unknown bank".into()))?;
    Ok(VbankIssued {
        pg_tid: p.payment_key.clone(),
        bank_code: bank_code.to_owned(),
        bank_name: pier_domain::codes::bank_name(bank_code)
            .unwrap_or_default()
            .to_owned(),
        account_num: va.account_number.clone(),
        holder: va.customer_name.clone().unwrap_or_default(),
        due_unix: unix_of(va.due_date.as_deref()).unwrap_or_default(),
        issued_at: unix_of(p.requested_at.as_deref()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn returns_are_read_as_toss_sends_them() {
        assert_eq!(
            read_return(&pairs(&[
                ("paymentKey", "pk1"),
                ("orderId", "o"),
                ("amount", "1")
            ])),
            WindowReturn::Authenticated {
                token: "pk1".into()
            }
        );
        assert_eq!(
            read_return(&pairs(&[("customerKey", "c"), ("authKey", "ak")])),
            WindowReturn::Authenticated { token: "ak".into() }
        );
        assert_eq!(
            read_return(&pairs(&[
                ("code", "PAY_PROCESS_CANCELED"),
                ("message", "x")
            ])),
            WindowReturn::Cancelled
        );
        assert_eq!(
            read_return(&pairs(&[
                ("code", "REJECT_CARD_COMPANY"),
                ("message", "거절")
            ])),
            WindowReturn::Failed {
                code: "REJECT_CARD_COMPANY".into(),
                message: "거절".into()
            }
        );
        assert!(matches!(
            read_return(&[]),
            WindowReturn::Failed { code, .. } if code == "INVALID_RETURN"
        ));
    }

    #[test]
    fn display_options_map_to_tosss_card_options() {
        let opts = |detail: &[(&str, bool)], quota: Option<Vec<i64>>| {
            let d = WindowDisplay {
                card_detail: detail.iter().map(|(c, e)| (c.to_string(), *e)).collect(),
                card_quota: quota,
            };
            let mut m = Map::new();
            card_options(&d, &mut m);
            Value::Object(m)
        };
        // One company only: 신한 (KFTC 366) is Toss's 41, opened directly.
        assert_eq!(
            opts(&[("*", false), ("366", true)], None),
            json!({"cardCompany": "41", "flowMode": "DIRECT"})
        );
        // Several companies, or exclusions: no Toss equivalent.
        assert_eq!(
            opts(&[("*", false), ("366", true), ("381", true)], None),
            json!({})
        );
        assert_eq!(opts(&[("366", false)], None), json!({}));
        assert_eq!(
            opts(&[], Some(vec![])),
            json!({"maxCardInstallmentPlan": 1})
        );
        assert_eq!(
            opts(&[], Some(vec![0, 1])),
            json!({"maxCardInstallmentPlan": 1})
        );
        assert_eq!(opts(&[], Some(vec![3])), json!({"cardInstallmentPlan": 3}));
        assert_eq!(
            opts(&[], Some(vec![2, 3, 6, 24])),
            json!({"maxCardInstallmentPlan": 12})
        );
        assert_eq!(opts(&[], None), json!({}));
    }
}
