//! The test PG's bank accounts, for the account-holder lookup (`GET /vbanks/holder`).
//!
//! A few fixed accounts (documented in `docs/test-cards.md`) have known holders and one is
//! "closed" (unknown to its bank). Every other well-formed account of a known bank gets a holder
//! name derived deterministically from its number, so a demo can type any account and always
//! see the same answer.

/// A fixed test account: bank code, account number (digits only), holder (`None`: no such
/// account at the bank).
pub struct TestAccount {
    pub bank_code: &'static str,
    pub bank_num: &'static str,
    pub holder: Option<&'static str>,
}

pub const TEST_ACCOUNTS: &[TestAccount] = &[
    TestAccount {
        bank_code: "004",
        bank_num: "1234567890123",
        holder: Some("홍길동"),
    },
    TestAccount {
        bank_code: "088",
        bank_num: "110123456789",
        holder: Some("김철수"),
    },
    TestAccount {
        bank_code: "020",
        bank_num: "1002123456789",
        holder: Some("(주)피어상점"),
    },
    TestAccount {
        bank_code: "011",
        bank_num: "3020000000000",
        holder: None,
    },
];

/// Family names and given names the derived holders are built from (20 × 20 = 400 names).
const FAMILY: [&str; 20] = [
    "김", "이", "박", "최", "정", "강", "조", "윤", "장", "임", "한", "오", "서", "신", "권", "황",
    "안", "송", "류", "홍",
];
const GIVEN: [&str; 20] = [
    "민준", "서연", "도윤", "지우", "하준", "서윤", "시우", "하은", "주원", "지민", "예준", "수아",
    "지호", "지유", "준서", "채원", "현우", "다은", "건우", "예린",
];

/// The holder of `bank_num` (digits only) at `bank_code`, or `None` if the test bank has no
/// such account. The caller validates both values first.
pub fn holder(bank_code: &str, bank_num: &str) -> Option<String> {
    if let Some(a) = TEST_ACCOUNTS
        .iter()
        .find(|a| a.bank_code == bank_code && a.bank_num == bank_num)
    {
        return a.holder.map(str::to_owned);
    }
    // FNV-1a over "code:number": stable across builds and platforms (no random seed).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bank_code.bytes().chain([b':']).chain(bank_num.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let f = FAMILY[(h % 20) as usize];
    let g = GIVEN[((h / 20) % 20) as usize];
    Some(format!("{f}{g}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_derived_holders() {
        assert_eq!(holder("004", "1234567890123").as_deref(), Some("홍길동"));
        assert_eq!(holder("011", "3020000000000"), None);
        let a = holder("004", "9999888877776");
        assert_eq!(a, holder("004", "9999888877776"));
        assert_ne!(holder("004", "9999888877776"), None);
    }
}
