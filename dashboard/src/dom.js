// Rebuilds a recorded page from the snippet's replay format (js-snippet/README.md, "Replay
// format") into a document — the dashboard's replay frame, which is sandboxed without
// allow-scripts and has a `script-src 'none'` CSP, so nothing recorded can run there anyway.
// This builder is the second line: recordings reach the server from anyone who can POST to
// /collect, so it treats them as hostile. It never creates <script>, frames, plugins, <base>,
// <meta>; drops every on… handler and every URL that is not http(s) (javascript:, data:,
// vbscript:, blob:, file:); and resolves relative URLs against the recorded page's address.
//
// Format: a node is a string (text) or [tag, attrs?, ...children]; an add is
// [parentId, beforeId, firstId, node] (parentId 0: the root element), ids numbered in
// pre-order from firstId. snap d = {u, w, h, x, y, a}; mut d = {r, a, m, x, i, s}.

const SVG_NS = 'http://www.w3.org/2000/svg';
const HTML_NS = 'http://www.w3.org/1999/xhtml';

/** Elements never built: they could run code, load other documents, or redirect. */
const DROPPED = new Set([
  'script', 'noscript', 'template', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet',
  'base', 'meta', 'portal', 'fencedframe', 'param', 'handler', 'listener', 'audio', 'video',
]);
/** Attributes holding URLs: kept only when they resolve to http(s). */
const URL_ATTRS = new Set([
  'href', 'src', 'action', 'formaction', 'poster', 'xlink:href', 'background', 'data', 'codebase',
  'cite', 'ping', 'manifest', 'lowsrc', 'dynsrc', 'longdesc', 'usemap', 'icon', 'profile',
]);
/** Never set, whatever the value. */
const DROPPED_ATTRS = /^(on|formaction$|srcdoc$|http-equiv$|is$|nonce$|integrity$|target$|autofocus$|popover)/i;
const NAME_OK = /^[a-zA-Z_:][-a-zA-Z0-9_:.]*$/;
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

/** What to set for attribute `name` of a `tag` element: a string, or undefined to drop it. */
export function safeAttr(tag, name, value, base) {
  if (typeof name != 'string' || !NAME_OK.test(name) || DROPPED_ATTRS.test(name)) return;
  if (value == null) return;
  value = String(value);
  const k = name.toLowerCase();
  if (URL_ATTRS.has(k)) return safeUrl(value, base);
  if (k == 'srcset' || k == 'imagesrcset') {
    const parts = value.split(',').map((p) => {
      const [url, ...rest] = p.trim().split(/\s+/);
      const s = safeUrl(url, base);
      return s ? [s, ...rest].join(' ') : null;
    });
    return parts.every(Boolean) ? parts.join(', ') : undefined;
  }
  // SVG animation can rewrite an href to anything at run time.
  if ((k == 'attributename' || k == 'attributetype') && /href/i.test(value)) return;
  if (k == 'style') return value.replace(/javascript:|expression\s*\(/gi, '');
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

/**
 * A builder for one document. `apply(event)` applies a snap or mut event; `reset()` empties
 * the document (before a full snapshot); `url` is the recorded page's address.
 */
export function builder(doc) {
  const nodes = new Map();
  const inert = new WeakSet(); // placeholders of dropped elements: nothing goes inside them
  let next = 0;
  let base = '';

  function build(s, svg) {
    const id = next++;
    let n;
    if (typeof s == 'string' || typeof s == 'number') n = doc.createTextNode(String(s));
    else if (!Array.isArray(s) || typeof s[0] != 'string') n = doc.createTextNode('');
    else {
      const tag = s[0].toLowerCase();
      let i = 1;
      let a = {};
      if (s[1] && typeof s[1] == 'object' && !Array.isArray(s[1])) a = s[i++];
      const inSvg = svg || tag == 'svg';
      const link = tag == 'link' && !LINK_OK.test(String(a.rel || ''));
      if (DROPPED.has(tag) || link || !NAME_OK.test(tag)) {
        // Keep the ids of the dropped subtree in step, and put nothing there.
        for (; i < s.length; i++) next += size(s[i]);
        n = doc.createElementNS(HTML_NS, 'span');
        n.hidden = true;
        inert.add(n);
        nodes.set(id, n);
        return n;
      }
      if (a._b) {
        // Blocked by the recorder: a hatched box of the recorded size.
        n = doc.createElementNS(HTML_NS, 'div');
        if (typeof a.class == 'string') n.className = a.class;
        const [w, h] = (Array.isArray(a._b) ? a._b : []).map((v) => Math.max(0, Math.min(1e5, Number(v) || 0)));
        n.setAttribute('data-hushtale-blocked', '');
        n.style.cssText = `display:inline-block;width:${w}px;height:${h}px;background:repeating-linear-gradient(45deg,#d5d8de 0 6px,#eceef1 6px 12px)`;
      } else {
        n = inSvg ? doc.createElementNS(SVG_NS, tag) : doc.createElementNS(HTML_NS, tag);
        for (const k of Object.keys(a)) setAttr(n, tag, k, a[k]);
      }
      const childSvg = inSvg && tag != 'foreignobject';
      for (; i < s.length; i++) n.appendChild(build(s[i], childSvg));
    }
    nodes.set(id, n);
    return n;
  }

  function setAttr(n, tag, k, v) {
    const safe = safeAttr(tag, k, v, base);
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
    next = first;
    const parent = p ? nodes.get(p) : doc;
    if (!parent || inert.has(parent)) return;
    const svg = parent.namespaceURI == SVG_NS && parent.localName != 'foreignObject';
    const n = build(s, svg);
    try {
      if (!p) {
        if (n.nodeType != 1) return;
        if (doc.documentElement) doc.documentElement.remove();
        doc.appendChild(n);
        addBase();
        return;
      }
      const before = b && nodes.get(b);
      parent.insertBefore(n, before && before.parentNode == parent ? before : null);
    } catch (e) {}
  }

  // Relative URLs in the recorded styles resolve against the recorded page, not the frame.
  function addBase() {
    const head = doc.head;
    if (!head || !base) return;
    const el = doc.createElementNS(HTML_NS, 'base');
    el.setAttribute('href', base);
    head.insertBefore(el, head.firstChild);
  }

  return {
    nodes,
    get url() {
      return base;
    },
    reset() {
      nodes.clear();
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
          nodes.clear();
        }
        list(d.a).forEach(add);
      } else if (ev.k == 'mut') {
        list(d.r).forEach((id) => {
          const n = nodes.get(id);
          if (n) n.remove(), nodes.delete(id);
        });
        list(d.a).forEach(add);
        list(d.m).forEach((m) => {
          const [id, o] = Array.isArray(m) ? m : [];
          const n = nodes.get(id);
          if (!n || n.nodeType != 1 || inert.has(n) || n.hasAttribute('data-hushtale-blocked') || !o || typeof o != 'object') return;
          for (const k of Object.keys(o)) setAttr(n, n.localName.toLowerCase(), k, o[k]);
        });
        list(d.x).forEach((x) => {
          const n = Array.isArray(x) && nodes.get(x[0]);
          if (n && n.nodeType == 3) n.data = String(x[1] ?? '');
        });
        list(d.i).forEach((x) => {
          const n = Array.isArray(x) && nodes.get(x[0]);
          if (n && 'value' in n && !inert.has(n)) n.value = '•'.repeat(Math.max(0, Math.min(500, Number(x[1]) || 0)));
        });
        list(d.s).forEach((x) => {
          const n = Array.isArray(x) && nodes.get(x[0]);
          if (n && n.nodeType == 1) (n.scrollLeft = Number(x[1]) || 0), (n.scrollTop = Number(x[2]) || 0);
        });
      }
    },
  };
}

/** The index of the last full snapshot (a snap event with `d.u`) at or before index `i`. */
export function lastFullSnap(events, i) {
  for (let j = Math.min(i, events.length - 1); j >= 0; j--) if (events[j].k == 'snap' && events[j].d && events[j].d.u) return j;
  return -1;
}
