//! Every row of the test-card table, keyed and with billing keys, through both connectors.

use crate::common::{card, mid, order, Rig, DEADLINE};
use pier_domain::{Birth, CardNumber, Expiry};
use pier_pg::testpg::{cards, Behaviour, LedgerStatus, TEST_CARDS};
use pier_pg::{CardData, Inquiry, PgError};
use std::time::Instant;

fn expected_issuer(number: &str) -> cards::Issuer {
    cards::issuer_of(&CardNumber::parse(number).unwrap())
}

#[tokio::test]
async fn every_test_card_keyed() {
    let rig = Rig::start().await;
    for tc in TEST_CARDS {
        for (via, pg) in rig.both() {
            let o = order(12_000);
            let started = Instant::now();
            let result = pg.approve_keyed(&mid(), &o, card(tc.number)).await;
            let what = format!("{} via {via}: {result:?}", tc.number);
            let inquiry = pg.inquire(&mid(), &o.order_id).await.unwrap();
            match tc.behaviour {
                Behaviour::Approve
                | Behaviour::IssueFails
                | Behaviour::KeyChargesDecline { .. } => {
                    let a = result.expect(&what);
                    let issuer = expected_issuer(tc.number);
                    assert_eq!(a.amount_krw, 12_000, "{what}");
                    assert_eq!(a.card_code.as_deref(), Some(issuer.card_code), "{what}");
                    assert_eq!(a.card_name.as_deref(), Some(issuer.card_name()), "{what}");
                    assert_eq!(a.card_type, Some(issuer.card_type), "{what}");
                    let masked = CardNumber::parse(tc.number).unwrap().masked();
                    assert_eq!(a.card_number.as_deref(), Some(masked.as_str()), "{what}");
                    let apply = a.apply_num.clone().unwrap();
                    assert!(
                        apply.len() == 8 && apply.chars().all(|c| c.is_ascii_digit()),
                        "{what}"
                    );
                    assert!(
                        a.receipt_url.as_deref().unwrap().starts_with(&rig.base()),
                        "{what}"
                    );
                    assert!(!a.pg_tid.is_empty());
                    assert_eq!(inquiry, Inquiry::Approved(a), "{what}");
                }
                Behaviour::Decline { decline, .. } => {
                    let expected = PgError::Declined {
                        code: decline.code.into(),
                        message: decline.message.into(),
                    };
                    assert_eq!(result.unwrap_err(), expected, "{what}");
                    assert!(decline.message.starts_with(&format!("[{}]", decline.code)));
                    assert_eq!(
                        inquiry,
                        Inquiry::Declined {
                            code: decline.code.into(),
                            message: decline.message.into()
                        }
                    );
                }
                Behaviour::InvalidNumber => {
                    match result {
                        Err(PgError::Rejected { message, .. }) => {
                            assert_eq!(message, "유효하지않은 카드번호를 입력하셨습니다.")
                        }
                        other => panic!("{via}: {other:?}"),
                    }
                    assert_eq!(inquiry, Inquiry::NotFound, "nothing was attempted");
                }
                Behaviour::Timeout => {
                    assert!(matches!(result, Err(PgError::Unknown(_))), "{what}");
                    assert!(
                        started.elapsed() >= DEADLINE,
                        "{via} answered before the deadline"
                    );
                    assert_eq!(inquiry, Inquiry::NotFound, "the PG never processed it");
                }
                Behaviour::LoseResponse => {
                    assert!(matches!(result, Err(PgError::Unknown(_))), "{what}");
                    assert!(started.elapsed() >= DEADLINE);
                    let Inquiry::Approved(a) = inquiry else {
                        panic!("{via}: ledger lacks the approval")
                    };
                    // A retry of the same order gets the stored approval, never a second charge.
                    let again = pg.approve_keyed(&mid(), &o, card(tc.number)).await.unwrap();
                    assert_eq!(again, a);
                    let ledger = rig.engine.ledger_snapshot();
                    assert_eq!(
                        ledger.total(&mid().0, &o.merchant_uid).unwrap().approvals,
                        1
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn every_test_card_with_billing_keys() {
    let rig = Rig::start().await;
    for tc in TEST_CARDS {
        for (via, pg) in rig.both() {
            let issued = pg
                .issue_billing_key(&mid(), "customer-1", card(tc.number))
                .await;
            let what = format!("{} via {via}: {issued:?}", tc.number);
            let key = match tc.behaviour {
                Behaviour::InvalidNumber => {
                    assert!(
                        matches!(&issued, Err(PgError::Rejected { message, .. }) if message == "유효하지않은 카드번호를 입력하셨습니다."),
                        "{what}"
                    );
                    continue;
                }
                Behaviour::IssueFails
                | Behaviour::Decline {
                    issue_ok: false, ..
                } => {
                    match issued {
                        Err(PgError::Rejected { message, .. }) => {
                            assert!(
                                message.starts_with("카드정보 인증 및 빌키 발급에 실패하였습니다."),
                                "{what}"
                            )
                        }
                        other => panic!("{what}: {other:?}"),
                    }
                    continue;
                }
                _ => issued.expect(&what),
            };
            let issuer = expected_issuer(tc.number);
            assert_eq!(key.card_code.as_deref(), Some(issuer.card_code));
            assert_eq!(
                key.card_number,
                Some(CardNumber::parse(tc.number).unwrap().masked())
            );
            assert!(!key
                .billing_key
                .contains(&CardNumber::parse(tc.number).unwrap().digits()[..8]));

            let o = order(9_900);
            let paid = pg.pay_with_key(&mid(), &o, &key.billing_key).await;
            let what = format!("{} via {via} pay_with_key: {paid:?}", tc.number);
            match tc.behaviour {
                Behaviour::Approve | Behaviour::IssueFails => {
                    let a = paid.expect(&what);
                    assert_eq!(a.card_code, key.card_code);
                    assert_eq!(a.card_number, key.card_number);
                }
                Behaviour::Decline { decline, .. } | Behaviour::KeyChargesDecline { decline } => {
                    assert_eq!(paid.unwrap_err(), decline.declined(), "{what}");
                }
                Behaviour::Timeout => {
                    assert!(matches!(paid, Err(PgError::Unknown(_))), "{what}");
                    assert_eq!(
                        pg.inquire(&mid(), &o.order_id).await.unwrap(),
                        Inquiry::NotFound
                    );
                }
                Behaviour::LoseResponse => {
                    assert!(matches!(paid, Err(PgError::Unknown(_))), "{what}");
                    assert!(matches!(
                        pg.inquire(&mid(), &o.order_id).await.unwrap(),
                        Inquiry::Approved(_)
                    ));
                }
                Behaviour::InvalidNumber => unreachable!(),
            }
            let ledger = rig.engine.ledger_snapshot();
            let row = ledger
                .billing_keys
                .iter()
                .find(|k| k.billing_key == key.billing_key)
                .unwrap();
            assert_eq!(row.customer_uid.as_deref(), Some("customer-1"));
            assert_eq!(row.card_number, key.card_number);

            // Deleted keys are gone for good; another MID never sees them.
            let other = pier_pg::Mid::new("someone_else");
            assert!(matches!(
                pg.delete_billing_key(&other, &key.billing_key).await,
                Err(PgError::Rejected { .. })
            ));
            pg.delete_billing_key(&mid(), &key.billing_key)
                .await
                .unwrap();
            let again = pg
                .pay_with_key(&mid(), &order(1_000), &key.billing_key)
                .await;
            assert!(
                matches!(again, Err(PgError::Rejected { ref code, .. }) if code == "UNKNOWN_BILLING_KEY"),
                "{again:?}"
            );
            assert!(matches!(
                pg.delete_billing_key(&mid(), &key.billing_key).await,
                Err(PgError::Rejected { .. })
            ));
        }
    }
}

#[tokio::test]
async fn unknown_numbers_approve_with_a_stable_issuer() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        let a = pg
            .approve_keyed(&mid(), &order(5_000), card("1111-2222-3333-4444"))
            .await
            .unwrap();
        let b = pg
            .approve_keyed(&mid(), &order(5_000), card("1111222233334444"))
            .await
            .unwrap();
        assert_eq!(a.card_code, b.card_code, "{via}");
        assert!(a.card_name.is_some());
        assert_eq!(a.card_number.as_deref(), Some("11112222****4444"));
    }
}

#[tokio::test]
async fn holder_expiry_and_installment_rules() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        // Birth rule: 111111 (or 1111111111) never matches.
        for birth in ["111111", "1111111111"] {
            let mut c = card("4518-4200-0000-0000");
            c.birth = Some(Birth::parse(birth).unwrap());
            let r = pg.approve_keyed(&mid(), &order(1_000), c.clone()).await;
            assert_eq!(r.unwrap_err(), cards::WRONG_BIRTH.declined(), "{via}");
            let r = pg.issue_billing_key(&mid(), "c", c).await;
            assert!(
                matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "2108"),
                "{via}: {r:?}"
            );
        }
        // A business number is fine, and so is no birth at all.
        let mut c = card("4518-4200-0000-0000");
        c.birth = Some(Birth::parse("1234567890").unwrap());
        pg.approve_keyed(&mid(), &order(1_000), c).await.unwrap();
        let c = CardData {
            birth: None,
            pwd_2digit: None,
            ..card("4518-4200-0000-0000")
        };
        pg.approve_keyed(&mid(), &order(1_000), c).await.unwrap();

        // A card past its expiry (by the PG's clock: 2025-01) is refused before any attempt.
        let c = CardData {
            expiry: Expiry::parse("2024-12").unwrap(),
            ..card("4518-4200-0000-0000")
        };
        let o = order(1_000);
        let r = pg.approve_keyed(&mid(), &o, c.clone()).await;
        assert!(
            matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "INVALID_EXPIRY"),
            "{via}: {r:?}"
        );
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound
        );
        assert!(matches!(
            pg.issue_billing_key(&mid(), "c", c).await,
            Err(PgError::Rejected { .. })
        ));
        let c = CardData {
            expiry: Expiry::parse("2025-01").unwrap(),
            ..card("4518-4200-0000-0000")
        };
        pg.approve_keyed(&mid(), &order(1_000), c).await.unwrap();

        // Installments from 50,000 KRW only; 0..=36 months.
        let quota = |amount, months| {
            let mut o = order(amount);
            o.card_quota = months;
            o
        };
        let a = pg
            .approve_keyed(&mid(), &quota(49_999, 3), card("4242424242424242"))
            .await
            .unwrap();
        assert_eq!(a.card_quota, 0, "{via}");
        let a = pg
            .approve_keyed(&mid(), &quota(50_000, 3), card("4242424242424242"))
            .await
            .unwrap();
        assert_eq!(a.card_quota, 3, "{via}");
        let a = pg
            .approve_keyed(&mid(), &quota(50_000, 1), card("4242424242424242"))
            .await
            .unwrap();
        assert_eq!(a.card_quota, 0, "{via}");
        let r = pg
            .approve_keyed(&mid(), &quota(50_000, 37), card("4242424242424242"))
            .await;
        assert!(matches!(r, Err(PgError::Rejected { .. })), "{via}");

        // Amount bounds.
        for bad in [0, -1] {
            let r = pg
                .approve_keyed(&mid(), &order(bad), card("4242424242424242"))
                .await;
            assert!(
                matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "INVALID_AMOUNT"),
                "{via}"
            );
        }
        let mut o = order(1_000);
        o.tax_free_krw = 1_001;
        assert!(matches!(
            pg.approve_keyed(&mid(), &o, card("4242424242424242")).await,
            Err(PgError::Rejected { .. })
        ));
    }
    // A declined attempt is in the ledger as declined, with the PG's code.
    let ledger = rig.engine.ledger_snapshot();
    assert!(ledger
        .orders
        .iter()
        .any(|o| o.status == LedgerStatus::Declined && o.decline_code.as_deref() == Some("2108")));
}

#[tokio::test]
async fn expired_cards_behind_billing_keys_decline_later() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        let c = CardData {
            expiry: Expiry::parse("2025-02").unwrap(),
            ..card("4518-4200-0000-0000")
        };
        let key = pg.issue_billing_key(&mid(), "c", c).await.unwrap();
        pg.pay_with_key(&mid(), &order(1_000), &key.billing_key)
            .await
            .unwrap();
        rig.clock.advance(60 * 24 * 3600);
        let r = pg
            .pay_with_key(&mid(), &order(1_000), &key.billing_key)
            .await;
        assert_eq!(r.unwrap_err(), cards::EXPIRED_CARD.declined(), "{via}");
        rig.clock.set(crate::common::T0);
    }
}

/// `docs/test-cards.md` is the human copy of `TEST_CARDS`: every number and code must be in it.
#[test]
fn the_docs_list_every_test_card() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/test-cards.md");
    let docs = std::fs::read_to_string(&path).expect("docs/test-cards.md");
    for tc in TEST_CARDS {
        assert!(
            docs.contains(&format!("`{}`", tc.number)),
            "{} missing from the docs",
            tc.number
        );
        if let Behaviour::Decline { decline, .. } | Behaviour::KeyChargesDecline { decline } =
            tc.behaviour
        {
            assert!(
                docs.contains(decline.message),
                "{} missing from the docs",
                decline.message
            );
        }
    }
    assert!(docs.contains(cards::WRONG_BIRTH.message));
    for birth in cards::WRONG_BIRTHS {
        assert!(docs.contains(&format!("`{birth}`")));
    }
}
