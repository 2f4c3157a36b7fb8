// The replay recorder: one snapshot, then every few hundred ms the DOM changes since, as
// `mut` events {r: removed ids, a: adds, m: [[id, {attr: value|null}]], x: [[id, text]],
// i: [[id, input length, state]], s: [[id, scrollLeft, scrollTop]] (of an element or a frame's
// document), c: [[id, css]]} (empty fields left out). `state` is a checkbox's or radio's `checked` (1/0) or a select's
// selectedIndex; `c` carries stylesheet rules changed through the CSSOM: of a <style> (its id),
// or the adopted sheets of a shadow root (its id) or of the document (0); `v: [[id, PNG/JPEG data
// URL]]` are canvas frames (canvas.js, only for sites that switch them on). Open shadow roots
// and the documents of same-origin frames are observed like the document; a frame that loads
// another document has it sent anew (an add of ['#doc', …] under the <iframe>).
//
// MutationObserver records are only collected when they happen; a later task turns them
// into the net change, serialising added subtrees in time slices. Records that arrive while
// a snapshot or a round is being serialised are handled by the next round; a node that got
// serialised twice (moved into a part not yet walked) has its older copy removed by id.
import { serializer, rules, frameDoc, scroll } from './serialize.js';
import { canvasFrames } from './canvas.js';

const ROUND = 300; // ms between rounds

const OPTS = { childList: true, subtree: true, attributes: true, characterData: true };
const hooked = new WeakSet(); // windows whose CSSOM and form-state setters are wrapped
const hooks = { css() {}, input() {} };

function hook(C, prop, f) {
  const d = C && Object.getOwnPropertyDescriptor(C.prototype, prop);
  if (d && d.set) Object.defineProperty(C.prototype, prop, { ...d, set(v) { d.set.call(this, v); f(this); } });
  else if (d && typeof d.value == 'function')
    C.prototype[prop] = function () {
      const r = d.value.apply(this, arguments);
      f(this);
      return r;
    };
}

function hookAll(w) {
  if (!w || hooked.has(w)) return;
  hooked.add(w);
  const css = (x) => hooks.css(x);
  for (const m of ['insertRule', 'deleteRule', 'replace', 'replaceSync']) hook(w.CSSStyleSheet, m, css);
  hook(w.Document, 'adoptedStyleSheets', css);
  hook(w.ShadowRoot, 'adoptedStyleSheets', css);
  const input = (el) => hooks.input({ target: el.closest ? el.closest('select') || el : el });
  hook(w.HTMLInputElement, 'checked', input);
  hook(w.HTMLOptionElement, 'selected', input);
  hook(w.HTMLSelectElement, 'selectedIndex', input);
  hook(w.HTMLSelectElement, 'value', input);
}

// The text of the adopted sheets of a document or shadow root.
const adopted = (root) => [...(root.adoptedStyleSheets || [])].map(rules).join('');

export function recorder(H) {
  const ids = new WeakMap();
  let buf = [];
  let timer, cancel;
  const inputs = new Set();
  const scrolls = new Set();
  const sheets = new Set(); // <style> elements, shadow roots and the document whose CSSOM changed
  const roots = new Set(); // the document, every open shadow root and frame document seen
  const frames = new WeakSet(); // <iframe>s whose loads are listened to
  const loaded = new Set(); // <iframe>s that loaded a document since the last round
  let off; // stopped: frame loads and late events start no round
  // A round's events carry the time it read the DOM, not the end of its serialisation (never
  // earlier than the events before them): a replay shows a change when it had happened.
  let stamp = 0; // time of the last snap/mut sent
  const later = () => off || (timer = timer || setTimeout(round, ROUND));
  const mo = new MutationObserver((recs) => {
    for (const r of recs) buf.push(r);
    later();
  });
  const listen = (x, on) => ['input', 'change', 'scroll'].forEach((t) => x[on ? 'addEventListener' : 'removeEventListener'](t, t == 'scroll' ? onScroll : onInput, true));
  const onLoad = (e) => loaded.add(e.target) && later();
  const watch = (x) => {
    if (x.localName == 'iframe') return frames.has(x) || (frames.add(x), x.addEventListener('load', onLoad));
    if (roots.has(x)) return;
    roots.add(x);
    mo.observe(x, OPTS);
    listen(x, 1);
    hookAll(x.defaultView);
    if (x.adoptedStyleSheets && x.adoptedStyleSheets.length) sheets.add(x);
  };
  const S = serializer(H, ids, watch);
  hooks.css = (x) => {
    // a sheet of a <style>, or a constructed one (any root may have adopted it), or a root
    if (x.ownerNode) sheets.add(x.ownerNode);
    else roots.forEach((r) => (x == r || (r.adoptedStyleSheets || []).includes(x)) && sheets.add(r));
    later();
  };
  const known = (n) => ids.get(n) && n.isConnected && !S.inside(n.parentNode || n, S.BLOCK);
  function onInput(e) {
    ids.get(e.target) && inputs.add(e.target) && later();
  }
  hooks.input = onInput;
  // CSSOM rules now: of known <style>s and the adopted sheets of known roots
  const cssChanges = () => {
    const c = [];
    sheets.forEach((x) => {
      const id = x == document ? 0 : ids.get(x);
      if (id == null || (id && !known(x))) return;
      c.push([id, x.localName == 'style' ? (x.sheet ? rules(x.sheet) : '') : adopted(x)]);
    });
    sheets.clear();
    return c;
  };
  // an element, or a frame's document (the page's own is not in `ids`: its scroll is the core's)
  function onScroll(e) {
    ids.get(e.target) && scrolls.add(e.target) && later();
  }

  function snapshot() {
    buf = [];
    S.stale.length = 0;
    if (document.adoptedStyleSheets && document.adoptedStyleSheets.length) sheets.add(document);
    cancel = S.run([[document.documentElement, 0]], (chunks) => {
      cancel = 0;
      const c = cssChanges();
      chunks.forEach((a, i) =>
        H.e({
          k: 'snap',
          d: i ? { a } : { u: location.origin + location.pathname, w: innerWidth, h: innerHeight, x: Math.round(scrollX), y: Math.round(scrollY), a },
        })
      );
      if (c.length) H.e({ k: 'mut', d: { c } });
      stamp = Date.now();
      later();
    });
  }

  function round() {
    timer = 0;
    if (cancel) return later(); // a snapshot or round is still being serialised
    const at = Date.now();
    const recs = buf;
    buf = [];
    const added = new Set();
    const rm = new Set();
    const attrs = new Map();
    const texts = new Set();
    for (const r of recs) {
      const t = r.target;
      if (r.type == 'childList') {
        r.addedNodes.forEach((n) => added.add(n));
        r.removedNodes.forEach((n) => ids.get(n) && rm.add(ids.get(n)));
      } else if (r.type == 'attributes') (attrs.get(t) || attrs.set(t, new Set()).get(t)).add(r.attributeName);
      else texts.add(t);
    }
    // Top-most added nodes under a known parent, last first so that each one's next sibling
    // is already known to the player when it is inserted.
    const list = [];
    for (const n of added) {
      const p = n.parentNode;
      if (!n.isConnected || !known(p) || S.inside(p, S.BLOCK)) continue;
      let a = p;
      while (a && !added.has(a)) a = a.parentNode;
      if (!a) list.push(n);
    }
    list.sort((a, b) => (a.compareDocumentPosition(b) & 2 ? -1 : 1));
    const adds = list.map((n) => [n, ids.get(n.parentNode)]);
    // frames that loaded another (same-origin) document: sent anew
    loaded.forEach((f) => known(f) && frameDoc(f) && adds.push([frameDoc(f), ids.get(f)]));
    loaded.clear();
    const m = [];
    attrs.forEach((names, el) => {
      if (!known(el) || S.blocked(el)) return;
      const o = {};
      const masked = S.inside(el, '[data-hushtale-mask]');
      names.forEach((k) => {
        const v = S.attr(el, k, el.getAttribute(k), masked);
        if (v !== undefined) o[k] = v;
      });
      if (o.open != null && el.matches(':modal')) o._m = 1; // showModal(): top layer and backdrop
      m.push([ids.get(el), o]);
    });
    const x = [];
    texts.forEach((t) => known(t) && x.push([ids.get(t), S.text(t, S.inside(t, '[data-hushtale-mask]'))]));
    const i = [];
    inputs.forEach((el) => {
      if (!known(el) || S.blocked(el)) return;
      const choice = /check|radio/.test(el.type) ? +el.checked : el.localName == 'select' ? el.selectedIndex : null;
      i.push(choice == null ? [ids.get(el), el.value.length] : [ids.get(el), 0, choice]);
    });
    inputs.clear();
    const s = [];
    scrolls.forEach((el) => known(el) && s.push([ids.get(el), ...scroll(el)]));
    scrolls.clear();

    cancel = S.run(
      adds,
      (chunks) => {
        cancel = 0;
        S.stale.splice(0).forEach((id) => rm.add(id));
        const last = { r: [...rm], a: chunks.pop(), m, x, i, s, c: cssChanges() };
        for (const k in last) if (!last[k].length) delete last[k];
        const t = (stamp = Math.max(at, stamp));
        for (const a of chunks) H.e({ k: 'mut', t, d: { a } });
        if (Object.keys(last).length) H.e({ k: 'mut', t, d: last });
      }
    );
  }

  watch(document);
  snapshot();
  const canvas = H.c ? canvasFrames(roots, ids, S, () => cancel, H.e) : () => {};

  // The core calls this with 1 when a new (sampled) session starts, without to stop.
  return (again) => {
    if (cancel) cancel();
    cancel = 0;
    canvas(again);
    if (again) return snapshot();
    off = 1;
    mo.disconnect();
    clearTimeout(timer);
    hooks.css = hooks.input = () => {};
    roots.forEach((x) => listen(x, 0));
  };
}
