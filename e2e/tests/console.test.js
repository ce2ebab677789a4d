// Browser end-to-end tests of the merchant console (/console, docs/console.md) in headless
// Chromium against a real `pier serve`: sign in, search, open a payment, refund it partially
// (checked through REST), redeliver a webhook, change the allowed origins, sign out; a viewer
// has no refund form; another merchant's operator sees none of these payments; posts without
// the CSRF token or from another site are refused. Operators are created with `pier operator create` on the server's data dir.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const {
  PIER_BIN, DEMO, CARD_OK, startPier, startMerchant, withBrowser, rest, payment, uid,
} = require('../lib');

const T = { timeout: 60000 };
const PASSWORD = 'correct horse battery staple';
const tid = (id) => `[data-testid="${id}"]`;

/** A `pier` command on the server's data dir (and its database when it has several instances). */
function pierCli(pier, args, input) {
  const r = spawnSync(PIER_BIN, [...args, '--data-dir', pier.dir], {
    input, encoding: 'utf8', env: { ...process.env, ...pier.env },
  });
  if (r.status !== 0) throw new Error(`pier ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function createOperator(pier, email, role) {
  return pierCli(pier, ['operator', 'create', '--merchant', DEMO.code, '--email', email,
    '--role', role, '--password-stdin'], `${PASSWORD}\n`);
}

async function signIn(page, base, email, password = PASSWORD) {
  await page.goto(`${base}/console/login`);
  await page.locator(tid('console-login-email')).fill(email);
  await page.locator(tid('console-login-password')).fill(password);
  await page.locator(tid('console-login-submit')).click();
}

describe('Pier merchant console', () => {
  let pier;
  let shop;
  let paid;
  const buyer = `김콘솔${Math.floor(Math.random() * 1e4)}`;

  before(async () => {
    pier = await startPier();
    shop = await startMerchant(pier.base);
    // Webhooks to the shop (it answers 200 to any POST), so the delivery log has a row.
    pierCli(pier, ['merchant', 'set-webhook', '--merchant', DEMO.code, '--url', `${shop.base}/hook`]);
    const id = createOperator(pier, 'admin@shop.example', 'admin');
    assert.match(id, /^op_[0-9a-f]{24}$/);
    createOperator(pier, 'viewer@shop.example', 'viewer');
    // A password under 12 characters is refused.
    assert.throws(() => pierCli(pier, ['operator', 'create', '--merchant', DEMO.code,
      '--email', 'short@shop.example', '--role', 'viewer', '--password-stdin'], 'elevenchars\n'), /12 characters/);
    const r = await rest(pier.base, 'POST', '/subscribe/payments/onetime', {
      merchant_uid: uid('console'), amount: 12000, card_number: CARD_OK, expiry: '2030-12',
      birth: '880101', pwd_2digit: '12', name: '머그컵', buyer_name: buyer,
    });
    assert.equal(r.body.code, 0, JSON.stringify(r.body));
    paid = r.body.response;
  });

  after(async () => {
    if (shop) await shop.stop();
    if (pier) await pier.stop();
  });

  it('sign in, search, open, refund partially, redeliver, change origins, sign out', T, async () => {
    await withBrowser(async (page) => {
      // A wrong password: the failure text, no session.
      await signIn(page, pier.base, 'admin@shop.example', 'not the password');
      await assert.doesNotReject(page.locator(tid('console-login-error')).waitFor());
      const wrong = await page.locator(tid('console-login-error')).textContent();
      await signIn(page, pier.base, 'nobody@shop.example');
      assert.equal(await page.locator(tid('console-login-error')).textContent(), wrong);

      await signIn(page, pier.base, 'admin@shop.example');
      await page.locator(tid('console-dashboard')).waitFor();
      assert.equal(await page.locator(`svg${tid('console-chart')}`).count(), 1);
      assert.equal(await page.locator(tid('console-test-mode')).count(), 1, 'test-mode banner');

      // Search by buyer name, open the payment by clicking its row.
      await page.locator(tid('console-nav-payments')).click();
      await page.locator(tid('console-payments')).waitFor();
      await page.locator(tid('console-search')).fill(buyer);
      await page.locator(tid('console-search-submit')).click();
      await page.waitForURL(/q=/);
      const row = page.locator(tid(`console-payment-row-${paid.imp_uid}`));
      assert.equal(await page.locator('[data-testid^="console-payment-row-"]').count(), 1);
      await row.locator('td').first().click();
      await page.locator(tid('console-payment-detail')).waitFor();
      assert.equal(await page.locator(tid('console-payment-amount')).textContent(), '12,000원');
      assert.equal(await page.locator(tid('console-payment-status')).getAttribute('data-status'), 'paid');

      // Partial refund with a reason and the confirmation step.
      await page.locator(tid('console-refund-amount')).fill('2000');
      await page.locator(tid('console-refund-reason')).fill('고객 변심');
      await page.locator(tid('console-refund-submit')).click();
      await page.locator(tid('console-refund-confirm')).click();
      await page.locator(tid('console-cancel-row')).waitFor();
      assert.equal(await page.locator(tid('console-cancel-row')).count(), 1);
      const p = await payment(pier.base, paid.imp_uid);
      assert.equal(p.cancel_amount, 2000);
      assert.equal(p.cancel_history.length, 1);
      assert.equal(p.cancel_history[0].reason, '고객 변심');

      // The webhook delivery log, and a redelivery.
      await page.locator(tid('console-nav-webhooks')).click();
      for (let i = 0; i < 50 && await page.locator(tid('console-webhook-row')).count() === 0; i += 1) {
        await new Promise((r) => setTimeout(r, 200));
        await page.reload();
      }
      assert.ok(await page.locator(tid('console-webhook-row')).count() >= 1, 'a delivery is logged');
      await page.locator(tid('console-webhook-redeliver')).first().click();
      await page.waitForURL(/redelivered=1/);

      // Allowed origins (admin).
      await page.locator(tid('console-nav-settings')).click();
      await page.locator(tid('console-allowed-origins')).fill('HTTPS://Shop.Example\nhttps://m.shop.example');
      await page.locator(tid('console-settings-save')).click();
      await page.waitForURL(/saved=1/);
      assert.equal(await page.locator(tid('console-allowed-origins')).inputValue(),
        'https://shop.example\nhttps://m.shop.example');

      // The audit log names who did each change.
      await page.locator(tid('console-nav-audit')).click();
      const audit = await page.locator(tid('console-audit')).textContent();
      for (const what of ['payment.refund', 'webhook.redeliver', 'settings.allowed_origins']) {
        assert.ok(audit.includes(what), what);
      }

      // Sign out: back to the sign-in form, and the console is closed.
      await page.locator(tid('console-logout')).click();
      await page.locator(tid('console-login-email')).waitFor();
      await page.goto(`${pier.base}/console/payments`);
      await page.locator(tid('console-login-email')).waitFor();
    });
  });

  it('billing keys: open a key, unschedule one, delete the key after the warning', T, async () => {
    const cust = uid('bk');
    let r = await rest(pier.base, 'POST', `/subscribe/customers/${cust}`, {
      card_number: CARD_OK, expiry: '2030-12', birth: '880101', pwd_2digit: '12', customer_name: '김빌링',
    });
    assert.equal(r.body.code, 0, JSON.stringify(r.body));
    const at = Math.floor(Date.now() / 1000) + 86400;
    const [s1, s2] = [uid('sch'), uid('sch')];
    r = await rest(pier.base, 'POST', '/subscribe/payments/schedule', {
      customer_uid: cust,
      schedules: [{ merchant_uid: s1, schedule_at: at, amount: 9900, name: '월 구독' },
        { merchant_uid: s2, schedule_at: at + 60, amount: 9900, name: '월 구독' }],
    });
    assert.equal(r.body.code, 0, JSON.stringify(r.body));
    await withBrowser(async (page) => {
      await signIn(page, pier.base, 'admin@shop.example');
      await page.locator(tid('console-nav-billing')).click();
      const row = page.locator(tid(`console-billing-row-${cust}`));
      assert.match(await row.textContent(), /\*\*\*\* \d{4}/);
      await row.locator('td').first().click();
      await page.locator(tid('console-billing-key')).waitFor();
      assert.equal(await page.locator(tid('console-billing-scheduled')).textContent(), '2');
      await page.locator(tid(`console-schedule-row-${s1}`)).locator(tid('console-unschedule')).click();
      await page.waitForURL(/unscheduled=1/);
      r = await rest(pier.base, 'GET', `/subscribe/payments/schedule/${s1}`);
      assert.equal(r.body.response.schedule_status, 'revoked');
      await page.locator(tid('console-billing-delete')).click();
      assert.match(await page.locator(tid('console-billing-delete-warning')).textContent(), /1건/);
      await page.locator(tid('console-billing-delete-confirm')).click();
      await page.waitForURL(/deleted=1/);
      r = await rest(pier.base, 'GET', `/subscribe/customers/${cust}`);
      assert.equal(r.body.code, 1, 'the key is gone through REST');
      r = await rest(pier.base, 'GET', `/subscribe/payments/schedule/${s2}`);
      assert.equal(r.body.response.schedule_status, 'revoked');
    });
  });

  it('webhook target, operators and the default channel from the settings pages', T, async () => {
    await withBrowser(async (page) => {
      await signIn(page, pier.base, 'admin@shop.example');
      await page.locator(tid('console-nav-webhooks')).click();
      await page.locator(tid('console-webhook-url')).fill(`${shop.base}/hook2`);
      await page.locator(tid('console-webhook-format')).selectOption('form');
      await page.locator(tid('console-webhook-save')).click();
      await page.waitForURL(/saved=1/);
      assert.equal(await page.locator(tid('console-webhook-url')).inputValue(), `${shop.base}/hook2`);
      await page.locator(tid('console-webhook-rotate')).click();
      await page.locator(tid('console-confirm')).click();
      assert.match(await page.locator(tid('console-secret')).textContent(), /^whsec_/);

      await page.locator(tid('console-nav-settings')).click();
      assert.equal(await page.locator(tid('console-channel-default')).count(), 1);
      await page.locator(tid('console-operator-email')).fill('new.ops@shop.example');
      await page.locator(tid('console-operator-new-role')).selectOption('operator');
      await page.locator(tid('console-operator-password')).fill(PASSWORD);
      await page.locator(tid('console-operator-create')).click();
      await page.waitForURL(/saved=1/);
      const op = page.locator('[data-testid="console-operator-row"][data-email="new.ops@shop.example"]');
      assert.equal(await op.locator(tid('console-operator-role')).inputValue(), 'operator');
      await op.locator(tid('console-operator-disabled')).check();
      await op.locator(tid('console-operator-save')).click();
      await page.waitForURL(/saved=1/);
      // The last admin cannot demote itself.
      const me = page.locator('[data-testid="console-operator-row"][data-email="admin@shop.example"]');
      await me.locator(tid('console-operator-role')).selectOption('viewer');
      await me.locator(tid('console-operator-save')).click();
      assert.match(await page.locator(tid('console-message')).textContent(), /last enabled admin/);
      await page.goto(`${pier.base}/console/audit`);
      const audit = await page.locator(tid('console-audit')).textContent();
      for (const what of ['webhook.settings', 'webhook.rotate_secret', 'operator.create', 'operator.update']) {
        assert.ok(audit.includes(what), what);
      }
    });
  });

  it("another merchant's operator sees none of these payments; CSRF-less and cross-site posts are refused", T, async () => {
    const other = JSON.parse(pierCli(pier, ['merchant', 'create', '--name', 'Other shop', '--json']));
    pierCli(pier, ['operator', 'create', '--merchant', other.imp_code, '--email', 'admin@other.example',
      '--role', 'admin', '--password-stdin'], `${PASSWORD}\n`);
    await withBrowser(async (page) => {
      await signIn(page, pier.base, 'admin@other.example');
      await page.locator(tid('console-dashboard')).waitFor();
      // The list, a search by the demo merchant's imp_uid and by its buyer, the detail URL, the CSV.
      await page.goto(`${pier.base}/console/payments`);
      await page.locator(tid('console-payments')).waitFor();
      assert.equal(await page.locator(tid(`console-payment-row-${paid.imp_uid}`)).count(), 0);
      for (const q of [paid.imp_uid, buyer]) {
        await page.goto(`${pier.base}/console/payments?q=${encodeURIComponent(q)}`);
        await page.locator(tid('console-payments')).waitFor();
        assert.equal(await page.locator('[data-testid^="console-payment-row-"]').count(), 0, q);
      }
      const detail = await page.goto(`${pier.base}/console/payments/${paid.imp_uid}`);
      assert.equal(detail.status(), 404);
      assert.equal(await page.locator(tid('console-payment-detail')).count(), 0);
      // The browser's own cookies, outside the page (the console's CSP allows no fetch).
      const csv = await page.context().request.get(`${pier.base}/console/payments.csv`);
      assert.equal(csv.status(), 200);
      assert.ok(!(await csv.text()).includes(paid.imp_uid), 'not in the CSV');

      // Signed in as the demo merchant's admin: a post without the CSRF token is refused...
      await signIn(page, pier.base, 'admin@shop.example');
      await page.locator(tid('console-dashboard')).waitFor();
      const before = (await payment(pier.base, paid.imp_uid)).cancel_amount;
      const noToken = await page.context().request.post(
        `${pier.base}/console/payments/${paid.imp_uid}/refund`,
        { form: { amount: '1000', reason: 'csrf' }, maxRedirects: 0 },
      );
      assert.equal(noToken.status(), 403);
      // ...and so is a form another site makes the browser submit (Origin is not Pier's).
      await page.setContent(`<form method="post" action="${pier.base}/console/payments/${paid.imp_uid}/refund">
        <input name="amount" value="1000"><input name="reason" value="cross-site"><input name="csrf" value="guess">
        <button id="go">go</button></form>`);
      const [crossSite] = await Promise.all([page.waitForNavigation(), page.locator('#go').click()]);
      assert.equal(crossSite.status(), 403);
      assert.equal((await payment(pier.base, paid.imp_uid)).cancel_amount, before, 'nothing refunded');
    });
  });

  it('a viewer reads but has no refund form', T, async () => {
    await withBrowser(async (page) => {
      await signIn(page, pier.base, 'viewer@shop.example');
      await page.locator(tid('console-dashboard')).waitFor();
      await page.goto(`${pier.base}/console/payments/${paid.imp_uid}`);
      await page.locator(tid('console-payment-detail')).waitFor();
      assert.equal(await page.locator(tid('console-refund-submit')).count(), 0);
      await page.locator(tid('console-nav-settings')).click();
      assert.equal(await page.locator(tid('console-settings-save')).count(), 0);
      assert.equal(await page.locator(tid('console-allowed-origins')).isDisabled(), true);
    });
  });

  // Last: after it the demo secret the other tests use for REST no longer works.
  it('rotating imp_secret shows it once; the old secret stops working for getToken', T, async () => {
    await withBrowser(async (page) => {
      await signIn(page, pier.base, 'admin@shop.example');
      await page.locator(tid('console-nav-settings')).click();
      await page.locator(tid('console-rotate-secret')).click();
      await page.locator(tid('console-confirm')).click();
      const secret = (await page.locator(tid('console-secret')).textContent()).trim();
      const getToken = async (s) => {
        const r = await fetch(`${pier.base}/users/getToken`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ imp_key: DEMO.key, imp_secret: s }),
        });
        return r.status;
      };
      assert.equal(await getToken(DEMO.secret), 401);
      assert.equal(await getToken(secret), 200);
      await page.goto(`${pier.base}/console/settings`);
      assert.equal(await page.locator(tid('console-secret')).count(), 0, 'not shown again');
      assert.ok(!(await page.content()).includes(secret));
    });
  });
});
