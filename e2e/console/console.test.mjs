// The migration console in headless Chromium (Debian's, driven by playwright-core) against a
// whole stack started by `orderctl up --demo` (run.sh): the page loads, its numbers move under
// the demo traffic, a switch with the token takes effect (on the page and in the admin API),
// one without it is refused and changes nothing, an order is found in the event tail and its
// journey opens. Screenshots go to $CONSOLE_ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const ADMIN = process.env.CONSOLE_ADMIN_URL;
const TOKEN = process.env.CONSOLE_ADMIN_TOKEN;
const ARTIFACTS = process.env.CONSOLE_ARTIFACTS || 'artifacts';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (!ADMIN || !TOKEN) throw new Error('CONSOLE_ADMIN_URL and CONSOLE_ADMIN_TOKEN must be set (run.sh sets them)');
mkdirSync(ARTIFACTS, { recursive: true });

let browser;
let page;
const pageErrors = [];
const shot = (name) => page.screenshot({ path: join(ARTIFACTS, name + '.png'), fullPage: true });

async function api(path, opts = {}) {
  const r = await fetch(ADMIN + path, {
    ...opts,
    headers: { Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json', ...(opts.headers || {}) },
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function routeMode(name) {
  const r = await api('/admin/v1/routes?readiness=false');
  assert.equal(r.status, 200);
  return r.body.routes.find((x) => x.name === name).mode;
}

/** Polls `fn` until it returns a truthy value, or fails after `ms` naming `what`. */
async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${ms} ms (last: ${last})`);
}

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
});

test('the console loads without the token and shows nothing until it is given', async () => {
  const resp = await page.goto(ADMIN + '/console');
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'], /frame-ancestors 'none'/);
  await page.waitForSelector('[data-testid=token]');
  assert.equal(await page.isVisible('[data-testid=routes]'), false, 'no data shown without a token');
  // The data behind the page needs the token: the page's own origin without it gets 401.
  const status = await page.evaluate(async () => (await fetch('/admin/v1/console/overview')).status);
  assert.equal(status, 401);
  await shot('01-login');
});

test('with the token the routes and live numbers appear, and the numbers change under demo traffic', async () => {
  await page.fill('[data-testid=token]', TOKEN);
  await page.click('[data-testid=connect]');
  await page.waitForSelector('[data-testid=routes] tr[data-route=sales-orders]');
  const mode = await page.textContent('tr[data-route=sales-orders] [data-testid=mode]');
  assert.match(mode, new RegExp(await routeMode('sales-orders')));
  const seen = async () => Number((await page.textContent('[data-testid=requests-total]')).trim() || '0');
  const first = await until('requests counted on the page', async () => ((await seen()) > 0 ? seen() : 0), 60000);
  const later = await until('the request count to grow', async () => {
    const n = await seen();
    return n > first ? n : 0;
  }, 30000);
  assert.ok(later > first, `requests seen grew from ${first} to ${later}`);
  const bothOk = Number(await page.textContent('[data-testid=both-ok]'));
  const rps = Number(await page.textContent('[data-testid=rps]'));
  assert.ok(rps > 0 || bothOk > 0, `live numbers show traffic (rps ${rps}, both ok ${bothOk})`);
  // The charts are drawn (uPlot renders a canvas per chart).
  assert.ok(await page.locator('#chart-rps canvas').count() > 0, 'the request-rate chart is drawn');
  await shot('02-live');
});

test('a switch with the token takes effect, on the page and in the admin API', async () => {
  const from = await routeMode('sales-orders');
  const to = from === 'legacy' ? 'dual-write' : 'legacy';
  await page.selectOption('[data-testid=switch-to-sales-orders]', to);
  if (to !== 'legacy') await page.check('tr[data-route=sales-orders] .force input');
  await page.click('[data-testid=switch-sales-orders]');
  await page.waitForSelector('[data-testid=confirm]', { state: 'visible' });
  await shot('03-confirm');
  await page.click('[data-testid=confirm-switch]');
  await until('the page to report the switch', async () => (await page.textContent('[data-testid=switch-result]')).includes('now runs in ' + to));
  assert.equal(await routeMode('sales-orders'), to, 'the proxy runs the new mode');
  await until('the routes table to show the new mode', async () => (await page.textContent('tr[data-route=sales-orders] [data-testid=mode]')).includes(to));
  await until('the audit trail to list the switch', async () => (await page.textContent('[data-testid=audit]')).includes(to));
  await shot('04-switched');
});

test('a switch with a wrong token is refused and changes nothing', async () => {
  const before = await routeMode('sales-orders');
  const to = before === 'legacy' ? 'dual-write' : 'legacy';
  await page.evaluate(() => sessionStorage.setItem('adminToken', 'not-the-token'));
  // The page's state holds the token it connected with; swap it the way an operator would.
  await page.click('[data-testid=disconnect]');
  await page.fill('[data-testid=token]', 'not-the-token');
  await page.click('[data-testid=connect]');
  await until('the page to say the token was refused', async () => (await page.textContent('[data-testid=status]')).includes('401'));
  // The form is still there: try the switch anyway.
  await page.selectOption('[data-testid=switch-to-sales-orders]', to);
  await page.click('[data-testid=switch-sales-orders]');
  await page.click('[data-testid=confirm-switch]');
  await until('the refusal to show', async () => (await page.textContent('[data-testid=switch-result]')).includes('401'));
  assert.equal(await routeMode('sales-orders'), before, 'the mode did not change');
  // And without any token at all.
  const noToken = await page.evaluate(async (t) => (await fetch('/admin/v1/routes/sales-orders/mode', {
    method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ mode: t }),
  })).status, to);
  assert.equal(noToken, 401);
  assert.equal(await routeMode('sales-orders'), before, 'the mode did not change');
  await shot('05-refused');
  // Back to the real token for what follows.
  await page.click('[data-testid=disconnect]');
  await page.fill('[data-testid=token]', TOKEN);
  await page.click('[data-testid=connect]');
  await until('the page to connect again', async () => (await page.textContent('[data-testid=status]')).includes('Connected'));
});

test('an order is found in the event tail and its journey opens', async () => {
  const rows = page.locator('[data-testid=events] [data-testid=event-order]');
  await until('order events in the tail', async () => (await rows.count()) > 0, 60000);
  const order = (await rows.first().textContent()).trim();
  assert.ok(order, 'an order number in the tail');
  await page.fill('[data-testid=event-search]', order);
  await page.click('[data-testid=event-search-go]');
  await until('only that order in the tail', async () => {
    const all = await rows.allTextContents();
    return all.length > 0 && all.every((t) => t.trim() === order);
  });
  await shot('06-events');
  await rows.first().click();
  await page.waitForSelector('[data-testid=journey]', { state: 'visible' });
  const systems = await until('a journey across several systems', async () => {
    const s = await page.locator('[data-testid=journey] tr[data-system]').evaluateAll((trs) => trs.map((t) => t.dataset.system));
    return new Set(s).size >= 3 ? s : null;
  });
  for (const sys of ['order-service', 'kafka']) assert.ok(systems.includes(sys), `the journey has a ${sys} step: ${systems}`);
  await shot('07-journey');
});

test('the page raised no script error on the way', () => {
  assert.deepEqual(pageErrors, []);
});
