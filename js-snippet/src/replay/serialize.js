// Serialises DOM subtrees into hushtale's compact replay format, a time slice at a time.
//
// An "add" is [parentId, beforeId, firstId, node]: insert `node` into the node `parentId`
// before `beforeId` (0: at the end; parentId 0: `node` is the document's root element).
// `node` is a string (a text node) or [tag, attrs?, ...children] (an element; attrs is a
// plain object). Ids are numbered in pre-order from firstId, skipping nothing that is sent.
// A blocked element comes with attrs {class?, _b: [width, height]} and no children. An open
// shadow root is its host's first child ['#shadow', ...children] (it takes an id too); the
// document of a same-origin <iframe> is its only child ['#doc', {_q, _s}, htmlElement] (an id
// too; _q: 1 in quirks mode, _s: its viewport's scroll), with every URL in it sent absolute; a cross-origin <iframe> has `_x: 1` and no children.
// State that is not in attributes travels as attributes starting with "_": `checked` and
// `selected` follow the controls' current state, `_v` is a text field's current length (never
// its value), `_s` [left, top] the scroll position of a scrolled element or frame document,
// `_m` a modal <dialog>, `_css` the rules of a <style> filled through the CSSOM (CSS-in-JS), `_z` a
// <canvas>'s [width, height] as laid out (border box).
//
// Nothing here reads form values. Text is masked by the core's rules; attributes that carry
// words (value, placeholder, title, alt, aria-*, data-*) too; data: URLs, inline handlers and
// script contents are never captured.

const SKIP = /^(script|noscript|template|meta|title|base|object|embed)$/;
const URL_ATTR = /^(href|src|srcset|action|poster|xlink:href|background)$/;
const TEXT_ATTR = /^(value|placeholder|title|alt|label|content|aria-.+|data-.+)$/;
const DATA_URL = /url\(\s*['"]?\s*data:[^)]*\)/gi;
const LIMIT = 4e4; // bytes per chunk: every snap/mut event stays well under a beacon's 64 KB
const BLOCK = '[data-hushtale-block]';
const SENSITIVE = /pass|card|cc-?(num|csc|exp)|cvc|cvv|iban|one-time|otp|secret|ssn/i;

/** Password, card and one-time-code fields: always blocked, whatever the page's markup says. */
export const sensitive = (el) =>
  el.type == 'password' ||
  /^(cc-|one-time-code)/.test(el.getAttribute('autocomplete') || '') ||
  SENSITIVE.test(el.name + ' ' + el.id);

/** The rules of a stylesheet as text (CSS-in-JS fills sheets without any text node). */
export const rules = (sheet) => {
  try {
    return [...sheet.cssRules].map((r) => r.cssText).join('').replace(DATA_URL, 'url()');
  } catch (e) {
    return ''; // a cross-origin sheet
  }
};

// URLs inside frame documents go out absolute: the player and the collector resolve relative
// ones against the page's address, which is not the frame's.
const abs = (n, v) => {
  try {
    return n.ownerDocument != document ? new URL(v, n.baseURI).href : v;
  } catch (e) {
    return v;
  }
};
const absCss = (n, css) => (n.ownerDocument != document ? css.replace(/url\(\s*(['"]?)([^'")]*)\1\s*\)/g, (all, q, u) => (u[0] == '#' ? all : `url(${q}${abs(n, u)}${q})`)) : css);

/** [left, top] scrolled of an element, or of a (frame's) document's viewport. */
export const scroll = (n) => ((n = n.scrollingElement || n), [Math.round(n.scrollLeft), Math.round(n.scrollTop)]);
const scrolled = (n, a) => {
  const e = n.scrollingElement || n;
  if (e.scrollTop || e.scrollLeft) a._s = scroll(e);
};

/** The document of a same-origin frame, or nothing (cross-origin, or not loaded into one). */
export const frameDoc = (f) => {
  try {
    if (!(/^https?:/.test(f.src) && new URL(f.src).origin != location.origin)) return f.contentDocument;
  } catch (e) {}
};

// `watch(x)` is told of every open shadow root, frame document and <iframe> serialised.
export function serializer(H, ids, watch) {
  let next = 1;
  const stale = []; // ids of earlier copies of nodes serialised again: to be removed

  // whether n is inside an element matching q, looking through shadow roots to their hosts
  // and through frame documents to their <iframe>s
  const inside = (n, q) => {
    for (let p = n.nodeType == 3 ? n.parentNode : n, r; p; p = r.host || (r != document && r.defaultView && r.defaultView.frameElement)) {
      if (p.nodeType == 1 && p.closest(q)) return true;
      r = p.getRootNode();
    }
    return false;
  };
  const blocked = (el) => el.hasAttribute('data-hushtale-block') || (/^(input|textarea|select)$/.test(el.localName) && sensitive(el));

  function text(n, masked) {
    const p = n.parentNode && n.parentNode.localName;
    return p == 'style' ? absCss(n, n.data.replace(DATA_URL, 'url()')) : masked || p == 'textarea' ? H.a(n.data) : H.m(n.data);
  }

  // An attribute's value as sent, or undefined when it is not sent.
  function attr(el, k, v, masked) {
    if (v == null || /^on/i.test(k) || k == 'srcdoc' || (k == 'src' && el.localName == 'iframe')) return v == null ? null : undefined;
    if (URL_ATTR.test(k)) {
      if (/^\s*(data|javascript|blob):/i.test(v)) return;
      if (/^\s*(mailto|tel|sms):/i.test(v)) return v.replace(/:[^]*/, ':');
      if (/^(a|area|form)$/.test(el.localName)) v = v.replace(/[?#][^]*/, '');
      return k == 'srcset' ? v : abs(el, v);
    } else if (k == 'style') return absCss(el, v.replace(DATA_URL, 'url()'));
    else if (TEXT_ATTR.test(k)) return masked || (k == 'value' && !/^(button|submit|reset)$/.test(el.type)) ? H.a(v) : H.m(v);
    return v;
  }

  let desc; // set by ser(): the element's children are to be sent
  let size; // set by ser(): rough JSON size

  function ser(n, masked) {
    desc = 0;
    if (n.nodeType == 11 || n.nodeType == 9) {
      size = 20;
      desc = n.nodeType == 11 || !!n.documentElement;
      watch(n);
      if (n.nodeType == 11) return ['#shadow'];
      const a = {};
      if (n.compatMode == 'BackCompat') a._q = 1;
      scrolled(n, a);
      return ['#doc', a];
    }
    if (n.nodeType == 3) {
      const s = text(n, masked);
      size = s.length + 3;
      return s;
    }
    if (n.nodeType != 1) return;
    const tag = n.localName;
    if (SKIP.test(tag) || (tag == 'link' && !/stylesheet/i.test(n.getAttribute('rel')))) return;
    const out = [tag];
    const a = {};
    size = tag.length + 6;
    if (blocked(n)) {
      const r = n.getBoundingClientRect();
      if (n.getAttribute('class')) a.class = n.getAttribute('class');
      a._b = [Math.round(r.width), Math.round(r.height)];
      out.push(a);
      return out;
    }
    let has;
    for (const { name, value } of n.attributes) {
      const v = attr(n, name, value, masked);
      if (v != null) {
        a[name] = v;
        size += name.length + v.length + 6;
        has = 1;
      }
    }
    // what attributes do not say: current control state, text length, scroll, CSSOM rules
    if (/^(checkbox|radio)$/.test(n.type) && tag == 'input') n.checked ? (a.checked = '') : delete a.checked;
    if (tag == 'option') n.selected ? (a.selected = '') : delete a.selected;
    if ((tag == 'textarea' || (tag == 'input' && !/^(checkbox|radio|button|submit|reset|image|file|hidden|range|color)$/.test(n.type))) && n.value) a._v = n.value.length;
    scrolled(n, a);
    if (tag == 'dialog' && n.open && n.matches(':modal')) a._m = 1;
    if (tag == 'style' && n.sheet && !n.textContent.trim()) size += (a._css = absCss(n, rules(n.sheet))).length;
    if (tag == 'iframe') watch(n), frameDoc(n) ? (desc = 1) : (a._x = 1);
    if (tag == 'canvas' && n.offsetWidth) a._z = [n.offsetWidth, n.offsetHeight]; // a replay without scripts sizes no canvas
    if (has || Object.keys(a).length) out.push(a);
    desc ||= n.firstChild || n.shadowRoot ? 1 : 0;
    return out;
  }

  const kids = (n) => (n.nodeType == 9 ? [n.documentElement] : n.localName == 'iframe' ? [frameDoc(n)] : n.shadowRoot ? [n.shadowRoot, ...n.childNodes] : [...n.childNodes]);

  const before = (n) => {
    let s = n.nextSibling;
    while (s && !ids.get(s)) s = s.nextSibling;
    return (s && ids.get(s)) || 0;
  };

  // Serialise the subtrees of `list` ([node, parentId] each), a slice of a few ms per task so
  // the page never sees a long task; done(chunks) receives the adds in chunks of ~LIMIT bytes.
  // Returns a function that cancels the work.
  function run(list, done) {
    const chunks = [[]];
    const stack = []; // frames: {c: children, i: next child, o: output array or 0 once cut off, p: id, m: masked}
    let total = 0;
    let i = 0;
    let dead;
    const slice = () => {
      const end = performance.now() + 8;
      for (let k = 0; !dead; k++) {
        if (!(k & 31) && performance.now() > end) return setTimeout(slice);
        const f = stack[stack.length - 1];
        let n, p, m;
        if (f) {
          if (f.i >= f.c.length) {
            stack.pop();
            continue;
          }
          n = f.c[f.i++];
          m = f.m;
        } else if (i < list.length) {
          [n, p] = list[i++];
          m = inside(n, '[data-hushtale-mask]');
        } else return done(chunks);
        const s = ser(n, m);
        if (s == null) continue;
        const id = next++;
        if (ids.get(n)) stale.push(ids.get(n));
        ids.set(n, id);
        if (f && f.o) f.o.push(s);
        else chunks[chunks.length - 1].push(f ? [f.p, 0, id, s] : [p, before(n), id, s]);
        if (desc) stack.push({ c: kids(n), i: 0, o: s, p: id, m: m || (n.nodeType == 1 && n.hasAttribute('data-hushtale-mask')) });
        if ((total += size) > LIMIT) {
          // close this chunk: what follows goes into the next one as appends to open elements
          total = 0;
          chunks.push([]);
          for (const f of stack) f.o = 0;
        }
      }
    };
    setTimeout(slice);
    return () => (dead = 1);
  }

  return { ser, run, text, attr, blocked, inside, stale, BLOCK };
}
