// Analytics events: what every (not opted-out) pageview records. Form activity (`input`,
// `focus`, `blur`, `submit`) lives in the lazily loaded part (more/forms.js).
import { cleanUrl } from './url.js';
import { mask } from './mask.js';

// ids and classes that look generated or personal (three digits in a row) are left out
const plain = (s) => /^[a-z_-][\w-]*$/i.test(s) && !/\d{3}/.test(s);

/** A short CSS path: up to three levels, stopping at an id or else a name (form fields). */
export function sel(el) {
  const parts = [];
  for (let i = 0, n; el?.nodeType == 1 && i < 3; i++, el = el.parentElement) {
    let p = el.localName;
    if (plain(el.id) || plain((n = el.getAttribute('name')))) {
      parts.unshift(p + (plain(el.id) ? '#' + el.id : `[name=${n}]`));
      break;
    }
    for (const c of [...el.classList].filter(plain).slice(0, 2)) p += '.' + c;
    parts.unshift(p);
  }
  return parts.join('>').slice(0, 256);
}

/** A pageview. Without `t` it is the page load's: dated at navigation start, with load timing. */
export function view(t) {
  const d = document.documentElement;
  const n = !t && performance.getEntriesByType('navigation')[0];
  return {
    k: 'view',
    t: t || Math.round(performance.timeOrigin),
    url: cleanUrl(location.href),
    ref: document.referrer.split('/', 3).join('/') || undefined,
    vw: innerWidth,
    vh: innerHeight,
    dw: d.scrollWidth,
    dh: d.scrollHeight,
    load_ms: Math.round(n?.loadEventEnd) || undefined,
    ttfb_ms: Math.round(n?.responseStart) || undefined,
  };
}

/** Shared with the lazily loaded part: `u` is the page's first view; that part fills in
 * `c(click, event)` to send a click (held back while it may be dead) and `h()` to send what
 * it holds before the page is hidden. */
export const hook = {};

export function listen(emit, leave) {
  const doc = document;
  const on = (type, f, target = doc) => target.addEventListener(type, f, true);
  let st;
  let errors = 0;

  on('click', (e) => {
    const t = e.target;
    const el = t.closest?.('a,button,input,select,textarea,label,[role=button]') || t;
    const r = el.getBoundingClientRect?.();
    if (!r) return;
    // where inside the target, 0-1000 each way: survives responsive layouts
    const rel = (v, a, l) => Math.max(0, Math.min(1e3, (((v - a) / l) * 1e3) | 0));
    (hook.c || emit)({ k: 'click', x: e.pageX | 0, y: e.pageY | 0, sel: sel(el), ex: rel(e.clientX, r.left, r.width), ey: rel(e.clientY, r.top, r.height) }, e);
  });

  // scroll: the position a quarter of a second after the first event of a burst
  on('scroll', (e) => e.target == doc && (st ||= setTimeout(() => emit({ k: 'scroll', y: scrollY | (st = 0) }), 250)));

  const err = (msg) => ++errors <= 20 && emit({ k: 'err', msg: mask(String(msg)).slice(0, 1e3) });
  on('error', (e) => e.message && err(e.message), window);
  on('unhandledrejection', (e) => err(e.reason?.message || e.reason), window);

  const hide = () => {
    hook.h?.();
    leave();
  };
  on('visibilitychange', () => {
    emit({ k: 'vis', hidden: doc.hidden });
    if (doc.hidden) hide();
  });
  on('pagehide', hide, window);
}
