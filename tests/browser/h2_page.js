// Loads a page through an https tunnel in headless Chromium (Debian's
// /usr/bin/chromium, through playwright-core) and says, as one JSON line,
// which protocol the page and each of its fetch calls went over, and what
// the fetches got. Started by tests/integration/test_http2_browser.py.
//
//   node h2_page.js '{"url": "https://NAME.localhost:PORT/fetch-page"}'
'use strict';

const {chromium} = require('playwright-core');

const TIMEOUT_MS = 15000;
const args = JSON.parse(process.argv[2]);

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // *.localhost is loopback already; the dev CA is not the system's.
    args: ['--no-sandbox'],
  });
  try {
    const context = await browser.newContext({ignoreHTTPSErrors: true});
    context.setDefaultTimeout(TIMEOUT_MS);
    const page = await context.newPage();
    await page.goto(args.url);
    await page.waitForFunction(() => window.__done === true, null, {timeout: TIMEOUT_MS});
    const seen = await page.evaluate(() => ({
      page: performance.getEntriesByType('navigation')[0].nextHopProtocol,
      fetches: performance.getEntriesByType('resource').map((e) => e.nextHopProtocol),
      bodies: window.__bodies || null,
      error: window.__error || null,
    }));
    process.stdout.write(`${JSON.stringify(seen)}\n`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
