// Pure parts of the dashboard, in Node: URL and attribute rules of the replay builder,
// the heatmap's page matching, and the replay's time model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { elementFor, safeAttr, safeCss, safeUrl } from '../src/dom.js';
import { samePath, snapshotOf, heatPoints } from '../src/heatmap.js';
import { frameState } from '../src/replay.js';

const base = 'https://shop.example/pricing';

test('only http(s) URLs survive, resolved against the recorded page', () => {
  assert.equal(safeUrl('/a.css', base), 'https://shop.example/a.css');
  assert.equal(safeUrl('https://cdn.example/x.png', base), 'https://cdn.example/x.png');
  for (const bad of ['javascript:alert(1)', ' JaVa\tScRiPt:alert(1)', 'java\nscript:alert(1)', 'data:text/html,<script>', 'vbscript:x', 'blob:https://x/1', 'file:///etc/passwd'])
    assert.equal(safeUrl(bad, base), undefined, bad);
});

test('handlers, srcdoc, javascript: URLs and script-ish attributes are dropped', () => {
  assert.equal(safeAttr('img', 'onerror', 'x()', base), undefined);
  assert.equal(safeAttr('body', 'OnLoad', 'x()', base), undefined);
  assert.equal(safeAttr('iframe', 'srcdoc', '<script>', base), undefined);
  assert.equal(safeAttr('a', 'href', 'javascript:x()', base), undefined);
  assert.equal(safeAttr('a', 'xlink:href', 'javascript:x()', base), undefined);
  assert.equal(safeAttr('button', 'formaction', 'https://x/', base), undefined);
  assert.equal(safeAttr('meta', 'http-equiv', 'refresh', base), undefined);
  assert.equal(safeAttr('animate', 'attributeName', 'href', base), undefined);
  assert.equal(safeAttr('link', 'rel', 'prefetch', base), undefined);
  assert.equal(safeAttr('img', 'srcset', 'a.png 1x, javascript:x 2x', base), undefined);
  assert.equal(safeAttr('img', 'srcset', 'a.png 1x, b.png 2x', base), 'https://shop.example/a.png 1x, https://shop.example/b.png 2x');
  assert.equal(safeAttr('div', 'bad name', 'x', base), undefined);
  assert.equal(safeAttr('div', 'class', 'hero', base), 'hero');
  assert.equal(safeAttr('a', 'href', '/features', base), 'https://shop.example/features');
});

test('a normalised path with :id matches the recorded address', () => {
  assert.ok(samePath('https://s.example/orders/1234/', '/orders/:id'));
  assert.ok(samePath('https://s.example/', '/'));
  assert.ok(!samePath('https://s.example/orders/1234/x', '/orders/:id'));
  assert.ok(!samePath('not a url', '/'));
});

test('the most recent snapshot of a page comes with its continuation parts', () => {
  const ev = [
    { k: 'snap', t: 1, d: { u: 'https://s/a', w: 390, a: [] } },
    { k: 'snap', t: 5, d: { u: 'https://s/a', w: 1280, a: [1] } },
    { k: 'snap', t: 5, d: { a: [2] } },
    { k: 'mut', t: 6, d: {} },
    { k: 'snap', t: 9, d: { u: 'https://s/b', a: [] } },
  ];
  const s = snapshotOf(ev, '/a');
  assert.equal(s.width, 1280);
  assert.deepEqual(s.events.map((e) => e.t), [5, 5]);
  assert.equal(snapshotOf(ev, '/c'), null);
});

test('a single-page-app route is shown as it rendered: the snapshot before it and the mutations until it settled', () => {
  const ev = [
    { k: 'snap', t: 1, d: { u: 'https://s/app', w: 1024, a: [] } },
    { k: 'snap', t: 1, d: { a: [1] } },
    { k: 'view', t: 100, path: '/app/a', spa: true },
    { k: 'mut', t: 300, d: { a: [2] } },
    { k: 'click', t: 400 },
    { k: 'view', t: 900, path: '/app#/b', spa: true },
    { k: 'mut', t: 1000, d: { a: [3] } },
  ];
  const a = snapshotOf(ev, '/app/a');
  assert.equal(a.width, 1024);
  assert.deepEqual(a.events.map((e) => e.t), [1, 1, 300], 'stops before the next route');
  assert.deepEqual(snapshotOf(ev, '/app#/b').events.map((e) => e.t), [1, 1, 300, 1000]);
  assert.ok(samePath('https://s/app#/b', '/app#/b'));
  assert.ok(!samePath('https://s/app#section', '/app#/b'));
});

test('grid cells map to document pixels without a snapshot', () => {
  const hm = { kind: 'click', geometry: { columns: 50, row_px: 20, element_grid: 10 }, cells: [{ x: 0, y: 0, n: 2 }, { x: 49, y: 10, n: 1 }], elements: [] };
  const { points, anchored } = heatPoints(hm, null, 1000);
  assert.equal(anchored, false);
  assert.deepEqual(points, [{ x: 10, y: 10, n: 2 }, { x: 990, y: 210, n: 1 }]);
});

test('the replay state at a time: viewport, scroll, pointer, trail and ripples', () => {
  const ev = [
    { k: 'view', t: 0, vw: 800, vh: 600, url: 'https://s/' },
    { k: 'move', t: 100, x: 10, y: 20 },
    { k: 'scroll', t: 200, y: 300 },
    { k: 'click', t: 2000, x: 50, y: 60 },
    { k: 'resize', t: 3000, w: 400, h: 700 },
  ];
  let s = frameState(ev, 150);
  assert.deepEqual([s.vw, s.vh, s.sy, s.x, s.y], [800, 600, 0, 10, 20]);
  s = frameState(ev, 2350);
  assert.deepEqual([s.sy, s.x, s.y, s.ripples.length, s.trail.length], [300, 50, 60, 1, 1]);
  assert.ok(Math.abs(s.ripples[0].age - 0.5) < 1e-9);
  s = frameState(ev, 5000);
  assert.deepEqual([s.vw, s.vh, s.ripples.length, s.trail.length], [400, 700, 0, 0]);
});

test('elements are built by local name from an allow-list; a namespace prefix is refused', () => {
  for (const t of ['h:script', 'svg:script', 'h:iframe', 'x:base', 'x:meta', 'x:link', 'html:img', ':div'])
    for (const svg of [false, true]) assert.equal(elementFor(t, svg), null, t);
  for (const t of ['script', 'SCRIPT', 'base', 'meta', 'object', 'embed', 'frame', 'frameset', 'template', 'noscript'])
    assert.equal(elementFor(t, false), null, t);
  // an <iframe> is built (to hold a same-origin frame's recorded document), but never loads anything
  assert.deepEqual(elementFor('iframe', false), ['http://www.w3.org/1999/xhtml', 'iframe']);
  for (const assets of [undefined, { 'https://shop.example/f.html': '/dashboard/asset/' + 'c'.repeat(64) }])
    for (const k of ['src', 'SRC', 'srcdoc', 'name', 'sandbox', 'allow', 'csp'])
      assert.equal(safeAttr('iframe', k, k == 'srcdoc' ? '<script>x()</script>' : 'https://shop.example/f.html', base, assets), undefined, k);
  assert.equal(elementFor('script', true), null);
  assert.equal(elementFor('animate', true), null, 'SVG animation can rewrite attributes at run time');
  assert.deepEqual(elementFor('DIV', false), ['http://www.w3.org/1999/xhtml', 'div']);
  assert.deepEqual(elementFor('lineargradient', true), ['http://www.w3.org/2000/svg', 'linearGradient'], 'SVG keeps its case');
  assert.deepEqual(elementFor('my-widget', false), ['http://www.w3.org/1999/xhtml', 'my-widget']);
  assert.deepEqual(elementFor('blink', false), ['http://www.w3.org/1999/xhtml', 'span'], 'unknown HTML becomes a span');
  assert.equal(safeAttr('use', 'href', '#icon', base), '#icon', 'a fragment stays in this document');
  assert.equal(safeAttr('div', 'x:onclick', 'y', base), undefined);
  assert.equal(safeAttr('use', 'xlink:href', '#icon', base), '#icon');
});

test('with an asset map, whatever loads comes from the collector or not at all; links go nowhere', () => {
  const assets = { 'https://shop.example/a.css': '/dashboard/asset/' + 'a'.repeat(64), 'https://shop.example/img/x.png': '/dashboard/asset/' + 'b'.repeat(64), 'https://shop.example/gone.png': null };
  const A = '/dashboard/asset/' + 'a'.repeat(64);
  const B = '/dashboard/asset/' + 'b'.repeat(64);
  assert.equal(safeAttr('link', 'href', '/a.css', base, assets), A);
  assert.equal(safeAttr('img', 'src', 'img/x.png#frag', 'https://shop.example/', assets), B);
  assert.equal(safeAttr('img', 'src', '/gone.png', base, assets), undefined);
  assert.equal(safeAttr('img', 'src', 'https://evil.example/track.gif', base, assets), undefined);
  assert.equal(safeAttr('img', 'srcset', '/img/x.png 1x, https://evil.example/y.png 2x', base, assets), B + ' 1x');
  assert.equal(safeAttr('a', 'href', 'https://evil.example/', base, assets), '#');
  assert.equal(safeAttr('a', 'href', 'javascript:x', base, assets), undefined);
  assert.equal(safeAttr('use', 'href', '#icon', base, assets), '#icon');
  assert.equal(safeAttr('div', 'style', "background:url('img/x.png')", 'https://shop.example/', assets), `background:url("${B}")`);
  assert.equal(
    safeCss("@import 'a.css'; @import url(https://evil.example/e.css); .x{background:url(https://evil.example/t.gif)} .m{mask:url(#m)} .d{background:url(data:image/png;base64,AA)}", 'https://shop.example/', assets),
    `@import url("${A}"); @import url(""); .x{background:url("")} .m{mask:url(#m)} .d{background:url(data:image/png;base64,AA)}`
  );
});
