//! Property tests of the request parsers (`http::params`): form encoding round trips, bracketed
//! arrays, amounts in JSON and in text, and that no input makes an accessor panic.

use pier_domain::Amount;
use pier_server::http::params::{parse_body, Params};
use proptest::prelude::*;
use serde_json::Value;

/// Keys as clients send them (never bracketed here: brackets are structure).
fn key() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,11}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// Any map of fields, form-encoded by a standard encoder, parses back to the same strings.
    #[test]
    fn form_encoding_round_trips(fields in prop::collection::btree_map(key(), "\\PC{0,30}", 0..12)) {
        let body = serde_urlencoded::to_string(&fields).unwrap();
        let p = Params::from_form(&body).unwrap();
        for (k, v) in &fields {
            match p.raw(k) {
                Some(Value::String(s)) => prop_assert_eq!(s, v),
                other => {
                    let absent = v.is_empty() && other.is_none();
                    prop_assert!(absent, "{}: {:?}", k, other);
                }
            }
        }
        // And through parse_body with the form content type (charset included).
        let q = parse_body(Some("application/x-www-form-urlencoded; charset=UTF-8"), body.as_bytes()).unwrap();
        for (k, v) in &fields {
            prop_assert_eq!(q.raw(k).and_then(|x| x.as_str()).unwrap_or(""), v.as_str());
        }
    }

    /// `k[]=a&k[]=b…` and JSON arrays give the same list, in order, bounded by `max_items`.
    #[test]
    fn bracketed_lists_match_json_arrays(items in prop::collection::vec("[A-Za-z0-9_\\-]{1,20}", 0..12)) {
        let form: Vec<(String, String)> = items.iter().map(|v| ("imp_uid[]".to_owned(), v.clone())).collect();
        let p = Params::from_form(&serde_urlencoded::to_string(&form).unwrap()).unwrap();
        let j = Params::from_json(serde_json::json!({"imp_uid": items}).to_string().as_bytes()).unwrap();
        let from_form = p.str_list("imp_uid", 100).unwrap();
        prop_assert_eq!(&from_form, &items);
        prop_assert_eq!(j.str_list("imp_uid", 100).unwrap(), items.clone());
        prop_assert_eq!(p.str_list("imp_uid", 5).is_ok(), items.len() <= 5);
    }

    /// In a form, an amount is decimal text: accepted exactly when it is an integer in range.
    #[test]
    fn form_amounts(n in any::<i64>(), pad in " {0,2}") {
        let body = serde_urlencoded::to_string([("amount", format!("{pad}{n}{pad}"))]).unwrap();
        let p = Params::from_form(&body).unwrap();
        let r = p.amount_req("amount");
        prop_assert_eq!(r.is_ok(), n > 0 && n <= Amount::MAX_KRW, "{}", n);
        if let Ok(a) = r { prop_assert_eq!(a.krw(), n); }
    }

    /// Text that is not an integer is a 400 naming the field, never a panic or a guess.
    #[test]
    fn form_amounts_refuse_non_integers(s in "[0-9]{1,6}[.,eE_x][0-9]{1,3}|[a-z]{1,5}|[0-9]{20,30}") {
        let body = serde_urlencoded::to_string([("amount", s.as_str())]).unwrap();
        let p = Params::from_form(&body).unwrap();
        let e = p.amount_req("amount").unwrap_err();
        prop_assert_eq!(e.status.as_u16(), 400);
        let names_field = e.message.contains("amount");
        prop_assert!(names_field, "{}", e.message);
    }

    /// In JSON an amount must be a JSON integer: numbers as strings and fractions are refused.
    #[test]
    fn json_amounts(n in any::<i64>(), frac in 1u32..100) {
        let text = format!(r#"{{"a":{n},"b":"{n}","c":{n}.{frac:02}}}"#);
        let p = Params::from_json(text.as_bytes()).unwrap();
        prop_assert_eq!(p.amount_req("a").is_ok(), n > 0 && n <= Amount::MAX_KRW);
        prop_assert!(p.amount_req("b").is_err());
        prop_assert!(p.amount_req("c").is_err());
        // money_opt: non-negative and bounded.
        prop_assert_eq!(p.money_opt("a").is_ok(), (0..=Amount::MAX_KRW).contains(&n));
    }

    /// Arbitrary JSON objects: every accessor answers (value or 400), none panics.
    #[test]
    fn accessors_never_panic_on_any_json(v in arb_json(3)) {
        let text = serde_json::json!({"x": v, "amount": v, "list": v}).to_string();
        let p = Params::from_json(text.as_bytes()).unwrap();
        let _ = p.str_opt("x", 10);
        let _ = p.int_opt("x");
        let _ = p.amount_req("amount");
        let _ = p.money_opt("amount");
        let _ = p.bool_opt("x");
        let _ = p.str_list("list", 3);
        let _ = p.json_text_opt("x", 100);
        let _ = p.array_opt("list");
        if let Some(Value::Array(items)) = p.raw("list") {
            for i in items { let _ = p.nested(i); }
        }
    }

    /// Arbitrary bytes under any content type: a `Params` or a 4xx, never a panic.
    #[test]
    fn bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), ct in 0usize..4) {
        let ct = [None, Some("application/json"), Some("application/x-www-form-urlencoded"), Some("text/plain")][ct];
        if let Err(e) = parse_body(ct, &bytes) {
            let client_error = e.status.is_client_error();
            prop_assert!(client_error, "{}", e);
        }
    }

    /// Deeply bracketed keys are bounded, not a stack overflow.
    #[test]
    fn nested_brackets_are_bounded(depth in 1usize..200) {
        let k = format!("a{}", "[x]".repeat(depth));
        let _ = Params::from_form(&format!("{k}=1"));
    }
}

fn arb_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
