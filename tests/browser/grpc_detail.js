// Opens one exchange in porthole's web inspector in headless Chromium and
// prints, as one JSON line, what its gRPC and trailer sections say.
// Started by tests/integration/test_grpc.py.
//
//   node grpc_detail.js '{"inspector": "http://127.0.0.1:PORT", "id": "2"}'
'use strict';

const {chromium} = require('playwright-core');

const TIMEOUT_MS = 15000;
const args = JSON.parse(process.argv[2]);

(async () => {
  const browser = await chromium.launch({executablePath: '/usr/bin/chromium', args: ['--no-sandbox']});
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    await page.goto(`${args.inspector}/`);
    const row = page.locator(`[data-testid=request-row][data-id="${args.id}"]`);
    await row.waitFor();
    await row.click();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const grpc = page.locator('[data-testid="response-grpc"]');
    try {
      await grpc.waitFor();
    } catch (e) {
      throw new Error(`${e.message}\npage errors: ${errors.join('; ')}\ndetail: ` +
        await page.locator('#detail').innerText().catch(() => '?'));
    }
    const seen = {
      status: await grpc.locator('[data-testid="grpc-status"]').innerText(),
      messages: await grpc.locator('[data-testid="grpc-message"]').allInnerTexts(),
      request_messages: await page.locator(
        '[data-testid="request-grpc"] [data-testid="grpc-message"]').allInnerTexts(),
      trailers: await page.locator('[data-testid="response-trailers"]').count() ?
        await page.locator('[data-testid="response-trailers"]').innerText() : null,
    };
    process.stdout.write(`${JSON.stringify(seen)}\n`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
