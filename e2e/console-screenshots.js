// Takes the console's documentation screenshots (docs/console.md): sign-in, dashboard, payments,
// a payment's detail, the refund confirmation, billing keys, a key with its schedules and the
// delete confirmation, webhooks, settings, the audit log, and the payments list on a phone.
//   node console-screenshots.js   (needs target/debug/pier or PIER_BIN, and /usr/bin/chromium)
'use strict';

const path = require('node:path');
const { spawnSync } = require('node:child_process');
const {
  PIER_BIN, DEMO, CARD_OK, CARD_DECLINE, startPier, startMerchant, withBrowser, rest, uid,
} = require('./lib');

const OUT = path.resolve(__dirname, '..', 'docs', 'screenshots');
const PASSWORD = 'correct horse battery staple';
const tid = (id) => `[data-testid="${id}"]`;

function cli(dir, args, input) {
  const r = spawnSync(PIER_BIN, [...args, '--data-dir', dir], { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

async function pay(base, amount, card, buyer, name) {
  const r = await rest(base, 'POST', '/subscribe/payments/onetime', {
    merchant_uid: uid('order'), amount, card_number: card, expiry: '2030-12', birth: '880101',
    pwd_2digit: '12', name, buyer_name: buyer,
  });
  return r.body.response;
}

(async () => {
  const pier = await startPier();
  const shop = await startMerchant(pier.base);
  try {
    cli(pier.dir, ['merchant', 'set-webhook', '--merchant', DEMO.code, '--url', `${shop.base}/hook`]);
    cli(pier.dir, ['operator', 'create', '--merchant', DEMO.code, '--email', 'admin@shop.example',
      '--role', 'admin', '--password-stdin'], `${PASSWORD}\n`);
    const items = [['머그컵', 14000, '홍길동'], ['텀블러', 23000, '김영희'], ['에코백', 9000, '이철수'],
      ['노트', 4500, '박민수'], ['볼펜 세트', 12000, '최지은']];
    let first;
    for (const [name, amount, buyer] of items) {
      const p = await pay(pier.base, amount, CARD_OK, buyer, name);
      first = first || p;
    }
    await pay(pier.base, 30000, CARD_DECLINE, '정하늘', '키보드');
    const at = Math.floor(Date.now() / 1000) + 86400;
    for (const [cust, name] of [['cust-hong', '홍길동'], ['cust-kim', '김영희'], ['cust-lee', '이철수']]) {
      await rest(pier.base, 'POST', `/subscribe/customers/${cust}`, {
        card_number: CARD_OK, expiry: '2030-12', birth: '880101', pwd_2digit: '12', customer_name: name,
      });
    }
    await rest(pier.base, 'POST', '/subscribe/payments/schedule', {
      customer_uid: 'cust-hong',
      schedules: [1, 2, 3].map((m) => ({
        merchant_uid: `sub-hong-${m}`, schedule_at: at + (m - 1) * 30 * 86400, amount: 9900, name: '월 구독',
      })),
    });
    await withBrowser(async (page) => {
      const shot = (name) => page.screenshot({ path: path.join(OUT, `console-${name}.png`), fullPage: true });
      await page.goto(`${pier.base}/console/login`);
      await shot('login');
      await page.locator(tid('console-login-email')).fill('admin@shop.example');
      await page.locator(tid('console-login-password')).fill(PASSWORD);
      await page.locator(tid('console-login-submit')).click();
      await page.locator(tid('console-dashboard')).waitFor();
      await shot('dashboard');
      await page.locator(tid('console-nav-payments')).click();
      await shot('payments');
      await page.goto(`${pier.base}/console/payments/${first.imp_uid}`);
      await page.locator(tid('console-refund-amount')).fill('4000');
      await page.locator(tid('console-refund-reason')).fill('고객 요청 부분 환불');
      await page.locator(tid('console-refund-submit')).click();
      await shot('refund-confirm');
      await page.locator(tid('console-refund-confirm')).click();
      await page.locator(tid('console-cancel-row')).waitFor();
      await shot('payment');
      await new Promise((r) => setTimeout(r, 1500));
      await page.locator(tid('console-nav-billing')).click();
      await shot('billing');
      await page.goto(`${pier.base}/console/billing/cust-hong`);
      await shot('billing-key');
      await page.locator(tid('console-billing-delete')).click();
      await shot('billing-delete');
      await page.locator(tid('console-nav-webhooks')).click();
      await shot('webhooks');
      await page.locator(tid('console-nav-settings')).click();
      await shot('settings');
      await page.locator(tid('console-nav-audit')).click();
      await shot('audit');
      await page.setViewportSize({ width: 390, height: 844 });
      await page.locator(tid('console-nav-payments')).click();
      await shot('payments-phone');
    }, { viewport: { width: 1200, height: 800 } });
    console.log(`console screenshots written to ${OUT}`);
  } finally {
    await shop.stop();
    await pier.stop();
  }
})().catch((e) => { console.error(e); process.exit(1); });
