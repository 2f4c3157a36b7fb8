// Known data for the browser tests: sessions on four UTC days, a recorded page with a
// replay (snapshot, mutations, pointer, clicks, scrolling), and a hostile recording.
import { collect, UA } from './server.mjs';

export const MOBILE_UA = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36';
const hex = (n, i) => (n.toString(16).padStart(8, '0') + i.toString(16).padStart(8, '0')).repeat(2);
let counter = 0;
const ids = () => ({ vid: hex(0xa11ce, ++counter), sid: hex(0x5e55, counter) });

/** Pageviews stored on each of the days before today (index 0 = 3 days ago). */
export const PAST_DAYS = [
  { daysAgo: 3, views: [['/', 180], ['/pricing', 260]] },
  { daysAgo: 2, views: [['/', 150], ['/pricing', 240], ['/blog/launch', 400]] },
  { daysAgo: 1, views: [['/', 120], ['/', 140], ['/pricing', 310], ['/blog/launch', 520], ['/about', 90]] },
];

/** Numbers nodes in pre-order from `first` (as the recorder does): {html id attribute or
 * <tag> of its first element → id}. */
export function numberTree(node, first = 1) {
  const out = {};
  let next = first;
  (function walk(n) {
    const id = next++;
    if (Array.isArray(n)) {
      if (!(('<' + n[0]) in out)) out['<' + n[0]] = id;
      let i = 1;
      if (n[1] && typeof n[1] == 'object' && !Array.isArray(n[1])) {
        if (n[1].id) out[n[1].id] = id;
        i = 2;
      }
      for (; i < n.length; i++) walk(n[i]);
    }
  })(node);
  return out;
}

// The pricing page as the recorder would send it (text with digits masked).
const CSS = `body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1f2430;background:#fff;position:relative;min-height:1800px}
header{height:64px;background:#14213d;color:#fff;display:flex;align-items:center;padding:0 40px;gap:28px;font-weight:600}
header .cart{margin-left:auto;background:#fca311;color:#14213d;padding:4px 12px;border-radius:14px}
h1{position:absolute;left:120px;top:120px;margin:0;font-size:40px}
.lead{position:absolute;left:120px;top:190px;width:760px;color:#5d636e;margin:0}
.plan{position:absolute;top:300px;width:320px;height:340px;border:1px solid #dde1e8;border-radius:14px;padding:24px;box-sizing:border-box}
.plan h2{margin:0 0 8px}.price{font-size:32px;font-weight:700;margin:0 0 12px}
.plan.pro{border:2px solid #3b5bdb;box-shadow:0 10px 30px rgba(59,91,219,.15)}
#learn{position:absolute;left:24px;top:260px;color:#3b5bdb}
#buy{position:absolute;left:24px;top:250px;width:272px;height:60px;border:0;border-radius:10px;background:#3b5bdb;color:#fff;font:600 18px system-ui}
.faq{position:absolute;left:120px;top:760px;width:1040px}
.faq p{height:180px;background:#f5f6f8;border-radius:10px;margin:0 0 20px;padding:20px}
#toast{position:fixed;right:24px;top:84px;background:#2b8a3e;color:#fff;padding:12px 18px;border-radius:10px}`;

export const PLANS = { starter: 120, pro: 480, team: 840 }; // left edges; every plan card is 300..640 tall
export const BUY = { x: 480 + 24 + 136, y: 300 + 250 + 30 }; // centre of #buy in document px
export const LEARN = { x: 120 + 24 + 40, y: 300 + 260 + 12 };

export function pricingTree() {
  const plan = (cls, left, name, price, cta) => ['div', { class: 'plan ' + cls, style: `left:${left}px` }, ['h2', {}, name], ['p', { class: 'price' }, price], ['p', {}, 'Everything you need to start'], cta];
  return ['html', { lang: 'en' },
    ['head', {}, ['style', {}, CSS]],
    ['body', {},
      ['header', {}, 'Acme Shop', ['span', {}, 'Product'], ['span', {}, 'Pricing'], ['span', { class: 'cart', id: 'cart' }, ['span', { id: 'cartText' }, 'Cart (*)']]],
      ['h1', {}, 'Plans and pricing'],
      ['p', { class: 'lead' }, 'Pick the plan that fits your team. Cancel any time.'],
      plan('starter', PLANS.starter, 'Starter', '€ *', ['a', { id: 'learn', href: '/features' }, 'Learn more']),
      plan('pro', PLANS.pro, 'Pro', '€ **', ['button', { id: 'buy' }, 'Buy Pro']),
      plan('team', PLANS.team, 'Team', '€ ***', ['a', { href: '/contact', style: 'position:absolute;left:24px;top:260px' }, 'Contact sales']),
      ['div', { class: 'faq' }, ['h2', {}, 'Questions'], ['p', {}, 'Can I change plans later?'], ['p', {}, 'Do you offer refunds?'], ['p', {}, 'Is my data private?']],
    ]];
}

/** The replay session's events, relative times in ms; the test reads the same list. */
export function replayEvents(origin, T) {
  const tree = pricingTree();
  const id = numberTree(tree);
  let n = 0;
  (function count(x) {
    n++;
    if (Array.isArray(x)) x.slice(x[1] && typeof x[1] == 'object' && !Array.isArray(x[1]) ? 2 : 1).forEach(count);
  })(tree);
  const toastId = n + 1;
  const ev = [
    { k: 'view', t: T, url: origin + '/pricing', vw: 1280, vh: 720, dw: 1280, dh: 1800, load_ms: 420, ttfb_ms: 80 },
    { k: 'snap', t: T + 10, d: { u: origin + '/pricing', w: 1280, h: 720, x: 0, y: 0, a: [[0, 0, 1, tree]] } },
    { k: 'move', t: T + 500, x: 300, y: 200 },
    { k: 'move', t: T + 1000, x: 420, y: 330 },
    { k: 'move', t: T + 1500, x: 560, y: 470 },
    { k: 'move', t: T + 2000, x: BUY.x, y: BUY.y },
    { k: 'click', t: T + 2200, x: BUY.x, y: BUY.y, sel: '#buy', ex: 500, ey: 500 },
    { k: 'mut', t: T + 2400, d: { a: [[id['<body'], 0, toastId, ['div', { id: 'toast' }, 'Added to cart']]], x: [[id.cartText + 1, 'Cart (*)  ✓']] } },
    { k: 'move', t: T + 3000, x: 700, y: 420 },
    // six quiet seconds: "skip inactivity" jumps them
    { k: 'scroll', t: T + 9000, y: 400 },
    { k: 'move', t: T + 9500, x: 640, y: 900 },
    { k: 'mut', t: T + 10000, d: { r: [toastId] } },
    { k: 'move', t: T + 10500, x: 300, y: 1000 },
    { k: 'scroll', t: T + 11000, y: 0 },
    { k: 'move', t: T + 11500, x: LEARN.x, y: LEARN.y },
    { k: 'click', t: T + 12000, x: LEARN.x, y: LEARN.y, sel: '#learn', ex: 500, ey: 500 },
  ];
  return { events: ev, ids: { ...id, toast: toastId } };
}

/** A recording made by someone hostile: everything in it would run code if it could. */
export function hostileEvents(origin, T) {
  const mark = (what) => `top.document.documentElement.setAttribute('data-pwned-${what}','1');new Image().src='${origin}/pwned-${what}'`;
  const tree = ['html', {},
    ['head', {},
      ['script', {}, mark('script')],
      ['meta', { 'http-equiv': 'refresh', content: `0;url=javascript:${mark('meta')}` }],
      ['base', { href: 'javascript:void 0//' }]],
    ['body', { onload: mark('bodyonload') },
      ['h1', {}, 'Spring promo'],
      ['img', { id: 'img', src: origin + '/no-such-image.png', onerror: mark('onerror') }],
      ['a', { id: 'jslink', href: `javascript:${mark('link')}` }, 'A javascript: link'],
      ['a', { id: 'jslink2', href: ` JaVa\tScRiPt:${mark('link2')}` }, 'An obfuscated one'],
      ['svg', { onload: mark('svgonload') }, ['script', {}, mark('svgscript')], ['a', { 'xlink:href': `javascript:${mark('svglink')}` }, ['text', { y: '20' }, 'svg link']]],
      ['iframe', { srcdoc: `<script>parent.${mark('srcdoc')}<\/script>`, src: `javascript:${mark('iframesrc')}` }],
      ['object', { data: `javascript:${mark('object')}` }],
      ['form', { action: `javascript:${mark('form')}` }, ['button', { id: 'formbtn', formaction: `javascript:${mark('formaction')}` }, 'Submit']],
      ['div', { id: 'target' }, 'mutations land here'],
      // Namespace prefixes: the qualified name differs, the element would be the real one.
      ['h:script', {}, mark('hscript')],
      ['svg', {}, ['svg:script', {}, mark('svgprefixscript')]],
      ['h:iframe', { srcdoc: `<img src=x onerror="parent.${mark('hiframe')}">` }],
      ['x:base', { href: origin + '/pwned-xbase/' }],
      ['x:meta', { 'http-equiv': 'refresh', content: `0;url=${origin}/pwned-xmeta` }],
      ['x:link', { rel: 'prefetch', href: origin + '/pwned-xlink' }],
      ['div', { id: 'relbg', style: 'background:url(bg.png);width:10px;height:10px' }],
    ]];
  const id = numberTree(tree);
  let n = 0;
  (function count(x) {
    n++;
    if (Array.isArray(x)) x.slice(x[1] && typeof x[1] == 'object' && !Array.isArray(x[1]) ? 2 : 1).forEach(count);
  })(tree);
  return {
    ids: id,
    events: [
      { k: 'view', t: T, url: origin + '/promo', vw: 1280, vh: 720, dw: 1280, dh: 720 },
      { k: 'snap', t: T + 10, d: { u: origin + '/promo', w: 1280, h: 720, x: 0, y: 0, a: [[0, 0, 1, tree]] } },
      { k: 'move', t: T + 100, x: 100, y: 100 },
      {
        k: 'mut',
        t: T + 500,
        d: {
          a: [[id.target, 0, n + 1, ['img', { id: 'img2', src: origin + '/no-such-image-2.png', onerror: mark('mutonerror') }]],
            [id.target, 0, n + 2, ['script', {}, mark('mutscript')]]],
          m: [[id.target, { onclick: mark('mutonclick'), style: 'color:red' }], [id.jslink, { href: `javascript:${mark('mutlink')}` }]],
        },
      },
      { k: 'click', t: T + 800, x: 100, y: 100, sel: '#jslink' },
    ],
  };
}

const view = (url, load_ms, T, extra) => ({ k: 'view', t: T, url, vw: 1280, vh: 720, dw: 1280, dh: 1800, load_ms, ...extra });

/** Stores everything; `server.at(d)` moves the server's clock. Returns what the tests check against. */
export async function seed(server) {
  const origin = server.url;
  for (const day of PAST_DAYS) {
    await server.at(day.daysAgo);
    for (const [path, load] of day.views) {
      const T = Date.now();
      await collect(origin, { site: 'shop', ...ids(), events: [view(origin + path, load, T), { k: 'scroll', t: T + 500, y: 600 }] });
    }
  }
  await server.at(0);
  const now = Date.now();
  // Today: clicks on the pricing page — #buy clicked most (8), #learn 3 times.
  for (let i = 0; i < 7; i++) {
    const T = now - 600_000 + i * 20_000;
    const ev = [view(origin + '/pricing', 300 + i * 40, T), { k: 'move', t: T + 300, x: BUY.x - 40, y: BUY.y - 30 },
      { k: 'click', t: T + 800, x: BUY.x + (i % 3) * 6 - 6, y: BUY.y + (i % 2) * 6 - 3, sel: '#buy', ex: 480 + (i % 3) * 20, ey: 500 }];
    if (i < 2) ev.push({ k: 'click', t: T + 3000, x: LEARN.x, y: LEARN.y, sel: '#learn', ex: 500, ey: 500 });
    await collect(origin, { site: 'shop', ...ids(), ua: i == 3 ? MOBILE_UA : UA, events: ev });
  }
  // A frustrated visitor: a rage click burst on a plan card that does nothing (dead clicks, one
  // followed by an error), then a single-page-app route to /contact, left within 5 s by going
  // back to /pricing (a quick back).
  const frustrated = ids();
  {
    const T = now - 400_000;
    await collect(origin, { site: 'shop', ...frustrated, events: [view(origin + '/pricing', 900, T),
      ...[0, 150, 300, 450].map((d) => ({ k: 'click', t: T + 1000 + d, x: 1000, y: 400, sel: '.plan.team', ex: 500, ey: 300, dead: true })),
      { k: 'err', t: T + 1200, msg: 'TypeError: plan is undefined' },
      view(origin + '/contact', 350, T + 5000, { spa: true }), view(origin + '/pricing', 0, T + 7000, { spa: true })] });
  }
  // A mobile visitor reading the blog.
  {
    const T = now - 300_000;
    await collect(origin, { site: 'shop', ...ids(), ua: MOBILE_UA, events: [view(origin + '/blog/launch', 700, T, { vw: 390, vh: 844, dw: 390, dh: 3000 }), { k: 'scroll', t: T + 4000, y: 2000 }] });
  }
  // The hostile recording, then the replay session (the most recent one).
  const hostile = { ...ids() };
  const h = hostileEvents(origin, now - 120_000);
  await collect(origin, { site: 'shop', ...hostile, events: h.events });
  const replay = { ...ids() };
  const r = replayEvents(origin, now - 60_000);
  await collect(origin, { site: 'shop', ...replay, events: r.events });
  return { replay: { sid: replay.sid, ...r }, hostile: { sid: hostile.sid, ...h }, frustrated: { sid: frustrated.sid } };
}
