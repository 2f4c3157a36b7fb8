// A minimal replay player for the recorder's format (see serialize.js and mutations.js): it
// rebuilds the recorded DOM into a document. It is not loaded by visitors; the tests use it
// to check what a replay shows, and the dashboard may use it (dist/hushtale-player.js,
// global `hushtalePlayer`).

const SVG = 'http://www.w3.org/2000/svg';

// ids a serialised node takes: frame documents (['#doc', …]) are not rebuilt here, only counted
const count = (s) => (typeof s == 'string' ? 1 : s.reduce((n, c, i) => n + (i && (Array.isArray(c) || typeof c == 'string') ? count(c) : 0), 1));

export function player(doc) {
  const nodes = new Map();
  const waiting = new Map(); // parent id -> adds that arrived before their parent
  let next = 0;

  function build(s, svg) {
    const id = next++;
    let n;
    if (typeof s == 'string') n = doc.createTextNode(s);
    else {
      const tag = s[0];
      let i = 1;
      let a = {};
      if (s[1] && typeof s[1] == 'object' && !Array.isArray(s[1])) a = s[i++];
      svg = svg || tag == 'svg';
      if (a._b) {
        // blocked by the recorder: a hatched box of the recorded size
        n = doc.createElement('div');
        n.className = a.class || '';
        n.setAttribute('data-hushtale-blocked', '');
        n.style.cssText = `display:inline-block;width:${a._b[0]}px;height:${a._b[1]}px;background:repeating-linear-gradient(45deg,#ccc 0 6px,#eee 6px 12px)`;
      } else {
        n = svg ? doc.createElementNS(SVG, tag) : doc.createElement(tag);
        for (const k in a) {
          try {
            if (k[0] != '_') n.setAttribute(k, a[k]);
          } catch (e) {}
        }
        if (a._css) n.textContent = a._css;
        if (a._v) n.value = '•'.repeat(a._v);
      }
      for (; i < s.length; i++)
        if (s[i][0] == '#doc') next += count(s[i]);
        else if (s[i][0] == '#shadow') shadow(n, s[i], svg);
        else n.appendChild(build(s[i], svg && tag != 'foreignObject'));
    }
    nodes.set(id, n);
    return n;
  }

  // an open shadow root (its own id), or the host itself where none can be attached
  function shadow(host, s, svg) {
    const id = next++;
    let root = host;
    try {
      root = host.attachShadow({ mode: 'open' });
    } catch (e) {}
    nodes.set(id, root);
    for (let i = 1; i < s.length; i++) root.appendChild(build(s[i], svg));
  }

  function add(x) {
    const [p, b, first, s] = x;
    const parent = p ? nodes.get(p) : doc;
    if (!parent) return (waiting.get(p) || waiting.set(p, []).get(p)).push(x);
    next = first;
    if (s[0] == '#shadow') return shadow(parent, s);
    if (s[0] == '#doc') return;
    const n = build(s, parent.namespaceURI == SVG && parent.localName != 'foreignObject');
    if (!p) {
      if (doc.documentElement) doc.removeChild(doc.documentElement);
      return doc.appendChild(n);
    }
    const before = b && nodes.get(b);
    parent.insertBefore(n, before && before.parentNode == parent ? before : null);
  }

  // An add waits for its parent; once any waiting parent exists, its adds are applied.
  function place(x) {
    add(x);
    for (let again = 1; again; ) {
      again = 0;
      for (const [p, list] of waiting)
        if (nodes.has(p)) waiting.delete(p), list.forEach(add), (again = 1);
    }
  }

  return {
    nodes,
    /** Adds still waiting for a parent that never arrived. */
    get pending() {
      let n = 0;
      waiting.forEach((l) => (n += l.length));
      return n;
    },
    /** Apply one recorded event ({k, t, d}); other kinds are ignored. */
    apply(ev) {
      const d = ev.d;
      if (ev.k == 'snap') {
        if (d.u) nodes.clear(), waiting.clear();
        (d.a || []).forEach(place);
      } else if (ev.k == 'mut') {
        (d.r || []).forEach((id) => {
          const n = nodes.get(id);
          if (n) n.remove(), nodes.delete(id);
        });
        (d.a || []).forEach(place);
        (d.m || []).forEach(([id, o]) => {
          const n = nodes.get(id);
          if (n && n.setAttribute)
            for (const k in o) {
              try {
                o[k] == null ? n.removeAttribute(k) : n.setAttribute(k, o[k]);
              } catch (e) {}
            }
        });
        (d.x || []).forEach(([id, t]) => {
          const n = nodes.get(id);
          if (n) n.data = t;
        });
        (d.i || []).forEach(([id, len, state]) => {
          const n = nodes.get(id);
          if (n && state != null) n.localName == 'select' ? (n.selectedIndex = state) : (n.checked = !!state);
          else if (n) n.value = '•'.repeat(len);
        });
        (d.s || []).forEach(([id, x, y]) => {
          const n = nodes.get(id);
          if (n) n.scrollLeft = x, n.scrollTop = y;
        });
        // CSSOM rules of a <style>, or adopted sheets of a shadow root / the document (0)
        (d.c || []).forEach(([id, css]) => {
          const n = id ? nodes.get(id) : doc.documentElement;
          if (!n) return;
          if (n.localName == 'style') return (n.textContent = css);
          const el = n.querySelector(':scope > style[data-adopted]') || n.appendChild(doc.createElement('style'));
          el.setAttribute('data-adopted', '');
          el.textContent = css;
        });
      }
    },
  };
}
