// A browser behind a load balancer without sticky sessions (issue #20): two `pier serve` on one
// PostgreSQL (each in its own empty directory, one server key), and a round-robin proxy in front
// that sends each request to the next instance. The merchant's page, the SDK, the window's
// pages and its form posts alternate between them, and the payment still completes once.
// Needs PostgreSQL (PIER_TEST_DATABASE_URL and psql); skipped cleanly without it.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  PIER_BIN, DEMO, freePort, waitFor, startProxy, startMerchant, withBrowser, requestPay, payment, payByCard, uid,
} = require('../lib');

const T = { timeout: 30000 };
const DB = process.env.PIER_TEST_DATABASE_URL;
const schema = `e2e_mi_${crypto.randomBytes(6).toString('hex')}`;

/** Creates the test's schema; the reason to skip when PostgreSQL is not there. */
function createSchema() {
  if (!DB) return 'PIER_TEST_DATABASE_URL not set';
  const r = spawnSync('psql', [DB, '-qc', `CREATE SCHEMA ${schema}`], { encoding: 'utf8' });
  if (r.error) return `psql not found (${r.error.code})`;
  if (r.status !== 0) return `PostgreSQL not reachable: ${r.stderr.trim()}`;
  return null;
}
const skip = createSchema();

async function startInstance(url, publicUrl, serverKey, extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-e2e-mi-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(PIER_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--public-url', publicUrl,
    '--data-dir', path.join(dir, 'data'), '--webhook-allow-private', ...extra], {
    env: {
      ...process.env,
      PIER_DATABASE_URL: url,
      PIER_SERVER_KEY: serverKey,
      PIER_DEMO_IMP_CODE: DEMO.code,
      PIER_DEMO_IMP_KEY: DEMO.key,
      PIER_DEMO_IMP_SECRET: DEMO.secret,
      RUST_LOG: process.env.RUST_LOG || 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitFor(`${base}/healthz`, 15000);
  return {
    base,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { proc.once('exit', r); setTimeout(r, 3000); });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('two instances behind a round-robin proxy', { skip: skip || false }, () => {
  let a; let b; let proxy; let shop; let base;

  before(async () => {
    const sep = DB.includes('?') ? '&' : '?';
    const url = `${DB}${sep}options=-c%20search_path%3D${schema}`;
    const serverKey = crypto.randomBytes(32).toString('hex');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    a = await startInstance(url, base, serverKey);
    b = await startInstance(url, base, serverKey, ['--no-demo']);
    proxy = await startProxy(port, [a.base, b.base]);
    shop = await startMerchant(base);
  });

  after(async () => {
    if (shop) await shop.stop();
    if (proxy) await proxy.stop();
    if (a) await a.stop();
    if (b) await b.stop();
    spawnSync('psql', [DB, '-qc', `DROP SCHEMA ${schema} CASCADE`]);
  });

  it('a window opened through one instance completes through the other', T, async () => {
    await withBrowser(async (page) => {
      await page.goto(`${shop.base}/`);
      await page.waitForFunction(() => window.IMP && window.IMP.__pier);
      const before = proxy.served.slice();
      const merchantUid = uid('mi');
      const rspP = requestPay(page, { pg: 'jtnet', pay_method: 'card', merchant_uid: merchantUid, name: '머그컵', amount: 14000 });
      await payByCard(page.frameLocator('[data-testid=pier-iframe]'));
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      assert.equal(rsp.paid_amount, 14000);
      // The window's requests went to both instances.
      const during = proxy.served.map((s, i) => s - before[i]);
      assert.ok(during.every((s) => s > 0), `requests per instance: ${during}`);
      // Both instances answer the same record.
      for (const inst of [a, b]) {
        const p = await payment(inst.base, rsp.imp_uid);
        assert.equal(p.status, 'paid');
        assert.equal(p.merchant_uid, merchantUid);
        assert.equal(p.amount, 14000);
      }
    });
  });
});
