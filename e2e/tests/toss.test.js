// Browser end-to-end tests of window payments through a `tosspayments` channel: IMP.request_pay
// in headless Chromium → Pier's window page loads Toss's SDK (the simulator's imitation) →
// the simulator's hosted window → Toss's redirect to Pier's success/fail URL → confirm server to
// server. Every test checks the REST record afterwards (GET /payments/{imp_uid}).
//
// The simulator is the one e2e/run.sh starts (PIER_E2E_TOSSSIM and its keys), or one started
// here when the file is run on its own. The channel is added with `pier channel add` to the
// data dir of the Pier this file starts, as an operator would.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const {
  PIER_BIN, CARD_OK, DEMO, freePort, waitFor, startPier, startMerchant, withBrowser, requestPay, rest,
  payment, uid,
} = require('../lib');

const T = { timeout: 30000 };
const IFRAME = '[data-testid=pier-iframe]';
const MID = 'toss_e2e';

function run(args, { env = {}, input } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(PIER_BIN, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`pier ${args[0]} ${args[1] || ''}: ${err}`))));
    p.stdin.end(input || '');
  });
}

async function startSim() {
  if (process.env.PIER_E2E_TOSSSIM) {
    return {
      base: process.env.PIER_E2E_TOSSSIM,
      secret: process.env.PIER_E2E_TOSS_SECRET_KEY,
      clientKey: process.env.PIER_E2E_TOSS_CLIENT_KEY,
      stop: async () => {},
    };
  }
  const port = await freePort();
  const secret = `test_sk_e2e_${Date.now()}`;
  const clientKey = 'test_ck_e2e_own';
  const proc = spawn(PIER_BIN, ['tosssim', '--listen', `127.0.0.1:${port}`, '--client-key', clientKey], {
    env: { ...process.env, TOSSSIM_SECRET_KEY: secret },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/healthz`, 15000);
  return {
    base,
    secret,
    clientKey,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { proc.once('exit', r); setTimeout(r, 3000); });
    },
  };
}

describe('Toss Payments window through Pier', () => {
  let pier;
  let shop;
  let sim;

  before(async () => {
    pier = await startPier();
    shop = await startMerchant(pier.base);
    sim = await startSim();
    const out = await run(
      ['channel', 'add', '--data-dir', pier.dir, '--merchant', DEMO.code, '--pg', 'tosspayments',
        '--secret-key-stdin', '--client-key', sim.clientKey, '--api-base', sim.base, '--mid', MID],
      { input: `${sim.secret}\n`, env: pier.env },
    );
    const channel = JSON.parse(out);
    assert.equal(channel.pg_provider, 'tosspayments');
    // Toss's webhooks for this channel go to Pier.
    const r = await fetch(`${sim.base}/admin/webhook`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: `${pier.base}/pg/tosspayments/${channel.id}/webhook` }),
    });
    assert.equal(r.status, 200);
  });

  after(async () => {
    if (sim) await sim.stop();
    if (shop) await shop.stop();
    if (pier) await pier.stop();
  });

  async function openShop(page) {
    await page.goto(`${shop.base}/`);
    await page.waitForFunction(() => window.IMP && window.IMP.__pier);
  }

  /** The Toss window inside Pier's iframe, once Toss's SDK has opened it. */
  async function tossWindow(page, method) {
    const frame = page.frameLocator(IFRAME);
    await frame.locator('[data-testid=toss-window]').waitFor();
    assert.equal(await frame.locator('[data-testid=toss-window]').getAttribute('data-method'), method);
    return frame;
  }

  async function payTossCard(frame, number = CARD_OK) {
    await frame.locator('[data-testid=toss-card-number]').fill(number);
    await frame.locator('[data-testid=toss-card-expiry]').fill('12/30');
    await frame.locator('[data-testid=toss-pay]').click();
  }

  it('card: Toss window, confirmed by Pier, paid', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const merchantUid = uid('toss_card');
      const rspP = requestPay(page, {
        pg: 'tosspayments', pay_method: 'card', merchant_uid: merchantUid, name: '토스 머그컵', amount: 15000,
        buyer_name: '홍길동',
      });
      const frame = await tossWindow(page, '카드');
      assert.equal(await frame.locator('[data-testid=toss-amount]').textContent(), '15000원');
      assert.equal(await frame.locator('[data-testid=toss-order-name]').textContent(), '토스 머그컵');
      await payTossCard(frame);
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      assert.equal(rsp.merchant_uid, merchantUid);
      assert.equal(rsp.paid_amount, 15000);
      const p = await payment(pier.base, rsp.imp_uid);
      assert.equal(p.status, 'paid');
      assert.equal(p.pg_provider, 'tosspayments');
      assert.equal(p.pg_id, MID);
      assert.equal(p.pay_method, 'card');
      assert.equal(p.amount, 15000);
      assert.equal(p.card_code, '366');
      assert.match(p.card_number, /^451842\*+0000$/);
      assert.ok(p.pg_tid && p.apply_num, JSON.stringify(p));
    });
  });

  it('trans (계좌이체): paid with its bank', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const rspP = requestPay(page, {
        pg: 'tosspayments', pay_method: 'trans', merchant_uid: uid('toss_trans'), name: '이체 주문', amount: 12000,
      });
      const frame = await tossWindow(page, '계좌이체');
      await frame.locator('[data-testid=toss-bank]').selectOption('88');
      await frame.locator('[data-testid=toss-pay]').click();
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      const p = await payment(pier.base, rsp.imp_uid);
      assert.equal(p.status, 'paid');
      assert.equal(p.pay_method, 'trans');
      assert.equal(p.bank_code, '088');
    });
  });

  it('phone (휴대폰): paid', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const rspP = requestPay(page, {
        pg: 'tosspayments', pay_method: 'phone', merchant_uid: uid('toss_phone'), name: '휴대폰 주문', amount: 5000,
      });
      const frame = await tossWindow(page, '휴대폰');
      await frame.locator('[data-testid=toss-phone]').fill('010-1234-5678');
      await frame.locator('[data-testid=toss-pay]').click();
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      const p = await payment(pier.base, rsp.imp_uid);
      assert.equal(p.status, 'paid');
      assert.equal(p.pay_method, 'phone');
    });
  });

  it('cancel in the Toss window: F400, nothing paid', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const rspP = requestPay(page, {
        pg: 'tosspayments', pay_method: 'card', merchant_uid: uid('toss_cancel'), amount: 5000,
      });
      const frame = await tossWindow(page, '카드');
      await frame.locator('[data-testid=toss-cancel]').click();
      const rsp = await rspP;
      assert.equal(rsp.success, false);
      assert.equal(rsp.error_code, 'F400', JSON.stringify(rsp));
      const p = await payment(pier.base, rsp.imp_uid);
      assert.equal(p.status, 'failed');
    });
  });

  it('vbank (가상계좌): issued, then paid by the deposit webhook', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const merchantUid = uid('toss_vbank');
      const rspP = requestPay(page, {
        pg: 'tosspayments', pay_method: 'vbank', merchant_uid: merchantUid, name: '가상계좌 주문', amount: 33000,
        buyer_name: '홍길동',
      });
      const frame = await tossWindow(page, '가상계좌');
      await frame.locator('[data-testid=toss-bank]').selectOption('20');
      await frame.locator('[data-testid=toss-pay]').click();
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      assert.ok(rsp.vbank_num, JSON.stringify(rsp));
      let p = await payment(pier.base, rsp.imp_uid);
      assert.equal(p.status, 'ready');
      assert.equal(p.vbank_code, '020');
      assert.equal(p.vbank_num, rsp.vbank_num);
      // The buyer pays into the account at Toss; Toss's webhook reaches Pier, which asks Toss.
      const d = await fetch(`${sim.base}/admin/orders/${encodeURIComponent(rsp.imp_uid)}/deposit`, { method: 'PUT' });
      assert.equal(d.status, 200);
      for (let i = 0; i < 100 && p.status !== 'paid'; i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        p = await payment(pier.base, rsp.imp_uid);
      }
      assert.equal(p.status, 'paid', JSON.stringify(p));
      assert.equal(p.amount, 33000);
    });
  });

  it('window billing key (amount 0), then charged with again', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const customerUid = uid('toss_cust');
      const rspP = requestPay(page, {
        pg: 'tosspayments', pay_method: 'card', merchant_uid: uid('toss_bk'), amount: 0, customer_uid: customerUid,
      });
      const frame = await tossWindow(page, '카드');
      await frame.locator('[data-testid=toss-billing]').waitFor();
      await payTossCard(frame);
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      const c = await rest(pier.base, 'GET', `/subscribe/customers/${encodeURIComponent(customerUid)}`);
      assert.equal(c.body.code, 0, JSON.stringify(c.body));
      assert.equal(c.body.response.card_code, '366');
      assert.equal(c.body.response.pg_provider, 'tosspayments');
      const again = await rest(pier.base, 'POST', '/subscribe/payments/again', {
        customer_uid: customerUid, merchant_uid: uid('toss_again'), amount: 9900, name: '정기결제',
      });
      assert.equal(again.body.code, 0, JSON.stringify(again.body));
      const p = await payment(pier.base, again.body.response.imp_uid);
      assert.equal(p.status, 'paid');
      assert.equal(p.pg_provider, 'tosspayments');
    });
  });
});
