//! The attempt of a payment, decided in one place: what an attempt row holds, from an order, the
//! flow it starts (API card charge, virtual account, payment window), the channel it runs on and,
//! for a billing-key charge, the key and the merchant_uid's pre-registration. Pure functions: no
//! store, no clock (the caller passes `now` and the new imp_uid); the store only guards (the
//! merchant_uid's unique guard, conditional updates). On every store `again` reads the key, its
//! channel and the pre-registration first (`charge_context`) and decides here; no SQL copies
//! this rule.

use super::prepare::check_prepared_amount;
use super::{Error, Result};
use pier_domain::{Amount, AmountPart};
use pier_store::{Channel, Customer, Payment, PgState, Prepared};

/// The buyer's details an order carries (all optional, as i'mport takes them).
#[derive(Debug, Clone, Default)]
pub struct Buyer {
    pub name: Option<String>,
    pub email: Option<String>,
    pub tel: Option<String>,
    pub addr: Option<String>,
    pub postcode: Option<String>,
}

/// The order part shared by every flow.
pub(crate) struct Order<'a> {
    pub merchant_uid: &'a str,
    /// `None`: 0, a window that only issues a billing key.
    pub amount: Option<Amount>,
    /// `None`: the model's default (KRW).
    pub currency: Option<&'a str>,
    pub tax_free: AmountPart,
    pub vat_amount: Option<AmountPart>,
    pub name: &'a Option<String>,
    pub buyer: &'a Buyer,
    pub custom_data: &'a Option<String>,
    pub notice_urls: &'a [String],
    pub escrow: bool,
    pub card_quota: i64,
}

/// How the attempt reaches the PG, which decides its method, channel kind and where its PG call
/// stands when it is inserted.
pub(crate) enum Flow<'a> {
    /// A card charged by the API (`onetime`, `again`): inserted with the merchant_uid guard
    /// taken and its PG call under way.
    ApiCard,
    /// A virtual account issued by the API: its PG call under way, the guard taken only when it
    /// is paid.
    ApiVbank,
    /// A payment window: nothing is called yet; the guard is taken when the PG is (`lock_for_pg`).
    Window {
        pay_method: &'a str,
        mobile: bool,
        user_agent: &'a Option<String>,
        /// The window also issues a billing key for this customer_uid.
        issues_key: Option<&'a str>,
    },
}

/// A new attempt of `o` on `channel` (`None`: filled in later from the billing key, `keyed`).
pub(crate) fn attempt(
    imp_uid: String,
    merchant_id: &str,
    o: &Order<'_>,
    flow: &Flow<'_>,
    channel: Option<&Channel>,
    now: i64,
) -> Payment {
    let mut p = Payment::new(
        imp_uid,
        merchant_id.to_owned(),
        o.merchant_uid.to_owned(),
        o.amount.map_or(0, Amount::krw),
        now,
    );
    match flow {
        Flow::ApiCard => {
            p.uid_lock = true;
            p.pg_state = PgState::InFlight;
            p.pay_method = Some("card".into());
            p.channel = Some("api".into());
        }
        Flow::ApiVbank => {
            p.pg_state = PgState::InFlight;
            p.pay_method = Some("vbank".into());
            p.channel = Some("api".into());
        }
        Flow::Window {
            pay_method,
            mobile,
            user_agent,
            issues_key,
        } => {
            p.pay_method = Some((*pay_method).to_owned());
            p.channel = Some(if *mobile { "mobile" } else { "pc" }.into());
            p.user_agent = (*user_agent).clone();
            if let Some(c) = issues_key {
                p.customer_uid = Some((*c).to_owned());
                p.customer_uid_usage = Some("issue".into());
            }
        }
    }
    if let Some(ch) = channel {
        on_channel(&mut p, ch);
    }
    if let Some(c) = o.currency {
        p.currency = c.to_owned();
    }
    p.name = o.name.clone();
    p.tax_free = o.tax_free.krw();
    p.vat_amount = o.vat_amount.map(AmountPart::krw);
    p.escrow = o.escrow;
    p.card_quota = o.card_quota;
    p.buyer_name = o.buyer.name.clone();
    p.buyer_email = o.buyer.email.clone();
    p.buyer_tel = o.buyer.tel.clone();
    p.buyer_addr = o.buyer.addr.clone();
    p.buyer_postcode = o.buyer.postcode.clone();
    p.custom_data = o.custom_data.clone();
    if !o.notice_urls.is_empty() {
        p.notice_url = serde_json::to_string(o.notice_urls).ok();
    }
    p
}

fn on_channel(p: &mut Payment, ch: &Channel) {
    p.channel_id = Some(ch.id.clone());
    p.pg_provider = Some(ch.pg_provider.clone());
    p.pg_id = Some(ch.mid.clone());
    p.sandbox = ch.sandbox;
}

/// Why a billing-key charge's channel is missing.
pub(crate) const MSG_KEY_CHANNEL_GONE: &str =
    "빌링키를 발급한 PG 설정정보가 존재하지 않습니다. (the billing key's channel is gone)";

/// A billing-key charge's attempt: `template` (from `attempt` with no channel) completed from
/// the key — its channel, its card, and its buyer fields where the order gave none (spec §3.5) —
/// or refused: the key's channel is gone, or the order's `amount` differs from the
/// pre-registered one.
pub(crate) fn keyed(
    mut template: Payment,
    amount: Amount,
    customer: &Customer,
    channel: Option<&Channel>,
    prepared: Option<&Prepared>,
) -> Result<Payment> {
    let Some(ch) = channel else {
        return Err(Error::Refused(MSG_KEY_CHANNEL_GONE.into()));
    };
    check_prepared_amount(prepared, &template.merchant_uid, Some(amount))?;
    let p = &mut template;
    on_channel(p, ch);
    p.customer_uid = Some(customer.customer_uid.clone());
    p.card_code = customer.card_code.clone();
    p.card_name = customer.card_name.clone();
    p.card_number = customer.card_number.clone();
    p.card_type = customer.card_type;
    let or = |given: &mut Option<String>, key: &Option<String>| {
        if given.is_none() {
            given.clone_from(key);
        }
    };
    or(&mut p.buyer_name, &customer.customer_name);
    or(&mut p.buyer_email, &customer.customer_email);
    or(&mut p.buyer_tel, &customer.customer_tel);
    or(&mut p.buyer_addr, &customer.customer_addr);
    or(&mut p.buyer_postcode, &customer.customer_postcode);
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Channel {
        Channel {
            id: "ch_1".into(),
            merchant_id: "imp_m".into(),
            pg_provider: "nice".into(),
            mid: "nictest00m".into(),
            is_default: true,
            sandbox: true,
            target: "inprocess".into(),
            created_at: 1,
            api_base: None,
            client_key: None,
            secret_sealed: None,
        }
    }

    fn customer() -> Customer {
        Customer {
            merchant_id: "imp_m".into(),
            customer_uid: "cu_1".into(),
            channel_id: "ch_1".into(),
            pg_provider: "nice".into(),
            pg_id: "nictest00m".into(),
            sandbox: true,
            billing_key: "bk".into(),
            customer_id: None,
            card_name: Some("신한카드".into()),
            card_code: Some("366".into()),
            card_number: Some("4092-****-****-1234".into()),
            card_type: Some(0),
            customer_name: Some("Key Holder".into()),
            customer_tel: Some("010-0000-0000".into()),
            customer_email: None,
            customer_addr: None,
            customer_postcode: None,
            inserted: 1,
            updated: 1,
        }
    }

    fn krw(n: i64) -> Amount {
        Amount::new(n, "amount").unwrap()
    }

    fn template(buyer: &Buyer, amount: i64) -> Payment {
        let order = Order {
            merchant_uid: "order_1",
            amount: Some(krw(amount)),
            currency: Some("KRW"),
            tax_free: AmountPart::ZERO,
            vat_amount: None,
            name: &None,
            buyer,
            custom_data: &None,
            notice_urls: &[],
            escrow: false,
            card_quota: 0,
        };
        attempt("imp_1".into(), "imp_m", &order, &Flow::ApiCard, None, 100)
    }

    fn prepared(amount: i64) -> Prepared {
        Prepared {
            merchant_id: "imp_m".into(),
            merchant_uid: "order_1".into(),
            amount,
            currency: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn flows_decide_the_guard_and_the_pg_state() {
        let buyer = Buyer::default();
        let p = template(&buyer, 1000);
        assert!(p.uid_lock);
        assert_eq!(p.pg_state, PgState::InFlight);
        assert_eq!(p.pay_method.as_deref(), Some("card"));
        assert_eq!(p.channel_id, None, "an `again` template has no channel yet");
        let order = Order {
            merchant_uid: "order_2",
            amount: Some(krw(5000)),
            currency: None,
            tax_free: AmountPart::ZERO,
            vat_amount: None,
            name: &None,
            buyer: &buyer,
            custom_data: &None,
            notice_urls: &[],
            escrow: true,
            card_quota: 0,
        };
        let ua = Some("Mozilla".to_owned());
        let w = Flow::Window {
            pay_method: "card",
            mobile: true,
            user_agent: &ua,
            issues_key: Some("cu_9"),
        };
        let p = attempt("imp_2".into(), "imp_m", &order, &w, Some(&channel()), 100);
        assert!(!p.uid_lock, "a window takes the guard when it calls the PG");
        assert_eq!(p.pg_state, PgState::None);
        assert_eq!(p.channel.as_deref(), Some("mobile"));
        assert_eq!(p.customer_uid_usage.as_deref(), Some("issue"));
        assert_eq!(p.pg_id.as_deref(), Some("nictest00m"));
        assert!(p.escrow && p.sandbox);
        let p = attempt(
            "imp_3".into(),
            "imp_m",
            &order,
            &Flow::ApiVbank,
            Some(&channel()),
            100,
        );
        assert!(
            !p.uid_lock,
            "a virtual account takes the guard when it is paid"
        );
        assert_eq!(p.pg_state, PgState::InFlight);
        assert_eq!(p.pay_method.as_deref(), Some("vbank"));
    }

    #[test]
    fn keyed_fills_from_the_key_where_the_order_gave_nothing() {
        let buyer = Buyer {
            name: Some("Given".into()),
            ..Buyer::default()
        };
        let p = keyed(
            template(&buyer, 1000),
            krw(1000),
            &customer(),
            Some(&channel()),
            None,
        )
        .unwrap();
        assert_eq!(p.buyer_name.as_deref(), Some("Given"));
        assert_eq!(p.buyer_tel.as_deref(), Some("010-0000-0000"));
        assert_eq!(p.card_code.as_deref(), Some("366"));
        assert_eq!(p.channel_id.as_deref(), Some("ch_1"));
        assert_eq!(p.customer_uid.as_deref(), Some("cu_1"));
        let same = keyed(
            template(&buyer, 1000),
            krw(1000),
            &customer(),
            Some(&channel()),
            Some(&prepared(1000)),
        );
        assert!(same.is_ok());
    }

    #[test]
    fn keyed_refuses_a_gone_channel_and_a_differing_prepared_amount() {
        let buyer = Buyer::default();
        let gone = keyed(template(&buyer, 1000), krw(1000), &customer(), None, None);
        assert!(matches!(gone, Err(Error::Refused(m)) if m == MSG_KEY_CHANNEL_GONE));
        let differs = keyed(
            template(&buyer, 1000),
            krw(1000),
            &customer(),
            Some(&channel()),
            Some(&prepared(900)),
        );
        assert!(matches!(differs, Err(Error::Refused(_))));
    }
}
