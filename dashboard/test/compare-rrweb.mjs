// Side by side: hushtale (snippet -> real collector -> dashboard replay) against @rrweb/record
// + rrweb's Replayer on the same fixtures and the same visits (test/fidelity.mjs SCENARIOS).
// For each fixture and recorder: the pixel match of the replay with the live page at every
// moment of the visit (text transparent on both sides; rrweb with maskAllInputs), the bytes the
// recording took (hushtale: gzip bytes POSTed to /collect; rrweb: its events JSON, gzipped),
// and the main-thread script time of the visit over the same visit without a recorder (CDP
// ScriptDuration). Prints a Markdown table.
//
//   npm run compare-rrweb      (in dashboard/; needs js-snippet's npm ci for @rrweb/record and rrweb,
//                              and a hushtale binary as for the browser tests)
//   COMPARE_ONLY=form,shadow   only these fixtures;  COMPARE_DUMP=DIR  writes every screenshot
import http from 'node:http';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, launch, UA } from './server.mjs';
import { serveFixtures, record, openReplay, seek, replayState, pixelMatch, SCENARIOS, VIEWPORT, liveState, NO_TEXT, textOff } from './fidelity.mjs';

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
// rrweb records no canvas by default; on the canvas fixture it also runs with its canvas
// recording on, sampled like hushtale's (a frame every 2 s at most; its own default image
// format, PNG: as JPEG its transparent pixels turn black)
const RRWEB_CANVAS_TAG = {
  ...RRWEB_TAG,
  head: RRWEB_TAG.head.replace('maskAllInputs:true', 'maskAllInputs:true,recordCanvas:true,sampling:{canvas:0.5}'),
};

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

async function rrwebReplay(browser, origin, events, moments, name, canvas = false) {
  const page = await browser.newPage({ viewport: { width: VIEWPORT.width + 100, height: VIEWPORT.height + 100 } });
  await page.goto(origin + '/__none');
  await page.setContent('<html><head><link rel="stylesheet" href="/__replay.css"><style>body{margin:0}.replayer-mouse{display:none}</style></head><body><div id="r"></div></body></html>');
  await page.addScriptTag({ url: origin + '/__replay.js' });
  // rrweb draws recorded canvases only with UNSAFE_replayCanvas (it then unsandboxes its frame)
  await page.evaluate(([events, canvas]) => {
    window.__r = new rrweb.Replayer(events, { root: document.getElementById('r'), mouseTail: false, showWarning: false, triggerFocus: false, UNSAFE_replayCanvas: canvas });
  }, [events, canvas]);
  const out = [];
  for (const i of [...moments.keys()].reverse()) {
    await page.evaluate((t) => window.__r.pause(t), moments[i].ms + 700 - events[0].timestamp);
    await sleep(800);
    const png = await page.evaluate(([css, fn]) => new Function('return ' + fn)()(document.querySelector('.replayer-wrapper iframe').contentDocument, css), [NO_TEXT, textOff.toString()]).then(async () => {
      const clip = await page.evaluate(() => {
        const f = document.querySelector('.replayer-wrapper iframe');
        const r = f.getBoundingClientRect();
        return { x: r.left + f.clientLeft, y: r.top + f.clientTop, width: f.clientWidth, height: f.clientHeight }; // inside its border
      });
      await sleep(100);
      return page.screenshot({ clip });
    });
    await page.evaluate((fn) => new Function('return ' + fn)()(document.querySelector('.replayer-wrapper iframe').contentDocument, null), textOff.toString());
    dump(`${name}-${i}-rrweb-live`, moments[i].png);
    dump(`${name}-${i}-rrweb-replay`, png);
    out[i] = (await pixelMatch(browser, moments[i].png, png)).match;
  }
  await page.close();
  return out;
}

const dump = (name, png) => process.env.COMPARE_DUMP && (mkdirSync(process.env.COMPARE_DUMP, { recursive: true }), writeFileSync(join(process.env.COMPARE_DUMP, name + '.png'), png));

/** `f()`, tried again once: a recording can be lost when the shared machine stalls. */
async function twice(f, what) {
  try {
    return await f();
  } catch (e) {
    console.error(`${what}: ${e.message.split('\n')[0]}; trying again`);
    return f();
  }
}

/** A proxy in front of the collector that counts the bytes POSTed to /collect, as on the wire. */
async function countingProxy(target) {
  const t = new URL(target);
  const proxy = { bytes: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method == 'POST' && req.url.split('?')[0] == '/collect') proxy.bytes += body.length;
      const up = http.request({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: { ...req.headers, host: t.host } }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => (res.writeHead(502), res.end()));
      up.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = 'http://127.0.0.1:' + server.address().port;
  proxy.close = () => new Promise((r) => (server.closeAllConnections(), server.close(r)));
  return proxy;
}

async function main() {
  let collector = '';
  const fixtures = await serveFixtures(() => collector);
  const rr = await serveFixtures(() => collector, 'fix', RRWEB_TAG);
  const rrCanvas = await serveFixtures(() => collector, 'fix', RRWEB_CANVAS_TAG);
  const none = await serveFixtures(() => collector, 'fix', NONE_TAG);
  const server = await startServer(`\n[[site]]\nid = "fix"\norigins = ["${fixtures.url}"]\nassets_private = true\nreplay_canvas = true\n`); // canvas frames on
  const proxy = await countingProxy(server.url);
  collector = proxy.url; // the snippet's collector: the proxy, which counts what it sends
  const browser = await launch();
  const rows = [];
  const only = process.env.COMPARE_ONLY ? process.env.COMPARE_ONLY.split(',') : null;
  for (const [name, sc] of Object.entries(SCENARIOS)) {
    if (only && !only.includes(name)) continue;
    const base = await visit(browser, none.url, sc, false);
    // hushtale
    const rec = await twice(() => ((proxy.bytes = 0), record(browser, { collector: server.url, fixtures, path: sc.path, act: sc.act })), name);
    rec.bytes = proxy.bytes;
    const { page } = await openReplay(browser, server.url, 'fix', rec.sid);
    const end = Number(await page.evaluate(() => document.getElementById('vroot').dataset.end));
    const h = [];
    for (const i of [...rec.live.keys()].reverse()) {
      await seek(page, Math.min(end, rec.live[i].ms - rec.events[0].t + 700));
      const shown = (await replayState(page)).png;
      dump(`${name}-${i}-hushtale-live`, rec.live[i].png);
      dump(`${name}-${i}-hushtale-replay`, shown);
      h[i] = (await pixelMatch(browser, rec.live[i].png, shown)).match;
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
    for (const [label, server] of name == 'canvas' ? [[name, rr], [name + ' (rrweb `recordCanvas`)', rrCanvas]] : [[name, rr]]) {
      const r = await visit(browser, server.url, sc, true);
      const rMatch = await rrwebReplay(browser, server.url, r.events, r.live, label.split(' ')[0] + (server == rr ? '' : '-rc'), server == rrCanvas);
      const pct = (l) => (100 * Math.min(...l)).toFixed(1) + ' %';
      rows.push(`| ${label} | ${h.length} | ${pct(h)} | ${pct(rMatch)} | ${rec.bytes} | ${gzipSync(JSON.stringify(r.events)).length} | ${Math.round(hScript - base.script)} | ${Math.round(r.script - base.script)} |`);
      console.error(label, h, rMatch);
    }
  }
  console.log(`Chromium headless; fixtures of dashboard/test/fixtures; worst moment per fixture (text transparent on both sides)\n`);
  console.log(`| fixture | moments | hushtale match | @rrweb/record ${version('@rrweb/record')} + rrweb ${version('rrweb')} \`Replayer\` match | hushtale bytes (gzip, wire) | rrweb bytes (gzip) | hushtale extra script ms | rrweb extra script ms |`);
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) console.log(r);
  await browser.close();
  await server.close();
  await proxy.close();
  for (const f of [fixtures, rr, rrCanvas, none]) await f.close();
}

await main();
