//! Property tests of the card and money parsers: what they accept, what they refuse, and that
//! card data never leaks through `Debug`.

use pier_domain::money::default_vat;
use pier_domain::{Amount, Birth, CardNumber, Expiry, Pwd2Digit};
use proptest::prelude::*;

/// A card number's digits with the separators clients send (dashes in groups, spaces, none).
fn formatted(digits: &str, style: u8) -> String {
    match style % 3 {
        0 => digits.to_owned(),
        1 => digits
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("-"),
        _ => digits
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn card_number_accepts_14_to_16_digits_in_any_client_format(d in "[0-9]{14,16}", style in 0u8..3) {
        let c = CardNumber::parse(&formatted(&d, style)).unwrap();
        prop_assert_eq!(c.digits(), d.as_str());
        prop_assert_eq!(c.bin(), &d[..6]);
    }

    #[test]
    fn card_number_refuses_other_lengths(d in "[0-9]{0,13}|[0-9]{17,24}", style in 0u8..3) {
        prop_assert!(CardNumber::parse(&formatted(&d, style)).is_err());
    }

    #[test]
    fn card_number_refuses_any_other_character(
        d in "[0-9]{8}", bad in "[^0-9 \\-]", tail in "[0-9]{8}"
    ) {
        let raw = format!("{d}{bad}{tail}");
        prop_assert!(CardNumber::parse(&raw).is_err());
    }

    #[test]
    fn card_debug_and_mask_never_show_the_hidden_digits(d in "[0-9]{14,16}") {
        let c = CardNumber::parse(&d).unwrap();
        let hidden = &d[8..d.len() - 4];
        let shown = format!("{c:?} {}", c.masked());
        prop_assert!(!shown.contains(&d));
        // The hidden digits never appear at their position.
        prop_assert!(c.masked()[8..d.len() - 4].chars().all(|x| x == '*'));
        let debug = format!("{c:?}");
        let revealing = format!("{}{hidden}", &d[..8]);
        prop_assert!(!debug.contains(&revealing));
    }

    #[test]
    fn expiry_round_trips_both_wire_forms(y in 2000i32..=2099, m in 1u32..=12) {
        for raw in [format!("{y:04}-{m:02}"), format!("{y:04}{m:02}"), format!("{y:04}/{m:02}")] {
            let e = Expiry::parse(&raw).unwrap();
            prop_assert_eq!((e.year, e.month), (y, m));
            let debug = format!("{e:?}");
            prop_assert_eq!(debug, "Expiry(**-**)");
        }
    }

    #[test]
    fn expiry_refuses_bad_months_years_and_shapes(y in 0i32..=9999, m in 0u32..=99) {
        let ok = (2000..=2099).contains(&y) && (1..=12).contains(&m);
        prop_assert_eq!(Expiry::parse(&format!("{y:04}-{m:02}")).is_ok(), ok);
        // A dash anywhere but after the year is refused.
        let misplaced_dash = format!("{:02}-{:02}{m:02}", y / 100, y % 100);
        let long_month = format!("{y:04}-{m:03}");
        prop_assert!(Expiry::parse(&misplaced_dash).is_err());
        prop_assert!(Expiry::parse(&long_month).is_err());
    }

    #[test]
    fn expiry_is_expired_only_after_its_month(y in 2001i32..=2098, m in 1u32..=12) {
        let e = Expiry::parse(&format!("{y:04}-{m:02}")).unwrap();
        let first_of = |y: i32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(y, m, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()
        };
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        prop_assert!(!e.is_expired_at(first_of(y, m)));
        prop_assert!(!e.is_expired_at(first_of(ny, nm) - 1));
        prop_assert!(e.is_expired_at(first_of(ny, nm)));
    }

    #[test]
    fn birth_accepts_dates_and_business_numbers_only(s in "[0-9]{0,12}") {
        let r = Birth::parse(&s);
        if s.len() == 10 {
            prop_assert!(r.is_ok());
        } else if s.len() == 6 {
            let (m, d): (u32, u32) = (s[2..4].parse().unwrap(), s[4..6].parse().unwrap());
            prop_assert_eq!(r.is_ok(), s == "000000" || ((1..=12).contains(&m) && (1..=31).contains(&d)));
        } else {
            prop_assert!(r.is_err());
        }
        if let Ok(b) = Birth::parse(&s) {
            let debug = format!("{b:?}");
            prop_assert!(!debug.contains(&s));
        }
    }

    #[test]
    fn pwd_2digit_is_exactly_two_digits(s in ".{0,4}") {
        let ok = s.len() == 2 && s.chars().all(|c| c.is_ascii_digit());
        prop_assert_eq!(Pwd2Digit::parse(&s).is_ok(), ok);
        if let Ok(p) = Pwd2Digit::parse(&s) {
            let debug = format!("{p:?}");
            prop_assert_eq!(debug, "Pwd2Digit(**)");
        }
    }

    #[test]
    fn amount_bounds(n in any::<i64>()) {
        let r = Amount::new(n, "amount");
        prop_assert_eq!(r.is_ok(), n > 0 && n <= Amount::MAX_KRW);
        if let Ok(a) = r { prop_assert_eq!(a.krw(), n); }
    }

    #[test]
    fn amount_edges(d in -3i64..=3) {
        prop_assert_eq!(Amount::new(Amount::MAX_KRW + d, "amount").is_ok(), d <= 0);
        prop_assert_eq!(Amount::new(d, "amount").is_ok(), d >= 1);
    }

    #[test]
    fn default_vat_is_a_floored_eleventh_of_the_taxable_part(
        amount in 0i64..=Amount::MAX_KRW, tax_free in 0i64..=Amount::MAX_KRW
    ) {
        let vat = default_vat(amount, tax_free);
        let taxable = (amount - tax_free).max(0);
        prop_assert!(vat >= 0);
        prop_assert!(vat * 11 <= taxable && taxable < (vat + 1) * 11);
    }
}
