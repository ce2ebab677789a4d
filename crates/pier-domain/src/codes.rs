//! KFTC code tables: card companies and banks (spec §8.1, §8.2).

pub struct Code {
    pub code: &'static str,
    pub name: &'static str,
}

pub const CARDS: &[Code] = &[
    Code {
        code: "361",
        name: "BC카드",
    },
    Code {
        code: "364",
        name: "광주카드",
    },
    Code {
        code: "365",
        name: "삼성카드",
    },
    Code {
        code: "366",
        name: "신한카드",
    },
    Code {
        code: "367",
        name: "현대카드",
    },
    Code {
        code: "368",
        name: "롯데카드",
    },
    Code {
        code: "369",
        name: "수협카드",
    },
    Code {
        code: "370",
        name: "씨티카드",
    },
    Code {
        code: "371",
        name: "NH카드",
    },
    Code {
        code: "372",
        name: "전북카드",
    },
    Code {
        code: "373",
        name: "제주카드",
    },
    Code {
        code: "374",
        name: "하나SK카드",
    },
    Code {
        code: "381",
        name: "KB국민카드",
    },
    Code {
        code: "041",
        name: "우리카드",
    },
    Code {
        code: "071",
        name: "우체국",
    },
    Code {
        code: "002",
        name: "KDB산업은행",
    },
    Code {
        code: "045",
        name: "MG새마을체크",
    },
    Code {
        code: "048",
        name: "신협체크",
    },
    Code {
        code: "050",
        name: "저축은행체크",
    },
    Code {
        code: "089",
        name: "케이뱅크",
    },
    Code {
        code: "090",
        name: "카카오뱅크",
    },
    Code {
        code: "10001",
        name: "UnionPay",
    },
    Code {
        code: "10002",
        name: "Diners",
    },
    Code {
        code: "10003",
        name: "AMEX",
    },
    Code {
        code: "10004",
        name: "Master",
    },
    Code {
        code: "10005",
        name: "VISA",
    },
    Code {
        code: "10006",
        name: "JCB",
    },
];

pub const BANKS: &[Code] = &[
    Code {
        code: "002",
        name: "KDB산업은행",
    },
    Code {
        code: "003",
        name: "IBK기업은행",
    },
    Code {
        code: "004",
        name: "KB국민은행",
    },
    Code {
        code: "007",
        name: "수협은행",
    },
    Code {
        code: "011",
        name: "NH농협은행",
    },
    Code {
        code: "012",
        name: "지역농축협",
    },
    Code {
        code: "020",
        name: "우리은행",
    },
    Code {
        code: "023",
        name: "SC제일은행",
    },
    Code {
        code: "027",
        name: "한국씨티은행",
    },
    Code {
        code: "031",
        name: "iM뱅크",
    },
    Code {
        code: "032",
        name: "부산은행",
    },
    Code {
        code: "034",
        name: "광주은행",
    },
    Code {
        code: "035",
        name: "제주은행",
    },
    Code {
        code: "037",
        name: "전북은행",
    },
    Code {
        code: "039",
        name: "경남은행",
    },
    Code {
        code: "045",
        name: "새마을금고",
    },
    Code {
        code: "048",
        name: "신협",
    },
    Code {
        code: "050",
        name: "저축은행",
    },
    Code {
        code: "064",
        name: "산림조합",
    },
    Code {
        code: "071",
        name: "우체국",
    },
    Code {
        code: "081",
        name: "하나은행",
    },
    Code {
        code: "088",
        name: "신한은행",
    },
    Code {
        code: "089",
        name: "케이뱅크",
    },
    Code {
        code: "090",
        name: "카카오뱅크",
    },
    Code {
        code: "092",
        name: "토스뱅크",
    },
    Code {
        code: "209",
        name: "유안타증권",
    },
    Code {
        code: "218",
        name: "현대증권",
    },
    Code {
        code: "230",
        name: "미래에셋증권",
    },
    Code {
        code: "238",
        name: "대우증권",
    },
    Code {
        code: "240",
        name: "삼성증권",
    },
    Code {
        code: "243",
        name: "한국투자증권",
    },
    Code {
        code: "247",
        name: "우리투자증권",
    },
    Code {
        code: "261",
        name: "교보증권",
    },
    Code {
        code: "262",
        name: "하이투자증권",
    },
    Code {
        code: "263",
        name: "HMC투자증권",
    },
    Code {
        code: "264",
        name: "키움증권",
    },
    Code {
        code: "265",
        name: "이베스트투자증권",
    },
    Code {
        code: "266",
        name: "SK증권",
    },
    Code {
        code: "267",
        name: "대신증권",
    },
    Code {
        code: "269",
        name: "한화투자증권",
    },
    Code {
        code: "270",
        name: "하나대투증권",
    },
    Code {
        code: "278",
        name: "신한금융투자",
    },
    Code {
        code: "279",
        name: "동부증권",
    },
    Code {
        code: "280",
        name: "유진투자증권",
    },
    Code {
        code: "287",
        name: "메리츠종합금융증권",
    },
    Code {
        code: "289",
        name: "NH투자증권",
    },
    Code {
        code: "290",
        name: "부국증권",
    },
];

pub fn card_name(code: &str) -> Option<&'static str> {
    CARDS.iter().find(|c| c.code == code).map(|c| c.name)
}

pub fn bank_name(code: &str) -> Option<&'static str> {
    BANKS.iter().find(|c| c.code == code).map(|c| c.name)
}
