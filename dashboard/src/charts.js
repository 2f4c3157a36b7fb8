// Overview: totals, traffic and load time per UTC day (uPlot, bundled), and the pages table.
import { api, site } from './api.js';
import { dayMs, h, ms, num, pct } from './util.js';

const COLORS = { pageviews: '#3b5bdb', sessions: '#0ca678', visitors: '#f08c00', p50: '#3b5bdb', p95: '#e8590c' };

function chart(el, title, days, series, fmt) {
  const xs = days.map((d) => dayMs(d.day) / 1000);
  const data = [xs, ...series.map((s) => days.map((d) => d[s.key] ?? null))];
  const width = () => Math.max(280, el.clientWidth - 8);
  const opts = {
    title,
    width: width(),
    height: 240,
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
    cursor: { points: { size: 8 }, drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [
      { stroke: '#5d636e', grid: { stroke: '#eceef1' }, ticks: { stroke: '#e3e3df' } },
      { stroke: '#5d636e', grid: { stroke: '#eceef1' }, ticks: { stroke: '#e3e3df' }, values: (u, v) => v.map(fmt), size: 64 },
    ],
    series: [
      { label: 'Day', value: (u, v) => (v == null ? '–' : new Date(v * 1e3).toISOString().slice(0, 10)) },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        fill: s.fill,
        spanGaps: false,
        points: { show: true, size: 6, fill: '#fff', width: 2 },
        value: (u, v) => (v == null ? '–' : fmt(v)),
      })),
    ],
  };
  const u = new window.uPlot(opts, data, el);
  el.uplot = u; // for the browser tests: the drawn data
  const ro = new ResizeObserver(() => u.setSize({ width: width(), height: 240 }));
  ro.observe(el);
  return () => (ro.disconnect(), u.destroy());
}

const COLUMNS = [
  { key: 'path', label: 'Page', fmt: (v) => v },
  { key: 'pageviews', label: 'Pageviews', fmt: num, num: true },
  { key: 'avg_load_ms', label: 'Avg load', fmt: ms, num: true },
  { key: 'p95_load_ms', label: 'p95 load', fmt: ms, num: true },
  { key: 'avg_scroll_pct', label: 'Scroll depth', fmt: pct, num: true },
  { key: 'clicks', label: 'Clicks', fmt: num, num: true },
  { key: 'rage_clicks', label: 'Rage clicks', fmt: num, num: true },
  // a page's dead clicks open the heatmap of those clicks
  { key: 'dead_clicks', label: 'Dead clicks', fmt: num, num: true, heat: 'dead' },
  { key: 'error_clicks', label: 'Error clicks', fmt: num, num: true },
  { key: 'quick_backs', label: 'Quick backs', fmt: num, num: true },
];

function pagesTable(pages, ctx) {
  let sort = { key: 'pageviews', dir: -1 };
  const tbody = h('tbody');
  const heads = COLUMNS.map((c) =>
    h('th', { class: c.num ? 'num' : '', scope: 'col', 'aria-sort': 'none', dataset: { key: c.key } },
      h('button', { type: 'button', class: 'sort', onclick: () => {
        sort = { key: c.key, dir: sort.key == c.key ? -sort.dir : c.num ? -1 : 1 };
        draw();
      } }, c.label))
  );
  function draw() {
    const rows = [...pages].sort((a, b) => {
      const x = a[sort.key], y = b[sort.key];
      if (x == null) return 1;
      if (y == null) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * sort.dir;
    });
    for (const th of heads) th.setAttribute('aria-sort', th.dataset.key == sort.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none');
    tbody.replaceChildren(
      ...rows.map((p) =>
        h('tr', {},
          COLUMNS.map((c, i) =>
            h('td', { class: c.num ? 'num' : 'path' },
              i == 0 ? h('a', { href: `#/heatmaps?path=${encodeURIComponent(p.path)}`, title: 'Heatmap of this page' }, p.path)
                : c.heat && p[c.key] > 0 ? h('a', { href: `#/heatmaps?${new URLSearchParams({ path: p.path, kind: c.heat })}`, class: `sig-${c.heat}`, title: `Heatmap of the ${c.label.toLowerCase()} on this page` }, c.fmt(p[c.key]))
                : c.fmt(p[c.key]))
          ))
      )
    );
    if (!rows.length) tbody.append(h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'empty' }, 'No pageviews in this range.')));
  }
  draw();
  return h('table', { class: 'pages', id: 'pages-table' }, h('thead', {}, h('tr', {}, heads)), tbody);
}

async function allPages(ctx) {
  const pages = [];
  let offset = 0;
  for (let i = 0; i < 20 && offset != null; i++) {
    const r = await api(site(ctx.site, 'pages'), { from: ctx.from, to: ctx.to, limit: 1000, offset });
    pages.push(...r.pages);
    offset = r.next;
  }
  return pages;
}

export async function overview(root, ctx) {
  const [stats, pages] = await Promise.all([api(site(ctx.site, 'stats'), { from: ctx.from, to: ctx.to }), allPages(ctx)]);
  const t = stats.totals;
  const kpi = (label, value, id) => h('div', { class: 'kpi', id }, h('div', { class: 'kpi-value' }, value), h('div', { class: 'kpi-label' }, label));
  const traffic = h('div', { class: 'chart', id: 'chart-traffic' });
  const load = h('div', { class: 'chart', id: 'chart-load' });
  root.append(
    h('div', { class: 'kpis' },
      kpi('Pageviews', num(t.pageviews), 'kpi-pageviews'),
      kpi('Sessions', num(t.sessions), 'kpi-sessions'),
      kpi('Visitors', num(t.visitors), 'kpi-visitors'),
      kpi('Median load', ms(t.p50_load_ms), 'kpi-p50'),
      kpi('p95 load', ms(t.p95_load_ms), 'kpi-p95')),
    h('div', { class: 'grid2' }, h('div', { class: 'card' }, traffic), h('div', { class: 'card' }, load)),
    h('div', { class: 'card' }, h('h2', {}, 'Pages'), h('div', { class: 'table-wrap' }, pagesTable(pages, ctx)))
  );
  await new Promise((r) => (window.uPlot ? r() : addEventListener('load', r, { once: true })));
  const stops = [
    chart(traffic, 'Traffic per day (UTC)', stats.days, [
      { key: 'pageviews', label: 'Pageviews', color: COLORS.pageviews, fill: 'rgba(59,91,219,.08)' },
      { key: 'sessions', label: 'Sessions', color: COLORS.sessions },
      { key: 'visitors', label: 'Visitors', color: COLORS.visitors },
    ], num),
    chart(load, 'Page load time per day', stats.days, [
      { key: 'p50_load_ms', label: 'p50', color: COLORS.p50 },
      { key: 'p95_load_ms', label: 'p95', color: COLORS.p95 },
    ], (v) => ms(v)),
  ];
  root.dataset.ready = '1';
  return () => stops.forEach((s) => s());
}
