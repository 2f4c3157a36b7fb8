// Heatmaps: click or move density drawn over the page as visitors saw it — rebuilt from the
// page's most recent recorded snapshot in the sandboxed replay frame — at a chosen viewport
// width, with the scroll-reach strip and the average fold. Without a snapshot: the grid on a
// neutral page outline.
import { api, site } from './api.js';
import { builder } from './dom.js';
import { frameReady, h, num, pct, replayFrame } from './util.js';
import { attentionBands } from './analytics.js';

export const WIDTHS = { mobile: 390, tablet: 820, desktop: 1280 };
/** The narrowest viewports (CSS px) of the tablet and desktop classes, as the collector's rollups
 * class them (`TABLET_MIN_PX`, `DESKTOP_MIN_PX` in src/rollup/heat.rs; a Rust test checks this line). */
export const WIDTH_CLASS_MIN = { tablet: 768, desktop: 1024 };
const widthClass = (w) => (w < WIDTH_CLASS_MIN.tablet ? 'mobile' : w < WIDTH_CLASS_MIN.desktop ? 'tablet' : 'desktop');
const MAX_H = 16000;
const snapCache = new Map(); // site|path → {events, width} | null

/** Does the recorded page address `u` belong to the normalised `path` (with :id segments and,
 * for a single-page app, its hash route)? */
export function samePath(u, path) {
  let p;
  try {
    const url = new URL(u);
    p = url.pathname + (/^#!?\//.test(url.hash) ? url.hash.split(/[?&=]/)[0] : '');
  } catch (e) {
    return false;
  }
  const norm = (s) => (s.length > 1 ? s.replace(/\/+$/, '') : s);
  const re = new RegExp('^' + norm(path).split('/').map((s) => (s == ':id' ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/') + '$');
  return re.test(norm(p));
}

/** How long after a single-page-app view its route is taken to have rendered. */
const ROUTE_SETTLE_MS = 2000;

/** The events of the most recent full snapshot of `path` (the snap and its continuation parts);
 * for a single-page-app route (a `view` with `spa`), the snapshot before it and the mutations
 * until the route settled (the next view, or 2 s), so the page shows as that route rendered. */
export function snapshotOf(events, path) {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.k == 'snap' && e.d && e.d.u && samePath(e.d.u, path)) {
      const parts = [e];
      for (let j = i + 1; j < events.length && events[j].k == 'snap' && !(events[j].d && events[j].d.u); j++) parts.push(events[j]);
      return { events: parts, width: Number(e.d.w) || 1280, t: e.t };
    }
    if (e.k == 'view' && e.spa && e.path == path) {
      let j = i;
      while (j >= 0 && !(events[j].k == 'snap' && events[j].d && events[j].d.u)) j--;
      if (j < 0) continue;
      const next = events.find((x, k) => k > i && x.k == 'view');
      const until = Math.min(e.t + ROUTE_SETTLE_MS, next ? next.t - 1 : Infinity);
      const parts = events.slice(j).filter((x) => (x.k == 'snap' || x.k == 'mut') && x.t <= until);
      return { events: parts, width: Number(events[j].d.w) || 1280, t: e.t };
    }
  }
  return null;
}

async function findSnapshot(ctx, path, want) {
  const key = `${ctx.site}|${path}|${want}`;
  if (snapCache.has(key)) return snapCache.get(key);
  let best = null;
  let fetched = 0;
  for (const entry of [path, null]) {
    const list = await api(site(ctx.site, 'sessions'), { from: ctx.from, to: ctx.to, replay: 'true', entry, limit: 20 });
    for (const s of list.sessions) {
      if (fetched++ >= 12) break;
      const { events, assets } = await api(site(ctx.site, `sessions/${s.id}`));
      const snap = snapshotOf(events, path);
      if (!snap) continue;
      snap.assets = assets || {};
      if (!want || want == 'all' || widthClass(snap.width) == want) {
        best = snap;
        break;
      }
      best = best || snap;
    }
    if (best && (!want || want == 'all' || widthClass(best.width) == want)) break;
  }
  snapCache.set(key, best);
  return best;
}

/** Draws weighted points as a heatmap: blurred alpha blobs, then a blue→red palette. */
export function drawHeat(canvas, points, radius) {
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!points.length) return;
  const max = Math.max(...points.map((p) => p.n));
  const blob = document.createElement('canvas');
  blob.width = blob.height = radius * 2;
  const b = blob.getContext('2d');
  const g = b.createRadialGradient(radius, radius, 0, radius, radius, radius);
  g.addColorStop(0, 'rgba(0,0,0,1)');
  g.addColorStop(1, 'rgba(0,0,0,0)');
  b.fillStyle = g;
  b.fillRect(0, 0, radius * 2, radius * 2);
  for (const p of points) {
    ctx.globalAlpha = Math.min(1, Math.max(0.06, p.n / max));
    ctx.drawImage(blob, p.x - radius, p.y - radius);
  }
  ctx.globalAlpha = 1;
  const pal = palette();
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const d = img.data;
  for (let i = 0; i < d.length; i += 4) {
    const a = d[i + 3];
    if (!a) continue;
    d[i] = pal[a * 4];
    d[i + 1] = pal[a * 4 + 1];
    d[i + 2] = pal[a * 4 + 2];
    d[i + 3] = Math.min(235, 50 + a * 0.72); // strictly increasing: the hottest pixel stays the most opaque
  }
  ctx.putImageData(img, 0, 0);
}

let pal;
function palette() {
  if (pal) return pal;
  const c = document.createElement('canvas');
  c.width = 256;
  c.height = 1;
  const x = c.getContext('2d');
  const g = x.createLinearGradient(0, 0, 256, 0);
  g.addColorStop(0.0, '#2f6bff');
  g.addColorStop(0.35, '#19c3c9');
  g.addColorStop(0.55, '#5fd35b');
  g.addColorStop(0.75, '#ffd43b');
  g.addColorStop(1.0, '#f03e3e');
  x.fillStyle = g;
  x.fillRect(0, 0, 256, 1);
  return (pal = x.getImageData(0, 0, 256, 1).data);
}

function reachColor(share) {
  // 100 % reached: warm; few reached: cool.
  const hue = 220 - 220 * Math.max(0, Math.min(1, share));
  return `hsl(${hue} 75% 55%)`;
}

/** Points in document px for the heatmap answer, over a document `doc` (or none) of width `w`. */
export function heatPoints(hm, doc, w) {
  const cols = hm.geometry.columns;
  const row = hm.geometry.row_px;
  const grid = hm.geometry.element_grid;
  const total = hm.cells.reduce((s, c) => s + c.n, 0);
  if (hm.kind == 'click' && doc && hm.elements.length) {
    const pts = [];
    let placed = 0;
    for (const e of hm.elements) {
      let el = null;
      try {
        el = doc.querySelector(e.sel);
      } catch (err) {}
      if (!el) continue;
      const r = el.getBoundingClientRect();
      if (!r.width && !r.height) continue;
      const sx = doc.defaultView.scrollX, sy = doc.defaultView.scrollY;
      for (const [ex, ey, n] of e.points) {
        pts.push({ x: sx + r.left + ((ex + 0.5) / grid) * r.width, y: sy + r.top + ((ey + 0.5) / grid) * r.height, n });
        placed += n;
      }
    }
    if (placed && placed >= 0.8 * total) return { points: pts, anchored: true };
  }
  return { points: hm.cells.map((c) => ({ x: ((c.x + 0.5) / cols) * w, y: (c.y + 0.5) * row, n: c.n })), anchored: false };
}

export async function heatmaps(root, ctx) {
  const pages = (await api(site(ctx.site, 'pages'), { from: ctx.from, to: ctx.to, limit: 200 })).pages;
  let path = ctx.params.get('path') || (pages[0] && pages[0].path);
  let kind = ctx.params.get('kind') || 'click';
  let width = ctx.params.get('width') || 'desktop';
  if (!path) {
    root.append(h('div', { class: 'card empty' }, 'No pageviews in this range yet.'));
    return;
  }
  const paths = pages.map((p) => p.path);
  if (!paths.includes(path)) paths.unshift(path);
  const update = (p) => ctx.go(`#/heatmaps?${new URLSearchParams({ path, kind, width, ...p })}`);
  const seg = (name, value, options) =>
    h('div', { class: 'seg', role: 'group', 'aria-label': name },
      options.map(([v, label]) => h('button', { type: 'button', class: v == value ? 'on' : '', 'aria-pressed': String(v == value), dataset: { value: v }, onclick: () => update({ [name]: v }) }, label)));

  const status = h('span', { class: 'muted', id: 'heat-status' }, 'Loading…');
  const bar = h('div', { class: 'toolbar card' },
    h('label', {}, 'Page ', h('select', { id: 'heat-path', onchange: (e) => update({ path: e.target.value }) }, paths.map((p) => h('option', { value: p, selected: p == path }, p)))),
    seg('kind', kind, [['click', 'Clicks'], ['dead', 'Dead clicks'], ['move', 'Moves'], ['attention', 'Attention']]),
    seg('width', width, [['mobile', 'Mobile'], ['tablet', 'Tablet'], ['desktop', 'Desktop'], ['all', 'All widths']]),
    status);
  const stageWrap = h('div', { class: 'heat-wrap' });
  const legend = h('div', { class: 'heat-legend' });
  root.append(bar, h('div', { class: 'card heat-card' }, legend, stageWrap));

  const q = { from: ctx.from, to: ctx.to, path };
  const attention = kind == 'attention';
  const [hm, reach, snap, att] = await Promise.all([
    api(site(ctx.site, 'heatmap'), { ...q, kind: attention ? 'move' : kind, width }),
    api(site(ctx.site, 'scroll'), q),
    findSnapshot(ctx, path, width),
    attention ? api(site(ctx.site, 'attention'), q) : null,
  ]);
  const W = width == 'all' ? (snap ? snap.width : 1280) : WIDTHS[width];

  const stage = h('div', { class: 'heat-stage', id: 'heat-stage' });
  const canvas = h('canvas', { class: 'heat-canvas', id: 'heat-canvas' });
  let doc = null;
  let H;
  if (snap) {
    const frame = replayFrame('heat-frame');
    frame.style.width = W + 'px';
    frame.style.height = '800px';
    stage.append(frame);
    stageWrap.append(stage);
    doc = await frameReady(frame);
    const b = builder(doc, snap.assets);
    b.reset();
    snap.events.forEach((e) => b.apply(e));
    // The frame grows to the whole document, so the page never scrolls inside it.
    H = Math.min(MAX_H, Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0, 400));
    frame.style.height = H + 'px';
    H = Math.min(MAX_H, Math.max(H, doc.documentElement.scrollHeight));
    frame.style.height = H + 'px';
  } else {
    const rows = hm.cells.reduce((m, c) => Math.max(m, c.y + 1), 0);
    H = Math.min(MAX_H, Math.max(900, (rows + 10) * hm.geometry.row_px, reach.fold_px ? reach.fold_px * 1.5 : 0));
    stage.append(h('div', { class: 'outline', style: `width:${W}px;height:${H}px` },
      h('div', { class: 'outline-bar' }), h('div', { class: 'outline-note' }, `No snapshot of ${path} was recorded in this range: clicks are drawn on the page's grid (50 columns of the document width, 20 px rows).`)));
    stageWrap.append(stage);
  }
  const docW = doc ? Math.max(W, doc.documentElement.scrollWidth) : W;
  canvas.width = docW;
  canvas.height = H;
  stage.append(canvas);
  const { points, anchored } = attention ? { points: [], anchored: false } : heatPoints(hm, doc, docW);
  drawHeat(canvas, points, kind == 'move' ? 34 : 26);
  if (att) stage.append(attentionBands(att, H));

  // The fold and the scroll-reach strip, in document px.
  if (reach.fold_px) {
    stage.append(h('div', { class: 'fold', style: `top:${reach.fold_px}px` }, h('span', {}, `Average fold · ${num(reach.fold_px)} px`)));
  }
  const strip = h('div', { class: 'reach', id: 'reach-strip', style: `height:${H}px`, title: 'Share of pageviews that reached each depth' },
    reach.reach.map((s, i) => {
      const top = i ? reach.reach[i - 1].pct : 0;
      return h('div', { class: 'reach-step', style: `top:${(top / 100) * H}px;height:${((s.pct - top) / 100) * H}px;background:${reachColor(s.share)}`, dataset: { pct: s.pct, share: s.share } },
        s.pct % 25 == 0 ? h('span', {}, `${Math.round(s.share * 100)}%`) : null);
    }));
  stage.append(strip);

  // Scale the whole page to the space there is.
  const fit = () => {
    const scale = Math.min(1, stageWrap.clientWidth / (docW + 72));
    stage.style.transform = `scale(${scale})`;
    stage.style.width = docW + 'px';
    stage.style.height = H + 'px';
    stageWrap.style.height = H * scale + 'px';
    stage.dataset.scale = scale;
  };
  fit();
  const ro = new ResizeObserver(fit);
  ro.observe(stageWrap);

  const total = hm.cells.reduce((s, c) => s + c.n, 0);
  legend.append(
    h('div', { class: 'ramp' }, h('span', {}, 'fewer'), h('i'), h('span', {}, 'more')),
    att
      ? h('span', {}, `Attention: mean time each 5 % of the page was in view, visible and in use · ${num(att.pageviews)} views (all widths)`)
      : h('span', {}, `${num(total)} ${{ click: 'clicks', dead: 'dead clicks', move: 'pointer cells' }[kind]} · ${width == 'all' ? 'all widths' : `${width} (${W} px)`}`),
    h('span', { class: 'muted' }, snap ? `Page as recorded ${new Date(snap.t).toISOString().slice(0, 16).replace('T', ' ')} UTC${anchored ? ' · clicks anchored to the elements clicked' : ''}` : 'No snapshot: grid on a page outline'),
    h('span', { class: 'muted' }, `Scroll: ${reach.pageviews} views · average depth ${pct(reach.avg_depth_pct)}`)
  );
  status.textContent = '';
  root.dataset.ready = '1';
  return () => ro.disconnect();
}
