// Sessions: the filtered list (newest first, paged by cursor) with a link to each replay.
import { api, site } from './api.js';
import { duration, h, num, when } from './util.js';
import { SIGNALS, badges } from './signals.js';

export async function sessions(root, ctx) {
  const p = ctx.params;
  const f = {
    entry: p.get('entry') || '',
    device: p.get('device') || '',
    min_duration_ms: p.get('min_duration_ms') || '',
    min_rage_clicks: p.get('min_rage_clicks') || '',
    replay: p.get('replay') || '',
    signal: p.get('signal') || '',
  };
  const wanted = new Set(f.signal.split(',').filter(Boolean));
  const pages = (await api(site(ctx.site, 'pages'), { from: ctx.from, to: ctx.to, limit: 200 })).pages;
  const apply = (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const q = new URLSearchParams();
    for (const [k, v] of fd) if (v && k != 'signal') q.set(k, k == 'min_duration_ms' ? String(Number(v) * 1000) : v);
    const signal = fd.getAll('signal').join(',');
    if (signal) q.set('signal', signal);
    ctx.go('#/sessions' + (q.size ? '?' + q : ''));
  };
  const form = h('form', { class: 'toolbar card filters', id: 'session-filters', onsubmit: apply },
    h('label', {}, 'Entry page ', h('select', { name: 'entry' }, h('option', { value: '' }, 'any'),
      pages.map((pg) => h('option', { value: pg.path, selected: pg.path == f.entry }, pg.path)))),
    h('label', {}, 'Device ', h('select', { name: 'device' }, ['', 'desktop', 'mobile', 'tablet'].map((d) => h('option', { value: d, selected: d == f.device }, d || 'any')))),
    h('label', {}, 'Longer than ', h('input', { name: 'min_duration_ms', type: 'number', min: '0', step: '1', value: f.min_duration_ms ? String(f.min_duration_ms / 1000) : '', placeholder: '0', class: 'short' }), ' s'),
    h('label', {}, 'Rage clicks ≥ ', h('input', { name: 'min_rage_clicks', type: 'number', min: '0', step: '1', value: f.min_rage_clicks, placeholder: '0', class: 'short' })),
    h('fieldset', { class: 'signals', id: 'signal-filter' }, h('legend', {}, 'Any of'),
      SIGNALS.map((s) => h('label', { class: 'check', title: s.title }, h('input', { name: 'signal', type: 'checkbox', value: s.key, checked: wanted.has(s.key) }), ' ' + s.label.toLowerCase()))),
    h('label', { class: 'check' }, h('input', { name: 'replay', type: 'checkbox', value: 'true', checked: f.replay == 'true' }), ' with replay only'),
    h('button', { type: 'submit' }, 'Filter'));
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'ghost', hidden: true }, 'Load more');
  const table = h('table', { class: 'sessions', id: 'sessions-table' },
    h('thead', {}, h('tr', {}, ['Started', 'Entry page', 'Device', 'Duration', 'Pages', 'Clicks', 'Rage clicks', 'Signals', 'Replay'].map((c, i) => h('th', { scope: 'col', class: i > 2 && i < 7 ? 'num' : '' }, c)))),
    tbody);
  root.append(form, h('div', { class: 'card' }, h('div', { class: 'table-wrap' }, table), h('div', { class: 'more' }, more)));

  let cursor = null;
  async function load() {
    more.disabled = true;
    const r = await api(site(ctx.site, 'sessions'), { from: ctx.from, to: ctx.to, limit: 50, cursor, ...f });
    for (const s of r.sessions) {
      const open = () => ctx.go(`#/replay/${s.id}`);
      tbody.append(h('tr', { dataset: { sid: s.id }, class: s.replay ? 'has-replay' : '' },
        h('td', {}, when(s.start)),
        h('td', { class: 'path' }, s.entry || '–'),
        h('td', {}, h('span', { class: 'device' }, s.device || '–'), s.browser ? h('span', { class: 'muted' }, ' ' + s.browser) : null),
        h('td', { class: 'num' }, duration(s.duration_ms)),
        h('td', { class: 'num' }, num(s.pageviews)),
        h('td', { class: 'num' }, num(s.clicks)),
        h('td', { class: 'num' }, s.rage_clicks ? h('span', { class: 'rage' }, num(s.rage_clicks)) : '0'),
        h('td', { class: 'signals' }, badges(s)),
        h('td', {}, s.replay ? h('button', { type: 'button', class: 'play', onclick: open }, '▶ Replay') : h('span', { class: 'muted' }, 'events only'))));
    }
    if (!tbody.children.length) tbody.append(h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'No session matches.')));
    cursor = r.next;
    more.hidden = !cursor;
    more.disabled = false;
  }
  more.addEventListener('click', load);
  await load();
  root.dataset.ready = '1';
}
