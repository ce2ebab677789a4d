// Browser end-to-end tests of the merchant console (/console, docs/console.md) in headless
// Chromium against a real `pier serve`: sign in, search, open a payment, refund it partially
// (checked through REST), redeliver a webhook, change the allowed origins, sign out; a viewer
// has no refund form. Operators are created with `pier operator create` on the server's data dir.
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

function pierCli(dir, args, input) {
  const r = spawnSync(PIER_BIN, [...args, '--data-dir', dir], { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pier ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function createOperator(pier, email, role) {
  return pierCli(pier.dir, ['operator', 'create', '--merchant', DEMO.code, '--email', email,
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
    pierCli(pier.dir, ['merchant', 'set-webhook', '--merchant', DEMO.code, '--url', `${shop.base}/hook`]);
    const id = createOperator(pier, 'admin@shop.example', 'admin');
    assert.match(id, /^op_[0-9a-f]{24}$/);
    createOperator(pier, 'viewer@shop.example', 'viewer');
    // A password under 12 characters is refused.
    assert.throws(() => pierCli(pier.dir, ['operator', 'create', '--merchant', DEMO.code,
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
});
