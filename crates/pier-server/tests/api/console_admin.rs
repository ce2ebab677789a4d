//! The console's billing keys and schedules, webhook settings, imp_secret rotation, channels
//! and operators (docs/console.md), each checked through REST or the store afterwards.

use crate::common::*;
use crate::console::{operator, Console, PASSWORD};
use serde_json::json;

async fn issue_key(t: &TestPier, tok: &str, uid: &str) {
    let (s, b) = t
        .post(
            &format!("/subscribe/customers/{uid}"),
            Some(tok),
            json!({"card_number": CARD_OK, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "customer_name": "Kim"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
}

async fn schedule(t: &TestPier, tok: &str, uid: &str, merchant_uids: &[&str]) {
    let at = t.pier.engine.now() + 86_400;
    let items: Vec<_> = merchant_uids
        .iter()
        .enumerate()
        .map(|(n, m)| json!({"merchant_uid": m, "schedule_at": at + n as i64, "amount": 9900, "name": "monthly"}))
        .collect();
    let (s, b) = t
        .post(
            "/subscribe/payments/schedule",
            Some(tok),
            json!({"customer_uid": uid, "schedules": items}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
}

/// Whether REST still finds the key (a missing key is HTTP 200 with code 1, as i'mport answers).
async fn key_exists(t: &TestPier, tok: &str, uid: &str) -> bool {
    let (s, b) = t.get(&format!("/subscribe/customers/{uid}"), tok).await;
    assert_eq!(s, 200, "{b}");
    b["code"] == 0
}

async fn audit_actions(c: &mut Console) -> String {
    let a = c.get("/console/audit").await;
    assert_eq!(a.status, 200);
    a.body
}

#[tokio::test]
async fn console_billing_keys_masked_unschedule_and_delete_through_rest() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "bk-1").await;
    issue_key(&t, &tok, "bk-2").await;
    schedule(&t, &tok, "bk-1", &["bk-1-a", "bk-1-b"]).await;
    let stored = t
        .pier
        .store()
        .get_customer(DEMO_CODE, "bk-1")
        .await
        .unwrap()
        .unwrap();

    // A viewer reads the list but has no delete or unschedule control, and a post is 403.
    let mut v = operator(&t, DEMO_CODE, "viewer@shop.example", "viewer").await;
    let list = v.get("/console/billing").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("console-billing-row-bk-1"));
    assert!(list.body.contains("console-billing-row-bk-2"));
    assert!(list.body.contains("**** 4444"), "masked card");
    for secret in [
        "1111-2222-3333-4444",
        "1111222233334444",
        &stored.billing_key,
    ] {
        assert!(!list.body.contains(secret), "{secret} shown");
    }
    let k = v.get("/console/billing/bk-1").await;
    assert_eq!(k.status, 200);
    assert!(!k.body.contains("console-billing-delete") && !k.body.contains("console-unschedule"));
    assert!(!k.body.contains(&stored.billing_key));
    let vcsrf = v.csrf().await;
    let p = v
        .post(
            "/console/billing/bk-1/delete",
            &[("csrf", &vcsrf), ("confirm", "1")],
        )
        .await;
    assert_eq!(p.status, 403);
    let p = v
        .post(
            "/console/billing/bk-1/unschedule",
            &[("csrf", &vcsrf), ("merchant_uid", "bk-1-a")],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(
        key_exists(&t, &tok, "bk-1").await,
        "the viewer's posts changed nothing"
    );

    // An operator unschedules one schedule (REST sees it revoked).
    let mut c = operator(&t, DEMO_CODE, "ops@shop.example", "operator").await;
    let csrf = c.csrf().await;
    let k = c.get("/console/billing/bk-1").await;
    assert!(k
        .body
        .contains("data-testid=\"console-billing-scheduled\">2<"));
    assert!(k.body.contains("console-schedule-row-bk-1-a"));
    let p = c
        .post(
            "/console/billing/bk-1/unschedule",
            &[("csrf", &csrf), ("merchant_uid", "bk-1-a")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (_, b) = t.get("/subscribe/payments/schedule/bk-1-a", &tok).await;
    assert_eq!(b["response"]["schedule_status"], "revoked", "{b}");
    let (_, b) = t.get("/subscribe/payments/schedule/bk-1-b", &tok).await;
    assert_eq!(b["response"]["schedule_status"], "scheduled", "{b}");
    // An empty merchant_uid never means "all of the key's schedules".
    let p = c
        .post(
            "/console/billing/bk-1/unschedule",
            &[("csrf", &csrf), ("merchant_uid", "")],
        )
        .await;
    assert_eq!(p.status, 400);
    let (_, b) = t.get("/subscribe/payments/schedule/bk-1-b", &tok).await;
    assert_eq!(b["response"]["schedule_status"], "scheduled", "{b}");

    // Delete: the first step warns about the one waiting schedule and changes nothing.
    let p = c
        .post("/console/billing/bk-1/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("console-billing-delete-warning"));
    assert!(p.body.contains("1건"), "{}", p.body);
    assert!(key_exists(&t, &tok, "bk-1").await);
    let p = c
        .post(
            "/console/billing/bk-1/delete",
            &[("csrf", &csrf), ("confirm", "1")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(
        !key_exists(&t, &tok, "bk-1").await,
        "deleted through the REST use case"
    );
    let (_, b) = t.get("/subscribe/payments/schedule/bk-1-b", &tok).await;
    assert_eq!(b["response"]["schedule_status"], "revoked", "{b}");
    let list = c.get("/console/billing").await;
    assert!(!list.body.contains("console-billing-row-bk-1\""));
    assert!(list.body.contains("console-billing-row-bk-2"));

    let audit = audit_actions(&mut c).await;
    assert!(audit.contains("billing.delete_key") && audit.contains("billing.unschedule"));

    // Another merchant's operator never sees the key.
    let other = t
        .pier
        .engine
        .create_merchant("Other", None, None, None, false)
        .await
        .unwrap();
    let mut o = operator(&t, &other.imp_code, "them@other.example", "admin").await;
    let list = o.get("/console/billing").await;
    assert!(!list.body.contains("bk-2"));
    assert_eq!(o.get("/console/billing/bk-2").await.status, 404);
    let ocsrf = o.csrf().await;
    let p = o
        .post(
            "/console/billing/bk-2/delete",
            &[("csrf", &ocsrf), ("confirm", "1")],
        )
        .await;
    assert_eq!(p.status, 404);
    assert!(key_exists(&t, &tok, "bk-2").await);
}

#[tokio::test]
async fn console_billing_keys_page_by_keyset() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    for n in 0..51 {
        issue_key(&t, &tok, &format!("page-{n:02}")).await;
    }
    let mut c = operator(&t, DEMO_CODE, "viewer@shop.example", "viewer").await;
    let first = c.get("/console/billing").await;
    assert!(first.body.contains("console-billing-row-page-00"));
    assert!(first.body.contains("console-billing-row-page-49"));
    assert!(!first.body.contains("console-billing-row-page-50"));
    let next = first
        .body
        .split("href=\"/console/billing?after=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a next-page link");
    assert_eq!(next, "page-49");
    let second = c.get(&format!("/console/billing?after={next}")).await;
    assert!(second.body.contains("console-billing-row-page-50"));
    assert!(!second.body.contains("console-billing-row-page-49"));
    assert!(!second.body.contains("console-next-page"));
}

/// getToken's status through every instance (one with a single instance): a rotation must
/// reach all of them at once, not when another instance's cached merchant row expires.
async fn get_token_everywhere(t: &TestPier, secret: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for url in t.urls("/users/getToken") {
        let r = t
            .http
            .post(&url)
            .json(&json!({"imp_key": DEMO_KEY, "imp_secret": secret}))
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test]
async fn console_imp_secret_rotation_is_shown_once_and_old_secret_stops_working() {
    let t = TestPier::start().await;
    let mut ops = operator(&t, DEMO_CODE, "ops@shop.example", "operator").await;
    let ocsrf = ops.csrf().await;
    let p = ops
        .post(
            "/console/settings/rotate-secret",
            &[("csrf", &ocsrf), ("confirm", "1")],
        )
        .await;
    assert_eq!(p.status, 403, "an operator cannot rotate");
    t.token().await;
    // Every instance has now read (and cached) the merchant with the old secret.
    let n = t.urls("/users/getToken").len();
    assert_eq!(get_token_everywhere(&t, DEMO_SECRET).await, vec![200; n]);

    let mut c = operator(&t, DEMO_CODE, "admin@shop.example", "admin").await;
    let csrf = c.csrf().await;
    let s = c.get("/console/settings").await;
    assert!(s.body.contains("console-rotate-secret"));
    let p = c
        .post("/console/settings/rotate-secret", &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("console-confirm") && !p.body.contains("console-secret"));
    t.token().await; // the confirmation step changed nothing
    let p = c
        .post(
            "/console/settings/rotate-secret",
            &[("csrf", &csrf), ("confirm", "1")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let secret = p
        .body
        .split("data-testid=\"console-secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new secret")
        .to_owned();
    assert_eq!(secret.len(), 64);
    let (s, b) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!(s, 401, "the old secret stops working: {b}");
    assert_eq!(
        get_token_everywhere(&t, DEMO_SECRET).await,
        vec![401; n],
        "the old secret stops working on every instance at once"
    );
    assert_eq!(get_token_everywhere(&t, &secret).await, vec![200; n]);
    t.token_for(DEMO_KEY, &secret).await;
    // Shown once: no page shows it again.
    for path in ["/console/settings", "/console/audit", "/console/dashboard"] {
        assert!(!c.get(path).await.body.contains(&secret), "{path}");
    }
    assert!(audit_actions(&mut c)
        .await
        .contains("settings.rotate_imp_secret"));
}

#[tokio::test]
async fn console_webhook_target_and_signing_secret() {
    let t = TestPier::start().await;
    let mut ops = operator(&t, DEMO_CODE, "ops@shop.example", "operator").await;
    let ocsrf = ops.csrf().await;
    let w = ops.get("/console/webhooks").await;
    assert!(!w.body.contains("console-webhook-save") && !w.body.contains("console-webhook-rotate"));
    let p = ops
        .post(
            "/console/webhooks/settings",
            &[
                ("csrf", &ocsrf),
                ("url", "https://shop.example/hook"),
                ("format", "json"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);

    let mut c = operator(&t, DEMO_CODE, "admin@shop.example", "admin").await;
    let csrf = c.csrf().await;
    // The CLI's validation: format json|form, an http(s) URL without credentials.
    for (url, format) in [
        ("https://shop.example/hook", "xml"),
        ("ftp://shop.example/hook", "json"),
        ("https://user:pw@shop.example/hook", "json"),
    ] {
        let p = c
            .post(
                "/console/webhooks/settings",
                &[("csrf", &csrf), ("url", url), ("format", format)],
            )
            .await;
        assert_eq!(p.status, 400, "{url} {format}");
    }
    let store = t.pier.store();
    let before = store.get_merchant(DEMO_CODE).await.unwrap().unwrap();
    let p = c
        .post(
            "/console/webhooks/settings",
            &[
                ("csrf", &csrf),
                ("url", "https://shop.example/hook"),
                ("format", "form"),
            ],
        )
        .await;
    let m = store.get_merchant(DEMO_CODE).await.unwrap().unwrap();
    assert_eq!(m.webhook_url.as_deref(), Some("https://shop.example/hook"));
    assert_eq!(m.webhook_format, "form");
    if before.webhook_secret.is_some() {
        assert_eq!(p.status, 303, "{}", p.body);
        assert_eq!(
            m.webhook_secret, before.webhook_secret,
            "saving keeps the secret"
        );
    } else {
        assert_eq!(p.status, 200, "a first secret is shown: {}", p.body);
        assert!(p.body.contains(m.webhook_secret.as_deref().unwrap()));
    }
    let w = c.get("/console/webhooks").await;
    assert!(w.body.contains("value=\"https://shop.example/hook\""));
    assert!(
        !w.body.contains(m.webhook_secret.as_deref().unwrap()),
        "never shown again"
    );

    let p = c
        .post("/console/webhooks/rotate-secret", &[("csrf", &csrf)])
        .await;
    assert!(p.body.contains("console-confirm"));
    let p = c
        .post(
            "/console/webhooks/rotate-secret",
            &[("csrf", &csrf), ("confirm", "1")],
        )
        .await;
    assert_eq!(p.status, 200);
    let rotated = store.get_merchant(DEMO_CODE).await.unwrap().unwrap();
    let new = rotated.webhook_secret.unwrap();
    assert_ne!(Some(&new), m.webhook_secret.as_ref());
    assert!(p
        .body
        .contains(&format!("data-testid=\"console-secret\">{new}<")));

    // Clearing the URL stops deliveries (no target).
    let p = c
        .post(
            "/console/webhooks/settings",
            &[("csrf", &csrf), ("url", ""), ("format", "json")],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(
        store
            .get_merchant(DEMO_CODE)
            .await
            .unwrap()
            .unwrap()
            .webhook_url,
        None
    );
    let audit = audit_actions(&mut c).await;
    assert!(audit.contains("webhook.settings") && audit.contains("webhook.rotate_secret"));
}

#[tokio::test]
async fn console_default_channel_and_operators_never_lose_the_last_admin() {
    let t = TestPier::start().await;
    let second = t
        .pier
        .engine
        .add_channel(DEMO_CODE, "jtnet", None, false, None)
        .await
        .unwrap();
    let mut c = operator(&t, DEMO_CODE, "admin@shop.example", "admin").await;
    let csrf = c.csrf().await;

    // Channels: list, make the second one the default (the only default).
    let s = c.get("/console/settings").await;
    assert!(s
        .body
        .contains(&format!("console-channel-row-{}", second.id)));
    let p = c
        .post(
            "/console/settings/default-channel",
            &[("csrf", &csrf), ("channel_id", &second.id)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let chans = t.pier.engine.merchant_channels(DEMO_CODE).await.unwrap();
    let defaults: Vec<_> = chans
        .iter()
        .filter(|c| c.is_default)
        .map(|c| &c.id)
        .collect();
    assert_eq!(defaults, vec![&second.id]);
    let p = c
        .post(
            "/console/settings/default-channel",
            &[("csrf", &csrf), ("channel_id", "ch_nope")],
        )
        .await;
    assert_eq!(p.status, 404);

    // Operators: create a viewer, who can sign in.
    let p = c
        .post(
            "/console/settings/operators",
            &[
                ("csrf", &csrf),
                ("email", "new@shop.example"),
                ("role", "viewer"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(p.status, 400, "passwords under 12 characters are refused");
    let p = c
        .post(
            "/console/settings/operators",
            &[
                ("csrf", &csrf),
                ("email", "new@shop.example"),
                ("role", "viewer"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let mut n = Console::new(&t);
    assert_eq!(n.sign_in("new@shop.example", PASSWORD).await.status, 303);
    let ops = t.pier.store().list_operators(DEMO_CODE).await.unwrap();
    let newbie = ops.iter().find(|o| o.email == "new@shop.example").unwrap();
    let me = ops
        .iter()
        .find(|o| o.email == "admin@shop.example")
        .unwrap();

    // Promote to operator, then disable: the session stops working, and sign-in fails.
    let p = c
        .post(
            &format!("/console/settings/operators/{}", newbie.id),
            &[("csrf", &csrf), ("role", "operator")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let p = c
        .post(
            &format!("/console/settings/operators/{}", newbie.id),
            &[("csrf", &csrf), ("role", "operator"), ("disabled", "1")],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(
        n.get("/console/dashboard").await.status,
        303,
        "session ended"
    );
    assert_eq!(
        Console::new(&t)
            .sign_in("new@shop.example", PASSWORD)
            .await
            .status,
        401
    );

    // The last enabled admin can neither demote nor disable itself.
    for form in [
        vec![("csrf", csrf.as_str()), ("role", "viewer")],
        vec![
            ("csrf", csrf.as_str()),
            ("role", "admin"),
            ("disabled", "1"),
        ],
    ] {
        let p = c
            .post(&format!("/console/settings/operators/{}", me.id), &form)
            .await;
        assert_eq!(p.status, 409, "{}", p.body);
    }
    let o = t.pier.store().get_operator(&me.id).await.unwrap().unwrap();
    assert_eq!((o.role.as_str(), o.disabled), ("admin", false));
    // With a second admin it can step down.
    let p = c
        .post(
            &format!("/console/settings/operators/{}", newbie.id),
            &[("csrf", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(p.status, 303);
    let p = c
        .post(
            &format!("/console/settings/operators/{}", me.id),
            &[("csrf", &csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(p.status, 303);
    // Now a viewer: no more admin changes.
    let p = c
        .post(
            &format!("/console/settings/operators/{}", newbie.id),
            &[("csrf", &csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(p.status, 403);
    // Another merchant's operator is not found.
    let other = t
        .pier
        .engine
        .create_merchant("Other", None, None, None, false)
        .await
        .unwrap();
    let mut o = operator(&t, &other.imp_code, "them@other.example", "admin").await;
    let ocsrf = o.csrf().await;
    let p = o
        .post(
            &format!("/console/settings/operators/{}", newbie.id),
            &[("csrf", &ocsrf), ("role", "viewer"), ("disabled", "1")],
        )
        .await;
    assert_eq!(p.status, 404);
    let audit = audit_actions(&mut o).await;
    assert!(!audit.contains("new@shop.example"));
    let mut n2 = Console::new(&t);
    assert_eq!(n2.sign_in("admin@shop.example", PASSWORD).await.status, 303);
    let audit = audit_actions(&mut n2).await;
    for action in [
        "settings.default_channel",
        "operator.create",
        "operator.update",
    ] {
        assert!(audit.contains(action), "{action}");
    }
}
