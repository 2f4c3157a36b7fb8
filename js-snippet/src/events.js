// Analytics events: what every (not opted-out) pageview records. Nothing here reads what a
// visitor typed; `input` carries the field's length only (0 for passwords).
import { cleanUrl } from './url.js';
import { mask } from './mask.js';

// ids and classes that look generated or personal (three digits in a row) are left out
const plain = (s) => /^[a-z_-][\w-]*$/i.test(s) && !/\d{3}/.test(s);

/** A short CSS path: up to three levels, stopping at an id. */
export function sel(el) {
  const parts = [];
  for (let i = 0; el?.nodeType == 1 && i < 3; i++, el = el.parentElement) {
    let p = el.localName;
    if (plain(el.id)) {
      parts.unshift(p + '#' + el.id);
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
  const inputs = new Map(); // field -> timer of its pending `input` event

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

  // One `input` event per field and pause in typing, not one per keystroke.
  const typed = (el) => {
    clearTimeout(inputs.get(el));
    inputs.delete(el);
    emit({ k: 'input', sel: sel(el), len: /pass|check|radio|select/.test(el.type) ? 0 : (el.value ?? el.textContent).length });
  };
  on('input', (e) => {
    clearTimeout(inputs.get(e.target));
    inputs.set(e.target, setTimeout(typed, 1e3, e.target));
  });

  const err = (msg) => ++errors <= 20 && emit({ k: 'err', msg: mask(String(msg)).slice(0, 1e3) });
  on('error', (e) => e.message && err(e.message), window);
  on('unhandledrejection', (e) => err(e.reason?.message || e.reason), window);

  const hide = () => {
    hook.h?.();
    inputs.forEach((_, el) => typed(el));
    leave();
  };
  on('visibilitychange', () => {
    emit({ k: 'vis', hidden: doc.hidden });
    if (doc.hidden) hide();
  });
  on('pagehide', hide, window);
}
