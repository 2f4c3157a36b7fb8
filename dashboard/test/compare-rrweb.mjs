// Side by side: hushtale (snippet -> real collector -> dashboard replay) against @rrweb/record
// + rrweb's Replayer on the same fixtures and the same visits (test/fidelity.mjs SCENARIOS).
// For each fixture and recorder: the pixel match of the replay with the live page at every
// moment of the visit (text transparent on both sides; rrweb with maskAllInputs), the bytes the
// recording took (hushtale: gzip bytes POSTed to /collect; rrweb: its events JSON, gzipped),
// and the main-thread script time of the visit over the same visit without a recorder (CDP
// ScriptDuration). Prints a Markdown table.
//
//   node test/compare-rrweb.mjs        (needs js-snippet's npm ci for @rrweb/record and rrweb)
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, launch, UA } from './server.mjs';
import { serveFixtures, record, openReplay, seek, replayState, pixelMatch, SCENARIOS, VIEWPORT, liveState, NO_TEXT } from './fidelity.mjs';

const mods = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'js-snippet', 'node_modules');
const RECORD = readFileSync(join(mods, '@rrweb/record/dist/record.umd.min.cjs'));
const REPLAY = readFileSync(join(mods, 'rrweb/dist/rrweb.umd.min.cjs'));
const REPLAY_CSS = readFileSync(join(mods, 'rrweb/dist/style.min.css'));
const version = (p) => JSON.parse(readFileSync(join(mods, p, 'package.json'))).version;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const RRWEB_TAG = {
  head: '<script src="/__record.js"></script><script>window.__ev=[];rrwebRecord.record({emit:function(e){__ev.push(e)},maskAllInputs:true});</script>',
  files: { '/__record.js': ['text/javascript', RECORD], '/__replay.js': ['text/javascript', REPLAY], '/__replay.css': ['text/css', REPLAY_CSS] },
};
const NONE_TAG = { head: '', files: {} };

async function scriptMs(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  return async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name == 'ScriptDuration').value * 1000;
}

/** A visit with rrweb (or nothing): live moments, rrweb's events, script ms. */
async function visit(browser, origin, { path, act }, withRrweb) {
  const context = await browser.newContext({ viewport: VIEWPORT, userAgent: UA });
  const page = await context.newPage();
  const ms = await scriptMs(page);
  await page.goto(origin + path);
  await page.waitForLoadState('load');
  await sleep(500);
  const live = [];
  const snap = async () => live.push({ ms: Date.now(), ...(await liveState(page)) });
  if (act) await act(page, snap);
  else await sleep(1200), await snap();
  await sleep(700);
  const script = await ms();
  const events = withRrweb ? await page.evaluate(() => window.__ev) : [];
  await context.close();
  return { live, events, script };
}

async function rrwebReplay(browser, origin, events, moments) {
  const page = await browser.newPage({ viewport: { width: VIEWPORT.width + 100, height: VIEWPORT.height + 100 } });
  await page.goto(origin + '/__none');
  await page.setContent('<html><head><link rel="stylesheet" href="/__replay.css"><style>body{margin:0}.replayer-mouse{display:none}</style></head><body><div id="r"></div></body></html>');
  await page.addScriptTag({ url: origin + '/__replay.js' });
  await page.evaluate((events) => {
    window.__r = new rrweb.Replayer(events, { root: document.getElementById('r'), mouseTail: false, showWarning: false, triggerFocus: false, UNSAFE_replayCanvas: false });
  }, events);
  const out = [];
  for (const i of [...moments.keys()].reverse()) {
    await page.evaluate((t) => window.__r.pause(t), moments[i].ms + 700 - events[0].timestamp);
    await sleep(800);
    const png = await page.evaluate(async (css) => {
      const f = document.querySelector('.replayer-wrapper iframe');
      const s = f.contentDocument.createElement('style');
      s.textContent = css;
      f.contentDocument.documentElement.appendChild(s);
      return null;
    }, NO_TEXT).then(async () => {
      const clip = await page.evaluate(() => {
        const f = document.querySelector('.replayer-wrapper iframe');
        const r = f.getBoundingClientRect();
        return { x: r.left, y: r.top, width: f.clientWidth, height: f.clientHeight };
      });
      await sleep(100);
      return page.screenshot({ clip });
    });
    await page.evaluate(() => document.querySelector('.replayer-wrapper iframe').contentDocument.documentElement.lastChild.remove());
    out[i] = (await pixelMatch(browser, moments[i].png, png)).match;
  }
  await page.close();
  return out;
}

async function main() {
  let collector = '';
  const fixtures = await serveFixtures(() => collector);
  const rr = await serveFixtures(() => collector, 'fix', RRWEB_TAG);
  const none = await serveFixtures(() => collector, 'fix', NONE_TAG);
  const server = await startServer(`\n[[site]]\nid = "fix"\norigins = ["${fixtures.url}"]\nassets_private = true\n`);
  collector = server.url;
  const browser = await launch();
  const rows = [];
  for (const [name, sc] of Object.entries(SCENARIOS)) {
    const base = await visit(browser, none.url, sc, false);
    // hushtale
    const rec = await record(browser, { collector: server.url, fixtures, path: sc.path, act: sc.act });
    const { page } = await openReplay(browser, server.url, 'fix', rec.sid);
    const end = Number(await page.evaluate(() => document.getElementById('vroot').dataset.end));
    const h = [];
    for (const i of [...rec.live.keys()].reverse()) {
      await seek(page, Math.min(end, rec.live[i].ms - rec.events[0].t + 700));
      h[i] = (await pixelMatch(browser, rec.live[i].png, (await replayState(page)).png)).match;
    }
    await page.close();
    const hScript = await (async () => {
      const c = await browser.newContext({ viewport: VIEWPORT, userAgent: UA });
      const p = await c.newPage();
      const ms = await scriptMs(p);
      await p.goto(fixtures.url + sc.path);
      await p.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/hushtale-replay.js')), null, { timeout: 15000 });
      if (sc.act) await sc.act(p, async () => {});
      else await sleep(1200);
      await sleep(700);
      const v = await ms();
      await c.close();
      return v;
    })();
    // rrweb
    const r = await visit(browser, rr.url, sc, true);
    const rMatch = await rrwebReplay(browser, rr.url, r.events, r.live);
    const pct = (l) => (100 * Math.min(...l)).toFixed(1) + ' %';
    rows.push(`| ${name} | ${pct(h)} | ${pct(rMatch)} | ${rec.bytes} | ${gzipSync(JSON.stringify(r.events)).length} | ${Math.round(hScript - base.script)} | ${Math.round(r.script - base.script)} |`);
    console.error(name, h, rMatch);
  }
  console.log(`Chromium headless; fixtures of dashboard/test/fixtures; worst moment per fixture (text transparent on both sides)\n`);
  console.log(`| fixture | hushtale match | @rrweb/record ${version('@rrweb/record')} + rrweb ${version('rrweb')} Replayer match | hushtale bytes (gzip, wire) | rrweb bytes (gzip) | hushtale extra script ms | rrweb extra script ms |`);
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) console.log(r);
  await browser.close();
  await server.close();
  for (const f of [fixtures, rr, none]) await f.close();
}

await main();
