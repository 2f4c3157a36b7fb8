// ClickTale's own analytics, end to end: real headless Chromium runs the real snippet on a shop
// served from its OWN origin (not the collector's) — scripted form visits (a submit, two
// abandons, a refill, a field left blank), funnel journeys, a timed visit of a long page — and
// the collector's /forms, /funnel and /attention answers are compared with the script: counts
// exactly, times within the tolerances stated at each check. A canary proves that nothing typed
// reaches the wire or the disk through the new events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startCollector, launch } from './helpers/collector.mjs';
import { sidOf, waitFor, sleep } from './helpers/page.mjs';

let srv, browser, site;
const TYPED = { name: 'Adelheid', nameAgain: 'Roberta-Maria', email: 'adelheid.canary@example.org', password: 'Zebra-Canary-9xq', search: 'canarysearchterm' };

// Each page logs when its fields gain and lose focus and when the first key of a focus goes
// down (the page's own clock, independent of the snippet), so the test knows the true timings.
const page = (collector, title, body, height = 1200) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title>
<style>body{margin:0;font:16px sans-serif;min-height:${height}px} input,button,a{display:block;margin:6px}</style>
<script async src="${collector}/hushtale.js" data-site="demo"></script>
<script>
  window.timeline = [];
  let keyed = null;
  const log = (k, e) => timeline.push({ k, id: e.target.id || e.target.name, t: Date.now() });
  addEventListener('focusin', (e) => { keyed = null; log('focus', e); }, true);
  addEventListener('focusout', (e) => log('blur', e), true);
  addEventListener('keydown', (e) => { if (keyed != e.target && !/Tab|Shift|Control|Meta/.test(e.key)) { keyed = e.target; log('key', e); } }, true);
</script></head>
<body>${body}</body></html>`;

const PAGES = {
  '/': ['Home', '<a id="to-product" href="/product/1">Product 1</a><a id="to-product2" href="/product/2">Product 2</a>'],
  '/product/1': ['Product', '<a id="to-checkout" href="/checkout">Checkout</a>'],
  '/product/2': ['Product', '<a id="to-checkout" href="/checkout">Checkout</a>'],
  '/checkout': ['Checkout', '<p>Pay</p>'],
  '/thanks': ['Thanks', '<p>Thank you</p>'],
  '/signup': [
    'Sign up',
    `<input id="q" type="search" placeholder="Search">
     <form id="signup" action="/thanks" method="get">
       <input id="name" autocomplete="off">
       <input name="email" type="email" autocomplete="off">
       <input name="company" autocomplete="off">
       <input id="password" type="password" autocomplete="off">
       <input name="terms" type="checkbox">
       <button id="go" type="submit">Create account</button>
     </form>`,
  ],
  '/long': ['Long read', '<p>A long article.</p>', 10000],
};

before(async () => {
  srv = await startCollector();
  browser = await launch();
  site = http.createServer((req, res) => {
    const p = PAGES[req.url.split('?')[0]];
    if (!p) return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page(srv.url, ...p));
  });
  await new Promise((r) => site.listen(0, '127.0.0.1', r));
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  site?.close();
});

const origin = () => 'http://127.0.0.1:' + site.address().port;

/** A new visitor on `path`, once the snippet and its lazily loaded part run. */
async function visit(path, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const p = await context.newPage();
  await open(p, path);
  return { context, page: p };
}

async function open(p, path) {
  await p.goto(origin() + path);
  await settle(p);
}

/** Waits for the snippet and its lazily loaded part to run on the current page. */
async function settle(p) {
  await p.waitForFunction(() => window.hushtale && sessionStorage.hushtale_sid_demo, null, { timeout: 15000 });
  await p.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/hushtale-more.js')), null, { timeout: 15000 });
  await sleep(300);
}

/** The page's own log, by event: [{k, id, t}]. */
const timeline = (p) => p.evaluate(() => window.timeline);

/** ms from each focus of `id` to its blur, and to its first key, from a page's log. */
function timings(log, id) {
  const out = { time: [], hesitation: [] };
  let focus = null;
  for (const e of log.filter((x) => x.id == id)) {
    if (e.k == 'focus') focus = e.t;
    if (e.k == 'key' && focus != null) out.hesitation.push(e.t - focus);
    if (e.k == 'blur' && focus != null) (out.time.push(e.t - focus), (focus = null));
  }
  return out;
}

const api = async (path) => {
  const r = await srv.api(path);
  assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`);
  return r.body;
};
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;

/** Within `tol` ms: the server corrects each batch's clock on arrival, so times that span two
 * batches may move by the few ms a batch takes to arrive; a loaded machine adds more. */
function near(actual, expected, tol, what) {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} ms, expected ${Math.round(expected)} ± ${tol} ms`);
}

test('scripted form visits: starters, submits, abandons, refills, blanks and times as the script did them', async () => {
  const logs = [];
  // A: fills name, e-mail and password, tabs over company (left blank), ticks the terms, submits.
  {
    const { context, page: p } = await visit('/signup');
    await p.click('#q');
    await p.keyboard.type(TYPED.search, { delay: 20 });
    await p.click('#name');
    await sleep(700);
    await p.keyboard.type(TYPED.name, { delay: 40 });
    await sleep(300);
    await p.keyboard.press('Tab');
    await sleep(400);
    await p.keyboard.type(TYPED.email, { delay: 15 });
    await p.keyboard.press('Tab'); // company: left empty
    await sleep(500);
    await p.keyboard.press('Tab');
    await p.keyboard.type(TYPED.password, { delay: 15 });
    await p.keyboard.press('Tab');
    await p.keyboard.press('Space');
    logs.push(await timeline(p));
    await Promise.all([p.waitForURL(/\/thanks/), p.click('#go')]);
    await sleep(500);
    await context.close();
  }
  // B: types a name, moves on, comes back and retypes it (a refill), reaches e-mail, leaves.
  {
    const { context, page: p } = await visit('/signup');
    await p.click('#name');
    await sleep(300);
    await p.keyboard.type(TYPED.name.slice(0, 3), { delay: 40 });
    await p.keyboard.press('Tab');
    await sleep(300);
    await p.keyboard.press('Shift+Tab');
    await p.keyboard.press('Control+A');
    await p.keyboard.type(TYPED.nameAgain, { delay: 20 });
    await p.keyboard.press('Tab');
    await sleep(600);
    logs.push(await timeline(p));
    await p.goto('about:blank');
    await sleep(500);
    await context.close();
  }
  // C: focuses the name field and leaves without typing.
  {
    const { context, page: p } = await visit('/signup');
    await p.click('#name');
    await sleep(1000);
    logs.push(await timeline(p));
    await p.goto('about:blank');
    await sleep(500);
    await context.close();
  }

  const forms = await waitFor('the form rollups', async () => {
    const r = await api('/api/sites/demo/forms?path=/signup');
    const f = r.forms.find((x) => x.form == 'form#signup');
    return f && f.starters == 3 && f.fields.reduce((s, x) => s + x.drop_offs, 0) == 2 && r;
  });
  const form = forms.forms.find((x) => x.form == 'form#signup');
  assert.equal(form.submits, 1);
  assert.equal(form.abandon_rate, 0.667);
  const byField = Object.fromEntries(form.fields.map((f) => [f.field, f]));
  assert.deepEqual(form.fields.map((f) => f.field), ['input#name', 'input[name=email]', 'input[name=company]', 'input#password', 'input[name=terms]'], 'in the order visitors meet them');
  const counts = (f) => [f.interactions, f.refills, f.blank_on_submit, f.drop_offs];
  assert.deepEqual(counts(byField['input#name']), [4, 1, 0, 1], 'name: A, B twice, C; B refilled it; C left on it');
  assert.deepEqual(counts(byField['input[name=email]']), [3, 0, 0, 1], 'e-mail: A once, B twice; B left on it');
  assert.deepEqual(counts(byField['input[name=company]']), [1, 0, 1, 0], 'company: left blank at the submit');
  assert.deepEqual(counts(byField['input#password']), [1, 0, 0, 0]);
  assert.deepEqual(counts(byField['input[name=terms]']), [1, 0, 0, 0], 'a ticked checkbox is filled');

  // Times: means over every focus of the field, from each page's own log (± 150 ms).
  const all = (id, k) => logs.flatMap((l) => timings(l, id)[k]);
  near(byField['input#name'].avg_time_ms, mean(all('name', 'time')), 150, 'mean time in the name field');
  near(byField['input#name'].avg_hesitation_ms, mean(all('name', 'hesitation')), 150, 'mean hesitation before typing a name');
  assert.ok(byField['input#name'].avg_hesitation_ms > 300, 'hesitation is the wait before the first key, not the debounce');
  near(byField['input[name=company]'].avg_time_ms, mean(all('company', 'time')), 150, 'time on the skipped company field');
  assert.equal(byField['input[name=company]'].avg_hesitation_ms, null, 'nothing typed there');

  const outside = forms.forms.find((x) => x.form == '');
  assert.deepEqual([outside.starters, outside.submits, outside.abandon_rate, outside.fields[0].field], [1, 0, null, 'input#q'], 'a search box outside any form');
});

test('funnel journeys: each step and drop-off as walked, times from the pages own clocks', async () => {
  const walk = async (links) => {
    const { context, page: p } = await visit('/');
    const sid = await sidOf(p);
    const origins = [await p.evaluate(() => performance.timeOrigin)];
    for (const link of links) {
      await sleep(800);
      await Promise.all([p.waitForNavigation(), p.click(link)]);
      await settle(p);
      origins.push(await p.evaluate(() => performance.timeOrigin));
    }
    await p.goto('about:blank');
    await sleep(300);
    await context.close();
    return { sid, origins };
  };
  const converts = await walk(['#to-product', '#to-checkout']);
  const product = await walk(['#to-product2']);
  const bounce = await walk([]);

  const steps = '/,/product/*,/checkout';
  const f = await waitFor('the funnel', async () => {
    const r = await api(`/api/sites/demo/funnel?steps=${steps}`);
    return r.steps[0].sessions == 3 && r.steps[2].sessions == 1 && r;
  });
  assert.deepEqual(f.steps.map((s) => [s.path, s.sessions, s.conversion]), [['/', 3, 1], ['/product/*', 2, 0.667], ['/checkout', 1, 0.333]]);
  assert.deepEqual(f.dropped, [[bounce.sid], [product.sid]], 'who left where, newest first');
  // Median of two gaps is their mean; each gap is between two pages' navigation starts. The
  // pages' batches arrive separately and each is put on the server's clock by its own arrival,
  // so a gap may differ by the difference of two arrival delays (± 300 ms on a loaded machine).
  const gap = (j, i) => j.origins[i] - j.origins[i - 1];
  near(f.steps[1].median_ms_from_previous, (gap(converts, 1) + gap(product, 1)) / 2, 300, 'median / → /product/*');
  near(f.steps[2].median_ms_from_previous, gap(converts, 2), 300, '/product/* → /checkout');
  const late = await api(`/api/sites/demo/funnel?steps=${steps}&within_ms=500`);
  assert.deepEqual(late.steps.map((s) => s.sessions), [3, 0, 0], 'no step came within 500 ms');
});

test('a timed long-page visit: attention per 5 % band while visible and active, idle time cut at 30 s', async () => {
  // A 10 000 px page in a 1 000 px viewport: first at the top, then at 5 000 px, then idle.
  const { context, page: p } = await visit('/long', { width: 1280, height: 1000 });
  const start = await p.evaluate(() => performance.timeOrigin);
  const [dh, vh] = await p.evaluate(() => [document.documentElement.scrollHeight, innerHeight]);
  for (let i = 0; i < 6; i++) (await p.mouse.move(100 + (i % 2) * 200, 200), await sleep(400));
  const scrolled = await p.evaluate(() => (scrollTo(0, 5000), Date.now()));
  for (let i = 0; i < 4; i++) (await sleep(400), await p.mouse.move(100 + (i % 2) * 200, 300));
  const lastMove = await p.evaluate(() => Date.now());
  await sleep(33_000); // idle: only the first 30 s after the last input count
  await p.goto('about:blank');
  await context.close();

  const a = await waitFor('the attention rollup', async () => {
    const r = await api('/api/sites/demo/attention?path=/long');
    return r.pageviews == 1 && r.bands.some((b) => b.avg_visible_ms > 20_000) && r;
  }, 30_000);
  assert.equal(a.bands.length, 20);
  // The snippet reports a scroll 250 ms after it starts: that much of the middle counts at the
  // top. Each band gets the time times the share of it inside the viewport.
  const atTop = scrolled + 250 - start;
  const atMiddle = lastMove + 30_000 - (scrolled + 250);
  const band = dh / 20;
  const inside = (top, i) => Math.max(0, Math.min(top + vh, dh, (i + 1) * band) - Math.max(top, i * band)) / band;
  a.bands.forEach((b, i) => {
    const expected = atTop * inside(0, i) + atMiddle * inside(5000, i);
    if (expected == 0) assert.equal(b.avg_visible_ms, 0, `band ${i} was never in view`);
    // ± 300 ms for the top, ± 600 ms where 30 s of idling were cut (timer and arrival delays)
    else near(b.avg_visible_ms, expected, inside(5000, i) ? 600 : 300, `band ${b.from_pct}–${b.to_pct} %`);
  });
  assert.ok(a.bands.reduce((s, b) => s + b.avg_visible_ms, 0) < (atTop + atMiddle) * (vh / band) + 1000, 'idle time beyond 30 s never counts');
});

test('canary: nothing typed reaches the wire or the disk through the new events', async () => {
  const kinds = new Set(srv.wire.flatMap((w) => w.json.events.map((e) => e.k)));
  for (const k of ['focus', 'blur', 'submit', 'input']) assert.ok(kinds.has(k), `the wire carried ${k} events`);
  const wire = srv.wire.map((w) => w.text).join('\n');
  const files = [];
  const walk = (dir) => readdirSync(dir).forEach((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : files.push(join(dir, n))));
  walk(srv.data);
  const disk = files.map((f) => readFileSync(f));
  for (const secret of Object.values(TYPED)) {
    assert.ok(!wire.includes(secret), `the wire carries ${JSON.stringify(secret)}`);
    for (const [i, bytes] of disk.entries()) assert.ok(!bytes.includes(secret), `${files[i]} holds ${JSON.stringify(secret)}`);
  }
  // lengths only: the name field was left with the retyped name's length, the password as filled (1)
  const blurs = srv.wire.flatMap((w) => w.json.events).filter((e) => e.k == 'blur');
  assert.ok(blurs.some((e) => e.sel == 'input#name' && e.len == TYPED.nameAgain.length));
  assert.ok(blurs.some((e) => e.sel == 'input#password' && e.len == 1));
  for (const e of blurs) assert.deepEqual(Object.keys(e).sort(), ['form', 'k', 'len', 'sel', 't']);
});
