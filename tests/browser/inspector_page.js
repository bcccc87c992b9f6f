// Drives porthole's web inspector in headless Chromium (Debian's
// /usr/bin/chromium, through playwright-core), as a person would use it.
// Started by tests/integration/test_inspector_page.py, which runs portholed,
// porthole and the local service, and makes the requests through the tunnel.
//
//   node inspector_page.js '{"inspector": "http://127.0.0.1:PORT", "public_url": "...",
//                            "first_path": "/echo/...", "screenshot": "/path/inspector.png"}'
//
// Talks with the Python side in lines: it prints "STEP <what>" as it goes and
// "ASK <what>" when Python has to act (send a request, stop the service);
// Python answers with one line on stdin once it has. Every wait is for a
// condition, bounded by TIMEOUT_MS; nothing sleeps for a fixed time.
'use strict';

const fs = require('fs');
const readline = require('readline');
const {chromium} = require('playwright-core');

const TIMEOUT_MS = 10000;
const args = JSON.parse(process.argv[2]);

const answers = [];
const waiting = [];
const stdin = readline.createInterface({input: process.stdin});
stdin.on('line', (line) => {
  const w = waiting.shift();
  if (w) {
    w(line);
  } else {
    answers.push(line);
  }
});

function say(line) {
  process.stdout.write(`${line}\n`);
}

// Asks Python to do something and waits for its answer line.
async function ask(what) {
  say(`ASK ${what}`);
  const line = answers.length ? answers.shift() :
    await Promise.race([
      new Promise((resolve) => waiting.push(resolve)),
      new Promise((_, reject) => setTimeout(
        () => reject(new Error(`no answer from the test to "ASK ${what}"`)), 30000)),
    ]);
  if (line !== 'OK') {
    throw new Error(`the test answered "${line}" to "ASK ${what}"`);
  }
}

// Polls fn until it returns a truthy value (the value), failing after TIMEOUT_MS
// with the last value seen.
async function until(what, fn, timeout = TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) {
        return last;
      }
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what} (last seen: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    const context = await browser.newContext({viewport: {width: 1280, height: 800}, acceptDownloads: true});
    context.setDefaultTimeout(TIMEOUT_MS);
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') {
        say(`STEP console error: ${m.text()}`);
      }
    });
    // The page loads nothing from elsewhere.
    const foreign = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(args.inspector) && !r.url().startsWith('data:')) {
        foreign.push(r.url());
      }
    });

    const rows = page.getByTestId('request-row');
    const rowWithPath = (path) => rows.filter({
      has: page.getByTestId('row-path').getByText(path, {exact: true}),
    });
    const rowById = (id) => page.locator(`[data-testid=request-row][data-id="${id}"]`);
    const detail = page.getByTestId('detail');

    // 1. The page, its tunnel and the exchange made before it opened.
    await page.goto(`${args.inspector}/`);
    await page.getByTestId('tunnel-url').filter({hasText: args.public_url}).waitFor();
    say('STEP tunnel url shown');
    await page.waitForFunction(() => document.getElementById('connection-status').dataset.state === 'live');
    await rowWithPath(args.first_path).waitFor();
    const firstId = await rowWithPath(args.first_path).getAttribute('data-id');
    const first = rowById(firstId);  // its replay has the same path
    say(`STEP first exchange listed as #${firstId}`);

    // 2. Its detail: path, a header of the request, the response body.
    await first.click();
    await page.waitForFunction((id) => {
      const d = document.querySelector('[data-testid=detail]');
      return d.dataset.id === id && d.dataset.loaded === 'full';
    }, firstId);
    await until('the path in the detail', async () =>
      (await detail.getByTestId('detail-uri').textContent()) === args.first_path);
    const traceRow = detail.getByTestId('request-headers').locator('[data-testid=header-row][data-name="X-Trace"]');
    await until('the X-Trace header in the detail', async () =>
      (await traceRow.textContent()).includes(args.trace));
    await until('the response body in the detail', async () =>
      (await detail.getByTestId('response-body').textContent()).includes(args.first_body));
    if (await page.evaluate(() => window.__pwned !== undefined || document.querySelector('[data-testid=detail] img') !== null)) {
      throw new Error('a captured header was put in the page as HTML');
    }
    say('STEP detail shows path, header (as text) and response body');

    // 3. Replay: a new row, marked as a replay of the first.
    await detail.getByTestId('replay-button').click();
    const replayRow = rows.filter({has: page.locator(`[data-testid=replay-badge][data-replay-of="${firstId}"]`)});
    await replayRow.first().waitFor();
    const replayId = await replayRow.first().getAttribute('data-id');
    await until('the replay badge text', async () =>
      (await replayRow.first().getByTestId('replay-badge').textContent()) === `replay of #${firstId}`);
    await until('the replay notice', async () =>
      (await detail.getByTestId('detail-notice').textContent()).includes(`Replayed as #${replayId}`));
    say(`STEP replayed as #${replayId}`);

    // 4. A request made while the page is open appears without a reload.
    await page.evaluate(() => { window.__notReloaded = true; });
    await ask('live');
    const live = rowWithPath(args.live_path);
    await live.waitFor();
    if (!(await page.evaluate(() => window.__notReloaded === true))) {
      throw new Error('the page reloaded to show the new exchange');
    }
    const ids = await rows.evaluateAll((rs) => rs.map((r) => Number(r.dataset.id)));
    if (ids.join() !== [...ids].sort((a, b) => b - a).join()) {
      throw new Error(`the list is not newest first: ${ids.join(', ')}`);
    }
    if (Number(await rows.first().getAttribute('data-id')) !== Math.max(...ids) ||
        (await rows.first().getByTestId('row-path').textContent()) !== args.live_path) {
      throw new Error('the live exchange is not at the top of the list');
    }
    say('STEP live exchange listed without reload, newest first');

    // 5. Edit and replay: the first exchange again, with another path.
    await first.click();
    await page.waitForFunction((id) => document.querySelector('[data-testid=detail]').dataset.id === id, firstId);
    await detail.getByTestId('edit-replay-button').click();
    const form = detail.getByTestId('edit-form');
    await form.waitFor();
    await form.getByTestId('edit-uri').fill(args.edited_path);
    const headers = form.getByTestId('edit-headers');
    await headers.fill(`${await headers.inputValue()}\nX-Edited: yes`);
    await form.getByTestId('edit-send').click();
    const edited = rowWithPath(args.edited_path);
    await edited.waitFor();
    const editedId = await edited.getAttribute('data-id');
    await until('the edited replay marked as a replay', async () =>
      (await edited.getByTestId('replay-badge').getAttribute('data-replay-of')) === firstId);
    await edited.click();
    await page.waitForFunction((id) => {
      const d = document.querySelector('[data-testid=detail]');
      return d.dataset.id === id && d.dataset.loaded === 'full';
    }, editedId);
    await detail.getByTestId('request-headers').locator('[data-testid=header-row][data-name="X-Edited"]').waitFor();
    say(`STEP edited replay #${editedId} listed with path ${args.edited_path} and the added header`);

    // 6. Filter by path text hides the rows that do not match.
    const filter = page.getByTestId('filter-path');
    await filter.fill('edited');
    await until('only the edited row shown', async () => {
      const shown = await rows.evaluateAll((rs) => rs.filter((r) => !r.hidden).map((r) => r.dataset.id));
      return shown.length === 1 && shown[0] === editedId;
    });
    if (!(await first.isHidden()) || !(await live.isHidden())) {
      throw new Error('the path filter left a non-matching row visible');
    }
    await filter.fill('');
    await until('all rows shown again', async () =>
      (await rows.evaluateAll((rs) => rs.filter((r) => r.hidden).length)) === 0);
    // And by method: only the POST (the live upload) stays.
    await page.getByTestId('filter-method').selectOption('POST');
    await until('only POST rows shown', async () => {
      const shown = await rows.evaluateAll((rs) => rs.filter((r) => !r.hidden)
        .map((r) => r.querySelector('[data-testid=row-method]').textContent));
      return shown.length === 1 && shown[0] === 'POST';
    });
    await page.getByTestId('filter-method').selectOption('');
    say('STEP filters by path and by method hide the rows that do not match');

    // 7. The live upload's detail (JSON response pretty-printed) and its curl
    // command; the screenshot shows it.
    await live.click();
    const liveId = await live.getAttribute('data-id');
    await page.waitForFunction((id) => {
      const d = document.querySelector('[data-testid=detail]');
      return d.dataset.id === id && d.dataset.loaded === 'full';
    }, liveId);
    await until('the pretty-printed JSON response', async () => {
      const text = await detail.getByTestId('response-body').getByTestId('body-json').textContent();
      return text.includes('\n  "length": ');
    });
    await page.screenshot({path: args.screenshot});
    say(`STEP screenshot ${args.screenshot}`);
    await detail.getByTestId('curl-button').click();
    await until('the curl command', async () => {
      const text = await detail.getByTestId('curl-text').textContent();
      return text.startsWith('curl') && text.includes(args.live_path);
    });
    say('STEP curl command shown');

    // 8. HAR export of two ticked exchanges.
    await first.getByTestId('row-select').check();
    await live.getByTestId('row-select').check();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('export-har-selected').click(),
    ]);
    const harPath = await download.path();
    const har = JSON.parse(fs.readFileSync(harPath, 'utf8'));
    const urls = har.log.entries.map((e) => e.request.url);
    if (har.log.version !== '1.2' || har.log.entries.length !== 2 ||
        !urls.some((u) => u.endsWith(args.first_path)) || !urls.some((u) => u.endsWith(args.live_path))) {
      throw new Error(`unexpected HAR: version ${har.log.version}, urls ${JSON.stringify(urls)}`);
    }
    say('STEP HAR of the two ticked exchanges downloaded');

    // 9. The local service down: Replay says so in plain words.
    await ask('stop-service');
    await first.click();
    await page.waitForFunction((id) => document.querySelector('[data-testid=detail]').dataset.id === id, firstId);
    await detail.getByTestId('replay-button').click();
    await until('the replay error shown', async () => {
      const text = await detail.getByTestId('detail-notice').textContent();
      return /failed: .*down/i.test(text) && text;
    });
    say(`STEP replay error shown: ${await detail.getByTestId('detail-notice').textContent()}`);

    // 10. Clear empties the list.
    await page.getByTestId('clear-button').click();
    await until('an empty list', async () => (await rows.count()) === 0);
    await page.getByTestId('empty-list').waitFor();
    say('STEP cleared');

    if (pageErrors.length) {
      throw new Error(`errors in the page: ${pageErrors.join('; ')}`);
    }
    if (foreign.length) {
      throw new Error(`the page loaded from elsewhere: ${foreign.join(', ')}`);
    }
    say('DONE');
  } finally {
    await browser.close();
    stdin.close();  // else node waits for more answers
  }
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
