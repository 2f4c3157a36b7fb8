// Frustration signals (rage, dead and error clicks, quick backs) as the dashboard shows them:
// badges in the session list, marks on the replay timeline, and the single-page-app routes
// a replay went through.
import { duration, h, num } from './util.js';

export const SIGNALS = [
  { key: 'rage', field: 'rage_clicks', label: 'Rage clicks', one: 'Rage click', title: '3+ clicks within 1 s inside 30 px' },
  { key: 'dead', field: 'dead_clicks', label: 'Dead clicks', one: 'Dead click', title: 'Nothing happened within 1 s of the click' },
  { key: 'error', field: 'error_clicks', label: 'Error clicks', one: 'Error click', title: 'An error within 1 s after the click' },
  { key: 'quickback', field: 'quick_backs', label: 'Quick backs', one: 'Quick back', title: 'Left within 5 s by going back to the previous page' },
];
const BY_KEY = Object.fromEntries(SIGNALS.map((s) => [s.key, s]));

/** One badge per signal a session (or page) shows, e.g. "3 dead"; nothing when calm. */
export function badges(row) {
  return SIGNALS.filter((s) => row[s.field] > 0).map((s) =>
    h('span', { class: `badge sig-${s.key}`, title: s.title, dataset: { signal: s.key, n: String(row[s.field]) } }, `${num(row[s.field])} ${s.key == 'quickback' ? 'quick back' : s.key}`));
}

/** Timeline marks: one per signal of the session, one per route of a single-page app. */
export function timelineMarks(events, signals, pos, t0) {
  const marks = (signals || []).map((s) =>
    h('i', { class: `mark mark-signal sig-${s.kind}`, style: `left:${pos(s.t)}`, dataset: { signal: s.kind }, title: `${BY_KEY[s.kind]?.one || s.kind} at ${duration(s.t - t0)} · ${s.path}` }));
  for (const e of events)
    if (e.k == 'view' && e.spa) marks.push(h('i', { class: 'mark mark-route', style: `left:${pos(e.t)}`, dataset: { route: e.path || '' }, title: `Route ${e.path || e.url} at ${duration(e.t - t0)}` }));
  return marks;
}

/** Rows for the replay's event list: each signal, as `[t, kind label, description]`. */
export const signalRows = (signals) => (signals || []).map((s) => [s.t, BY_KEY[s.kind]?.one || s.kind, s.path]);
