// The recorder benchmark: the same scripted 30-second visit of the demo page in headless
// Chromium with no recorder, with @rrweb/record (default options, events gzipped with
// CompressionStream and POSTed every 10 s, like hushtale's transport) and with hushtale
// (replay sampled), in one run. For each: the recorder's download (gzip bytes), bytes POSTed
// per minute, main-thread script time (CDP Performance.getMetrics ScriptDuration) and the
// longest main-thread task (from a trace). Prints a Markdown table.
//
//   npm run bench              (BENCH_RUNS=3 npm run bench for medians of three visits)
//   BENCH_BASELINE=DIR npm run bench   adds a row for the dist/ files in DIR (an older build), run
//                                      side by side with the current one
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync, gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { launch } from '../test/helpers/collector.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RRWEB = join(root, 'node_modules/@rrweb/record/dist/record.umd.min.cjs');
const VISIT_MS = 30_000;
const RUNS = +process.env.BENCH_RUNS || 1;
const gz = (file) => gzipSync(readFileSync(file), { level: 9 }).length;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const demo = readFileSync(join(root, 'demo/index.html'), 'utf8');
const TAG = '<script async src="/hushtale.js" data-site="demo" data-replay="1"></script>';
if (!demo.includes(TAG)) throw new Error('demo page does not embed the snippet as expected');
const RRWEB_TAGS = `<script src="/rrweb.js"></script><script>
  (function () {
    var buf = [];
    rrwebRecord.record({ emit: function (e) { buf.push(e); } });
    function send(beacon) {
      if (!buf.length) return;
      var body = JSON.stringify({ events: buf }); buf = [];
      if (beacon) return navigator.sendBeacon('/collect', body);
      new Response(new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer()
        .then(function (b) { fetch('/collect', { method: 'POST', body: b, keepalive: b.byteLength < 60000, headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' } }); });
    }
    setInterval(send, 10000);
    addEventListener('pagehide', function () { send(true); });
  })();
</script>`;

const variants = {
  none: { page: demo.replace(TAG, ''), bundle: 0 },
  '@rrweb/record 2.1.6': { page: demo.replace(TAG, RRWEB_TAGS), bundle: gz(RRWEB) },
  hushtale: { page: demo, bundle: ['hushtale.js', 'hushtale-more.js', 'hushtale-replay.js'].reduce((n, f) => n + gz(join(root, 'dist', f)), 0) },
};
const BASELINE = process.env.BENCH_BASELINE;
if (BASELINE)
  variants['hushtale (baseline)'] = {
    page: demo.replace(TAG, TAG.replace('src="/', 'src="/baseline/')),
    bundle: ['hushtale.js', 'hushtale-more.js', 'hushtale-replay.js'].reduce((n, f) => n + (existsSync(join(BASELINE, f)) ? gz(join(BASELINE, f)) : 0), 0),
  };

let wire = 0;
const detail = {}; // BENCH_DETAIL=1: hushtale's raw bytes per event kind
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    // the baseline's collector is under /baseline: same answers
    const path = req.url.split('?')[0].replace(/^\/baseline(?=\/(collect|optout)$)/, '');
    const send = (type, body) => (res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' }), res.end(body));
    if (path == '/collect') {
      const body = Buffer.concat(chunks);
      wire += body.length;
      if (process.env.BENCH_DETAIL) {
        try {
          const json = JSON.parse((body[0] == 0x1f ? gunzipSync(body) : body).toString());
          for (const e of json.events || []) if (e.k) (detail[e.k] ||= []).push(JSON.stringify(e));
          (detail.batch ||= []).push(body.length + (body[0] == 0x1f ? 'gz' : 'raw') + ':' + (json.events || []).map((e) => e.k[0]).join(''));
        } catch (e) {}
      }
      res.writeHead(204);
      return res.end();
    }
    if (path == '/optout') return send('application/json', '{"opted_out":false}');
    if (path == '/rrweb.js') return send('text/javascript', readFileSync(RRWEB));
    if (/^\/hushtale(-more|-replay)?\.js$/.test(path)) return send('text/javascript', readFileSync(join(root, 'dist', path)));
    if (BASELINE && /^\/baseline\/hushtale(-more|-replay)?\.js$/.test(path)) return send('text/javascript', readFileSync(join(BASELINE, path.slice(10))));
    const v = variants[decodeURIComponent(path.slice(1))];
    if (v) return send('text/html', v.page);
    res.writeHead(404);
    res.end();
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = 'http://127.0.0.1:' + server.address().port;

// The visit: a pointer wandering over the page, clicks, the "load more" button, typing into
// every field of the form, scrolling down the long list and back.
async function visit(page) {
  const start = Date.now();
  const at = (ms) => sleep(Math.max(0, start + ms - Date.now()));
  const wander = async (until) => {
    for (let i = 0; Date.now() - start < until; i++) {
      await page.mouse.move(200 + 300 * Math.sin(i / 7), 300 + 200 * Math.cos(i / 5), { steps: 2 });
      await sleep(50);
    }
  };
  await wander(3000);
  for (let i = 0; i < 3; i++) await page.click('#add'), await wander(4000 + i * 1000);
  for (const [f, text] of [['name', 'Wilhelmina Quorrington'], ['email', 'wilhelmina.q@privatemail.example'], ['password', 'Tr0ub4dor&3'], ['card', '4242 4242 4242 4242']]) {
    await page.click('#' + f);
    await page.keyboard.type(text, { delay: 60 });
  }
  await page.click('#signup button[type=submit]');
  await wander(15000);
  for (let i = 0; i < 12; i++) await page.mouse.wheel(0, 400), await wander(15000 + (i + 1) * 600);
  await page.click('#add');
  for (let i = 0; i < 6; i++) await page.mouse.wheel(0, -800), await wander(23000 + (i + 1) * 700);
  await wander(VISIT_MS);
  await at(VISIT_MS);
}

async function measure(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] });
  wire = 0;
  const t0 = Date.now();
  await page.goto(base + '/' + encodeURIComponent(name), { waitUntil: 'load' });
  await visit(page);
  const metrics = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  await page.goto('about:blank'); // pagehide: recorders send what is left
  await sleep(1500);
  const minutes = (Date.now() - t0) / 60000;
  const trace = JSON.parse((await browser.stopTracing()).toString());
  const main = new Set(trace.traceEvents.filter((e) => e.name == 'thread_name' && e.args.name == 'CrRendererMain').map((e) => e.pid + ':' + e.tid));
  const longest = Math.max(0, ...trace.traceEvents.filter((e) => e.name == 'RunTask' && e.dur && main.has(e.pid + ':' + e.tid)).map((e) => e.dur / 1000));
  await context.close();
  return { wirePerMin: wire / minutes, script: metrics.ScriptDuration * 1000, longest };
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
const browser = await launch();
const results = {};
for (let r = 0; r < RUNS; r++)
  for (const name of Object.keys(variants).filter((n) => !process.env.BENCH_ONLY || n == 'none' || n.includes(process.env.BENCH_ONLY))) {
    process.stderr.write(`run ${r + 1}/${RUNS}: ${name}`);
    const m = await measure(browser, name);
    process.stderr.write(` — script ${m.script.toFixed(0)} ms\n`);
    (results[name] ||= []).push(m);
  }
await browser.close();
server.close();

const base0 = median(results.none.map((x) => x.script));
const rows = Object.entries(results).map(([name, rs]) => {
  const script = median(rs.map((x) => x.script));
  return `| ${name} | ${variants[name].bundle} | ${Math.round(median(rs.map((x) => x.wirePerMin)))} | ${script.toFixed(0)} | ${name == 'none' ? '—' : '+' + (script - base0).toFixed(0)} | ${median(rs.map((x) => x.longest)).toFixed(1)} |`;
});
console.log(`Chromium headless, ${VISIT_MS / 1000}-second scripted visit of demo/index.html, median of ${RUNS} run(s)\n`);
console.log('| recorder | download (gzip bytes) | wire bytes/min | script time (ms) | extra script time (ms) | longest task (ms) |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
console.log(rows.join('\n'));
if (process.env.BENCH_DETAIL)
  for (const [k, l] of Object.entries(detail)) k == 'batch' ? console.error(l) : console.error(k, l.length, 'events', l.join(',').length, 'raw', gzipSync(l.join(',')).length, 'gzip alone');
