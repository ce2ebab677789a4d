// Takes the documentation screenshots: the payment window (card step) and the demo shop.
//   node screenshots.js   (needs target/debug/pier and /usr/bin/chromium)
'use strict';

const path = require('node:path');
const { startPier, withBrowser } = require('./lib');

const OUT = path.resolve(__dirname, '..', 'docs', 'screenshots');

(async () => {
  const pier = await startPier();
  try {
    await withBrowser(async (page) => {
      await page.goto(`${pier.base}/demo`);
      await page.waitForFunction(() => window.IMP && window.IMP.__pier);
      await page.locator('[data-testid=demo-buy]').click();
      const frame = page.frameLocator('[data-testid=pier-iframe]');
      await frame.locator('[data-testid=card-issuer-366]').check();
      await frame.locator('[data-testid=card-number]').fill('4518-4200-0000-0000');
      await frame.locator('[data-testid=card-expiry]').fill('12/30');
      await page.screenshot({ path: path.join(OUT, 'window-card.png') });
      await frame.locator('[data-testid=card-birth]').fill('880101');
      await frame.locator('[data-testid=card-pwd]').fill('12');
      await frame.locator('[data-testid=card-submit]').click();
      await frame.locator('[data-testid=card-approve]').click();
      await page.locator('[data-testid=demo-outcome-title]').waitFor();
      await page.screenshot({ path: path.join(OUT, 'demo-shop.png') });
    }, { viewport: { width: 1000, height: 820 } });
    console.log(`screenshots written to ${OUT}`);
  } finally {
    await pier.stop();
  }
})().catch((e) => { console.error(e); process.exit(1); });
