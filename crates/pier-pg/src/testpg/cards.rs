//! The test PG's card rules: which card numbers do what (like Stripe's test cards), which issuer
//! a BIN belongs to, and the cardholder checks (birth, password digits, installments).
//!
//! Everything here is a pure function of the card data, so the same card behaves the same way
//! through every entry point (keyed payment, billing key, payment window) and every transport
//! (in-process, pgsim). `docs/test-cards.md` is the human copy of these tables; the tests walk
//! `TEST_CARDS` so the two cannot drift silently.

use crate::{CardData, PgError};
use pier_domain::{codes, CardNumber};

/// An issuer refusal: the PG's code and its Korean text, shown to the merchant as `fail_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decline {
    pub code: &'static str,
    pub message: &'static str,
}

impl Decline {
    /// The refusal of a payment after a real attempt at the issuer.
    pub fn declined(self) -> PgError {
        PgError::Declined {
            code: self.code.into(),
            message: self.message.into(),
        }
    }

    /// The same refusal during billing-key issuance: no key, nothing charged, so `Rejected`, with
    /// the wording real PGs use for a failed issuance.
    pub fn issue_rejected(self) -> PgError {
        PgError::Rejected {
            code: self.code.into(),
            message: format!(
                "카드정보 인증 및 빌키 발급에 실패하였습니다. {}",
                self.message
            ),
        }
    }
}

pub const INSUFFICIENT_BALANCE: Decline = Decline {
    code: "2112",
    message: "[2112]잔액부족",
};
pub const OVER_LIMIT: Decline = Decline {
    code: "2116",
    message: "[2116]개인 월 한도금액 초과",
};
pub const LOST_OR_STOLEN: Decline = Decline {
    code: "2101",
    message: "[2101]분실/도난 신고된 카드입니다",
};
pub const EXPIRED_CARD: Decline = Decline {
    code: "2103",
    message: "[2103]유효기간이 경과된 카드입니다",
};
pub const SUSPENDED: Decline = Decline {
    code: "2105",
    message: "[2105]거래정지 카드",
};
pub const WRONG_PASSWORD: Decline = Decline {
    code: "2107",
    message: "[2107]비밀번호 오류",
};
pub const WRONG_BIRTH: Decline = Decline {
    code: "2108",
    message: "[2108]생년월일(사업자번호) 불일치",
};
pub const NO_RECURRING: Decline = Decline {
    code: "2131",
    message: "[2131]정기결제 불가 카드",
};

/// Every issuer refusal, so that one stored by its code (a shared journal's window session) is
/// found again.
const ALL_DECLINES: [Decline; 8] = [
    INSUFFICIENT_BALANCE,
    OVER_LIMIT,
    LOST_OR_STOLEN,
    EXPIRED_CARD,
    SUSPENDED,
    WRONG_PASSWORD,
    WRONG_BIRTH,
    NO_RECURRING,
];

/// The refusal with this code, if it is one of ours.
pub(crate) fn decline_by_code(code: &str) -> Option<Decline> {
    ALL_DECLINES.iter().copied().find(|d| d.code == code)
}

/// Birth values the issuer never accepts (a documented way to get a holder-check failure with
/// any card). `Birth::parse` refuses impossible dates, so these are valid-looking on purpose.
pub const WRONG_BIRTHS: [&str; 2] = ["111111", "1111111111"];

/// Installments apply from this amount on; below it the PG applies a lump sum.
pub const MIN_INSTALLMENT_KRW: i64 = 50_000;
/// The longest installment plan the PG accepts.
pub const MAX_QUOTA_MONTHS: i64 = 36;

/// What a card does, by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Approved everywhere.
    Approve,
    /// Every charge is declined by the issuer. `issue_ok` says whether a billing key can still be
    /// issued (balance and limits are not checked at issuance; a lost card fails it).
    Decline { decline: Decline, issue_ok: bool },
    /// The PG refuses the number before any attempt (`Rejected`), at every entry point.
    InvalidNumber,
    /// Charges are never processed and never answered: the caller's deadline expires and it sees
    /// `Unknown`; the PG ledger has nothing. Billing keys issue normally.
    Timeout,
    /// Charges are approved and recorded, then the answer is lost: the caller sees `Unknown`
    /// while the ledger has the approval. A retry with the same `order_id` returns it.
    LoseResponse,
    /// Billing-key issuance fails; keyed and window payments are approved.
    IssueFails,
    /// Billing keys issue and keyed/window payments approve, but every charge *with a billing key*
    /// is declined (a card suspended after registration: the schedule-failure card).
    KeyChargesDecline { decline: Decline },
}

#[derive(Clone, Copy, Debug)]
pub struct TestCard {
    /// As printed in `docs/test-cards.md`; the dashes are ignored when matching.
    pub number: &'static str,
    pub behaviour: Behaviour,
    pub summary: &'static str,
}

/// The documented test cards. Any other well-formed number is approved.
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: "4518-4200-0000-0000",
        behaviour: Behaviour::Approve,
        summary: "approved (신한 credit)",
    },
    TestCard {
        number: "5570-4200-0000-0000",
        behaviour: Behaviour::Approve,
        summary: "approved (KB국민 check card)",
    },
    TestCard {
        number: "4242-4242-4242-4242",
        behaviour: Behaviour::Approve,
        summary: "approved (VISA, foreign)",
    },
    TestCard {
        number: "5555-5555-5555-4444",
        behaviour: Behaviour::Approve,
        summary: "approved (Master, foreign)",
    },
    TestCard {
        number: "3782-822463-10005",
        behaviour: Behaviour::Approve,
        summary: "approved (AMEX, 15 digits)",
    },
    TestCard {
        number: "3530-1113-3330-0000",
        behaviour: Behaviour::Approve,
        summary: "approved (JCB)",
    },
    TestCard {
        number: "5570-4200-0000-2112",
        behaviour: Behaviour::Decline {
            decline: INSUFFICIENT_BALANCE,
            issue_ok: true,
        },
        summary: "declined: insufficient balance (keys issue)",
    },
    TestCard {
        number: "5409-2600-0000-2116",
        behaviour: Behaviour::Decline {
            decline: OVER_LIMIT,
            issue_ok: true,
        },
        summary: "declined: over the monthly limit (keys issue)",
    },
    TestCard {
        number: "5361-8100-0000-2101",
        behaviour: Behaviour::Decline {
            decline: LOST_OR_STOLEN,
            issue_ok: false,
        },
        summary: "declined: lost/stolen (key issuance fails)",
    },
    TestCard {
        number: "4332-9000-0000-2103",
        behaviour: Behaviour::Decline {
            decline: EXPIRED_CARD,
            issue_ok: false,
        },
        summary: "declined: expired at the issuer (key issuance fails)",
    },
    TestCard {
        number: "4673-0900-0000-2107",
        behaviour: Behaviour::Decline {
            decline: WRONG_PASSWORD,
            issue_ok: false,
        },
        summary: "declined: wrong password digits (key issuance fails)",
    },
    TestCard {
        number: "4651-2000-0000-2105",
        behaviour: Behaviour::KeyChargesDecline { decline: SUSPENDED },
        summary: "keys issue, keyed payments approve, billing-key charges declined",
    },
    TestCard {
        number: "5594-1000-0000-2131",
        behaviour: Behaviour::IssueFails,
        summary: "billing-key issuance fails; payments approve",
    },
    TestCard {
        number: "9409-1500-0000-0001",
        behaviour: Behaviour::InvalidNumber,
        summary: "rejected: invalid card number",
    },
    TestCard {
        number: "5461-1200-0000-0408",
        behaviour: Behaviour::Timeout,
        summary: "charges time out (never processed)",
    },
    TestCard {
        number: "5525-7600-0000-0504",
        behaviour: Behaviour::LoseResponse,
        summary: "charges approved, response lost",
    },
];

fn same_digits(printed: &str, digits: &str) -> bool {
    printed.bytes().filter(|b| *b != b'-').eq(digits.bytes())
}

pub fn behaviour_of(number: &CardNumber) -> Behaviour {
    TEST_CARDS
        .iter()
        .find(|c| same_digits(c.number, number.digits()))
        .map_or(Behaviour::Approve, |c| c.behaviour)
}

pub fn invalid_number() -> PgError {
    PgError::Rejected {
        code: "INVALID_CARD_NUMBER".into(),
        message: "유효하지않은 카드번호를 입력하셨습니다.".into(),
    }
}

pub fn expired_input() -> PgError {
    PgError::Rejected {
        code: "INVALID_EXPIRY".into(),
        message: "카드 유효기간이 지났습니다. 유효기간을 확인해주세요.".into(),
    }
}

/// The issuer's card facts for a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issuer {
    pub card_code: &'static str,
    /// 0 credit, 1 check.
    pub card_type: i64,
}

impl Issuer {
    pub fn card_name(&self) -> &'static str {
        codes::card_name(self.card_code).unwrap_or("테스트카드")
    }
}

/// Simulated BINs of the Korean issuers (spec §8.1). They look like the issuers' real ranges but
/// are the test PG's own table: matched on the first six digits before the network ranges.
const BINS: &[(&str, &str, i64)] = &[
    ("940915", "361", 0),
    ("940916", "361", 1),
    ("942061", "364", 0),
    ("536181", "365", 0),
    ("465887", "365", 0),
    ("451842", "366", 0),
    ("457973", "366", 1),
    ("433290", "367", 0),
    ("515594", "367", 0),
    ("467309", "368", 0),
    ("942150", "369", 0),
    ("552576", "370", 0),
    ("546112", "371", 0),
    ("541707", "371", 1),
    ("942080", "372", 0),
    ("942090", "373", 0),
    ("465120", "374", 0),
    ("540926", "381", 0),
    ("557042", "381", 1),
    ("559410", "041", 0),
    ("944085", "071", 1),
    ("944002", "002", 1),
    ("944045", "045", 1),
    ("944048", "048", 1),
    ("944050", "050", 1),
    ("944089", "089", 1),
    ("536648", "090", 1),
];

/// Where an unknown domestic-looking number lands: the issuers of spec §8.1, picked by hash.
const FALLBACK_CODES: &[&str] = &[
    "361", "364", "365", "366", "367", "368", "369", "370", "371", "372", "373", "374", "381",
    "041", "071", "002", "045", "048", "089", "090",
];

/// Bank-issued cards in Korea are check cards.
const CHECK_ONLY_CODES: &[&str] = &["071", "002", "045", "048", "050", "089", "090"];

pub fn issuer_of(number: &CardNumber) -> Issuer {
    let digits = number.digits();
    let bin = number.bin();
    if let Some((_, code, card_type)) = BINS.iter().find(|(b, _, _)| *b == bin) {
        return Issuer {
            card_code: code,
            card_type: *card_type,
        };
    }
    if let Some(code) = network_of(digits) {
        return Issuer {
            card_code: code,
            card_type: 0,
        };
    }
    // FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
    let hash = digits.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let code = FALLBACK_CODES[(hash % FALLBACK_CODES.len() as u64) as usize];
    let card_type = if CHECK_ONLY_CODES.contains(&code) || (hash >> 32) % 4 == 0 {
        1
    } else {
        0
    };
    Issuer {
        card_code: code,
        card_type,
    }
}

/// International brands by their IIN ranges (PortOne's foreign card codes).
fn network_of(digits: &str) -> Option<&'static str> {
    let prefix = |n: usize| {
        digits
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
    match () {
        _ if p2 == 34 || p2 == 37 => Some("10003"),
        _ if (3528..=3589).contains(&p4) => Some("10006"),
        _ if p2 == 36 || p2 == 38 || (300..=305).contains(&p3) => Some("10002"),
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => Some("10004"),
        _ if p2 == 62 => Some("10001"),
        _ if digits.starts_with('4') => Some("10005"),
        _ => None,
    }
}

/// The issuer's holder checks on keyed card data: birth (or business number) and password
/// digits. Returns the refusal if one fails. The caller drops the values right after.
pub fn holder_check(card: &CardData, behaviour: Behaviour) -> Option<Decline> {
    if matches!(
        behaviour,
        Behaviour::Decline {
            decline: WRONG_PASSWORD,
            ..
        }
    ) {
        return Some(WRONG_PASSWORD);
    }
    match &card.birth {
        Some(birth) if WRONG_BIRTHS.contains(&birth.digits()) => Some(WRONG_BIRTH),
        _ => None,
    }
}

/// The installment months the PG applies: lump sum below 50,000 KRW and for 0 or 1 month.
pub fn applied_quota(amount_krw: i64, requested: i64) -> Result<i64, PgError> {
    if !(0..=MAX_QUOTA_MONTHS).contains(&requested) {
        return Err(PgError::Rejected {
            code: "INVALID_QUOTA".into(),
            message: format!("할부개월수는 0~{MAX_QUOTA_MONTHS}개월만 가능합니다."),
        });
    }
    Ok(if amount_krw >= MIN_INSTALLMENT_KRW && requested >= 2 {
        requested
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_domain::{Birth, Expiry};

    fn num(s: &str) -> CardNumber {
        CardNumber::parse(s).unwrap()
    }

    #[test]
    fn every_code_has_a_name() {
        for (_, code, _) in BINS {
            assert!(codes::card_name(code).is_some(), "{code}");
        }
        for code in FALLBACK_CODES
            .iter()
            .chain(["10001", "10002", "10003", "10004", "10005", "10006"].iter())
        {
            assert!(codes::card_name(code).is_some(), "{code}");
        }
    }

    #[test]
    fn test_cards_are_well_formed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for card in TEST_CARDS {
            let n = CardNumber::parse(card.number).unwrap();
            assert!(
                seen.insert(n.digits().to_owned()),
                "duplicate {}",
                card.number
            );
            assert_eq!(behaviour_of(&n), card.behaviour);
        }
    }

    #[test]
    fn issuers() {
        assert_eq!(
            issuer_of(&num("4518-4200-0000-0000")),
            Issuer {
                card_code: "366",
                card_type: 0
            }
        );
        assert_eq!(
            issuer_of(&num("5570-4200-0000-0000")),
            Issuer {
                card_code: "381",
                card_type: 1
            }
        );
        assert_eq!(issuer_of(&num("4242424242424242")).card_code, "10005");
        assert_eq!(issuer_of(&num("5555555555554444")).card_code, "10004");
        assert_eq!(issuer_of(&num("378282246310005")).card_code, "10003");
        assert_eq!(issuer_of(&num("3530111333300000")).card_code, "10006");
        assert_eq!(issuer_of(&num("6200000000000005")).card_code, "10001");
        assert_eq!(issuer_of(&num("36227206271667")).card_code, "10002");
        // Unknown, non-network numbers: deterministic and always a Korean issuer.
        let a = issuer_of(&num("1111-2222-3333-4444"));
        assert_eq!(a, issuer_of(&num("1111222233334444")));
        assert!(FALLBACK_CODES.contains(&a.card_code));
        assert_eq!(
            behaviour_of(&num("1111-2222-3333-4444")),
            Behaviour::Approve
        );
    }

    #[test]
    fn quota_rule() {
        assert_eq!(applied_quota(49_999, 3).unwrap(), 0);
        assert_eq!(applied_quota(50_000, 3).unwrap(), 3);
        assert_eq!(applied_quota(50_000, 1).unwrap(), 0);
        assert!(applied_quota(50_000, 37).is_err());
        assert!(applied_quota(50_000, -1).is_err());
    }

    #[test]
    fn holder_rules() {
        let card = |birth: &str| CardData {
            number: num("4518420000000000"),
            expiry: Expiry::parse("2099-12").unwrap(),
            birth: Some(Birth::parse(birth).unwrap()),
            pwd_2digit: None,
        };
        assert_eq!(holder_check(&card("880101"), Behaviour::Approve), None);
        assert_eq!(
            holder_check(&card("111111"), Behaviour::Approve),
            Some(WRONG_BIRTH)
        );
        assert_eq!(
            holder_check(&card("1111111111"), Behaviour::Approve),
            Some(WRONG_BIRTH)
        );
        let wrong_pwd = behaviour_of(&num("4673-0900-0000-2107"));
        assert_eq!(
            holder_check(&card("880101"), wrong_pwd),
            Some(WRONG_PASSWORD)
        );
    }
}
