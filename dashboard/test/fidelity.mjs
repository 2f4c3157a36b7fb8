// Fidelity harness: fixture pages served from their own origin with the real snippet on them,
// visited in Chromium, then replayed in the real dashboard; both sides are screenshotted (text
// made transparent, since the replay masks it) and their element structure is compared.
import http from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname, extname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOKEN, UA, api } from './server.mjs';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const TYPES = { '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.js': 'text/javascript', '.woff2': 'font/woff2' };
export const VIEWPORT = { width: 900, height: 700 }; // the dashboard shows it unscaled
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Text, carets and placeholders transparent: masked text then looks like the live text. And
 * frames of another origin (class "xo" in the fixtures) hidden: no recorder can see into them. */
export const NO_TEXT = '*,*::before,*::after,::placeholder{color:transparent!important;text-shadow:none!important;caret-color:transparent!important;-webkit-text-fill-color:transparent!important}.xo{visibility:hidden!important}';

/**
 * In the browser: makes the text of `doc` and of every same-origin frame in it transparent
 * (css = NO_TEXT), or visible again (css = null).
 */
export function textOff(doc, css) {
  const walk = (d) => {
    if (css) d.documentElement.appendChild(Object.assign(d.createElement('style'), { className: 'fidelity-no-text', textContent: css }));
    else d.querySelectorAll('style.fidelity-no-text').forEach((s) => s.remove());
    for (const f of d.querySelectorAll('iframe')) {
      let inner = null;
      try {
        inner = f.contentDocument;
      } catch (e) {}
      if (inner && inner.documentElement) walk(inner);
    }
  };
  walk(doc);
}

/**
 * Serves test/fixtures on a port of its own (another origin than the collector), with the
 * snippet tag of `collector()` put into every HTML page. `requests` lists every path asked for.
 */
export async function serveFixtures(collector, site = 'fix', tag = null) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(req.url.split('?')[0]);
    requests.push({ path, referer: req.headers.referer || '', ua: req.headers['user-agent'] || '' });
    if (tag && tag.files[path]) {
      res.writeHead(200, { 'Content-Type': tag.files[path][0] });
      return res.end(tag.files[path][1]);
    }
    let file = normalize(join(dir, path.endsWith('/') ? path + 'index.html' : path));
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404);
      return res.end('not found');
    }
    let body = readFileSync(file);
    const type = TYPES[extname(file)] || 'application/octet-stream';
    if (type.startsWith('text/html') && !path.startsWith('/frames/')) { // pages in frames are recorded by the page's recorder
      if (tag) body = body.toString('utf8').replace('<head>', '<head>' + tag.head);
      else body = body.toString('utf8').replace('</head>', `<script async src="${collector()}/hushtale.js" data-site="${site}" data-replay="1"></script></head>`);
    }
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: 'http://127.0.0.1:' + server.address().port, requests, close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) };
}

/** The element structure under a root (tag and classes, depth), open shadow roots included. */
function structure(root) {
  const out = [];
  const skip = /^(script|noscript|base|meta|title|link|style|head|template)$/;
  const walk = (n, d) => {
    for (const c of n.children) {
      if (skip.test(c.localName) || c.hasAttribute('data-hushtale-blocked')) continue;
      const cls = (c.getAttribute('class') || '').trim().split(/\s+/).filter(Boolean).sort().join('.');
      out.push(' '.repeat(d) + c.localName + (cls ? '.' + cls : ''));
      if (c.shadowRoot) out.push(' '.repeat(d + 1) + '#shadow'), walk(c.shadowRoot, d + 2);
      walk(c, d + 1);
    }
  };
  walk(root.body || root, 0);
  return out;
}

/** Loads every image and stylesheet of `doc` (polling), then two frames. */
async function settled(page, frameSel) {
  // a stylesheet or image that cannot load (not captured) never completes: wait a while, then go on
  await page.waitForFunction(
    (sel) => {
      const d = sel ? document.querySelector(sel).contentDocument : document;
      const imgs = [...d.images].every((i) => i.complete);
      const css = [...d.querySelectorAll('link[rel=stylesheet]')].every((l) => l.sheet || !l.getAttribute('href'));
      return imgs && css && d.fonts.status == 'loaded';
    },
    frameSel,
    { timeout: 8000 }
  ).catch(() => {});
  await sleep(400); // CSS background images have no completion event
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/** The live page now: a viewport screenshot with text transparent, and its structure. */
export async function liveState(page) {
  await page.evaluate(() => document.activeElement && document.activeElement.blur && document.activeElement.blur());
  await settled(page, null);
  await page.evaluate(([fn, css]) => new Function('return ' + fn)()(document, css), [textOff.toString(), NO_TEXT]);
  await sleep(50);
  const png = await page.screenshot();
  await page.evaluate((fn) => new Function('return ' + fn)()(document, null), textOff.toString());
  return { png, structure: await page.evaluate(`(${structure})(document)`) };
}

/**
 * Visits `path` of the fixture server with a fresh context, runs `act(page)` (the visit), takes
 * `at(page)` snapshots of the live page at the moments the caller asks for (via the returned
 * `live` list), then leaves the page (pagehide sends what is queued) and waits for the stored
 * session. Returns {sid, live: [{ms, png, structure}], events}.
 */
export async function record(browser, { collector, fixtures, path, site = 'fix', act }) {
  const context = await browser.newContext({ viewport: VIEWPORT, userAgent: UA });
  // counts image encodings of canvases in the page (the recorder's canvas frames)
  await context.addInitScript(() => {
    window.__jpegs = 0;
    const encode = HTMLCanvasElement.prototype.toDataURL;
    HTMLCanvasElement.prototype.toDataURL = function (type) {
      if (/jpeg|png/.test(type) || !type) window.__jpegs++;
      return encode.apply(this, arguments);
    };
  });
  const page = await context.newPage();
  if (process.env.FIDELITY_DEBUG) {
    page.on('console', (m) => console.error('page:', m.text()));
    context.on('requestfinished', async (r) => console.error('request', r.method(), r.url(), (await r.response())?.status()));
    context.on('requestfailed', (r) => console.error('failed', r.method(), r.url(), r.failure()?.errorText));
  }
  await page.goto(fixtures.url + path);
  await page.waitForFunction((s) => window.hushtale && sessionStorage['hushtale_sid_' + s], site, { timeout: 15000 });
  await page.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/hushtale-replay.js')), null, { timeout: 15000 });
  const live = [];
  const snap = async () => live.push({ ms: Date.now(), ...(await liveState(page)) });
  if (act) await act(page, snap);
  else await sleep(1200), await snap();
  const sid = await page.evaluate((s) => JSON.parse(sessionStorage['hushtale_sid_' + s]).sid, site);
  await sleep(700); // the recorder's last round (300 ms) and its serialisation
  const jpegs = await page.evaluate(() => window.__jpegs);
  await page.goto('about:blank');
  // the context stays open until the batches sent at pagehide are stored: closing it at once
  // can cancel their keepalive requests
  let events = [];
  // stored once it has a snapshot and stops growing (batches sent at pagehide go in parallel)
  for (let i = 0, same = 0; i < 150 && same < 4; i++) {
    await sleep(200);
    const r = await fetch(`${collector}/api/sites/${site}/sessions/${sid}`, { headers: { Authorization: 'Bearer ' + TOKEN } });
    const now = r.status == 200 ? (await r.json()).events : [];
    same = now.some((e) => e.k == 'snap') && now.length == events.length ? same + 1 : 0;
    events = now;
  }
  await context.close();
  if (!events.some((e) => e.k == 'snap')) throw new Error(`no snapshot stored for ${path} (stored: ${events.map((e) => e.k).join(' ') || 'nothing'})`);
  // The collector captures the page's assets in the background: wait until each is decided.
  let assets = {};
  for (let i = 0; i < 60; i++) {
    const r = await fetch(`${collector}/api/sites/${site}/sessions/${sid}`, { headers: { Authorization: 'Bearer ' + TOKEN } });
    assets = (await r.json()).assets || {};
    if (Object.values(assets).every(Boolean)) break;
    await sleep(250);
  }
  return { sid, live, events, assets, jpegs };
}

/** A signed-in dashboard page on the replay of `sid`. */
export async function openReplay(browser, collector, site, sid) {
  const page = await browser.newPage({ viewport: { width: 2600, height: 1400 } });
  const errors = [];
  const requests = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(collector + '/dashboard');
  await page.fill('#token', TOKEN);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
  await page.selectOption('#site', site);
  await page.evaluate((h) => (location.hash = h), `#/replay/${sid}`);
  await page.waitForSelector('#vroot[data-ready][data-view="replay"]');
  return { page, errors, requests };
}

/** Seeks the open replay to `ms` after its start, as dragging the timeline does. */
export async function seek(page, ms) {
  await page.locator('#replay-time').evaluate((el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, ms);
  await page.waitForFunction((v) => document.getElementById('vroot').dataset.t == String(v), ms);
}

/** What the replay frame shows now: a screenshot of the frame alone (text transparent) and its structure. */
export async function replayState(page) {
  const frame = 'iframe.replay-frame';
  await settled(page, frame);
  await page.evaluate(
    ([sel, css, fn]) => {
      for (const q of ['.overlay', '.hidden-note', '.nodom']) document.querySelectorAll(q).forEach((e) => (e.style.visibility = 'hidden'));
      new Function('return ' + fn)()(document.querySelector(sel).contentDocument, css);
    },
    [frame, NO_TEXT, textOff.toString()]
  );
  await sleep(50);
  // the frame's content box, without its border
  const clip = await page.evaluate((sel) => {
    const f = document.querySelector(sel);
    const r = f.getBoundingClientRect();
    return { x: r.left + f.clientLeft, y: r.top + f.clientTop, width: f.clientWidth, height: f.clientHeight };
  }, frame);
  const png = await page.screenshot({ clip });
  const out = await page.evaluate(
    ([sel, fn, off]) => {
      const d = document.querySelector(sel).contentDocument;
      new Function('return ' + off)()(d, null);
      for (const q of ['.overlay', '.hidden-note', '.nodom']) document.querySelectorAll(q).forEach((e) => (e.style.visibility = ''));
      return { structure: new Function('return ' + fn)()(d), pending: document.getElementById('replay-orphans').hidden ? 0 : document.getElementById('replay-orphans').textContent };
    },
    [frame, structure.toString(), textOff.toString()]
  );
  return { png, ...out };
}

/**
 * Share of content pixels (not near-white in either image) that match within a small tolerance,
 * computed in a browser page; also the share of all pixels that differ.
 */
export async function pixelMatch(browser, a, b) {
  const page = await browser.newPage();
  const r = await page.evaluate(
    async ([a, b]) => {
      const load = (src) => new Promise((res, rej) => Object.assign(new Image(), { onload() { res(this); }, onerror: rej, src }));
      const [A, B] = await Promise.all([load(a), load(b)]);
      const w = Math.min(A.width, B.width);
      const h = Math.min(A.height, B.height);
      const px = (img) => {
        const c = new OffscreenCanvas(w, h);
        const x = c.getContext('2d');
        x.drawImage(img, 0, 0);
        return x.getImageData(0, 0, w, h).data;
      };
      const p = px(A);
      const q = px(B);
      let content = 0;
      let same = 0;
      let diff = 0;
      const white = (d, i) => d[i] > 245 && d[i + 1] > 245 && d[i + 2] > 245;
      for (let i = 0; i < p.length; i += 4) {
        const eq = Math.abs(p[i] - q[i]) <= 24 && Math.abs(p[i + 1] - q[i + 1]) <= 24 && Math.abs(p[i + 2] - q[i + 2]) <= 24;
        if (!eq) diff++;
        if (white(p, i) && white(q, i)) continue;
        content++;
        if (eq) same++;
      }
      return { match: content ? same / content : 1, content, diffShare: diff / (w * h), size: [A.width, A.height, B.width, B.height] };
    },
    ['data:image/png;base64,' + a.toString('base64'), 'data:image/png;base64,' + b.toString('base64')]
  );
  await page.close();
  return r;
}

export { api };

const quiet = () => sleep(1200);
const done = (page) => page.waitForFunction(() => document.body.dataset.done == '1', null, { timeout: 20000 });

/** The fixtures and what a visitor does on each; `snap()` marks a moment to compare. */
export const SCENARIOS = {
  hashed: { path: '/hashed/' },
  chart: { path: '/chart.html' },
  relurl: { path: '/relurl.html' },
  subtrees: { path: '/subtrees.html', act: async (page, snap) => (await done(page), await snap()) },
  shadow: { path: '/shadow.html', act: async (page, snap) => (await done(page), await quiet(), await snap()) },
  cssom: { path: '/cssom.html', act: async (page, snap) => (await done(page), await quiet(), await snap()) },
  frames: { path: '/frames.html', act: async (page, snap) => (await snap(), await page.evaluate(() => window.startChanges()), await done(page), await quiet(), await snap()) },
  framescroll: {
    path: '/framescroll.html',
    async act(page, snap) {
      const scroll = (to) => page.evaluate((to) => to.forEach(([id, x, y]) => document.getElementById(id).contentWindow.scrollTo(x, y)), to);
      await snap(); // a written frame scrolled before the recorder started
      await scroll([['l', 150, 420]]);
      await quiet();
      await snap(); // a loaded frame scrolled down and sideways
      await scroll([['l', 0, 80], ['w', 0, 120]]);
      await quiet();
      await snap(); // both scrolled again
    },
  },
  canvas: {
    path: '/canvas.html',
    async act(page, snap) {
      await sleep(3000); // the recorder looks at canvases every 2 s
      await snap();
      await done(page); // redrawn
      await sleep(2600);
      await snap();
    },
  },
  dialog: {
    path: '/dialog.html',
    async act(page, snap) {
      await snap(); // a dialog open from the start
      await page.waitForFunction(() => document.body.dataset.step == '1', null, { timeout: 20000 });
      await quiet();
      await snap(); // a modal one opened after the snapshot: backdrop, centred, top layer
      await done(page);
      await quiet();
      await snap(); // both closed
    },
  },
  form: {
    path: '/form.html',
    async act(page, snap) {
      await quiet();
      await snap(); // state set by a script before recording
      await page.click('#c2');
      await page.click('#r2');
      await page.selectOption('#s', 'cherry');
      await page.fill('#name', 'Wilhelmina Quorrington');
      await page.click('#d summary');
      await page.evaluate(() => {
        document.getElementById('sc').scrollTop = 100;
        document.getElementById('dlg').show();
      });
      await quiet();
      await snap();
      await page.click('#c1');
      await page.selectOption('#s', 'banana');
      await page.evaluate(() => (document.getElementById('sc').scrollTop = 40));
      await quiet();
      await snap();
    },
  },
};
