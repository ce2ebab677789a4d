//! Account-holder lookup (`GET /vbanks/holder`): who owns a bank account, before a refund or a
//! payout is sent to it. Answered from the test PG's account table
//! (`pier_pg::testpg::accounts`, `docs/test-cards.md`): Pier's PGs are simulated, so no real
//! bank is asked.

use super::{Engine, Error, Result};

/// Account numbers are 10 to 16 digits (KFTC: domestic accounts are 10–14 digits, virtual
/// accounts up to 16); hyphens and spaces are ignored, at most 20 characters in all.
pub const BANK_NUM_MIN_DIGITS: usize = 10;
pub const BANK_NUM_MAX_DIGITS: usize = 16;
pub const BANK_NUM_MAX_CHARS: usize = 20;

impl Engine {
    pub fn account_holder(&self, bank_code: &str, bank_num: &str) -> Result<String> {
        if pier_domain::codes::bank_name(bank_code).is_none() {
            return Err(Error::Invalid(format!(
                "bank_code {bank_code} is not a known bank code (see GET /banks)"
            )));
        }
        let digits: String = bank_num
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .collect();
        if !digits.chars().all(|c| c.is_ascii_digit())
            || !(BANK_NUM_MIN_DIGITS..=BANK_NUM_MAX_DIGITS).contains(&digits.len())
        {
            return Err(Error::Invalid(format!(
                "bank_num must be {BANK_NUM_MIN_DIGITS} to {BANK_NUM_MAX_DIGITS} digits (hyphens allowed)"
            )));
        }
        pier_pg::testpg::accounts::holder(bank_code, &digits).ok_or_else(|| {
            Error::NotFound(
                "해당 계좌의 예금주를 확인할 수 없습니다. (no such account at this bank)".into(),
            )
        })
    }
}
