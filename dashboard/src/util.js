// Small helpers shared by the dashboard's views.

/** Creates an element: h('div', {class: 'x', onclick: fn}, child, 'text', …). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v == 'function') el.addEventListener(k.slice(2), v);
    else if (k == 'class') el.className = v;
    else if (k == 'style') el.style.cssText = v; // CSSOM: allowed by the CSP, unlike a style attribute
    else if (k == 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v != 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const nf = new Intl.NumberFormat('en');
export const num = (v) => (v == null ? '–' : nf.format(Math.round(v)));
export const ms = (v) => (v == null ? '–' : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`);
export const pct = (v) => (v == null ? '–' : `${Math.round(v)} %`);

/** 83 s → "1:23"; an hour or more → "1:02:03". */
export function duration(msv) {
  const s = Math.max(0, Math.round(msv / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** UTC day "YYYY-MM-DD" of ms since the epoch. */
export const day = (t) => new Date(t).toISOString().slice(0, 10);
export const dayMs = (d) => Date.parse(d + 'T00:00:00Z');

export function when(t) {
  const d = new Date(t);
  return d.toLocaleString('en-GB', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' }) + ' UTC';
}

/** Waits for the replay frame (same origin, sandboxed, no scripts) to have a document. */
export function frameReady(iframe) {
  return new Promise((resolve) => {
    const ok = () => iframe.contentDocument && iframe.contentDocument.readyState == 'complete' && iframe.contentDocument.URL != 'about:blank';
    if (ok()) return resolve(iframe.contentDocument);
    iframe.addEventListener('load', () => resolve(iframe.contentDocument), { once: true });
  });
}

/** A sandboxed frame for rebuilt pages: same origin (so the dashboard can write into it), no scripts. */
export function replayFrame(cls) {
  const frame = h('iframe', {
    class: cls,
    src: new URL('frame', import.meta.url).pathname, // …/dashboard/frame, under any path prefix
    sandbox: 'allow-same-origin',
    referrerpolicy: 'no-referrer',
    tabindex: '-1',
    title: 'Recorded page (scripts disabled)',
  });
  // Its own compositing layer: the recorded page is then rasterised in its own coordinates, as
  // the visitor's browser did. Painted into the dashboard's layer at some x offset, Chromium
  // anti-aliases SVG path edges differently (up to ~30 levels on ~100 edge pixels of a chart).
  frame.style.transform = 'translateZ(0)';
  return frame;
}
