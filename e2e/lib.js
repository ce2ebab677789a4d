// Shared harness of the browser tests: a real `pier serve` (fresh temp data dir, random port),
// a tiny merchant site, and headless Chromium driven by playwright-core.
//
// PIER_E2E_INSTANCES=N (2 or 3; needs PIER_TEST_DATABASE_URL and psql) makes `startPier` start
// N `pier serve` on one fresh PostgreSQL database instead, each in its own empty directory with
// the default test PG and one server key, behind a round-robin proxy without sticky sessions
// (issue #20): every request of a test, the browser's and the REST checks', may land on any of
// them. `base` is then the proxy's, and `env` is what a `pier` CLI command needs to reach the
// same database (`--data-dir dir` alone would open a SQLite file there).
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..');
const PIER_BIN = process.env.PIER_BIN || path.join(ROOT, 'target', 'debug', 'pier');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const DEMO = {
  code: 'imp00000001',
  key: '1234567890123456',
  secret: 'demo-secret-0123456789abcdef0123456789abcdef',
};
const CARD_OK = '4518-4200-0000-0000'; // 신한 (366), approved
const CARD_DECLINE = '5570-4200-0000-2112'; // KB국민 (381), insufficient balance

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(url, ms) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch (_) { /* not up yet */ }
    if (Date.now() > until) throw new Error(`${url} did not come up within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Instances per Pier the tests start: PIER_E2E_INSTANCES (default 1). */
const INSTANCES = Number(process.env.PIER_E2E_INSTANCES || 1);

async function startPier() {
  if (!fs.existsSync(PIER_BIN)) throw new Error(`no pier binary at ${PIER_BIN}: run cargo build -p pier`);
  if (!(INSTANCES >= 1 && INSTANCES <= 3 && Number.isInteger(INSTANCES))) {
    throw new Error(`PIER_E2E_INSTANCES=${process.env.PIER_E2E_INSTANCES}: 1, 2 or 3`);
  }
  if (INSTANCES > 1) return startCluster(INSTANCES);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-e2e-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(PIER_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dir, '--webhook-allow-private'], {
    env: {
      ...process.env,
      PIER_DEMO_IMP_CODE: DEMO.code,
      PIER_DEMO_IMP_KEY: DEMO.key,
      PIER_DEMO_IMP_SECRET: DEMO.secret,
      RUST_LOG: process.env.RUST_LOG || 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d.toString()).slice(-20000); });
  await waitFor(`${base}/healthz`, 15000);
  return {
    base,
    dir,
    env: {},
    instances: [base],
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { proc.once('exit', r); setTimeout(r, 3000); });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `psql` on `url`; throws with its error output. */
function psql(url, sql) {
  const r = spawnSync('psql', [url, '-qAtc', sql], { encoding: 'utf8' });
  if (r.error) throw new Error(`psql: ${r.error.code} (PIER_E2E_INSTANCES needs psql and PostgreSQL)`);
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** A new, empty PostgreSQL database on the server of PIER_TEST_DATABASE_URL; dropped by `drop`. */
function freshDatabase() {
  const admin = process.env.PIER_TEST_DATABASE_URL;
  if (!admin) throw new Error('PIER_E2E_INSTANCES > 1 needs PIER_TEST_DATABASE_URL (a PostgreSQL to create databases on)');
  const name = `pier_e2e_${crypto.randomBytes(6).toString('hex')}`;
  psql(admin, `CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => psql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** Round-robin, no stickiness: request n goes to target n mod targets.length. Counts per target. */
async function startProxy(port, targets) {
  const served = targets.map(() => 0);
  let n = 0;
  const server = http.createServer((req, res) => {
    const i = n++ % targets.length;
    served[i] += 1;
    const t = new URL(targets[i]);
    const up = http.request({
      host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers,
    }, (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  server.keepAliveTimeout = 1000;
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { served, stop: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/** One `pier serve` of a cluster: its own empty directory, the cluster's database and key. */
async function startInstance(env, publicUrl, extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-e2e-mi-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(PIER_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--public-url', publicUrl,
    '--data-dir', path.join(dir, 'data'), '--webhook-allow-private', ...extra], {
    env: {
      ...process.env,
      ...env,
      PIER_DEMO_IMP_CODE: DEMO.code,
      PIER_DEMO_IMP_KEY: DEMO.key,
      PIER_DEMO_IMP_SECRET: DEMO.secret,
      RUST_LOG: process.env.RUST_LOG || 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d.toString()).slice(-20000); });
  await waitFor(`${base}/healthz`, 15000);
  return {
    base,
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { proc.once('exit', r); setTimeout(r, 3000); });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `n` instances on one fresh PostgreSQL database behind a round-robin proxy (see the top of this
 * file). The first starts alone (it migrates the new database and creates the demo merchant);
 * the others then start together with the same settings.
 */
async function startCluster(n) {
  const db = freshDatabase();
  const env = { PIER_DATABASE_URL: db.url, PIER_SERVER_KEY: crypto.randomBytes(32).toString('hex') };
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const insts = [];
  let proxy;
  const cliDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-e2e-cli-'));
  const stop = async () => {
    if (proxy) await proxy.stop();
    await Promise.all(insts.map((i) => i.stop()));
    fs.rmSync(cliDir, { recursive: true, force: true });
    db.drop();
    // A round-robin that left an instance idle tested one instance.
    if (proxy && proxy.served.some((s) => s === 0)) throw new Error(`requests per instance: ${proxy.served}`);
  };
  try {
    insts.push(await startInstance(env, base));
    insts.push(...await Promise.all(Array.from({ length: n - 1 }, () => startInstance(env, base))));
    proxy = await startProxy(port, insts.map((i) => i.base));
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    base,
    // A directory of its own for the CLI: with `env` it writes nothing there either.
    dir: cliDir,
    env,
    instances: insts.map((i) => i.base),
    served: proxy.served,
    log: () => insts.map((i, k) => `--- instance ${k} ---\n${i.log()}`).join('\n'),
    stop,
  };
}

/** The merchant's site: a page with the SDK, a redirect landing, and a confirm_url endpoint. */
async function startMerchant(pierBase) {
  const port = await freePort();
  const confirmCalls = [];
  let confirmStatus = 200;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    if (url.pathname === '/confirm' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        confirmCalls.push(JSON.parse(body || '{}'));
        res.writeHead(confirmStatus, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(confirmStatus === 200 ? {} : { reason: '재고 부족' }));
      });
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    if (url.pathname === '/done') {
      res.end('<!doctype html><title>done</title><p id="landed">landed</p>');
      return;
    }
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Merchant</title>
<script src="${pierBase}/v1/iamport.js"></script></head>
<body><h1>Test merchant</h1><script>IMP.init(${JSON.stringify(DEMO.code)});</script></body></html>`);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${port}`,
    confirmCalls,
    setConfirmStatus(s) { confirmStatus = s; },
    stop: () => new Promise((r) => server.close(r)),
  };
}

async function launch() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** A fresh browser for one test (a persistent context per test keeps them independent). */
async function withBrowser(fn, opts = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pier-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    ...opts,
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(10000);
    // Any Content-Security-Policy violation on our pages fails the test.
    const violations = [];
    const watch = (p) => p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    watch(page);
    context.on('page', watch);
    const out = await fn(page, context);
    if (violations.length) throw new Error(`CSP violations: ${violations.join(' | ')}`);
    return out;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

/** Calls IMP.request_pay in the page; resolves with the callback's rsp. */
function requestPay(page, params) {
  return page.evaluate((p) => new Promise((resolve) => IMP.request_pay(p, resolve)), params);
}

async function token(pierBase) {
  const r = await fetch(`${pierBase}/users/getToken`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ imp_key: DEMO.key, imp_secret: DEMO.secret }),
  });
  const b = await r.json();
  return b.response.access_token;
}

async function rest(pierBase, method, p, body) {
  const t = await token(pierBase);
  const r = await fetch(`${pierBase}${p}`, {
    method,
    headers: { Authorization: t, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json() };
}

async function payment(pierBase, impUid) {
  const r = await rest(pierBase, 'GET', `/payments/${encodeURIComponent(impUid)}`);
  if (r.body.code !== 0) throw new Error(`GET /payments/${impUid}: ${JSON.stringify(r.body)}`);
  return r.body.response;
}

/** Fills and submits the card step of the window, then approves in the "app card" step. */
async function payByCard(frame, { issuer = '366', number = CARD_OK, expiry = '12/30', birth = '880101', pwd = '12' } = {}) {
  await frame.locator(`[data-testid=card-issuer-${issuer}]`).check();
  await frame.locator('[data-testid=card-number]').fill(number);
  await frame.locator('[data-testid=card-expiry]').fill(expiry);
  await frame.locator('[data-testid=card-birth]').fill(birth);
  await frame.locator('[data-testid=card-pwd]').fill(pwd);
  await frame.locator('[data-testid=card-submit]').click();
  await frame.locator('[data-testid=card-approve]').click();
}

function uid(prefix) {
  return `${prefix}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
}

module.exports = {
  PIER_BIN, INSTANCES, freePort, waitFor, DEMO, CARD_OK, CARD_DECLINE, startPier, startProxy, startMerchant, launch, withBrowser,
  requestPay, rest, payment, payByCard, uid,
};
