// ClickTale's own reports: the Forms view (a funnel of fields, the field that loses people
// highlighted), the Funnel builder (steps from the pages list; a drop-off lists its sessions,
// each opening its replay), and the attention overlay the Heatmaps view draws.
import { api, site } from './api.js';
import { h, ms, num } from './util.js';

const share = (v) => (v == null ? '–' : `${(v * 100).toFixed(1)} %`);

async function pagePaths(ctx) {
  const pages = (await api(site(ctx.site, 'pages'), { from: ctx.from, to: ctx.to, limit: 200 })).pages;
  return pages.map((p) => p.path);
}

/** The field most abandoning starters left from, if any gave up. */
export function losingField(form) {
  let worst = null;
  for (const f of form.fields) if (f.drop_offs > 0 && (!worst || f.drop_offs > worst.drop_offs)) worst = f;
  return worst;
}

function formCard(form) {
  const worst = losingField(form);
  const top = Math.max(1, form.starters, ...form.fields.map((f) => f.interactions));
  const name = form.form || 'Fields outside any form';
  const bars = h('div', { class: 'field-funnel' },
    form.fields.map((f) => {
      const loses = f == worst;
      return h('div', { class: 'field-row' + (loses ? ' loses' : ''), dataset: { field: f.field } },
        h('span', { class: 'field-name', title: f.field }, f.field),
        h('span', { class: 'field-bar' },
          h('i', { style: `width:${(100 * Math.min(f.interactions, top)) / top}%` }),
          f.drop_offs ? h('b', { style: `width:${(100 * Math.min(f.drop_offs, top)) / top}%`, title: `${f.drop_offs} gave up here` }) : null),
        h('span', { class: 'field-note' }, `${num(f.interactions)} focus · ${num(f.drop_offs)} left here`, loses ? h('strong', {}, ' — loses the most people') : null));
    }));
  const table = h('table', { class: 'fields' },
    h('thead', {}, h('tr', {}, ['Field', 'Focus', 'Time in field', 'Hesitation', 'Refills', 'Blank at submit', 'Drop-offs'].map((c, i) => h('th', { scope: 'col', class: i ? 'num' : '' }, c)))),
    h('tbody', {}, form.fields.map((f) => h('tr', { class: f == worst ? 'loses' : '', dataset: { field: f.field } },
      h('td', { class: 'path' }, f.field),
      h('td', { class: 'num' }, num(f.interactions)),
      h('td', { class: 'num' }, ms(f.avg_time_ms)),
      h('td', { class: 'num' }, ms(f.avg_hesitation_ms)),
      h('td', { class: 'num' }, num(f.refills)),
      h('td', { class: 'num' }, num(f.blank_on_submit)),
      h('td', { class: 'num' }, num(f.drop_offs))))));
  return h('div', { class: 'card form-card', dataset: { form: form.form } },
    h('h2', {}, name),
    h('div', { class: 'kpis' },
      h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, 'Starters'), h('div', { class: 'kpi-value', dataset: { kpi: 'starters' } }, num(form.starters))),
      h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, 'Submits'), h('div', { class: 'kpi-value', dataset: { kpi: 'submits' } }, num(form.submits))),
      h('div', { class: 'kpi' }, h('div', { class: 'kpi-label' }, 'Abandon rate'), h('div', { class: 'kpi-value', dataset: { kpi: 'abandon' } }, share(form.abandon_rate)))),
    bars,
    h('div', { class: 'table-wrap' }, table));
}

export async function forms(root, ctx) {
  const paths = await pagePaths(ctx);
  const path = ctx.params.get('path') || paths[0];
  if (!path) {
    root.append(h('div', { class: 'card empty' }, 'No pageviews in this range yet.'));
    return;
  }
  if (!paths.includes(path)) paths.unshift(path);
  root.append(h('div', { class: 'toolbar card' },
    h('label', {}, 'Page ', h('select', { id: 'forms-path', onchange: (e) => ctx.go(`#/forms?${new URLSearchParams({ path: e.target.value })}`) },
      paths.map((p) => h('option', { value: p, selected: p == path }, p)))),
    h('span', { class: 'muted' }, 'Fields in the order visitors meet them; times are means per focus.')));
  const r = await api(site(ctx.site, 'forms'), { from: ctx.from, to: ctx.to, path });
  if (!r.forms.length) root.append(h('div', { class: 'card empty' }, `No form activity on ${path} in this range.`));
  root.append(...r.forms.map(formCard));
  root.dataset.ready = '1';
}

/** Builder state from the address: `steps=/a,/b&within_ms=…`. */
function builderState(ctx, paths) {
  const steps = (ctx.params.get('steps') || '').split(',').filter(Boolean);
  while (steps.length < 2) steps.push(paths[steps.length] || '/');
  return { steps, within: Number(ctx.params.get('within_ms')) || 30 * 60e3 };
}

function builder(ctx, paths, st) {
  const list = h('datalist', { id: 'funnel-paths' }, paths.map((p) => h('option', { value: p })));
  const rows = h('ol', { class: 'steps-edit' });
  const addRow = (value) =>
    rows.append(h('li', {},
      h('input', { type: 'text', class: 'step-input', list: 'funnel-paths', value, 'aria-label': 'Step path (* matches one segment)' }),
      h('button', { type: 'button', class: 'ghost', title: 'Remove step', onclick: (e) => rows.children.length > 2 && e.target.closest('li').remove() }, '×')));
  st.steps.forEach(addRow);
  const within = h('input', { type: 'number', id: 'funnel-within', min: '1', step: '1', value: String(Math.round(st.within / 60e3)), class: 'short' });
  const show = (e) => {
    e.preventDefault();
    const steps = [...rows.querySelectorAll('input')].map((i) => i.value.trim()).filter(Boolean);
    ctx.go(`#/funnel?${new URLSearchParams({ steps: steps.join(','), within_ms: String(Number(within.value) * 60e3) })}`);
  };
  return h('form', { class: 'card funnel-builder', id: 'funnel-builder', onsubmit: show },
    list,
    h('p', { class: 'muted' }, 'Pick pages in the order a visitor should see them (', h('code', {}, '*'), ' matches one path segment).'),
    rows,
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'ghost', id: 'funnel-add', onclick: () => rows.children.length < 10 && addRow('') }, '+ Add step'),
      h('label', {}, 'Each step within ', within, ' minutes of the previous'),
      h('button', { type: 'submit', id: 'funnel-show' }, 'Show funnel')));
}

function droppedList(ctx, sids, from, to) {
  return h('div', { class: 'card dropped', id: 'dropped' },
    h('h2', {}, `Left after “${from}”, before “${to}”`),
    h('p', { class: 'muted' }, sids.length ? `Newest first (up to 100). Open one to watch what happened.` : 'No session left here.'),
    h('ul', { class: 'dropped-list' }, sids.map((sid) => h('li', { dataset: { sid } },
      h('code', {}, sid.slice(0, 12) + '…'),
      h('button', { type: 'button', class: 'play', onclick: () => ctx.go(`#/replay/${sid}`) }, '▶ Replay')))));
}

function funnelChart(ctx, r, detail) {
  const first = Math.max(1, r.steps[0].sessions);
  const out = h('div', { class: 'card funnel-chart', id: 'funnel-chart' });
  r.steps.forEach((s, i) => {
    out.append(h('div', { class: 'funnel-step', dataset: { step: i } },
      h('div', { class: 'funnel-label' }, h('strong', {}, `${i + 1}. ${s.path}`),
        h('span', { class: 'muted' }, ` ${num(s.sessions)} sessions · ${share(s.conversion)}`, s.median_ms_from_previous != null ? ` · median ${ms(s.median_ms_from_previous)} from previous` : '')),
      h('div', { class: 'funnel-bar' }, h('i', { style: `width:${(100 * s.sessions) / first}%` }))));
    const gone = r.dropped[i];
    if (!gone) return;
    const lost = s.sessions - r.steps[i + 1].sessions;
    out.append(h('button', { type: 'button', class: 'drop-bar', dataset: { drop: i }, title: 'List these sessions',
      onclick: () => detail.replaceChildren(droppedList(ctx, gone, s.path, r.steps[i + 1].path)) },
      h('i', { style: `width:${(100 * lost) / first}%` }), h('span', {}, `▼ ${num(lost)} left (${share(s.sessions ? lost / s.sessions : 0)})`)));
  });
  return out;
}

export async function funnel(root, ctx) {
  const paths = await pagePaths(ctx);
  const st = builderState(ctx, paths);
  const detail = h('div');
  root.append(builder(ctx, paths, st));
  if (ctx.params.get('steps')) {
    const r = await api(site(ctx.site, 'funnel'), { from: ctx.from, to: ctx.to, steps: st.steps.join(','), within_ms: st.within });
    root.append(funnelChart(ctx, r, detail), detail);
  }
  root.dataset.ready = '1';
}

/** The attention overlay: the 20 bands over a page `H` px tall, warmer where people spent time. */
export function attentionBands(att, H) {
  const max = Math.max(1, ...att.bands.map((b) => b.avg_visible_ms));
  return h('div', { class: 'attention', id: 'attention-overlay' },
    att.bands.map((b) => {
      const heat = b.avg_visible_ms / max;
      return h('div', { class: 'attention-band', dataset: { from: b.from_pct, ms: b.avg_visible_ms },
        style: `top:${(b.from_pct / 100) * H}px;height:${((b.to_pct - b.from_pct) / 100) * H}px;background:hsla(${220 - 220 * heat} 80% 55% / ${0.12 + 0.45 * heat})` },
        h('span', {}, `${b.from_pct}–${b.to_pct} % · ${ms(b.avg_visible_ms)}`));
    }));
}
