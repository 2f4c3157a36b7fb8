// Helpers for driving a visit and reading back what was sent and stored.
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Everything the context POSTs to /collect, decoded: [{json, text, gzip, type}]. */
export function captureBatches(context) {
  const sent = [];
  context.on('request', (req) => {
    if (!req.url().endsWith('/collect') || req.method() != 'POST') return;
    const buf = req.postDataBuffer();
    if (!buf) return;
    const gzip = buf[0] == 0x1f && buf[1] == 0x8b;
    const text = (gzip ? gunzipSync(buf) : buf).toString('utf8');
    sent.push({ text, json: JSON.parse(text), gzip, type: req.headers()['content-type'] });
  });
  return sent;
}

/** Every request URL the context makes. */
export function captureUrls(context) {
  const urls = [];
  context.on('request', (req) => urls.push(req.url()));
  return urls;
}

export async function waitFor(what, fn, timeout = 20000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(250);
  }
}

/** Waits until the stored session `sid` satisfies `ok(events)`; returns its events. */
export function storedEvents(api, sid, ok, what = 'the stored session') {
  return waitFor(what, async () => {
    const r = await api('/api/sites/demo/sessions/' + sid);
    return r.status == 200 && ok(r.body.events) && r.body.events;
  });
}

/** The page's session id, as the snippet keeps it. */
export const sidOf = (page) => page.evaluate(() => JSON.parse(sessionStorage.hushtale_sid_demo || 'null')?.sid);

/** Waits for the snippet to run (and, when sampled, for the replay recorder to load). */
export async function ready(page, replay = true) {
  await page.waitForFunction(() => window.hushtale && sessionStorage.hushtale_sid_demo, null, { timeout: 15000 });
  if (replay)
    await page.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/hushtale-replay.js')), null, {
      timeout: 15000,
    });
  await sleep(1000); // generous: the snapshot of the demo takes a few ms
}

export const TYPED = {
  name: 'Wilhelmina Quorrington',
  email: 'wilhelmina.q@privatemail.example',
  password: 'Tr0ub4dor&3-horse',
  card: '4242 4242 4242 4242',
};
export const PAGE_SECRETS = ['jane.doe@example.com', '010-4477', '(555)', 'Margaret', 'Private partner'];

/** A visitor's scripted visit of the demo page: move, click, scroll, type into every field, add nodes. */
export async function visitDemo(page) {
  await page.mouse.move(50, 60);
  for (let i = 1; i <= 12; i++) await page.mouse.move(50 + i * 45, 60 + i * 25, { steps: 3 });
  await page.click('#add');
  await sleep(400);
  await page.click('#add');
  await page.click('h1', { position: { x: 30, y: 10 } });
  for (const [field, text] of Object.entries(TYPED)) {
    await page.click('#' + field);
    await page.keyboard.type(text, { delay: 5 });
  }
  await page.click('#signup button[type=submit]');
  await page.mouse.wheel(0, 900);
  await sleep(600);
  await page.mouse.wheel(0, 900);
  await sleep(600);
}

/** Rebuilds the replay from stored events in a fresh page, with the player, and describes it. */
export async function replay(context, events) {
  const page = await context.newPage();
  await page.setContent('<iframe id="f" style="width:1280px;height:720px"></iframe>');
  await page.addScriptTag({ content: readFileSync(join(root, 'dist/hushtale-player.js'), 'utf8') });
  const view = await page.evaluate((events) => {
    const doc = document.getElementById('f').contentDocument;
    const p = window.hushtalePlayer(doc);
    for (const e of events) p.apply(e);
    const text = (q) => [...doc.querySelectorAll(q)].map((e) => e.textContent);
    const blocked = (q) => doc.querySelector(q)?.hasAttribute('data-hushtale-blocked') || false;
    const box = doc.querySelector('.promo');
    return {
      html: doc.documentElement.outerHTML,
      h1: text('h1')[0],
      note: text('.note')[0],
      account: text('.account')[0],
      promoBlocked: blocked('.promo'),
      promoSize: box ? [box.offsetWidth, box.offsetHeight] : null,
      passwordBlocked: !doc.querySelector('input#password'),
      cardBlocked: !doc.querySelector('input#card'),
      nameInput: !!doc.querySelector('input#name'),
      news: text('#news li'),
      catalog: doc.querySelectorAll('ul.catalog li').length,
      scripts: doc.querySelectorAll('script').length,
      nodes: doc.getElementsByTagName('*').length,
    };
  }, events);
  await page.close();
  return view;
}
