//! The person a certification is about: read and checked from what was entered, and the two
//! keyed identifiers derived from it (CI across merchants, DI within one).

use super::*;
use crate::engine::{Error, Result};
use crate::keys::{self, Purpose};

/// Strips everything but digits (the OAS: "숫자 외에는 정규식으로 모두 제거").
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Checks a person as entered. Messages never repeat the value.
pub fn parse_person(i: &PersonInput, now: i64) -> Result<Person> {
    let name = i.name.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "name is required (1 to {MAX_NAME_CHARS} characters)"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_alphabetic() || matches!(c, ' ' | '.' | '-' | '\''))
    {
        return Err(Error::Invalid(
            "name must be letters (spaces, '.', '-' and ' allowed)".into(),
        ));
    }
    // 20 characters: 11 digits with any separators a form may add ("010-1234-5678", "+82 …").
    if i.phone.chars().count() > 20 || i.phone.chars().any(|c| c.is_alphabetic()) {
        return Err(Error::Invalid(
            "phone must be a mobile number (digits, '-' or '.' allowed)".into(),
        ));
    }
    let phone = digits(&i.phone);
    if !(10..=11).contains(&phone.len()) || !phone.starts_with("01") {
        return Err(Error::Invalid(
            "phone must be a Korean mobile number of 10 or 11 digits starting with 01".into(),
        ));
    }
    let gd = i.gender_digit.trim();
    let gender_digit = match gd.as_bytes() {
        [d @ b'1'..=b'8'] => d - b'0',
        _ => {
            return Err(Error::Invalid(
                "gender_digit must be one digit from 1 to 8 (the 7th digit of the resident registration number)".into(),
            ))
        }
    };
    let century = if matches!(gender_digit, 1 | 2 | 5 | 6) {
        "19"
    } else {
        "20"
    };
    if i.birth.chars().count() > 12 || i.birth.chars().any(|c| c.is_alphabetic()) {
        return Err(Error::Invalid(
            "birth must be YYMMDD or YYYYMMDD (separators allowed)".into(),
        ));
    }
    let b = digits(&i.birth);
    let birth = match b.len() {
        6 => format!("{century}{b}"),
        8 if b.starts_with(century) => b,
        8 => {
            return Err(Error::Invalid(
                "birth and gender_digit disagree (1, 2, 5, 6: born 1900–1999; 3, 4, 7, 8: born 2000 or later)".into(),
            ))
        }
        _ => {
            return Err(Error::Invalid(
                "birth must be YYMMDD or YYYYMMDD (separators allowed)".into(),
            ))
        }
    };
    let (y, m, d) = (
        birth[..4].parse::<i32>().unwrap_or(0),
        birth[4..6].parse::<u32>().unwrap_or(0),
        birth[6..].parse::<u32>().unwrap_or(0),
    );
    if chrono::NaiveDate::from_ymd_opt(y, m, d).is_none() {
        return Err(Error::Invalid("birth is not a valid date".into()));
    }
    let carrier = i.carrier.trim().to_ascii_uppercase();
    if !CARRIERS.contains(&carrier.as_str()) {
        return Err(Error::Invalid("carrier must be SKT, KT or LGT".into()));
    }
    let p = Person {
        name,
        phone,
        birth,
        gender_digit,
        carrier,
        is_mvno: i.is_mvno,
    };
    if p.age_at(now) < 0 {
        return Err(Error::Invalid("birth is in the future".into()));
    }
    Ok(p)
}

/// The identity provider's name for `pg` (`danal`, `danal.{CPID}`, …).
pub fn provider(pg: Option<&str>) -> Result<String> {
    let Some(pg) = pg.filter(|s| !s.is_empty()) else {
        return Ok(DEFAULT_PROVIDER.to_owned());
    };
    let base = pg.split('.').next().unwrap_or("");
    if PROVIDERS.contains(&base) {
        Ok(base.to_owned())
    } else {
        Err(Error::Invalid(format!(
            "pg {pg:?} is not an identity provider Pier offers (offered: {})",
            PROVIDERS.join(", ")
        )))
    }
}

/// CI: 88 base64 characters, the same for the person everywhere.
pub fn unique_key(server_key: &[u8; 32], p: &Person) -> String {
    let k = keys::derive(server_key, Purpose::CertificationCi);
    let data = format!("pier-ci-v1\n{}\n{}\n{}", p.name, p.birth, p.gender_digit);
    base64::engine::general_purpose::STANDARD.encode(keys::hmac_sha512(&k, data.as_bytes()))
}

/// DI: 64 hex characters, the same for the person within one merchant.
pub fn unique_in_site(server_key: &[u8; 32], merchant_id: &str, ci: &str) -> String {
    let k = keys::derive(server_key, Purpose::CertificationDi);
    hex::encode(keys::hmac_sha256(
        &k,
        format!("pier-di-v1\n{merchant_id}\n{ci}").as_bytes(),
    ))
}
