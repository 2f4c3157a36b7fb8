// Rebuilds a recorded page from the snippet's replay format (js-snippet/README.md, "Replay
// format") into a document — the dashboard's replay frame, which is sandboxed without
// allow-scripts and has a `script-src 'none'` CSP, so nothing recorded can run there anyway.
// This builder is the second line: recordings reach the server from anyone who can POST to
// /collect, so it treats them as hostile. It builds only elements of an allow-list of HTML and
// SVG names (never one with a namespace prefix: `h:script` would be a script), never creates
// <script>, frames, plugins, <base>, <meta>; drops every on… handler and every URL that is not
// http(s) (javascript:, data:, vbscript:, blob:, file:); and resolves relative URLs against the
// recorded page's address, whose <base> is in place before the first node is built. Given the
// session's asset map (the session API's `assets`: recorded URL -> the collector's copy, or
// null), every URL that would load something — src, srcset, stylesheets, url() and @import in
// styles — points at the collector's copy or is dropped, and links become "#": a replay makes
// no request outside the collector (the frame's CSP, `default-src 'self' data:`, says so too).
//
// Format: a node is a string (text) or [tag, attrs?, ...children]; an add is
// [parentId, beforeId, firstId, node] (parentId 0: the root element), ids numbered in
// pre-order from firstId; ['#shadow', ...children] as an element's first child is its open
// shadow root; ['#doc', {_q, _s}?, htmlElement] as an <iframe>'s child is the document of a
// same-origin frame, _s the scroll of its viewport (built into an empty, source-less <iframe>:
// it inherits the replay frame's sandbox and CSP, and never loads anything itself; `_x` marks
// a cross-origin frame, shown hatched);
// attributes starting with "_" carry state (_v text length, _s scroll, _m modal
// dialog, _css CSSOM rules, _z a canvas box, _b blocked). snap d = {u, w, h, x, y, a}; mut d = {r, a, m, x, i,
// s, c, v} (c: [[id, css]]: rules of a <style>, or adopted sheets of a shadow root or, id 0, of
// the document; v: [[id, PNG/JPEG data: URL]]: canvas frames, drawn as the canvas's background). An add whose
// parent is not there yet waits for it (never dropped silently); `pending` counts those waiting.

const SVG_NS = 'http://www.w3.org/2000/svg';
const HTML_NS = 'http://www.w3.org/1999/xhtml';

/** HTML elements built as such. Anything else that is a valid custom-element name becomes that
 * (undefined, so inert) custom element; any other name becomes a <span> keeping its content. */
const HTML_OK = new Set(
  ('a abbr address area article aside b bdi bdo blockquote body br button canvas caption center cite code col colgroup ' +
    'data datalist dd del details dfn dialog div dl dt em fieldset figcaption figure font footer form h1 h2 h3 h4 h5 h6 ' +
    'head header hgroup hr html i img input ins kbd label legend li link main map mark menu meter nav ol optgroup option ' +
    'output p picture pre progress q rp rt ruby s samp search section select small source span strong style sub summary iframe ' +
    'sup table tbody td textarea tfoot th thead time tr track u ul var wbr big strike tt nobr acronym slot').split(' ')
);
/** SVG elements built as such, by lower-case name (the recorder sends the DOM's localName). */
const SVG_OK = new Map(
  ('svg g defs desc symbol use image switch path rect circle ellipse line polyline polygon text tspan textPath a ' +
    'linearGradient radialGradient stop pattern clipPath mask filter marker view foreignObject style ' +
    'feBlend feColorMatrix feComponentTransfer feComposite feConvolveMatrix feDiffuseLighting feDisplacementMap ' +
    'feDistantLight feDropShadow feFlood feFuncA feFuncB feFuncG feFuncR feGaussianBlur feImage feMerge feMergeNode ' +
    'feMorphology feOffset fePointLight feSpecularLighting feSpotLight feTile feTurbulence').split(' ').map((n) => [n.toLowerCase(), n])
);
const CUSTOM = /^[a-z][a-z0-9._]*-[a-z0-9._-]*$/;

/** Attributes holding URLs: kept only when they resolve to http(s). */
const URL_ATTRS = new Set([
  'href', 'src', 'action', 'formaction', 'poster', 'xlink:href', 'background', 'data', 'codebase',
  'cite', 'ping', 'manifest', 'lowsrc', 'dynsrc', 'longdesc', 'usemap', 'icon', 'profile',
]);
/** Never set, whatever the value. */
const DROPPED_ATTRS = /^(on|formaction$|srcdoc$|http-equiv$|is$|nonce$|integrity$|target$|autofocus$|popover)/i;
const NAME_OK = /^[a-zA-Z_][-a-zA-Z0-9_.]*$/;
/** Prefixed attribute names that are kept (SVG 1.1 links, language); no other prefix is. */
const PREFIXED_OK = /^(xlink:href|xml:lang|xml:space)$/i;
/** Elements never built, their subtree kept out: they could run code, load other documents,
 * or redirect (anything not in the allow-lists is never built either). */
const DROPPED = /^(script|noscript|template|frame|frameset|object|embed|applet|base|meta|portal|fencedframe|param|audio|video)$/;
/** Attributes of an <iframe> that could load, name or unsandbox something: never set. */
const FRAME_DROPPED = /^(src|name|allow|sandbox|csp|credentialless|browsingtopics)$/;
const HATCH = 'repeating-linear-gradient(45deg,#d5d8de 0 6px,#eceef1 6px 12px)';
/** A canvas frame as the collector keeps them (src/privacy/replay.rs): a JPEG or PNG data: URL. */
const FRAME = /^data:image\/(jpeg;base64,\/9j\/|png;base64,iVBORw0KGgo)[A-Za-z0-9+/]+=*$/;
/** `<link rel=…>` values that load something we may want (styles) — the rest is dropped. */
const LINK_OK = /^\s*stylesheet\s*$/i;

/** `value` resolved against `base`, if it is an http(s) URL; otherwise undefined. */
export function safeUrl(value, base) {
  if (typeof value != 'string') return;
  try {
    const u = new URL(value, base || undefined);
    if (u.protocol == 'http:' || u.protocol == 'https:') return u.href;
  } catch (e) {}
}

const CSS_URL = /@import\s+(?:url\(\s*)?(?:"([^"]*)"|'([^']*)'|([^\s;)"']+))\s*\)?|url\(\s*(?:"([^"]*)"|'([^']*)'|([^)"'\s]*))\s*\)/gi;

/** The collector's copy of the asset at `value` (resolved against `base`), or undefined. */
export function assetUrl(value, base, assets) {
  const u = safeUrl(value, base);
  if (!u || !assets) return assets ? undefined : u;
  const path = assets[u.replace(/#.*/, '')];
  return typeof path == 'string' && path.startsWith('/dashboard/asset/') ? path : undefined;
}

/** CSS text with every url() and @import pointing at the collector's copy (or emptied). */
export function safeCss(css, base, assets) {
  css = String(css).replace(/javascript:|expression\s*\(/gi, '');
  if (!assets) return css;
  return css.replace(CSS_URL, (all, i1, i2, i3, u1, u2, u3) => {
    const raw = (i1 ?? i2 ?? i3 ?? u1 ?? u2 ?? u3 ?? '').trim();
    if (raw.startsWith('#') || /^data:/i.test(raw)) return all;
    const to = assetUrl(raw, base, assets) || '';
    return i1 != null || i2 != null || i3 != null ? `@import url("${to}")` : `url("${to}")`;
  });
}

/**
 * What to set for attribute `name` of a `tag` element: a string, or undefined to drop it.
 * With `assets` (the session's asset map), URLs that load something come from the collector.
 */
export function safeAttr(tag, name, value, base, assets) {
  if (typeof name != 'string' || !(NAME_OK.test(name) || PREFIXED_OK.test(name)) || DROPPED_ATTRS.test(name)) return;
  if (value == null) return;
  value = String(value);
  const k = name.toLowerCase();
  if (tag == 'iframe' && FRAME_DROPPED.test(k)) return;
  // A fragment stays a reference into this document (SVG <use href="#icon">), whatever the base.
  if ((k == 'href' || k == 'xlink:href') && /^#[-\w.:]*$/.test(value)) return value;
  if (URL_ATTRS.has(k)) {
    if (assets && k == 'href' && (tag == 'a' || tag == 'area')) return safeUrl(value, base) && '#';
    return assetUrl(value, base, assets);
  }
  if (k == 'srcset' || k == 'imagesrcset') {
    const parts = value.split(',').map((p) => {
      const [url, ...rest] = p.trim().split(/\s+/);
      const s = assetUrl(url, base, assets);
      return s ? [s, ...rest].join(' ') : null;
    });
    if (assets) return parts.some(Boolean) ? parts.filter(Boolean).join(', ') : undefined;
    return parts.every(Boolean) ? parts.join(', ') : undefined;
  }
  // SVG animation can rewrite an href to anything at run time.
  if ((k == 'attributename' || k == 'attributetype') && /href/i.test(value)) return;
  if (k == 'style') return safeCss(value, base, assets);
  if (tag == 'link' && k == 'rel' && !LINK_OK.test(value)) return;
  return value;
}

/** Number of ids a serialised node takes (itself and every descendant). */
function size(s) {
  if (!Array.isArray(s)) return 1;
  let n = 1;
  const first = s[1] && typeof s[1] == 'object' && !Array.isArray(s[1]) ? 2 : 1;
  for (let i = first; i < s.length; i++) n += size(s[i]);
  return n;
}

/** The element to create for recorded tag `tag` (any case): [namespace, name], or null to drop it. */
export function elementFor(tag, inSvg) {
  if (typeof tag != 'string' || /[:#]/.test(tag)) return null;
  const t = tag.toLowerCase();
  if (DROPPED.test(t)) return null;
  if (inSvg || t == 'svg') {
    const n = SVG_OK.get(t);
    return n ? [SVG_NS, n] : null;
  }
  if (HTML_OK.has(t)) return [HTML_NS, t];
  return [HTML_NS, CUSTOM.test(t) && !/^(annotation-xml|font-face.*|missing-glyph|color-profile)$/.test(t) ? t : 'span'];
}

/**
 * A builder for one document. `apply(event)` applies a snap or mut event; `reset()` empties
 * the document (before a full snapshot); `url` is the recorded page's address; `pending` is
 * the number of adds still waiting for their parent.
 */
export function builder(doc, assets) {
  const nodes = new Map();
  const inert = new WeakSet(); // placeholders of dropped elements: nothing goes inside them
  const waiting = new Map(); // parent id -> adds that arrived before their parent
  const settle = []; // [element, attrs]: scroll positions and modals, once in the document
  const arrived = []; // ids built while adds wait for them
  const frames = []; // [iframe, ['#doc', …], first id]: frame documents to build once connected
  let pending = 0;
  let next = 0;
  let base = '';

  function placeholder(s, i, id) {
    // Keep the ids of the dropped subtree in step, and put nothing there.
    for (; i < s.length; i++) next += size(s[i]);
    const n = doc.createElementNS(HTML_NS, 'span');
    n.hidden = true;
    inert.add(n);
    return keep(id, n);
  }

  function keep(id, n) {
    nodes.set(id, n);
    if (pending && waiting.has(id)) arrived.push(id);
    return n;
  }

  function build(s, svg, inStyle) {
    const id = next++;
    if (typeof s == 'string' || typeof s == 'number') return keep(id, doc.createTextNode(inStyle ? safeCss(s, base, assets) : String(s)));
    if (!Array.isArray(s) || typeof s[0] != 'string') return keep(id, doc.createTextNode(''));
    let i = 1;
    let a = {};
    if (s[1] && typeof s[1] == 'object' && !Array.isArray(s[1])) a = s[i++];
    const kind = elementFor(s[0], svg);
    const tag = kind && kind[1].toLowerCase();
    if (!kind || (tag == 'link' && !LINK_OK.test(String(a.rel || '')))) return placeholder(s, i, id);
    let n;
    if (a._b) {
      // Blocked by the recorder: a hatched box of the recorded size.
      n = doc.createElementNS(HTML_NS, 'div');
      if (typeof a.class == 'string') n.className = a.class;
      const [w, h] = (Array.isArray(a._b) ? a._b : []).map((v) => Math.max(0, Math.min(1e5, Number(v) || 0)));
      n.setAttribute('data-hushtale-blocked', '');
      n.style.cssText = `display:inline-block;width:${w}px;height:${h}px;background:${HATCH}`;
    } else {
      n = doc.createElementNS(kind[0], kind[1]);
      for (const k of Object.keys(a)) if (k[0] != '_') setAttr(n, tag, k, a[k]);
      state(n, a);
    }
    keep(id, n);
    const childSvg = kind[0] == SVG_NS && tag != 'foreignobject';
    for (; i < s.length; i++) {
      const c = s[i];
      if (tag == 'canvas' && !a._b) next += size(c);
      else if (Array.isArray(c) && c[0] == '#doc') {
        // built once the <iframe> is in a document (only then does it have one)
        if (tag == 'iframe' && !a._b) frames.push([n, c, next]);
        next += size(c);
      } else if (Array.isArray(c) && c[0] == '#shadow') shadowRoot(n, c, childSvg);
      else n.appendChild(build(c, childSvg, tag == 'style'));
    }
    return n;
  }

  // What attributes do not carry: text length (masked), CSSOM rules, scroll, modal dialogs.
  function state(n, a) {
    if (a._v != null && 'value' in n) n.value = '•'.repeat(Math.max(0, Math.min(500, Number(a._v) || 0)));
    if (typeof a._css == 'string' && n.localName == 'style') n.textContent = safeCss(a._css, base, assets);
    if (Array.isArray(a._s) || a._m) settle.push([n, a]);
    if (a._x && n.localName == 'iframe') n.style.background = HATCH;
    // without scripts a <canvas> is laid out like a <div> around its fallback content: given its
    // recorded box instead, and no fallback
    if (Array.isArray(a._z) && n.localName == 'canvas') {
      const [w, h] = a._z.map((v) => Math.max(0, Math.min(1e5, Number(v) || 0)));
      n.style.cssText += `;box-sizing:border-box;width:${w}px;height:${h}px`;
    }
  }

  // The documents of same-origin frames, into their (now connected) <iframe>s: ids from
  // `first` as reserved by build(); nested frames are queued on the way and built in turn.
  function buildFrames() {
    while (frames.length) {
      const [f, s, first] = frames.shift();
      const d = f.isConnected && f.contentDocument;
      if (!d) continue;
      const save = next;
      next = first;
      keep(next++, d);
      if (!(s[1] && s[1]._q)) d.open(), d.write('<!doctype html>'), d.close(); // standards mode, as recorded
      if (d.documentElement) d.documentElement.remove();
      for (let i = 1; i < s.length; i++) {
        const n = Array.isArray(s[i]) ? build(s[i], false) : null;
        if (n && n.nodeType == 1 && !d.documentElement) d.appendChild(n);
      }
      if (s[1] && Array.isArray(s[1]._s)) settle.push([d, s[1]]); // the frame's own scroll
      f.style.background = '';
      next = save;
    }
  }

  function applySettled() {
    for (const [n, a] of settle.splice(0)) {
      if (!n.isConnected) continue;
      if (Array.isArray(a._s)) scrollTo(n, a._s[0], a._s[1]);
      if (a._m && n.localName == 'dialog') {
        try {
          if (n.open && !n.matches(':modal')) n.removeAttribute('open'); // opened by a mutation's attribute
          if (!n.open) n.showModal();
        } catch (e) {}
      }
    }
  }

  // An open shadow root: attached to its host (or, where a host can't have one, its content
  // goes into the host itself), its id kept so mutations inside it find it.
  function shadowRoot(host, s, svg) {
    const id = next++;
    let root = host;
    try {
      root = host.shadowRoot || host.attachShadow({ mode: 'open' });
    } catch (e) {}
    keep(id, root);
    for (let i = 1; i < s.length; i++) if (!(s[i] && typeof s[i] == 'object' && !Array.isArray(s[i]))) root.appendChild(build(s[i], svg));
  }

  // CSSOM rules: a <style>'s text, or the adopted sheets of a shadow root or the document,
  // kept in a <style> of their own after everything else there.
  function css(id, text) {
    let n = id === 0 ? doc.documentElement : nodes.get(id);
    if (n && n.nodeType == 9) n = n.documentElement; // adopted sheets of a frame's document
    if (!n || inert.has(n) || typeof text != 'string') return;
    if (n.localName == 'style') return void (n.textContent = safeCss(text, base, assets));
    let el = [...n.children].find((c) => c.hasAttribute('data-hushtale-adopted'));
    if (!el) (el = doc.createElementNS(HTML_NS, 'style')), el.setAttribute('data-hushtale-adopted', ''), n.appendChild(el);
    el.textContent = safeCss(text, base, assets);
  }

  // A canvas frame: a JPEG or PNG data: URL (nothing else) shown as the canvas's content box background.
  function canvasFrame(id, url) {
    const n = nodes.get(id);
    if (!n || n.localName != 'canvas' || typeof url != 'string' || !FRAME.test(url)) return;
    n.style.background = `url("${url}") content-box no-repeat`;
    n.style.backgroundSize = '100% 100%';
  }

  function setAttr(n, tag, k, v) {
    const safe = safeAttr(tag, k, v, base, assets);
    try {
      if (safe === undefined) n.removeAttribute(k);
      else if (k.startsWith('xlink:')) n.setAttributeNS('http://www.w3.org/1999/xlink', k, safe);
      else n.setAttribute(k, safe);
    } catch (e) {}
  }

  function add(x) {
    if (!Array.isArray(x)) return;
    const [p, b, first, s] = x;
    if (!Number.isInteger(first)) return;
    const parent = p ? nodes.get(p) : doc;
    if (!parent) {
      // Its parent has not arrived (yet): keep it until it does.
      if (!Number.isInteger(p) || pending > 1e5) return;
      (waiting.get(p) || waiting.set(p, []).get(p)).push(x);
      pending++;
      return;
    }
    if (inert.has(parent)) return;
    next = first;
    const svg = parent.namespaceURI == SVG_NS && parent.localName != 'foreignObject';
    if (Array.isArray(s) && s[0] == '#shadow') return void (p && parent.nodeType == 1 && shadowRoot(parent, s, svg));
    if (Array.isArray(s) && s[0] == '#doc') return void (parent.localName == 'iframe' && frames.push([parent, s, first]) && buildFrames());
    const n = build(s, svg, parent.localName == 'style');
    try {
      if (parent.nodeType == 9) {
        // a new root element: of the page (parent 0) or of a frame's document
        if (n.nodeType != 1) return;
        if (!p) addBase(n); // before it is in the document: inline sheets are parsed on insertion
        if (parent.documentElement) parent.documentElement.remove();
        parent.appendChild(n);
        return buildFrames();
      }
      const before = b && nodes.get(b);
      parent.insertBefore(n, before && before.parentNode == parent ? before : null);
      buildFrames();
    } catch (e) {}
  }

  /** Applies an add and then every waiting add whose parent it (or they, in turn) built. */
  function place(x) {
    add(x);
    if (settle.length) applySettled();
    while (arrived.length) {
      const id = arrived.pop();
      const list = waiting.get(id);
      if (!list) continue;
      waiting.delete(id);
      pending -= list.length;
      list.forEach(add);
    }
    if (settle.length) applySettled();
  }

  // Relative URLs in the recorded styles resolve against the recorded page, not the frame: the
  // document has its <base> before the first node is built, and the new root gets it again.
  function addBase(root) {
    if (!root || !base || assets) return; // with an asset map, every URL is already resolved
    const head = [...root.children].find((c) => c.localName == 'head') || root.insertBefore(doc.createElementNS(HTML_NS, 'head'), root.firstChild);
    const el = doc.createElementNS(HTML_NS, 'base');
    el.setAttribute('href', base);
    head.insertBefore(el, head.firstChild);
  }

  function clear() {
    nodes.clear();
    waiting.clear();
    arrived.length = frames.length = pending = 0;
  }

  return {
    nodes,
    get url() {
      return base;
    },
    get pending() {
      return pending;
    },
    reset() {
      clear();
      if (doc.documentElement) doc.documentElement.remove();
    },
    /** Applies one recorded event ({k, t, d}); other kinds are ignored. */
    apply(ev) {
      const d = ev && ev.d;
      if (!d || typeof d != 'object') return;
      const list = (v) => (Array.isArray(v) ? v : []);
      if (ev.k == 'snap') {
        if (d.u) {
          base = safeUrl(String(d.u)) || '';
          clear();
          if (doc.documentElement) doc.documentElement.remove();
          addBase(doc.appendChild(doc.createElementNS(HTML_NS, 'html')));
        }
        list(d.a).forEach(place);
      } else if (ev.k == 'mut') {
        list(d.r).forEach((id) => {
          const n = nodes.get(id);
          if (n && n.nodeType != 9) n.remove(), nodes.delete(id);
        });
        list(d.a).forEach(place);
        list(d.m).forEach((m) => {
          const [id, o] = Array.isArray(m) ? m : [];
          const n = nodes.get(id);
          if (!n || n.nodeType != 1 || inert.has(n) || n.hasAttribute('data-hushtale-blocked') || !o || typeof o != 'object') return;
          const dialog = n.localName == 'dialog';
          for (const k of Object.keys(o)) {
            if (k[0] == '_') continue;
            if (dialog && k == 'open' && o[k] == null && n.open) n.close(); // leaves the top layer too
            else setAttr(n, n.localName.toLowerCase(), k, o[k]);
          }
          if (dialog && o._m) settle.push([n, { _m: 1 }]);
        });
        if (settle.length) applySettled();
        list(d.x).forEach((x) => {
          const n = Array.isArray(x) && nodes.get(x[0]);
          if (n && n.nodeType == 3) n.data = n.parentNode && n.parentNode.localName == 'style' ? safeCss(x[1] ?? '', base, assets) : String(x[1] ?? '');
        });
        list(d.i).forEach((x) => {
          const n = Array.isArray(x) && nodes.get(x[0]);
          if (!n || !('value' in n) || inert.has(n)) return;
          if (x.length > 2 && n.localName == 'select') n.selectedIndex = Number(x[2]);
          else if (x.length > 2) n.checked = !!x[2];
          else n.value = '•'.repeat(Math.max(0, Math.min(500, Number(x[1]) || 0)));
        });
        list(d.s).forEach((x) => {
          const n = Array.isArray(x) && nodes.get(x[0]);
          if (n && (n.nodeType == 1 || n.nodeType == 9)) scrollTo(n, x[1], x[2]);
        });
      }
      list(d.c).forEach((x) => Array.isArray(x) && css(x[0], x[1]));
      list(d.v).forEach((x) => Array.isArray(x) && canvasFrame(x[0], x[1]));
    },
  };
}

/** Scrolls an element, or the viewport of a (frame's) document. */
function scrollTo(n, x, y) {
  const el = n.nodeType == 9 ? n.scrollingElement : n;
  if (el) (el.scrollLeft = Number(x) || 0), (el.scrollTop = Number(y) || 0);
}

/** The index of the last full snapshot (a snap event with `d.u`) at or before index `i`. */
export function lastFullSnap(events, i) {
  for (let j = Math.min(i, events.length - 1); j >= 0; j--) if (events[j].k == 'snap' && events[j].d && events[j].d.u) return j;
  return -1;
}
