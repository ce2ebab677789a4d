// Browser end-to-end tests of identity verification: IMP.certification in a real headless
// Chromium against a real `pier serve`, through the test identity provider's window (the code is
// always 123456, docs/test-identities.md), in an iframe, a popup and a mobile redirect. Every test
// checks the REST record afterwards (getToken + GET /certifications/{imp_uid}).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startPier, startMerchant, withBrowser, rest, uid } = require('../lib');

const T = { timeout: 30000 };
const IFRAME = '[data-testid=pier-iframe]';

async function certification(pierBase, impUid) {
  const r = await rest(pierBase, 'GET', `/certifications/${encodeURIComponent(impUid)}`);
  if (r.body.code !== 0) throw new Error(`GET /certifications/${impUid}: ${JSON.stringify(r.body)}`);
  return r.body.response;
}

/** Fills the provider's window (page or frame): the person, then a wrong code, then the right one. */
async function verify(w, { carrier = 'KT', name = '홍길동', birth = '19880101', gender = '1', phone = '010-1234-5678' } = {}) {
  await w.locator('[data-testid=testid-carrier]').selectOption(carrier);
  await w.locator('[data-testid=testid-name]').fill(name);
  await w.locator('[data-testid=testid-birth]').fill(birth);
  await w.locator('[data-testid=testid-gender-digit]').fill(gender);
  await w.locator('[data-testid=testid-phone]').fill(phone);
  await w.locator('[data-testid=testid-request]').click();
  assert.equal(await w.locator('[data-testid=testid-sms-code]').textContent(), '123456');
  await w.locator('[data-testid=testid-otp]').fill('000000');
  await w.locator('[data-testid=testid-confirm]').click();
  assert.match(await w.locator('[data-testid=testid-error]').textContent(), /인증번호가 일치하지 않습니다/);
  await w.locator('[data-testid=testid-otp]').fill('123456');
  await w.locator('[data-testid=testid-confirm]').click();
}

function certify(page, params) {
  return page.evaluate((p) => new Promise((resolve) => IMP.certification(p, resolve)), params);
}

describe('IMP.certification and the test identity provider', () => {
  let pier;
  let shop;

  before(async () => {
    pier = await startPier();
    shop = await startMerchant(pier.base);
  });

  after(async () => {
    if (shop) await shop.stop();
    if (pier) await pier.stop();
  });

  async function openShop(page) {
    await page.goto(`${shop.base}/`);
    await page.waitForFunction(() => window.IMP && window.IMP.__pier);
  }

  it('iframe: certified, result by callback, REST record', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const merchantUid = uid('cert');
      const rspP = certify(page, { merchant_uid: merchantUid, company: 'Pier 상점', min_age: 19 });
      const frame = page.frameLocator(IFRAME);
      assert.equal(await frame.locator('[data-testid=testid-company]').textContent(), 'Pier 상점');
      await verify(frame);
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      assert.equal(rsp.merchant_uid, merchantUid);
      assert.equal(rsp.error_code, null);
      assert.equal(await page.locator('[data-testid=pier-overlay]').count(), 0, 'overlay removed');
      const c = await certification(pier.base, rsp.imp_uid);
      assert.equal(c.certified, true);
      assert.equal(c.name, '홍길동');
      assert.equal(c.birthday, '1988-01-01');
      assert.equal(c.gender, 'male');
      assert.equal(c.phone, '01012345678');
      assert.equal(c.carrier, 'KT');
      assert.equal(c.merchant_uid, merchantUid);
      assert.equal(c.origin, shop.base);
      assert.equal(c.unique_key.length, 88);
      assert.equal(c.unique_in_site.length, 64);
      assert.ok(Number.isInteger(c.certified_at) && c.certified_at > 0);
    });
  });

  it('popup: certified, result by callback', T, async () => {
    await withBrowser(async (page, context) => {
      await openShop(page);
      const popupP = context.waitForEvent('page');
      const rspP = certify(page, { merchant_uid: uid('cert-popup'), popup: true, name: '김영희', carrier: 'LGT' });
      const popup = await popupP;
      await popup.waitForURL(/\/testid\//);
      // Prefilled from the parameters.
      assert.equal(await popup.locator('[data-testid=testid-name]').inputValue(), '김영희');
      await verify(popup, { carrier: 'LGT', name: '김영희', birth: '020304', gender: '4', phone: '01098765432' });
      const rsp = await rspP;
      assert.equal(rsp.success, true, JSON.stringify(rsp));
      const c = await certification(pier.base, rsp.imp_uid);
      assert.equal(c.certified, true);
      assert.equal(c.birthday, '2002-03-04');
      assert.equal(c.gender, 'female');
      assert.equal(c.carrier, 'LGT');
    });
  });

  it('mobile: full-page redirect to m_redirect_url with imp_uid, merchant_uid, success', T, async () => {
    const { devices } = require('playwright-core');
    const iphone = devices['iPhone 13'];
    await withBrowser(async (page) => {
      await openShop(page);
      const merchantUid = uid('cert-mobile');
      await page.evaluate(({ mu, redirect }) => {
        IMP.certification({ merchant_uid: mu, m_redirect_url: redirect });
      }, { mu: merchantUid, redirect: `${shop.base}/done?step=cert#top` });
      await page.waitForURL(/\/testid\//);
      await verify(page);
      await page.waitForURL(/\/done\?/);
      const u = new URL(page.url());
      assert.equal(u.searchParams.get('step'), 'cert');
      assert.equal(u.searchParams.get('merchant_uid'), merchantUid);
      assert.equal(u.searchParams.get('success'), 'true');
      assert.equal(u.hash, '#top');
      const c = await certification(pier.base, u.searchParams.get('imp_uid'));
      assert.equal(c.certified, true);
      assert.equal(c.merchant_uid, merchantUid);
    }, { userAgent: iphone.userAgent, viewport: iphone.viewport, isMobile: true, hasTouch: true });
  });

  it('closing the window cancels with F400; nothing certified', T, async () => {
    await withBrowser(async (page) => {
      await openShop(page);
      const rspP = certify(page, { merchant_uid: uid('cert-close') });
      await page.frameLocator(IFRAME).locator('[data-testid=testid-name]').waitFor();
      await page.locator('[data-testid=pier-close]').click();
      const rsp = await rspP;
      assert.equal(rsp.success, false);
      assert.equal(rsp.error_code, 'F400');
      assert.equal(rsp.error_msg, '사용자가 본인인증을 취소하였습니다');
      const c = await certification(pier.base, rsp.imp_uid);
      assert.equal(c.certified, false);
      assert.equal(c.name, null);
    });
  });
});
