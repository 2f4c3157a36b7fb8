// The Forms view, the Funnel builder and the attention overlay in headless Chromium against the
// real server, filled with known visits: what an operator reads must be the stored figures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, collect, TOKEN } from './server.mjs';

let server, browser;
const hex = (n) => n.toString(16).padStart(32, '0');
const view = (origin, path, T, dh = 1800) => ({ k: 'view', t: T, url: origin + path, vw: 1280, vh: 720, dw: 1280, dh, load_ms: 100 });
const f = (k, t, sel, extra) => ({ k, t, sel, form: 'form#signup', ...extra });
let sids = {};

before(async () => {
  server = await startServer();
  const o = server.url;
  const T = Date.now() - 600_000;
  const send = (n, events) => collect(o, { site: 'shop', vid: hex(n), sid: hex(1000 + n), events });
  // Signup: 3 starters; one submits, two give up on the password field.
  await send(1, [view(o, '/signup', T), f('focus', T + 500, 'input#email'), f('blur', T + 2500, 'input#email', { len: 12 }),
    f('focus', T + 2600, 'input#password'), f('blur', T + 4600, 'input#password', { len: 1 }), { k: 'submit', t: T + 4700, form: 'form#signup' }]);
  for (const n of [2, 3])
    await send(n, [view(o, '/signup', T + n), f('focus', T + 500, 'input#email'), f('blur', T + 1500, 'input#email', { len: 9 }),
      f('focus', T + 1600, 'input#password')]);
  // Funnel / → /pricing → /signup: 4 enter, 3 see pricing, 1 signs up.
  const journeys = { 10: ['/', '/pricing', '/signup'], 11: ['/', '/pricing'], 12: ['/', '/pricing'], 13: ['/'] };
  for (const [n, paths] of Object.entries(journeys)) await send(Number(n), paths.map((p, i) => view(o, p, T + 60_000 + i * 10_000)));
  sids = { pricingOnly: [hex(1012), hex(1011)] };
  // Attention on a long page: 6 s at the top, then hidden.
  await send(20, [view(o, '/long', T, 8000), { k: 'move', t: T + 3000, x: 10, y: 10 }, { k: 'vis', t: T + 6000, hidden: true }]);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(hash) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(server.url + '/dashboard');
  await page.fill('#token', TOKEN);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
  await page.selectOption('#site', 'shop');
  await page.evaluate((h) => (location.hash = h), hash);
  await page.waitForSelector(`#vroot[data-ready][data-view="${hash.match(/^#\/(\w+)/)[1]}"]`);
  return { page, errors };
}

test('the Forms view shows the form funnel and highlights the field that loses people', async () => {
  const { page, errors } = await open('#/forms?path=/signup');
  const card = page.locator('.form-card[data-form="form#signup"]');
  assert.equal(await card.locator('[data-kpi=starters]').textContent(), '3');
  assert.equal(await card.locator('[data-kpi=submits]').textContent(), '1');
  assert.equal(await card.locator('[data-kpi=abandon]').textContent(), '66.7 %');
  const rows = await card.locator('.field-row').evaluateAll((r) => r.map((x) => x.dataset.field));
  assert.deepEqual(rows, ['input#email', 'input#password'], 'fields in the order visitors meet them');
  assert.equal(await card.locator('.field-row.loses').getAttribute('data-field'), 'input#password');
  const email = await card.locator('tr[data-field="input#email"] td').allTextContents();
  assert.deepEqual(email, ['input#email', '3', '1.33 s', '–', '0', '0', '0']);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the Funnel builder takes steps from the pages list and a drop-off opens its sessions replays', async () => {
  const { page, errors } = await open('#/funnel');
  const options = await page.locator('#funnel-paths option').evaluateAll((o) => o.map((x) => x.value));
  assert.ok(options.includes('/pricing') && options.includes('/signup'), options.join());
  const inputs = page.locator('.step-input');
  await inputs.nth(0).fill('/');
  await inputs.nth(1).fill('/pricing');
  await page.click('#funnel-add');
  await inputs.nth(2).fill('/signup');
  await page.click('#funnel-show');
  await page.waitForSelector('#funnel-chart');
  const labels = await page.locator('.funnel-step .funnel-label').allTextContents();
  assert.match(labels[0], /1\. \/ 4 sessions · 100\.0 %/);
  assert.match(labels[1], /2\. \/pricing 3 sessions · 75\.0 % · median 10\.00 s from previous/);
  assert.match(labels[2], /3\. \/signup 1 sessions · 25\.0 %/);
  await page.click('.drop-bar[data-drop="1"]');
  const listed = await page.locator('#dropped li').evaluateAll((l) => l.map((x) => x.dataset.sid));
  assert.deepEqual(listed, sids.pricingOnly, 'the sessions that saw pricing but not signup, newest first');
  await page.click(`#dropped li[data-sid="${sids.pricingOnly[0]}"] button`);
  await page.waitForFunction((sid) => location.hash == '#/replay/' + sid, sids.pricingOnly[0]);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the attention overlay sits with the click and move heatmaps and shows where time went', async () => {
  const { page, errors } = await open('#/heatmaps?path=/long&kind=attention&width=desktop');
  const bands = await page.locator('.attention-band').evaluateAll((b) => b.map((x) => Number(x.dataset.ms)));
  assert.equal(bands.length, 20);
  // 720 of 8000 px in view for 6 s: band 0 (0–400 px) fully, band 1 (400–800 px) 80 %.
  assert.deepEqual(bands.slice(0, 3), [6000, 4800, 0]);
  assert.equal(await page.locator('.seg button[data-value=attention]').getAttribute('aria-pressed'), 'true');
  assert.deepEqual(errors, []);
  await page.close();
});
