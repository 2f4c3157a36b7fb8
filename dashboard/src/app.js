// The dashboard shell: sign-in, site and date range, and the views (overview, heatmaps,
// sessions, replay) chosen by the address's #fragment.
import { api, token, whenUnauthorized } from './api.js';
import { overview } from './charts.js';
import { heatmaps } from './heatmap.js';
import { sessions } from './sessions.js';
import { replayView } from './replay.js';
import { forms, funnel } from './analytics.js';
import { day, h } from './util.js';

const $ = (id) => document.getElementById(id);
const state = { sites: [], site: null, from: null, to: null };
let stopView = null;
let generation = 0;

function setRange(days) {
  const to = Date.now();
  state.to = day(to);
  state.from = day(to - (days - 1) * 864e5);
  $('from').value = state.from;
  $('to').value = state.to;
}

function showSignin(message) {
  token.clear();
  $('signin').hidden = false;
  $('view').hidden = true;
  $('nav').hidden = true;
  $('controls').hidden = true;
  $('signin-error').hidden = !message;
  $('signin-error').textContent = message || '';
  $('token').focus();
}

async function signIn(t) {
  try {
    const r = await api('sites', null, t);
    token.set(t);
    state.sites = (r.sites || []).map((s) => (typeof s == 'string' ? s : s.id));
    return true;
  } catch (e) {
    showSignin(e.status == 401 ? 'That token was refused.' : `Could not sign in: ${e.message}`);
    return false;
  }
}

function startApp() {
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('controls').hidden = false;
  $('view').hidden = false;
  const sel = $('site');
  sel.replaceChildren(...state.sites.map((s) => h('option', { value: s }, s)));
  const saved = sessionStorage.getItem('hushtale_site');
  state.site = state.sites.includes(saved) ? saved : state.sites[0];
  sel.value = state.site;
  if (!state.from) setRange(30);
  route();
}

const views = { overview, heatmaps, sessions, replay: replayView, forms, funnel };

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const [name, ...rest] = path.split('/');
  return { name: views[name] ? name : 'overview', arg: rest.join('/'), params: new URLSearchParams(query || '') };
}

export function go(hash) {
  if (location.hash == hash) route();
  else location.hash = hash;
}

async function route() {
  if (!token.get()) return;
  const { name, arg, params } = parseHash();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view == (name == 'replay' ? 'sessions' : name));
  if (stopView) stopView();
  stopView = null;
  // A fresh root per visit: a slower earlier view that finishes late writes into a detached one.
  const gen = ++generation;
  const root = h('div', { id: 'vroot', dataset: { view: name } });
  $('view').replaceChildren(root);
  if (!state.site) {
    root.append(h('div', { class: 'card empty' }, 'No site yet. Create one with POST /api/sites, or start the server without [[site]] for the demo site.'));
    return;
  }
  const ctx = { site: state.site, from: state.from, to: state.to, arg, params, go };
  try {
    const stop = (await views[name](root, ctx)) || null;
    if (gen == generation) stopView = stop;
    else if (stop) stop();
  } catch (e) {
    if (e.status != 401) root.append(h('div', { class: 'card error' }, `Could not load this view: ${e.message}`));
  }
}

whenUnauthorized(() => showSignin('The token was refused. Sign in again.'));

$('signin').addEventListener('submit', async (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (t && (await signIn(t))) {
    $('token').value = '';
    startApp();
  }
});
$('signout').addEventListener('click', () => {
  if (stopView) stopView();
  generation++;
  stopView = null;
  $('view').replaceChildren();
  showSignin();
});
$('site').addEventListener('change', (e) => {
  state.site = e.target.value;
  sessionStorage.setItem('hushtale_site', state.site);
  route();
});
for (const id of ['from', 'to'])
  $(id).addEventListener('change', () => {
    if (!$('from').value || !$('to').value || $('from').value > $('to').value) return;
    state.from = $('from').value;
    state.to = $('to').value;
    route();
  });
for (const b of document.querySelectorAll('.presets button'))
  b.addEventListener('click', () => {
    setRange(Number(b.dataset.days));
    route();
  });
addEventListener('hashchange', route);

(async () => {
  const t = token.get();
  if (t && (await signIn(t))) startApp();
  else if (!t) showSignin();
})();
