// Replays that stay true (#18, #17): fixture pages recorded by the real snippet in Chromium
// (served from an origin of their own), replayed in the real dashboard, compared with the live
// page by element structure and by pixels (text transparent on both sides: the replay masks it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, collect, UA } from './server.mjs';
import { serveFixtures, record, openReplay, seek, replayState, pixelMatch, SCENARIOS } from './fidelity.mjs';
import { numberTree } from './data.mjs';

let server, browser, fixtures, canvasFixtures;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  let collector = '';
  fixtures = await serveFixtures(() => collector);
  canvasFixtures = await serveFixtures(() => collector, 'fixcv'); // a site with canvas frames on
  // the fixtures are on 127.0.0.1: the site allows capturing from a private address
  server = await startServer(
    `\n[[site]]\nid = "fix"\norigins = ["${fixtures.url}"]\nassets_private = true\n` +
      `\n[[site]]\nid = "fixcv"\norigins = ["${canvasFixtures.url}"]\nassets_private = true\nreplay_canvas = true\n`
  );
  collector = server.url;
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await fixtures?.close();
  await canvasFixtures?.close();
});

/** Records `path`, replays it to its end in the dashboard, and compares with the last live state. */
async function roundTrip(path, act) {
  const rec = await record(browser, { collector: server.url, fixtures, path, act });
  const { page, errors } = await openReplay(browser, server.url, 'fix', rec.sid);
  const end = Number(await page.evaluate(() => document.getElementById('vroot').dataset.end));
  await seek(page, end);
  const shown = await replayState(page);
  const live = rec.live.at(-1);
  const px = await pixelMatch(browser, live.png, shown.png);
  return { rec, page, errors, shown, live, px, end };
}

test('#18: a stylesheet and a logo with content-hashed file names replay', async () => {
  const r = await roundTrip('/hashed/');
  assert.deepEqual(r.shown.structure, r.live.structure);
  const note = await r.page.evaluate(() => {
    const d = document.querySelector('iframe.replay-frame').contentDocument;
    return { bg: getComputedStyle(d.querySelector('.note')).backgroundColor, logo: d.querySelector('img.logo').naturalWidth };
  });
  assert.equal(note.bg, 'rgb(255, 243, 196)', 'the hashed stylesheet applies');
  assert.equal(note.logo, 64, 'the hashed logo loads');
  assert.ok(r.px.match >= 0.98, `pixels: ${JSON.stringify(r.px)}`);
  assert.deepEqual(r.errors, []);
  await r.page.close();
});

test('#18: an SVG area chart with long-decimal paths and gradient fills replays', async () => {
  const r = await roundTrip('/chart.html');
  const geometry = (d) => ['area', 'line'].map((id) => d.getElementById(id).getAttribute('d')).concat(d.getElementById('spark').getAttribute('points'));
  const replayed = await r.page.evaluate(`(${geometry})(document.querySelector('iframe.replay-frame').contentDocument)`);
  assert.match(replayed[0], /53\.28513035220995/, 'long decimals are not taken for card numbers');
  const stored = r.rec.events.filter((e) => e.k == 'snap').map((e) => JSON.stringify(e.d)).join();
  assert.doesNotMatch(stored, /\[card\]|\[secret\]/);
  assert.deepEqual(r.shown.structure, r.live.structure);
  // painted as the live page, edge pixels of the curves included (the frame is rasterised in its
  // own layer: painted into the dashboard's at its x offset, ~100 edge pixels came out different)
  assert.ok(r.px.match >= 0.9999, `pixels: ${JSON.stringify(r.px)}`);
  await r.page.close();
});

test('#18: hundreds of subtrees built at once, the page left before the first timed batch: none is lost', async () => {
  const r = await roundTrip('/subtrees.html', SCENARIOS.subtrees.act);
  // everything went at pagehide, well before the 10 s batch timer
  assert.ok(r.end < 9000, `session length ${r.end} ms`);
  const count = (s, re) => s.filter((x) => re.test(x)).length;
  assert.equal(count(r.live.structure, /^ section/), 300);
  assert.equal(count(r.shown.structure, /^ section/), 300, 'every section');
  assert.equal(count(r.shown.structure, /^  [bi]$/), 600, 'every child of every section');
  assert.deepEqual(r.shown.structure, r.live.structure);
  assert.equal(r.shown.pending, 0);
  assert.ok(r.px.match >= 0.98, `pixels: ${JSON.stringify(r.px)}`);
  await r.page.close();
});

test('#18: relative url() and src in the first snapshot load from the recorded page, not the collector', async () => {
  const r = await roundTrip('/relurl.html');
  const d = await r.page.evaluate(() => {
    const doc = document.querySelector('iframe.replay-frame').contentDocument;
    return { avatar: doc.querySelector('img.avatar').naturalWidth, hero: getComputedStyle(doc.querySelector('.hero')).backgroundImage };
  });
  assert.equal(d.avatar, 80);
  assert.doesNotMatch(d.hero, new RegExp(server.url.replace(/[.:/]/g, '\\$&') + '/dashboard/img'), 'not resolved against the collector');
  assert.deepEqual(r.shown.structure, r.live.structure);
  assert.ok(r.px.match >= 0.98, `pixels: ${JSON.stringify(r.px)}`);
  await r.page.close();
});

/**
 * Records `path` with `act` (which calls snap() at the moments to compare), then replays it
 * and compares each moment: the last one first, then the earlier ones (backward seeks).
 * Returns [{at, match, structureEqual}] in the order of the moments.
 */
async function moments(path, act) {
  const rec = await record(browser, { collector: server.url, fixtures, path, act });
  const { page, errors } = await openReplay(browser, server.url, 'fix', rec.sid);
  const end = Number(await page.evaluate(() => document.getElementById('vroot').dataset.end));
  const t0 = rec.events[0].t;
  const out = [];
  for (const i of [...rec.live.keys()].reverse()) {
    const m = rec.live[i];
    const at = Math.min(end, m.ms - t0 + 700); // the recorder sends a change within ~300 ms
    await seek(page, at);
    const shown = await replayState(page);
    const px = await pixelMatch(browser, m.png, shown.png);
    out[i] = { at, match: px.match, structureEqual: JSON.stringify(shown.structure) == JSON.stringify(m.structure), live: m.structure, shown: shown.structure };
  }
  assert.deepEqual(errors, []);
  await page.close();
  return out;
}

for (const [name, what] of [['shadow', 'open shadow roots, their mutations and adopted sheets'], ['form', 'form state (checked, selected, open, scroll; values masked)'], ['cssom', 'CSS-in-JS (insertRule/deleteRule) and adoptedStyleSheets'], ['dialog', '<dialog> open from the start, shown modal later (top layer, backdrop) and closed'], ['framescroll', "same-origin frames' own scrolling (before the snapshot, down, sideways and back)"]])
  test(`#17: ${what} replay like the live page, at every moment and after seeking back`, async () => {
    const m = await moments(SCENARIOS[name].path, SCENARIOS[name].act);
    for (const x of m) {
      if (name != 'cssom') assert.ok(x.structureEqual, `structure at ${x.at}: ${JSON.stringify(x.shown)} vs ${JSON.stringify(x.live)}`);
      assert.ok(x.match >= 0.97, `pixels at ${x.at}: ${x.match}`);
    }
  });

test('#18/#17: relative and hashed assets come from the collector\'s copies; the replay asks nothing of the site', async () => {
  const rec = await record(browser, { collector: server.url, fixtures, path: '/relurl.html' });
  assert.ok(Object.keys(rec.assets).length >= 3 && Object.values(rec.assets).every(Boolean), JSON.stringify(rec.assets));
  const before = fixtures.requests.length;
  const { page, requests } = await openReplay(browser, server.url, 'fix', rec.sid);
  await seek(page, Number(await page.evaluate(() => document.getElementById('vroot').dataset.end)));
  await replayState(page);
  assert.equal(fixtures.requests.length, before, 'the recorded site is not asked for anything');
  assert.deepEqual(requests.filter((u) => !u.startsWith(server.url + '/') && !u.startsWith('data:') && u != 'about:blank'), []);
  assert.ok(requests.some((u) => u.includes('/dashboard/asset/')));
  await page.close();
});

test('#17: playing a hostile recording makes no request outside the collector', async () => {
  const attacker = await serveFixtures(() => server.url);
  const A = attacker.url;
  const tree = ['html', {}, ['head', {},
      ['link', { rel: 'stylesheet', href: A + '/a.css' }], ['link', { rel: 'icon', href: A + '/favicon.ico' }],
      ['x:link', { rel: 'prefetch', href: A + '/prefetch' }], ['meta', { 'http-equiv': 'refresh', content: '0;url=' + A + '/refresh' }],
      ['style', {}, `@import '${A}/i.css'; @font-face{font-family:f;src:url(${A}/f.woff2)} body{font-family:f;cursor:url(${A}/c.png),auto;background:image-set(url(${A}/set.png) 1x)}`]],
    ['body', { background: A + '/bodybg.png' },
      ['a', { id: 'out', href: A + '/click' }, 'a link'], ['img', { src: A + '/img.png', srcset: A + '/2x.png 2x' }],
      ['div', { style: `width:50px;height:50px;background:url(${A}/div.png)` }], ['svg', {}, ['image', { href: A + '/svg.png', width: '10', height: '10' }]],
      ['video', { poster: A + '/poster.png' }], ['object', { data: A + '/obj' }], ['iframe', { src: A + '/frame' }],
      ['input', { type: 'image', src: A + '/input.png' }], ['form', { action: A + '/form' }, ['button', { id: 'go' }, 'go']],
      ['picture', {}, ['source', { srcset: A + '/source.png' }], ['img', { src: A + '/pic.png' }]],
      ['div', { id: 'target' }, 'x']]];
  const target = numberTree(tree).target;
  const T = Date.now() - 30_000;
  const vid = 'ab'.repeat(16);
  const sid = 'cd'.repeat(16);
  await collect(server.url, { site: 'fix', vid, sid, ua: UA, events: [
    { k: 'view', t: T, url: A + '/', vw: 900, vh: 700, dw: 900, dh: 700 },
    { k: 'snap', t: T + 10, d: { u: A + '/', w: 900, h: 700, x: 0, y: 0, a: [[0, 0, 1, tree]] } },
    { k: 'mut', t: T + 2000, d: { a: [[target, 0, 1000, ['img', { src: A + '/mut.png' }]]], m: [[target, { style: `background:url(${A}/mutstyle.png)` }]] } },
    { k: 'click', t: T + 4000, x: 10, y: 10, sel: '#out' },
  ] });
  await sleep(1500); // time for the collector to (not) capture anything
  const { page, requests } = await openReplay(browser, server.url, 'fix', sid);
  for (const at of [0, 2500, 4000, 0, 4000]) await seek(page, at), await sleep(300);
  await page.evaluate(() => {
    const d = document.querySelector('iframe.replay-frame').contentDocument;
    for (const id of ['out', 'go']) d.getElementById(id)?.click();
  });
  await sleep(1500);
  const outside = requests.filter((u) => !u.startsWith(server.url + '/') && !u.startsWith('data:') && u != 'about:blank');
  assert.deepEqual(outside, [], 'every request of the replay went to the collector');
  assert.deepEqual(attacker.requests.map((r) => r.path), [], 'neither the browser nor the collector asked the attacker');
  await page.close();
  await attacker.close();
});

test('#17: same-origin frames (written by the page, loaded, nested, added later) replay with their changes; a cross-origin one is a hatched box', async () => {
  const before = fixtures.requests.length;
  const rec = await record(browser, { collector: server.url, fixtures, path: SCENARIOS.frames.path, act: SCENARIOS.frames.act });
  const crossOrigin = fixtures.requests.slice(before).filter((r) => r.path == '/frames/nested.html').length;
  const { page, errors, requests } = await openReplay(browser, server.url, 'fix', rec.sid);
  const end = Number(await page.evaluate(() => document.getElementById('vroot').dataset.end));
  const t0 = rec.events[0].t;
  const asked = fixtures.requests.length;
  const inFrames = () =>
    page.evaluate(() => {
      const d = document.querySelector('iframe.replay-frame').contentDocument;
      const doc = (f) => f && f.contentDocument;
      const inner = doc(d.getElementById('inner'));
      return {
        one: doc(d.getElementById('one')).querySelectorAll('div').length,
        two: !!d.getElementById('two') && doc(d.getElementById('two')).querySelectorAll('div').length,
        gradient: inner.getElementById('el').getAttribute('fill'),
        stop: getComputedStyle(inner.querySelector('stop')).stopColor,
        css: getComputedStyle(inner.body).backgroundColor,
        late: inner.querySelectorAll('.late').length,
        deep: doc(inner.getElementById('deep')).querySelectorAll('div').length,
        standards: inner.compatMode,
        cross: { bg: getComputedStyle(d.getElementById('x')).backgroundImage, content: doc(d.getElementById('x')).body?.childNodes.length || 0 },
        srcs: [...d.querySelectorAll('iframe')].map((f) => f.getAttribute('src')),
      };
    });
  const seen = [];
  for (const i of [1, 0]) {
    await seek(page, Math.min(end, rec.live[i].ms - t0 + 700));
    const shown = await replayState(page);
    const px = await pixelMatch(browser, rec.live[i].png, shown.png);
    assert.ok(px.match >= 0.97, `pixels at moment ${i}: ${px.match}`); // the cross-origin frame hidden on both sides
    seen[i] = await inFrames();
  }
  assert.deepEqual(seen[0], { one: 1, two: false, gradient: 'url(#g)', stop: 'rgb(47, 158, 68)', css: 'rgb(255, 249, 219)', late: 0, deep: 1, standards: 'CSS1Compat', cross: seen[0].cross, srcs: [null, null, null] });
  assert.deepEqual({ ...seen[1], cross: 0 }, { one: 2, two: 1, gradient: 'url(#g)', stop: 'rgb(47, 158, 68)', css: 'rgb(255, 249, 219)', late: 1, deep: 1, standards: 'CSS1Compat', cross: 0, srcs: [null, null, null, null] });
  assert.match(seen[1].cross.bg, /repeating-linear-gradient/, 'the cross-origin frame is a hatched box');
  assert.equal(seen[1].cross.content, 0, 'nothing of the cross-origin frame is recorded');
  assert.ok(crossOrigin >= 1, 'the live page did load the cross-origin frame');
  assert.equal(fixtures.requests.length, asked, 'the replay asks nothing of the site, frames included');
  assert.deepEqual(requests.filter((u) => !u.startsWith(server.url + '/') && !u.startsWith('data:') && u != 'about:blank'), []);
  assert.ok(requests.some((u) => u.includes('/dashboard/asset/')), "the inner frame's stylesheet comes from the collector");
  assert.deepEqual(errors, []);
  await page.close();
});

/** The canvas frames (`v`) of a recording, and the ids of the canvases in its snapshot by their id attribute. */
function canvasFrames(events) {
  const frames = events.filter((e) => e.k == 'mut' && e.d.v).flatMap((e) => e.d.v);
  const snap = events.find((e) => e.k == 'snap' && e.d.u);
  const ids = numberTree(snap.d.a[0][3], snap.d.a[0][2]);
  return { frames, chart: ids.chart, sig: ids.sig };
}

test('#17: canvas frames, switched on for a site: the replay shows the drawing at every moment (seeking back too); a masked canvas is never captured', async () => {
  const optout = await (await fetch(`${server.url}/optout?site=fixcv`)).json();
  assert.equal(optout.replay_canvas, true, 'the snippet learns the switch with the site settings');
  const rec = await record(browser, { collector: server.url, fixtures: canvasFixtures, path: SCENARIOS.canvas.path, site: 'fixcv', act: SCENARIOS.canvas.act });
  const { frames, chart } = canvasFrames(rec.events);
  assert.ok(frames.length >= 2, `a frame at first and one after the redraw: ${frames.length}`);
  assert.ok(rec.jpegs >= frames.length);
  for (const [id, url] of frames) assert.equal(id, chart), assert.match(url, /^data:image\/(jpeg;base64,\/9j\/|png;base64,iVBORw0KGgo)/);
  const { page, errors, requests } = await openReplay(browser, server.url, 'fixcv', rec.sid);
  const end = Number(await page.evaluate(() => document.getElementById('vroot').dataset.end));
  for (const i of [1, 0, 1]) {
    await seek(page, Math.min(end, rec.live[i].ms - rec.events[0].t + 700));
    const px = await pixelMatch(browser, rec.live[i].png, (await replayState(page)).png);
    assert.ok(px.match >= 0.95, `pixels at moment ${i}: ${JSON.stringify(px)}`);
  }
  assert.deepEqual(requests.filter((u) => !u.startsWith(server.url + '/') && !u.startsWith('data:') && u != 'about:blank'), []);
  assert.deepEqual(errors, []);
  await page.close();

  // in a masked region: the canvas is recorded as an element, its pixels never
  const masked = await record(browser, { collector: server.url, fixtures: canvasFixtures, path: '/canvas.html?mask=1', site: 'fixcv', act: SCENARIOS.canvas.act });
  const m = canvasFrames(masked.events);
  assert.ok(m.sig > 0, 'the masked canvas is in the snapshot');
  assert.ok(m.frames.some(([id]) => id == m.chart));
  assert.deepEqual(m.frames.filter(([id]) => id == m.sig), [], 'no frame of the masked canvas');
});

test('#17: canvas frames are off by default: nothing of a canvas is sent, and the collector drops frames a site did not ask for', async () => {
  const optout = await (await fetch(`${server.url}/optout?site=fix`)).json();
  assert.equal(optout.replay_canvas, undefined);
  const rec = await record(browser, { collector: server.url, fixtures, path: SCENARIOS.canvas.path, act: SCENARIOS.canvas.act });
  assert.deepEqual(canvasFrames(rec.events).frames, []);
  assert.equal(rec.jpegs, 0, 'no canvas was even encoded in the browser');
  // a forged batch with a frame for this site: not stored
  const T = Date.now() - 5000;
  const sid = 'ef'.repeat(16);
  const JPEG = 'data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QEBD=';
  await collect(server.url, { site: 'fix', vid: 'ab'.repeat(16), sid, ua: UA, events: [
    { k: 'view', t: T, url: fixtures.url + '/', vw: 900, vh: 700, dw: 900, dh: 700 },
    { k: 'snap', t: T + 10, d: { u: fixtures.url + '/', w: 900, h: 700, x: 0, y: 0, a: [[0, 0, 1, ['html', {}, ['body', {}, ['canvas', { width: '10', height: '10' }]]]]] } },
    { k: 'mut', t: T + 20, d: { v: [[4, JPEG]] } },
  ] });
  let stored = [];
  for (let i = 0; i < 50 && !stored.some((e) => e.k == 'mut'); i++) {
    await sleep(200);
    const r = await fetch(`${server.url}/api/sites/fix/sessions/${sid}`, { headers: { Authorization: 'Bearer dashboard-test-token' } });
    stored = r.status == 200 ? (await r.json()).events : [];
  }
  assert.ok(stored.some((e) => e.k == 'mut'), 'the mutation is stored');
  assert.doesNotMatch(JSON.stringify(stored), /data:image/, 'without the frame');
});
