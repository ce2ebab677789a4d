//! Code tables between Toss Payments and i'mport (KFTC) codes.
//!
//! Toss names card issuers and banks with its own two-character codes ("카드사 코드", "은행 코드"
//! on https://docs.tosspayments.com/codes/org-codes); i'mport answers with KFTC codes (spec §8.1
//! for cards). Each table is written once and read both ways. A Toss code that is not here maps
//! to `None` (the approval still stands; `card_code` is just unknown), never to a guess.

/// (Toss issuer code, i'mport card code).
const CARDS: &[(&str, &str)] = &[
    ("31", "361"),   // BC
    ("46", "364"),   // 광주
    ("51", "365"),   // 삼성
    ("41", "366"),   // 신한
    ("61", "367"),   // 현대
    ("71", "368"),   // 롯데
    ("34", "369"),   // 수협
    ("36", "370"),   // 씨티
    ("91", "371"),   // NH농협
    ("35", "372"),   // 전북
    ("42", "373"),   // 제주
    ("21", "374"),   // 하나
    ("11", "381"),   // KB국민
    ("33", "041"),   // 우리
    ("37", "071"),   // 우체국
    ("30", "002"),   // KDB산업
    ("38", "045"),   // 새마을금고
    ("62", "048"),   // 신협
    ("39", "050"),   // 저축은행
    ("3A", "089"),   // 케이뱅크
    ("15", "090"),   // 카카오뱅크
    ("3C", "10001"), // 은련 (UnionPay)
    ("6D", "10002"), // 다이너스 (Diners)
    ("7A", "10003"), // AMEX
    ("4M", "10004"), // Master
    ("4V", "10005"), // VISA
    ("4J", "10006"), // JCB
];

/// (Toss bank code, i'mport bank code): every bank of Toss's two-digit "은행 코드" table that
/// i'mport names. Toss numbers banks with the KFTC code's last two digits except KB국민 (`06`,
/// its pre-merger code, KFTC `004`). Used for a transfer's `bankCode`, a virtual account's
/// `bankCode` and a refund account's `bank` — a buyer's account may be at any of these, not
/// only at the 15 banks that issue virtual accounts ([`VBANK_ISSUERS`]).
///
/// Toss's own table (https://docs.tosspayments.com/codes/org-codes) could not be retrieved
/// while this was written; every row below agrees with three independent reproductions of it
/// (docs/connectors/tosspayments.md, "Bank codes"). Left out: HSBC (`54`, no i'mport code in
/// `pier_domain::codes`) and securities firms (`S…` codes).
const BANKS: &[(&str, &str)] = &[
    ("02", "002"), // KDB산업
    ("03", "003"), // IBK기업
    ("06", "004"), // KB국민
    ("07", "007"), // Sh수협
    ("11", "011"), // NH농협
    ("12", "012"), // 단위농협 (지역 농·축협)
    ("20", "020"), // 우리
    ("23", "023"), // SC제일
    ("27", "027"), // 씨티
    ("31", "031"), // DGB대구 (iM뱅크)
    ("32", "032"), // 부산
    ("34", "034"), // 광주
    ("35", "035"), // 제주
    ("37", "037"), // 전북
    ("39", "039"), // 경남
    ("45", "045"), // 새마을금고
    ("48", "048"), // 신협
    ("50", "050"), // 저축은행
    ("64", "064"), // 산림조합
    ("71", "071"), // 우체국
    ("81", "081"), // 하나
    ("88", "088"), // 신한
    ("89", "089"), // 케이뱅크
    ("90", "090"), // 카카오뱅크
    ("92", "092"), // 토스뱅크
];

/// The Toss bank codes Toss issues virtual accounts at: the 15 banks of
/// https://docs.tosspayments.com/guides/payment/virtual-account-api.
const VBANK_ISSUERS: &[&str] = &[
    "39", "34", "06", "03", "11", "31", "32", "45", "07", "88", "20", "71", "37", "89", "81",
];

pub fn kftc_card_of_toss(toss: &str) -> Option<&'static str> {
    CARDS.iter().find(|(t, _)| *t == toss).map(|(_, k)| *k)
}

pub fn toss_card_of_kftc(kftc: &str) -> Option<&'static str> {
    CARDS.iter().find(|(_, k)| *k == kftc).map(|(t, _)| *t)
}

pub fn kftc_bank_of_toss(toss: &str) -> Option<&'static str> {
    BANKS.iter().find(|(t, _)| *t == toss).map(|(_, k)| *k)
}

pub fn toss_bank_of_kftc(kftc: &str) -> Option<&'static str> {
    BANKS.iter().find(|(_, k)| *k == kftc).map(|(t, _)| *t)
}

/// Toss's code of a bank it issues virtual accounts at (`None` for any other bank).
pub fn toss_vbank_issuer_of_kftc(kftc: &str) -> Option<&'static str> {
    toss_bank_of_kftc(kftc).filter(|t| is_vbank_issuer(t))
}

/// Whether Toss issues virtual accounts at this bank (Toss's code).
pub fn is_vbank_issuer(toss: &str) -> bool {
    VBANK_ISSUERS.contains(&toss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_domain::codes;

    #[test]
    fn tables_are_one_to_one_and_named() {
        for (t, k) in CARDS {
            assert_eq!(kftc_card_of_toss(t), Some(*k));
            assert_eq!(toss_card_of_kftc(k), Some(*t));
            assert!(codes::card_name(k).is_some(), "{k} has no i'mport name");
        }
        for (t, k) in BANKS {
            assert_eq!(kftc_bank_of_toss(t), Some(*k));
            assert_eq!(toss_bank_of_kftc(k), Some(*t));
            assert!(codes::bank_name(k).is_some(), "{k} has no i'mport name");
        }
        assert_eq!(
            kftc_card_of_toss("24"),
            None,
            "토스뱅크 has no i'mport card code"
        );
        for t in VBANK_ISSUERS {
            assert!(
                kftc_bank_of_toss(t).is_some(),
                "issuer {t} not in the bank table"
            );
        }
        assert_eq!(VBANK_ISSUERS.len(), 15);
        // A refund may go to an account at a bank that issues no virtual accounts...
        assert_eq!(toss_bank_of_kftc("090"), Some("90"), "카카오뱅크");
        assert_eq!(toss_bank_of_kftc("092"), Some("92"), "토스뱅크");
        assert_eq!(toss_bank_of_kftc("004"), Some("06"), "KB국민 keeps 06");
        // ...but Toss issues virtual accounts only at its 15.
        assert_eq!(toss_vbank_issuer_of_kftc("090"), None);
        assert_eq!(toss_vbank_issuer_of_kftc("004"), Some("06"));
        assert_eq!(toss_bank_of_kftc("054"), None, "HSBC: no i'mport code");
    }
}
