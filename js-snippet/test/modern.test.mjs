// Modern sites, end to end: real headless Chromium runs the real snippet on a single-page app
// served from its OWN origin (not the collector's), goes through every case of issue #12 —
// history routes, query-only and same-path changes, back, hash routes, working, inert and
// throwing buttons, plain text, a text field, a download link, a rage burst, a quick back — and
// the collector's API answers are compared exactly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startCollector, launch } from './helpers/collector.mjs';
import { sidOf, waitFor, sleep } from './helpers/page.mjs';

let srv, browser, site;

// The app: persistent controls, a <main> whose height depends on the route (so each view's
// document size is its own), and a router on the history API and hash routes.
const app = (collector) => `<!doctype html>
<html><head><meta charset="utf-8"><title>Shop app</title>
<style>body{margin:0;font:16px sans-serif} button,a,p,input{display:block;margin:4px} #out{min-height:20px}</style>
<script async src="${collector}/hushtale.js" data-site="demo"></script></head>
<body>
<nav>
  <button id="to-a">A</button><button id="to-b">B</button><button id="query">Sort</button>
  <button id="same">Same path</button><button id="replace">Replace path</button><button id="hash">Settings</button>
  <a id="anchor" href="#details">Details</a>
</nav>
<button id="works">Add to cart</button>
<button id="inert">Buy now</button>
<button id="throws">Apply coupon</button>
<p id="text">Free shipping on orders over forty euros.</p>
<input id="field" type="text" placeholder="Coupon">
<a id="download" href="/terms.txt" download>Terms</a>
<div data-hushtale-nodead><button id="ignored">Help</button></div>
<div id="out"></div>
<main id="view"></main>
<script>
  const HEIGHTS = { '/app/start': 2000, '/app/a': 3000, '/app/b': 1500, '/app/c': 2200, '#/settings': 1200 };
  const view = document.getElementById('view');
  function render() {
    const route = location.hash.startsWith('#/') ? location.hash : location.pathname;
    view.textContent = 'route ' + route;
    view.style.height = (HEIGHTS[route] || 500) + 'px';
  }
  const go = (path) => (history.pushState({}, '', path), render());
  const on = (id, f) => document.getElementById(id).addEventListener('click', f);
  on('to-a', () => go('/app/a'));
  on('to-b', () => go('/app/b'));
  on('query', () => history.replaceState({}, '', location.pathname + '?sort=price&utm_source=mail'));
  on('same', () => history.pushState({}, '', location.pathname + '?page=2'));
  on('replace', () => (history.replaceState({}, '', '/app/c'), render()));
  on('hash', () => (location.hash = '#/settings'));
  on('works', () => (document.getElementById('out').textContent = 'added at ' + Date.now()));
  on('throws', () => { throw new Error('coupon service unavailable'); });
  addEventListener('popstate', render);
  addEventListener('hashchange', render);
  render();
</script>
</body></html>`;

before(async () => {
  srv = await startCollector();
  browser = await launch();
  site = http.createServer((req, res) => {
    if (req.url == '/terms.txt') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Disposition': 'attachment; filename="terms.txt"' });
      return res.end('terms');
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(app(srv.url));
  });
  await new Promise((r) => site.listen(0, '127.0.0.1', r));
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  site?.close();
});

const origin = () => 'http://127.0.0.1:' + site.address().port;
const byPath = (pages) => Object.fromEntries(pages.map((p) => [p.path, p]));

test('a single-page app: one view per route, dead/rage/error clicks and quick backs counted exactly', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, acceptDownloads: true });
  const page = await context.newPage();
  assert.notEqual(new URL(origin()).origin, new URL(srv.url).origin, 'the app is served from its own origin');
  await page.goto(origin() + '/app/start');
  await page.waitForFunction(() => window.hushtale && sessionStorage.hushtale_sid_demo, null, { timeout: 15000 });
  await page.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/hushtale-more.js')));
  await sleep(500);
  const sid = await sidOf(page);
  const heights = { '/app/start': await page.evaluate(() => document.documentElement.scrollHeight) };
  const click = async (sel, pause = 1300) => {
    await page.click(sel);
    await sleep(pause); // past the 1 s a click is watched, and past the rage window
  };

  // On /app/start: the negatives first, then the inert button, the throwing one, a rage burst.
  await click('#works'); // changes the DOM: not dead
  await click('#text'); // plain text: never dead
  await click('#field'); // a text field: never dead
  await click('#download'); // a download link: never dead
  await click('#ignored'); // inside data-hushtale-nodead
  await click('#anchor'); // an in-page anchor: a navigation (not dead), and no new view
  await click('#inert'); // nothing happens: dead
  await click('#throws'); // its handler throws: an error click (and dead: nothing changed)
  for (let i = 0; i < 3; i++) await click('#inert', 150); // a rage burst: 3 more dead clicks
  await sleep(1300);

  // Routes.
  await click('#to-a', 300); // pushState /app/a: a view
  heights['/app/a'] = await page.evaluate(() => document.documentElement.scrollHeight);
  await click('#query', 300); // replaceState, query only: no view (and the click is not dead)
  await click('#same', 300); // pushState to the same path: no view
  await click('#to-b', 300); // pushState /app/b: a view ...
  heights['/app/b'] = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.goBack(); // ... left by going back within 5 s: a quick back on /app/b
  await sleep(1500);
  assert.equal(await page.evaluate(() => location.pathname), '/app/a');
  await click('#replace', 300); // replaceState to a new path: a view of /app/c
  heights['/app/c'] = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.mouse.move(640, 400);
  await page.mouse.wheel(0, 5000); // read /app/c to the bottom
  await sleep(800);
  await click('#hash', 500); // hash route #/settings: a view
  await sleep(500);
  await page.goto('about:blank');

  const events = await waitFor('the stored session', async () => {
    const r = await srv.api('/api/sites/demo/sessions/' + sid);
    return r.status == 200 && r.body.events.filter((e) => e.k == 'view').length >= 6 && r.body.events.some((e) => e.k == 'vis' && e.hidden) && r.body;
  });
  const o = origin();
  const views = events.events.filter((e) => e.k == 'view');
  assert.deepEqual(
    views.map((v) => [v.url, !!v.spa]),
    [
      [o + '/app/start', false],
      [o + '/app/a', true],
      [o + '/app/b', true],
      [o + '/app/a', true],
      [o + '/app/c', true],
      [o + '/app/c#/settings', true],
    ],
  );
  assert.ok(views[0].load_ms >= 0 && views.slice(1).every((v) => v.load_ms === undefined), 'only the real load has a load time');
  for (const v of views.slice(1, 5)) assert.equal(v.dh, heights[v.path], `fresh document height of ${v.path}`);
  assert.ok(views[5].dh < heights['/app/c'], 'the hash route has its own, shorter document');

  const clicks = events.events.filter((e) => e.k == 'click');
  const flagged = clicks.filter((c) => c.dead).map((c) => c.sel);
  assert.deepEqual(flagged, ['button#inert', 'button#throws', 'button#inert', 'button#inert', 'button#inert']);

  // What the operator sees.
  const pages = byPath((await srv.api('/api/sites/demo/pages')).body.pages);
  assert.deepEqual(Object.keys(pages).sort(), ['/app/a', '/app/b', '/app/c', '/app/c#/settings', '/app/start']);
  const figures = (p) => [p.pageviews, p.clicks, p.dead_clicks, p.rage_clicks, p.error_clicks, p.quick_backs];
  assert.deepEqual(figures(pages['/app/start']), [1, 12, 5, 1, 1, 0]);
  assert.deepEqual(figures(pages['/app/a']), [2, 4, 0, 0, 0, 0]);
  assert.deepEqual(figures(pages['/app/b']), [1, 0, 0, 0, 0, 1]);
  assert.deepEqual(figures(pages['/app/c']), [1, 1, 0, 0, 0, 0]);
  assert.deepEqual(figures(pages['/app/c#/settings']), [1, 0, 0, 0, 0, 0]);
  assert.equal(pages['/app/c'].avg_scroll_pct, 100, 'scrolling attributes to the route it happened on');
  assert.ok(pages['/app/start'].avg_scroll_pct < 50, 'the first route was never scrolled: ' + pages['/app/start'].avg_scroll_pct);
  assert.equal(pages['/app/start'].avg_load_ms > 0, true);
  assert.equal(pages['/app/a'].avg_load_ms, null);

  const sessions = (await srv.api('/api/sites/demo/sessions')).body.sessions;
  const s = sessions.find((x) => x.id == sid);
  assert.deepEqual([s.pageviews, s.dead_clicks, s.rage_clicks, s.error_clicks, s.quick_backs], [6, 5, 1, 1, 1]);
  for (const signal of ['rage', 'dead', 'error', 'quickback', 'rage,quickback'])
    assert.ok((await srv.api('/api/sites/demo/sessions?signal=' + signal)).body.sessions.some((x) => x.id == sid), signal);

  const heat = (await srv.api('/api/sites/demo/heatmap?kind=dead&path=' + encodeURIComponent('/app/start'))).body;
  assert.equal(heat.cells.reduce((n, c) => n + c.n, 0), 5, 'the dead-click heatmap holds the 5 dead clicks');
  const kinds = events.signals.map((x) => x.kind);
  // A dead and an error click seconds apart can reach the server in either order (separate
  // batches): the counts are exact, the order only where the script spaces the clicks apart.
  assert.deepEqual([...kinds].sort(), ['dead', 'dead', 'dead', 'dead', 'dead', 'error', 'quickback', 'rage']);
  assert.deepEqual(kinds.slice(-2), ['rage', 'quickback']);
  await context.close();
});
