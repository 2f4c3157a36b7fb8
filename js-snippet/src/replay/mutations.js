// The replay recorder: one snapshot, then every few hundred ms the DOM changes since, as
// `mut` events {r: removed ids, a: adds, m: [[id, {attr: value|null}]], x: [[id, text]],
// i: [[id, input length]], s: [[id, scrollLeft, scrollTop]]} (empty fields left out).
//
// MutationObserver records are only collected when they happen; a later task turns them
// into the net change, serialising added subtrees in time slices. Records that arrive while
// a snapshot or a round is being serialised are handled by the next round; a node that got
// serialised twice (moved into a part not yet walked) has its older copy removed by id.
import { serializer } from './serialize.js';

const ROUND = 300; // ms between rounds

export function recorder(H) {
  const ids = new WeakMap();
  const S = serializer(H, ids);
  let buf = [];
  let timer, cancel;
  const inputs = new Set();
  const scrolls = new Set();
  const later = () => (timer = timer || setTimeout(round, ROUND));
  const mo = new MutationObserver((recs) => {
    for (const r of recs) buf.push(r);
    later();
  });
  const known = (n) => ids.get(n) && n.isConnected && !S.inside(n.parentNode || n, S.BLOCK);
  const onInput = (e) => ids.get(e.target) && inputs.add(e.target) && later();
  const onScroll = (e) => e.target.nodeType == 1 && ids.get(e.target) && scrolls.add(e.target) && later();

  function snapshot() {
    buf = [];
    S.stale.length = 0;
    cancel = S.run([[document.documentElement, 0]], (chunks) => {
      cancel = 0;
      chunks.forEach((a, i) =>
        H.e({
          k: 'snap',
          d: i ? { a } : { u: location.origin + location.pathname, w: innerWidth, h: innerHeight, x: Math.round(scrollX), y: Math.round(scrollY), a },
        })
      );
      later();
    });
  }

  function round() {
    timer = 0;
    if (cancel) return later(); // a snapshot or round is still being serialised
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
    const m = [];
    attrs.forEach((names, el) => {
      if (!known(el) || S.blocked(el)) return;
      const o = {};
      const masked = S.inside(el, '[data-hushtale-mask]');
      names.forEach((k) => {
        const v = S.attr(el, k, el.getAttribute(k), masked);
        if (v !== undefined) o[k] = v;
      });
      m.push([ids.get(el), o]);
    });
    const x = [];
    texts.forEach((t) => known(t) && x.push([ids.get(t), S.text(t, S.inside(t, '[data-hushtale-mask]'))]));
    const i = [];
    inputs.forEach((el) => known(el) && !S.blocked(el) && i.push([ids.get(el), /check|radio|select/.test(el.type) ? 0 : el.value.length]));
    inputs.clear();
    const s = [];
    scrolls.forEach((el) => known(el) && s.push([ids.get(el), Math.round(el.scrollLeft), Math.round(el.scrollTop)]));
    scrolls.clear();

    cancel = S.run(
      list.map((n) => [n, ids.get(n.parentNode)]),
      (chunks) => {
        cancel = 0;
        S.stale.splice(0).forEach((id) => rm.add(id));
        const last = { r: [...rm], a: chunks.pop(), m, x, i, s };
        for (const k in last) if (!last[k].length) delete last[k];
        for (const a of chunks) H.e({ k: 'mut', d: { a } });
        if (Object.keys(last).length) H.e({ k: 'mut', d: last });
      }
    );
  }

  mo.observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
  addEventListener('input', onInput, true);
  addEventListener('scroll', onScroll, true);
  snapshot();

  // The core calls this with 1 when a new (sampled) session starts, without to stop.
  return (again) => {
    if (cancel) cancel();
    cancel = 0;
    if (again) return snapshot();
    mo.disconnect();
    clearTimeout(timer);
    removeEventListener('input', onInput, true);
    removeEventListener('scroll', onScroll, true);
  };
}
