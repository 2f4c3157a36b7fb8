// The dashboard in headless Chromium against the real server, filled with known data
// (test/data.mjs). Saves the screenshots the README shows (docs/screenshots/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, launch, api, TOKEN } from './server.mjs';
import { seed, PAST_DAYS } from './data.mjs';

const shots = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshots');
let server, browser, data;
const day = (daysAgo) => new Date(Date.now() - daysAgo * 864e5).toISOString().slice(0, 10);

before(async () => {
  server = await startServer();
  data = await seed(server);
  browser = await launch();
  mkdirSync(shots, { recursive: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

/** A signed-in page, with every request and page error recorded. */
async function open(hash = '', { width = 1400, height = 900 } = {}) {
  const page = await browser.newPage({ viewport: { width, height } });
  const errors = [];
  const requests = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => requests.push({ url: r.url(), auth: r.headers().authorization }));
  await page.goto(server.url + '/dashboard');
  await page.fill('#token', TOKEN);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
  await page.selectOption('#site', 'shop');
  if (hash) await page.evaluate((h) => (location.hash = h), hash);
  await page.waitForSelector(`#vroot[data-ready][data-view="${(hash.match(/^#\/(\w+)/) || [0, 'overview'])[1]}"]`);
  return { page, errors, requests };
}

async function ready(page, view) {
  await page.waitForSelector(`#vroot[data-ready][data-view="${view}"]`);
}

test('the dashboard and its replay frame carry a strict CSP and refuse to be framed', async () => {
  const r = await fetch(server.url + '/dashboard');
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  const f = await fetch(server.url + '/dashboard/frame');
  assert.match(f.headers.get('content-security-policy'), /script-src 'none'/);
  assert.match(f.headers.get('content-security-policy'), /frame-ancestors 'self'/);
  assert.equal(f.headers.get('x-frame-options'), 'SAMEORIGIN');
  const js = await fetch(server.url + '/dashboard/app.js');
  assert.match(js.headers.get('content-type'), /javascript/);
  assert.ok(js.headers.get('etag'));
  assert.equal((await fetch(server.url + '/dashboard/app.js', { headers: { 'if-none-match': js.headers.get('etag') } })).status, 304);
  assert.equal((await fetch(server.url + '/dashboard/nope.js')).status, 404);
  const a = await fetch(server.url + '/api/sites', { headers: { Authorization: 'Bearer ' + TOKEN } });
  assert.equal(a.headers.get('cache-control'), 'no-store');
});

test('a wrong token is refused; the right one signs in, stays in this tab, and never appears in a URL', async () => {
  const page = await browser.newPage();
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));
  await page.goto(server.url + '/dashboard');
  await page.fill('#token', 'not-the-token');
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#signin-error:not([hidden])');
  assert.match(await page.textContent('#signin-error'), /refused/);
  assert.ok(await page.isHidden('#nav'));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hushtale_token')), null);

  await page.fill('#token', TOKEN);
  await page.click('#signin button[type=submit]');
  await ready(page, 'overview');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hushtale_token')), TOKEN);
  assert.deepEqual(await page.$$eval('#site option', (o) => o.map((x) => x.value)), ['blog', 'demo', 'shop']);
  await page.reload(); // the tab keeps the sign-in
  await ready(page, 'overview');
  assert.ok(urls.length > 5 && urls.every((u) => !u.includes(TOKEN)), 'the token is never in a URL');
  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hushtale_token')), null);
  await page.close();
});

test('overview: one chart point per day sent, matching the API; totals; screenshot', async () => {
  const { page, errors, requests } = await open();
  const from = day(3);
  const to = day(0);
  await page.fill('#from', from);
  await page.dispatchEvent('#from', 'change');
  await page.fill('#to', to);
  await page.dispatchEvent('#to', 'change');
  await page.waitForFunction((n) => document.querySelector('#chart-traffic')?.uplot?.data[0].length == n, 4);
  const stats = await api(server.url, `sites/shop/stats?from=${from}&to=${to}`);
  const chart = await page.evaluate(() => {
    const u = document.querySelector('#chart-traffic').uplot;
    return { xs: u.data[0], series: u.series.map((s) => s.label), data: u.data.slice(1), points: u.series[1].points.show };
  });
  assert.deepEqual(chart.xs.map((x) => new Date(x * 1000).toISOString().slice(0, 10)), [day(3), day(2), day(1), day(0)]);
  assert.deepEqual(chart.series.slice(1), ['Pageviews', 'Sessions', 'Visitors']);
  assert.deepEqual(chart.data[0], stats.days.map((d) => d.pageviews));
  assert.deepEqual(chart.data[0].slice(0, 3), PAST_DAYS.map((d) => d.views.length), 'the pageviews sent on each past day');
  assert.deepEqual(chart.data[1], stats.days.map((d) => d.sessions));
  assert.deepEqual(chart.data[2], stats.days.map((d) => d.visitors));
  const load = await page.evaluate(() => document.querySelector('#chart-load').uplot.data);
  assert.deepEqual(load[1], stats.days.map((d) => d.p50_load_ms));
  assert.deepEqual(load[2], stats.days.map((d) => d.p95_load_ms));
  assert.equal(await page.textContent('#kpi-pageviews .kpi-value'), String(stats.totals.pageviews));
  assert.equal(await page.textContent('#kpi-visitors .kpi-value'), String(stats.totals.visitors));

  // The 30-day preset: one point per day of the range.
  await page.click('.presets button[data-days="30"]');
  await page.waitForFunction(() => document.querySelector('#chart-traffic')?.uplot?.data[0].length == 30);
  await page.screenshot({ path: join(shots, 'overview.png') });
  assert.ok(requests.filter((r) => r.url.includes('/api/')).every((r) => r.auth == 'Bearer ' + TOKEN));
  assert.deepEqual(errors, []);
  await page.close();
});

test('the pages table matches the API and sorts by any column', async () => {
  const { page, errors } = await open();
  const pages = (await api(server.url, `sites/shop/pages?from=${day(29)}&to=${day(0)}`)).pages;
  const rows = () => page.$$eval('#pages-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  let got = await rows();
  assert.equal(got.length, pages.length);
  const fmt = (v, unit) => (v == null ? '–' : `${Math.round(v)}${unit}`);
  for (const [i, p] of pages.entries()) {
    assert.deepEqual(got[i], [p.path, String(p.pageviews), fmt(p.avg_load_ms, ' ms'), fmt(p.p95_load_ms, ' ms'), fmt(p.avg_scroll_pct, ' %'), String(p.clicks), String(p.rage_clicks),
      String(p.dead_clicks), String(p.error_clicks), String(p.quick_backs)]);
  }
  await page.click('th[data-key="clicks"] button');
  got = await rows();
  assert.deepEqual(got.map((r) => Number(r[5])), pages.map((p) => p.clicks).sort((a, b) => b - a));
  assert.equal(await page.getAttribute('th[data-key="clicks"]', 'aria-sort'), 'descending');
  await page.click('th[data-key="path"] button');
  got = await rows();
  assert.deepEqual(got.map((r) => r[0]), pages.map((p) => p.path).sort());
  assert.deepEqual(errors, []);
  await page.close();
});

/** The brightest (most opaque) pixels of the heat canvas: their centre, in document px. */
function hottest(page) {
  return page.evaluate(() => {
    const c = document.getElementById('heat-canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let max = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > max) max = d[i];
    let sx = 0, sy = 0, n = 0;
    for (let i = 3; i < d.length; i += 4)
      if (d[i] == max) {
        const p = (i - 3) / 4;
        sx += p % c.width;
        sy += Math.floor(p / c.width);
        n++;
      }
    return { x: sx / n, y: sy / n, alpha: max };
  });
}

test('heatmap: the hottest spot is drawn over the most-clicked element of the recorded page', async () => {
  const { page, errors } = await open('#/heatmaps?path=%2Fpricing&kind=click&width=desktop');
  const hot = await hottest(page);
  const rect = (sel) =>
    page.evaluate((s) => {
      const f = document.querySelector('iframe.heat-frame');
      const r = f.contentDocument.querySelector(s).getBoundingClientRect();
      return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
    }, sel);
  const buy = await rect('#buy');
  assert.ok(hot.x > buy.left && hot.x < buy.right && hot.y > buy.top && hot.y < buy.bottom, `hottest ${JSON.stringify(hot)} inside #buy ${JSON.stringify(buy)}`);
  // The recorded page is really there, rebuilt without anything able to run.
  assert.equal(await page.evaluate(() => document.querySelector('iframe.heat-frame').getAttribute('sandbox')), 'allow-same-origin');
  assert.match(await page.textContent('.heat-legend'), /15 clicks/);
  // The scroll-reach strip and the fold line.
  const reach = await api(server.url, `sites/shop/scroll?path=%2Fpricing&from=${day(29)}&to=${day(0)}`);
  assert.equal(await page.locator('#reach-strip .reach-step').count(), reach.reach.length);
  assert.match(await page.textContent('.fold'), new RegExp(`${Math.round(reach.fold_px)} px`));
  await page.screenshot({ path: join(shots, 'heatmap.png') });

  // The same clicks on the mobile layout: still anchored to #buy.
  await page.click('.seg button[data-value="mobile"]');
  await page.waitForSelector('#vroot[data-ready] .seg button.on[data-value="mobile"]');
  const mobile = await hottest(page);
  const buyMobile = await rect('#buy');
  assert.equal(await page.evaluate(() => document.querySelector('iframe.heat-frame').style.width), '390px');
  assert.ok(mobile.x > buyMobile.left && mobile.x < buyMobile.right && mobile.y > buyMobile.top && mobile.y < buyMobile.bottom, 'on the mobile layout too');

  // A page without a snapshot: the grid on a neutral outline.
  await page.selectOption('#heat-path', '/');
  await page.waitForSelector('#vroot[data-ready] .outline');
  assert.match(await page.textContent('.outline-note'), /No snapshot/);
  assert.deepEqual(errors, []);
  await page.close();
});

/** Seeks the replay to `ms` after its start through the timeline, as a person dragging it would. */
async function seek(page, ms) {
  await page.locator('#replay-time').evaluate((el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, ms);
  await page.waitForFunction((v) => document.getElementById('vroot').dataset.t == String(v), ms);
}

/** Where the cursor's tip is, mapped back into the recorded page's document px. */
function cursorInPage(page) {
  return page.evaluate(() => {
    const screen = document.getElementById('replay-screen');
    const scale = Number(screen.dataset.scale);
    const s = screen.getBoundingClientRect();
    const c = document.getElementById('replay-cursor').getBoundingClientRect();
    const win = document.querySelector('iframe.replay-frame').contentWindow;
    return { x: (c.left - s.left) / scale + win.scrollX, y: (c.top - s.top) / scale + win.scrollY, visible: !document.getElementById('replay-cursor').hidden };
  });
}

test('replay: the cursor goes through every recorded position, mutations and scrolling apply in time', async () => {
  const { sid, events } = data.replay;
  const { page, errors } = await open(`#/replay/${sid}`);
  const t0 = events[0].t;
  const doc = (f) => page.evaluate(f);
  const frameText = () => doc(() => document.querySelector('iframe.replay-frame').contentDocument.body.textContent);

  // The recorded page is rebuilt once its snapshot's time comes.
  await seek(page, events[1].t - t0);
  assert.match(await frameText(), /Plans and pricing/);
  assert.doesNotMatch(await frameText(), /Added to cart/);

  for (const e of events.filter((e) => e.k == 'move' || e.k == 'click')) {
    await seek(page, e.t - t0);
    const c = await cursorInPage(page);
    assert.ok(c.visible);
    assert.ok(Math.abs(c.x - e.x) < 1.5 && Math.abs(c.y - e.y) < 1.5, `cursor at ${e.t - t0} ms: ${JSON.stringify(c)} vs ${e.x},${e.y}`);
  }
  // The click ripple shows right after the click.
  const click = events.find((e) => e.k == 'click');
  await seek(page, click.t - t0 + 100);
  assert.equal(await page.locator('#replay-screen circle.ripple').count(), 1);

  // Mutations: the toast is added and the cart text changes at 2.4 s, the toast goes at 10 s.
  await seek(page, 2399);
  assert.doesNotMatch(await frameText(), /Added to cart/);
  await seek(page, 2400);
  assert.match(await frameText(), /Added to cart/);
  assert.match(await frameText(), /Cart \(\*\) {2}✓/);
  await page.screenshot({ path: join(shots, 'replay.png') });
  await seek(page, 10000);
  assert.doesNotMatch(await frameText(), /Added to cart/);
  // Back in time: rebuilt from the snapshot.
  await seek(page, 1000);
  assert.doesNotMatch(await frameText(), /Added to cart|✓/);

  // Scrolling.
  await seek(page, 9000);
  assert.equal(await doc(() => document.querySelector('iframe.replay-frame').contentWindow.scrollY), 400);
  await seek(page, 11000);
  assert.equal(await doc(() => document.querySelector('iframe.replay-frame').contentWindow.scrollY), 0);

  // Timeline marks for both clicks and the page view.
  assert.equal(await page.locator('.marks .mark-click').count(), 2);
  assert.equal(await page.locator('.marks .mark-view').count(), 1);

  // Play from the start at 8× with inactivity skipped, to the end.
  await page.selectOption('#replay-speed', '8');
  await seek(page, 0);
  await page.click('#replay-play');
  assert.equal(await page.getAttribute('#vroot', 'data-state'), 'playing');
  await page.waitForSelector('#vroot[data-state="ended"]', { timeout: 60_000 });
  const last = events.at(-1);
  assert.equal(await page.getAttribute('#vroot', 'data-t'), String(last.t - t0));
  const c = await cursorInPage(page);
  assert.ok(Math.abs(c.x - last.x) < 1.5 && Math.abs(c.y - last.y) < 1.5);
  assert.deepEqual(errors, []);
  await page.close();
});

test('sessions: the filtered list shows entry page, device, duration, rage clicks and replay', async () => {
  const { page, errors } = await open('#/sessions');
  const all = (await api(server.url, `sites/shop/sessions?from=${day(29)}&to=${day(0)}`)).sessions;
  assert.equal(await page.locator('#sessions-table tbody tr').count(), all.length);
  await page.check('#session-filters input[name="replay"]');
  await page.click('#session-filters button[type=submit]');
  await page.waitForFunction(() => location.hash.includes('replay=true') && document.getElementById('vroot').dataset.ready);
  await page.waitForSelector('#vroot[data-ready] #sessions-table');
  const sids = await page.$$eval('#sessions-table tbody tr', (t) => t.map((r) => r.dataset.sid));
  assert.deepEqual(sids, all.filter((s) => s.replay).map((s) => s.id));
  await page.evaluate(() => (location.hash = '#/sessions?min_rage_clicks=1'));
  await page.waitForSelector('#vroot[data-ready] #sessions-table');
  await page.waitForFunction(() => document.querySelectorAll('#sessions-table tbody tr').length == 1);
  assert.match(await page.textContent('#sessions-table tbody tr'), /\/pricing/);
  assert.equal(await page.textContent('#sessions-table tbody tr .rage'), '1');
  await page.evaluate(() => (location.hash = '#/sessions?device=mobile'));
  await page.waitForFunction(() => document.querySelectorAll('#sessions-table tbody tr').length == 2 && [...document.querySelectorAll('#sessions-table .device')].every((d) => d.textContent == 'mobile'));
  await page.evaluate(() => (location.hash = '#/sessions'));
  await page.waitForSelector(`#vroot[data-ready] tr[data-sid="${data.replay.sid}"]`);
  await page.click(`tr[data-sid="${data.replay.sid}"] button.play`);
  await ready(page, 'replay');
  assert.deepEqual(errors, []);
  await page.close();
});

test('signals: pages table columns, the dead-click heatmap, session badges and filter, replay timeline marks', async () => {
  const { page, errors } = await open();
  const pages = (await api(server.url, `sites/shop/pages?from=${day(29)}&to=${day(0)}`)).pages;
  const pricing = pages.find((p) => p.path == '/pricing');
  assert.deepEqual([pricing.dead_clicks, pricing.rage_clicks, pricing.error_clicks], [4, 1, 1]);
  assert.equal(pages.find((p) => p.path == '/contact').quick_backs, 1);
  // A page's dead-click count opens the heatmap of those clicks.
  const link = page.locator('#pages-table tbody tr', { hasText: '/pricing' }).locator('a.sig-dead');
  assert.equal(await link.textContent(), '4');
  await link.click();
  await ready(page, 'heatmaps');
  const params = new URLSearchParams(await page.evaluate(() => location.hash.split('?')[1]));
  assert.deepEqual([params.get('path'), params.get('kind')], ['/pricing', 'dead']);
  assert.equal(await page.getAttribute('.seg button[data-value="dead"]', 'aria-pressed'), 'true');
  assert.match(await page.textContent('.heat-legend'), /(^|\D)4 dead clicks/);

  // Sessions: badges, and the signal filter (any of the ticked ones).
  await page.evaluate(() => (location.hash = '#/sessions?signal=quickback'));
  await page.waitForFunction(() => document.getElementById('vroot').dataset.ready && document.querySelectorAll('#sessions-table tbody tr').length == 1);
  const sid = data.frustrated.sid;
  assert.equal(await page.getAttribute('#sessions-table tbody tr', 'data-sid'), sid);
  const badges = await page.$$eval(`tr[data-sid="${sid}"] .badge`, (b) => b.map((x) => x.textContent));
  assert.deepEqual(badges, ['1 rage', '4 dead', '1 error', '1 quick back']);
  assert.ok(await page.isChecked('#signal-filter input[value="quickback"]'));
  await page.check('#signal-filter input[value="dead"]');
  await page.click('#session-filters button[type=submit]');
  await page.waitForFunction(() => location.hash.includes('signal=dead%2Cquickback') || location.hash.includes('signal=dead,quickback'));
  await page.waitForSelector('#vroot[data-ready] #sessions-table');
  const api_ids = (await api(server.url, `sites/shop/sessions?from=${day(29)}&to=${day(0)}&signal=dead,quickback`)).sessions.map((x) => x.id);
  assert.deepEqual(await page.$$eval('#sessions-table tbody tr', (t) => t.map((r) => r.dataset.sid)), api_ids);

  // The replay timeline marks each signal and each single-page-app route.
  const detail = await api(server.url, `sites/shop/sessions/${sid}`);
  await page.evaluate((s) => (location.hash = '#/replay/' + s), sid);
  await ready(page, 'replay');
  const marks = await page.$$eval('.mark-signal', (m) => m.map((x) => x.dataset.signal));
  assert.deepEqual(marks, detail.signals.map((x) => x.kind));
  assert.deepEqual(marks.sort(), ['dead', 'dead', 'dead', 'dead', 'error', 'quickback', 'rage']);
  assert.deepEqual(await page.$$eval('.mark-route', (m) => m.map((x) => x.dataset.route)), ['/contact', '/pricing']);
  assert.equal(await page.locator('#replay-events .ev-signal').count(), 7);
  assert.deepEqual(errors, []);
  await page.close();
});

// ----- nothing recorded can run -----

const MARKERS = ['hscript', 'svgprefixscript', 'hiframe', 'script', 'meta', 'bodyonload', 'onerror', 'link', 'link2', 'svgonload', 'svgscript', 'svglink', 'srcdoc', 'iframesrc', 'object', 'form', 'formaction', 'mutonerror', 'mutscript', 'mutonclick', 'mutlink', 'raw-script', 'raw-onerror', 'raw-link'];
const pwned = (page) => page.evaluate((m) => m.filter((k) => document.documentElement.hasAttribute('data-pwned-' + k)), MARKERS);

/**
 * Puts code-running payloads straight into `doc` (bypassing the replay builder): a <script>,
 * an <img onerror> whose image fails, and a javascript: link that gets clicked. Resolves once
 * the image has failed (the inline onerror handler, registered first, would have run by then)
 * and a fetch round trip later (for the javascript: navigation's task).
 */
function injectRaw(page, frameSelector, origin) {
  return page.evaluate(
    async ({ frameSelector, origin }) => {
      const doc = document.querySelector(frameSelector).contentDocument;
      const mark = (what) => `top.document.documentElement.setAttribute('data-pwned-${what}','1');new Image().src='${origin}/pwned-${what}'`;
      const s = doc.createElement('script');
      s.textContent = mark('raw-script');
      doc.body.appendChild(s);
      const box = doc.createElement('div');
      box.innerHTML = `<img id="rawimg" src="${origin}/no-such-image-raw.png" onerror="${mark('raw-onerror')}"><a id="rawlink" href="javascript:${mark('raw-link')}">x</a>`;
      doc.body.appendChild(box);
      const img = doc.getElementById('rawimg');
      await new Promise((r) => (img.complete ? r() : (img.addEventListener('error', r), img.addEventListener('load', r))));
      doc.getElementById('rawlink').click();
      await fetch(origin + '/healthz', { mode: 'no-cors' });
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      await fetch(origin + '/healthz', { mode: 'no-cors' });
    },
    { frameSelector, origin }
  );
}

test('control: the same payloads DO run in an ordinary frame, so their absence below means something', async () => {
  const page = await browser.newPage();
  const hits = [];
  page.on('request', (r) => r.url().includes('/pwned-') && hits.push(r.url()));
  await page.goto(server.url + '/healthz'); // this server's origin, a document without a CSP
  await page.evaluate(() => {
    const f = document.createElement('iframe');
    f.id = 'plain';
    document.body.appendChild(f);
  });
  await injectRaw(page, '#plain', server.url);
  assert.deepEqual(await pwned(page), ['raw-script', 'raw-onerror', 'raw-link']);
  assert.ok(hits.some((u) => u.endsWith('/pwned-raw-script')));
  await page.close();
});

test('replay: a recorded <script>, on…= handlers and javascript: URLs do not run', async () => {
  const { sid, events, ids } = data.hostile;
  const { page, errors, requests } = await open(`#/replay/${sid}`);
  const t0 = events[0].t;
  await seek(page, events.at(-1).t - t0); // after the snapshot and the hostile mutations
  const frame = 'iframe.replay-frame';
  // Wait until both recorded images have failed to load (their onerror would have run by then).
  await page.waitForFunction((sel) => {
    const d = document.querySelector(sel).contentDocument;
    return ['img', 'img2'].every((id) => d.getElementById(id) && d.getElementById(id).complete);
  }, frame);
  // Click what a visitor might: the javascript: links, the form button, the element given an onclick.
  await page.evaluate((sel) => {
    const d = document.querySelector(sel).contentDocument;
    for (const id of ['jslink', 'jslink2', 'formbtn', 'target']) d.getElementById(id)?.click();
  }, frame);
  await page.evaluate(async (origin) => {
    await fetch(origin + '/healthz', { mode: 'no-cors' });
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    await fetch(origin + '/healthz', { mode: 'no-cors' });
  }, server.url);
  assert.deepEqual(await pwned(page), []);
  assert.deepEqual(requests.filter((r) => r.url.includes('/pwned-')), []);

  // What was built: the page's text, but no script, handler, meta or javascript: URL, and frames
  // only as empty, source-less <iframe>s (what a recorded same-origin frame is rebuilt into).
  const built = await page.evaluate((sel) => {
    const d = document.querySelector(sel).contentDocument;
    const all = [...d.querySelectorAll('*')];
    return {
      text: d.body.textContent,
      scripts: d.querySelectorAll('script, object, embed, meta').length,
      frames: [...d.querySelectorAll('iframe')].map((f) => [f.getAttribute('src'), f.getAttribute('srcdoc'), f.contentDocument.URL, f.contentDocument.body?.childNodes.length || 0]),
      // by local name and namespace, whatever the prefix: no script, frame, meta or prefetch link was built
      prefixed: all.filter((el) => el.prefix || /^(script|meta|base)$/.test(el.localName) || (el.localName == 'link' && el.rel != 'stylesheet')).map((el) => el.outerHTML.slice(0, 60)),
      handlers: all.flatMap((el) => [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => a.name)),
      jsUrls: all.flatMap((el) => [...el.attributes].filter((a) => /script:/i.test(a.value)).map((a) => `${el.localName}[${a.name}]`)),
      styled: d.getElementById('target').getAttribute('style'),
      sandbox: document.querySelector(sel).getAttribute('sandbox'),
    };
  }, frame);
  assert.match(built.text, /Spring promo/);
  assert.equal(built.scripts, 0);
  assert.deepEqual(built.frames, [[null, null, 'about:blank', 0]], 'the recorded <iframe> is an empty frame: no src, no srcdoc');
  assert.deepEqual(built.prefixed.filter((h) => !h.startsWith('<base href="' + server.url + '/promo"')), []);
  assert.deepEqual(requests.filter((r) => /pwned-x/.test(r.url)), []);
  assert.deepEqual(built.handlers, []);
  assert.deepEqual(built.jsUrls, []);
  assert.equal(built.styled, 'color:red', 'harmless attribute mutations still apply');
  assert.equal(built.sandbox, 'allow-same-origin');
  void ids;

  // Second line: even markup that bypasses the builder cannot run in the replay frame
  // (sandbox without allow-scripts + the frame's CSP) — the control test shows it runs elsewhere.
  await injectRaw(page, frame, server.url);
  assert.deepEqual(await pwned(page), []);
  assert.deepEqual(requests.filter((r) => r.url.includes('/pwned-')), []);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a session recorded by the real snippet on /demo replays in the dashboard', async () => {
  const visit = await browser.newPage({ viewport: { width: 1280, height: 800 }, userAgent: (await import('./server.mjs')).UA });
  await visit.goto(server.url + '/demo');
  await visit.waitForFunction(() => window.hushtale);
  await visit.mouse.move(200, 200);
  await visit.mouse.move(400, 300, { steps: 5 });
  await visit.mouse.click(400, 300);
  // Leaving the page sends what is queued (pagehide); then the collector has a replay session.
  await visit.goto('about:blank');
  let sid;
  for (let i = 0; i < 300 && !sid; i++) {
    const s = (await api(server.url, 'sites/demo/sessions?replay=true')).sessions;
    sid = s[0]?.id;
    if (!sid) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(sid, 'the snippet stored a replay session');
  await visit.close();
  const { events } = await api(server.url, `sites/demo/sessions/${sid}`);
  const { page, errors } = await open();
  await page.selectOption('#site', 'demo');
  await page.evaluate((h) => (location.hash = h), `#/replay/${sid}`);
  await ready(page, 'replay');
  await seek(page, events.at(-1).t - events[0].t);
  const text = await page.evaluate(() => document.querySelector('iframe.replay-frame').contentDocument.body.textContent);
  assert.match(text, /Welcome to the spring catalogue/);
  assert.deepEqual(errors, []);
  await page.close();
});
