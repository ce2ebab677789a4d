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

/// (Toss bank code, i'mport bank code): the banks Toss issues virtual accounts at
/// (https://docs.tosspayments.com/guides/payment/virtual-account-api lists these 15).
const BANKS: &[(&str, &str)] = &[
    ("39", "039"), // 경남
    ("34", "034"), // 광주
    ("06", "004"), // KB국민 (Toss keeps the pre-merger code 06)
    ("03", "003"), // IBK기업
    ("11", "011"), // NH농협
    ("31", "031"), // DGB대구
    ("32", "032"), // 부산
    ("45", "045"), // 새마을금고
    ("07", "007"), // Sh수협
    ("88", "088"), // 신한
    ("20", "020"), // 우리
    ("71", "071"), // 우체국
    ("37", "037"), // 전북
    ("89", "089"), // 케이뱅크
    ("81", "081"), // 하나
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
            "토스뱅크 has no i'mport code"
        );
    }
}
