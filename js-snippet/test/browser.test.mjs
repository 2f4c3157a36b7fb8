// Real headless Chromium against the real collector: what a visitor's browser sends, what the
// server keeps, and what a replay of it shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startCollector, launch } from './helpers/collector.mjs';
import { captureUrls, storedEvents, sidOf, ready, visitDemo, replay, waitFor, sleep, TYPED, PAGE_SECRETS } from './helpers/page.mjs';

let srv, browser;
before(async () => {
  srv = await startCollector();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

// HUSHTALE_LOCAL_ASSETS=1 (development only) serves dist/ and the demo from this folder, for a
// server build that does not embed them yet.
async function newContext() {
  const context = await browser.newContext();
  if (process.env.HUSHTALE_LOCAL_ASSETS == '1')
    for (const [path, file, type] of [
      ['/demo', 'demo/index.html', 'text/html'],
      ['/hushtale.js', 'dist/hushtale.js', 'text/javascript'],
      ['/hushtale-more.js', 'dist/hushtale-more.js', 'text/javascript'],
      ['/hushtale-replay.js', 'dist/hushtale-replay.js', 'text/javascript'],
    ])
      await context.route(srv.url + path, (route) => route.fulfill({ contentType: type, body: readFileSync(new URL('../' + file, import.meta.url)) }));
  return context;
}

/** What the browser sent for session `sid`, as it was on the wire (decoded). */
const sentFor = (sid) => srv.wire.filter((w) => w.json.sid == sid);

const kinds = (events) => events.map((e) => e.k);
const leave = (page) => page.goto('about:blank');

/** A page like /demo with `data-replay` set to `share`. */
async function demoWithReplay(context, share) {
  await context.route('**/demo', async (route) => {
    const r = await route.fetch();
    route.fulfill({ response: r, body: (await r.text()).replace('data-replay="1"', `data-replay="${share}"`) });
  });
}

function assertNoSecrets(label, text) {
  for (const s of [...Object.values(TYPED), ...PAGE_SECRETS, 'Wilhelmina', 'Tr0ub4dor', '4242424242424242'])
    assert.ok(!text.includes(s), `${label} contains ${JSON.stringify(s)}`);
  // Any group of the card's digits, but not inside a long number: a 13-digit millisecond
  // time holds "4242" by chance now and then (the server also shifts times by the clock skew).
  assert.ok(!text.replace(/\d{10,}/g, '#').includes('4242'), `${label} contains "4242"`);
}

test('a visit to /demo becomes one stored session, in order, with nothing typed or personal in it', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(srv.url + '/demo');
  await ready(page);
  const sid = await sidOf(page);
  await visitDemo(page);
  await page.evaluate(() => setTimeout(() => { throw new Error('checkout failed for bob@example.com, card 4111111111111111'); }));
  await sleep(300);
  const liveNews = await page.$$eval('#news li', (l) => l.length);
  await leave(page);

  const events = await storedEvents(srv.api, sid, (ev) => ev.some((e) => e.k == 'vis' && e.hidden) && ev.filter((e) => e.k == 'input').length >= 4);
  const k = kinds(events);
  // what an operator sees
  assert.equal(k[0], 'view', 'the session starts with its pageview');
  const view = events[0];
  assert.equal(view.url, srv.url + '/demo');
  assert.ok(view.vw > 0 && view.vh > 0 && view.dh > view.vh, 'viewport and document size');
  assert.ok(view.load_ms >= 0, 'load time from Navigation Timing');
  for (let i = 1; i < events.length; i++) assert.ok(events[i].t >= events[i - 1].t, 'events are in time order');
  for (const kind of ['move', 'click', 'scroll', 'input', 'vis', 'err', 'snap', 'mut']) assert.ok(k.includes(kind), 'has ' + kind);
  const clicks = events.filter((e) => e.k == 'click');
  assert.ok(clicks.some((c) => c.sel == 'button#add'), 'clicks name their target: ' + clicks.map((c) => c.sel));
  assert.ok(clicks.every((c) => c.ex >= 0 && c.ex <= 1000 && c.ey >= 0 && c.ey <= 1000), 'offsets inside the target');
  assert.ok(events.some((e) => e.k == 'scroll' && e.y > 0));
  const inputs = Object.fromEntries(events.filter((e) => e.k == 'input').map((e) => [e.sel, e.len]));
  assert.equal(inputs['input#name'], TYPED.name.length, 'the length of what was typed, only');
  assert.equal(inputs['input#email'], TYPED.email.length);
  assert.equal(inputs['input#password'], 1, 'not the length of a password: only that it is not empty');
  const err = events.find((e) => e.k == 'err');
  assert.match(err.msg, /checkout failed for/);

  // nothing typed, and none of the page's personal data, was sent or stored
  const sent = sentFor(sid);
  assert.ok(sent.length > 0);
  assertNoSecrets('what was sent', sent.map((s) => s.text).join('\n'));
  assertNoSecrets('what was stored', JSON.stringify(events));
  assert.ok(!JSON.stringify(events).includes('bob@example.com') && !JSON.stringify(events).includes('4111111111111111'));
  assert.ok(sent.some((s) => s.gzip && s.type == 'application/json'), 'batches are gzipped when the browser can');

  // the replay shows the page, masked
  const r = await replay(context, events);
  assert.equal(r.h1, 'Welcome to the spring catalogue', 'ordinary text is readable');
  assert.match(r.note, /support desk at \*+/, 'the e-mail address is masked');
  assert.ok(!/\d/.test(r.note), 'the phone number is masked');
  assert.ok(r.account.trim().length > 20 && !/[A-Za-z]/.test(r.account), 'a data-hushtale-mask region keeps its shape, not its text');
  assert.ok(r.promoBlocked && r.promoSize[0] > 100 && r.promoSize[1] > 50, 'a data-hushtale-block region is a placeholder box of its size');
  assert.ok(r.passwordBlocked && r.cardBlocked && r.nameInput, 'password and card fields are blocked');
  assert.equal(liveNews, 7);
  assert.equal(r.news.length, liveNews, 'the nodes added by the button are in the replay');
  assert.match(r.news[6], /^News item \*+ restocked notebooks, aisle \*+$/);
  assert.equal(r.catalog, 120, 'the long list is complete');
  assert.equal(r.scripts, 0, 'no scripts');
  assertNoSecrets('the replay', r.html);
  await context.close();
});

test('a session not sampled for replay sends analytics only and never loads the recorder', async () => {
  const context = await newContext();
  await demoWithReplay(context, 0);
  const urls = captureUrls(context);
  const page = await context.newPage();
  await page.goto(srv.url + '/demo');
  await ready(page, false);
  const sid = await sidOf(page);
  await visitDemo(page);
  await leave(page);
  const events = await storedEvents(srv.api, sid, (ev) => ev.some((e) => e.k == 'input'));
  const sent = sentFor(sid);
  assert.ok(kinds(events).includes('click'));
  assert.ok(!kinds(events).some((k) => k == 'snap' || k == 'mut'), 'no DOM recorded');
  assert.ok(!sent.some((s) => /"k":"(snap|mut)"/.test(s.text)));
  assert.ok(!urls.some((u) => u.includes('hushtale-replay.js')), 'the replay recorder was not downloaded');
  await context.close();
});

test('two pages of one visit are one session, every batch kept', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(srv.url + '/demo');
  await ready(page);
  const sid = await sidOf(page);
  await page.click('#add');
  await sleep(300);
  await page.goto(srv.url + '/demo?utm_source=newsletter&email=jo@example.com#top');
  await ready(page);
  assert.equal(await sidOf(page), sid, 'same tab, same session');
  await page.click('#add');
  await sleep(300);
  await leave(page);
  const events = await storedEvents(srv.api, sid, (ev) => ev.filter((e) => e.k == 'view').length == 2 && ev.filter((e) => e.k == 'click').length == 2);
  const views = events.filter((e) => e.k == 'view');
  assert.equal(views[1].url, srv.url + '/demo?utm_source=newsletter', 'query dropped except utm_*, no fragment');
  assert.equal(events.filter((e) => e.k == 'snap' && e.d.u).length, 2, 'each page load is snapshotted');
  await context.close();
});

// Every opt-out path: the page works, and the collector gets nothing.
const optOuts = {
  'the first-party opt-out cookie': async (context) => context.addCookies([{ name: 'hushtale_optout', value: '1', url: srv.url }]),
  'Global Privacy Control': async (context) =>
    context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true })),
  'Do Not Track': async (context) => context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' })),
  "the collector's own opt-out (its /disable page)": async (context) => {
    const p = await context.newPage();
    await p.goto(srv.url + '/disable');
    await p.close();
  },
  'the collector reporting an opt-out made on its own site': async (context) =>
    context.route('**/optout', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: '{"opted_out":true}' })),
};
for (const [name, setup] of Object.entries(optOuts)) {
  test('opted out through ' + name + ': nothing is sent', async () => {
    const context = await newContext();
    await setup(context);
    const urls = captureUrls(context);
    const page = await context.newPage();
    await page.goto(srv.url + '/demo');
    await page.waitForFunction(() => window.hushtale, null, { timeout: 15000 });
    await sleep(1500);
    await visitDemo(page);
    await sleep(1500); // leaving the page below would send whatever is queued
    const vid = await page.evaluate(() => localStorage.hushtale_vid_demo || null);
    await leave(page);
    await sleep(500);
    assert.deepEqual(urls.filter((u) => u.endsWith('/collect')), [], 'no batch');
    assert.equal(vid, null, 'no visitor id was created');
    await context.close();
  });
}

test('hushtale.optOut() stops recording at once and for later visits; optIn() resumes', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(srv.url + '/demo');
  await ready(page);
  const sid = await sidOf(page);
  await page.evaluate(() => window.hushtale.optOut());
  const before = srv.wire.length;
  await visitDemo(page);
  await page.reload();
  await page.waitForFunction(() => window.hushtale);
  await visitDemo(page);
  await leave(page);
  await sleep(500);
  assert.equal(srv.wire.length, before, 'nothing sent after optOut()');
  assert.equal(sentFor(sid).length, 0, 'not even what was queued before');
  assert.ok((await context.cookies()).some((c) => c.name == 'hushtale_optout' && c.value == '1'), 'a first-party cookie remembers it');

  await page.goto(srv.url + '/demo');
  await page.waitForFunction(() => window.hushtale);
  await page.evaluate(() => window.hushtale.optIn());
  await page.click('#add');
  await sleep(1000);
  await leave(page);
  await waitFor('a batch after optIn()', () => srv.wire.length > before, 10000);
  await context.close();
});

test('exportMyData() returns what the collector holds about this visitor; forgetMe() erases it', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(srv.url + '/demo');
  await ready(page);
  const sid = await sidOf(page);
  await page.click('#add');
  await storedEvents(srv.api, sid, (ev) => ev.some((e) => e.k == 'view'));
  const exported = await page.evaluate(() => window.hushtale.exportMyData());
  assert.ok(JSON.stringify(exported).includes('view'), 'the export holds the pageview');
  await page.evaluate(() => window.hushtale.forgetMe());
  await waitFor('the session to be erased', async () => (await srv.api('/api/sites/demo/sessions/' + sid)).status == 404);
  assert.equal(await page.evaluate(() => localStorage.hushtale_vid_demo || null), null, 'the visitor id is gone from the browser too');
  await context.close();
});

test('a 429 with Retry-After is retried later and stored once; another 4xx is dropped, not resent', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(srv.url + '/demo');
  await ready(page);
  const sid = await sidOf(page);
  const seen = [];
  srv.hook.fn = (batch) => {
    if (batch.sid != sid) return;
    seen.push(batch.seq);
    if (batch.seq == 0 && seen.filter((s) => s == 0).length == 1) return { status: 429, headers: { 'Retry-After': '1' } };
    if (batch.seq == 1) return { status: 400 };
  };
  try {
    await visitDemo(page);
    // keep the visitor busy: a batch is cut every 10 s while there are events
    for (let i = 0; !seen.includes(1) && i < 80; i++) await page.mouse.move(100 + (i % 10) * 60, 200 + (i % 3) * 80), await sleep(500);
    await page.click('#add');
    await sleep(1500);
    await leave(page);
    const events = await storedEvents(srv.api, sid, (ev) => ev.some((e) => e.k == 'vis'));
    assert.equal(seen.filter((s) => s == 0).length, 2, 'batch 0 was sent twice: refused with 429, then accepted');
    assert.equal(events.filter((e) => e.k == 'view').length, 1, 'and stored once');
    assert.equal(seen.filter((s) => s == 1).length, 1, 'batch 1 was refused with 400 and never resent');
    assert.ok(seen.includes(2), 'later batches still go out');
  } finally {
    srv.hook.fn = null;
  }
  await context.close();
});

test('a very large page is snapshotted in pieces the collector accepts, and replays whole', async () => {
  const context = await newContext();
  const rows = 6000;
  await context.route('**/big', (route) =>
    route.fulfill({
      contentType: 'text/html',
      body:
        '<!doctype html><title>big</title><h1>Big table</h1><table>' +
        Array.from({ length: rows }, (_, i) => `<tr><td>Row ${i}</td><td>${'lorem ipsum dolor sit amet '.repeat(8)}</td><td><b>ok</b></td></tr>`).join('') +
        '</table><script async src="/hushtale.js" data-site="demo" data-replay="1"></script>',
    })
  );
  const page = await context.newPage();
  await page.goto(srv.url + '/big');
  await ready(page);
  const sid = await sidOf(page);
  // wait until what was sent is stored and nothing more came for longer than a batch interval
  const snaps = (list) => list.filter((e) => e.k == 'snap').length;
  let last = -1;
  let since = Date.now();
  const all = await waitFor(
    'the snapshot to be stored',
    async () => {
      const sentSnaps = snaps(sentFor(sid).flatMap((s) => s.json.events));
      if (sentSnaps != last) (last = sentSnaps), (since = Date.now());
      const stored = (await srv.api('/api/sites/demo/sessions/' + sid)).body.events || [];
      return sentSnaps > 0 && Date.now() - since > 12000 && snaps(stored) == sentSnaps && stored;
    },
    60000
  );
  assert.ok(snaps(all) > 10, 'split into many snap events');
  assert.ok(sentFor(sid).every((s) => s.text.length < 4 * 2 ** 20 && s.json.events.length <= 2000), 'every batch within the limits');
  const r = await replay(context, all);
  const count = (r.html.match(/<tr>/g) || []).length;
  assert.equal(count, rows, 'every row is in the replay');
  await context.close();
});

test('a site with mask_text "all" has its page text masked by the snippet already, and the replay shows no words', async () => {
  const created = await fetch(srv.url + '/api/sites', {
    method: 'POST',
    headers: { Authorization: 'Bearer test-operator-token', 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: 'strict', origins: ['*'], mask_text: 'all' }),
  });
  assert.equal(created.status, 201, await created.text());
  const context = await newContext();
  await context.route('**/demo', async (route) => {
    const r = await route.fetch();
    route.fulfill({ response: r, body: (await r.text()).replace('data-site="demo"', 'data-site="strict"') });
  });
  const page = await context.newPage();
  await page.goto(srv.url + '/demo');
  await page.waitForFunction(() => sessionStorage.hushtale_sid_strict, null, { timeout: 15000 });
  const sid = await page.evaluate(() => JSON.parse(sessionStorage.hushtale_sid_strict).sid);
  await sleep(1500);
  await leave(page);
  const events = await waitFor('the strict session', async () => {
    const r = await srv.api('/api/sites/strict/sessions/' + sid);
    return r.status == 200 && r.body.events.some((e) => e.k == 'snap') && r.body.events;
  });
  const sent = sentFor(sid).map((s) => s.text).join('\n');
  assert.ok(sent.includes('"k":"snap"'), 'a snapshot was sent');
  for (const words of ['Welcome to the spring catalogue', 'spring', 'catalogue'])
    assert.ok(!sent.includes(words), `the snippet sent readable page text: ${words}`);
  const r = await replay(context, events);
  assert.ok(r.h1.length > 10 && !/[A-Za-z]/.test(r.h1), 'the heading keeps its length, not its words: ' + r.h1);
  await context.close();
});
