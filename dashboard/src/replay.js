// The replay player: the recorded page rebuilt in the sandboxed frame (no scripts: see
// dom.js and /dashboard/frame's CSP), mutations applied in time, the pointer with its trail,
// click ripples, scrolling, viewport changes, and a timeline with event marks, play/pause,
// speeds and skipping of inactivity. Everything drawn is a function of the replay time, so
// seeking anywhere shows exactly what playing up to there shows.
import { api, site } from './api.js';
import { builder, lastFullSnap } from './dom.js';
import { duration, frameReady, h, replayFrame, when } from './util.js';
import { signalRows, timelineMarks } from './signals.js';

const TRAIL_MS = 1500;
const RIPPLE_MS = 700;
const IDLE_MS = 2500; // gaps longer than this are skipped (down to SKIP_TO_MS) when asked
const SKIP_TO_MS = 400;
const SPEEDS = [1, 2, 4, 8];
const MARKS = { click: 'Click', view: 'Page view', input: 'Typing', err: 'Error', resize: 'Resize', vis: 'Tab hidden/shown' };
const NAMES = { ...MARKS, scroll: 'Scroll' };

/** The state of everything but the DOM at time `t`: viewport, scroll, pointer, trail, ripples, page. */
export function frameState(events, t) {
  const s = { vw: 1280, vh: 720, sx: 0, sy: 0, x: null, y: null, trail: [], ripples: [], url: '', hidden: false };
  for (const e of events) {
    if (e.t > t) break;
    switch (e.k) {
      case 'view':
        if (e.vw) (s.vw = e.vw), (s.vh = e.vh || s.vh);
        s.url = e.url || s.url;
        s.trail = [];
        break;
      case 'snap':
        if (e.d && e.d.u) {
          if (e.d.w) (s.vw = e.d.w), (s.vh = e.d.h || s.vh);
          s.sx = Number(e.d.x) || 0;
          s.sy = Number(e.d.y) || 0;
        }
        break;
      case 'resize':
        if (e.w) (s.vw = e.w), (s.vh = e.h || s.vh);
        break;
      case 'scroll':
        s.sy = Number(e.y) || 0;
        break;
      case 'move':
      case 'click':
        s.x = e.x;
        s.y = e.y;
        if (t - e.t <= TRAIL_MS) s.trail.push([e.x, e.y]);
        if (e.k == 'click' && t - e.t <= RIPPLE_MS) s.ripples.push({ x: e.x, y: e.y, age: (t - e.t) / RIPPLE_MS });
        break;
      case 'vis':
        s.hidden = !!e.hidden;
        break;
    }
  }
  return s;
}

function describe(e) {
  switch (e.k) {
    case 'view': return e.path || e.url || '';
    case 'click': return e.sel || `${Math.round(e.x)}, ${Math.round(e.y)}`;
    case 'input': return `${e.sel || 'field'} · ${e.len ?? 0} characters`;
    case 'err': return e.msg || '';
    case 'resize': return `${e.w} × ${e.h}`;
    case 'vis': return e.hidden ? 'hidden' : 'visible';
    case 'scroll': return `y = ${Math.round(e.y)}`;
    default: return '';
  }
}

export async function replayView(root, ctx) {
  const sid = ctx.arg;
  const { events: raw, signals, assets = {} } = await api(site(ctx.site, `sessions/${encodeURIComponent(sid)}`));
  const missing = Object.values(assets).filter((v) => !v).length;
  const events = raw.filter((e) => e && typeof e.t == 'number').sort((a, b) => a.t - b.t);
  if (!events.length) {
    root.append(h('div', { class: 'card empty' }, 'This session has no events.'));
    return;
  }
  const t0 = events[0].t;
  const end = events[events.length - 1].t - t0;
  const hasDom = events.some((e) => e.k == 'snap');

  // ----- layout -----
  const frame = replayFrame('replay-frame');
  const trail = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  trail.setAttribute('class', 'trail');
  const ripples = document.createElementNS('http://www.w3.org/2000/svg', 'g');
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'overlay-svg');
  svg.append(trail, ripples);
  const cursor = h('div', { class: 'cursor', id: 'replay-cursor', hidden: true });
  cursor.innerHTML = '<svg width="22" height="22" viewBox="0 0 22 22" aria-hidden="true"><path d="M2 1.5 L2 17.5 L6.3 13.6 L9.2 20.2 L12 19 L9.2 12.6 L15 12.4 Z" fill="#111" stroke="#fff" stroke-width="1.4" stroke-linejoin="round"/></svg>';
  const nodom = h('div', { class: 'nodom', hidden: hasDom }, 'No page structure was recorded for this session (replay was not sampled): only the pointer is shown.');
  const hiddenNote = h('div', { class: 'hidden-note', hidden: true }, 'The visitor switched to another tab');
  // Parts of the page whose parent is not in the recording (yet): said, never dropped silently.
  const orphanNote = h('div', { class: 'hidden-note orphan-note', id: 'replay-orphans', hidden: true }, '');
  const overlay = h('div', { class: 'overlay' }, svg, cursor);
  const screen = h('div', { class: 'screen', id: 'replay-screen' }, frame, nodom, overlay, hiddenNote, orphanNote);
  const urlBar = h('div', { class: 'urlbar' }, h('span', { class: 'dots' }, '● ● ●'), h('span', { class: 'url', id: 'replay-url' }, ''), h('span', { class: 'vp', id: 'replay-vp' }, ''));
  const viewport = h('div', { class: 'viewport' }, screen);
  const stageBox = h('div', { class: 'replay-stage' }, urlBar, viewport);

  const playBtn = h('button', { type: 'button', class: 'playbtn', id: 'replay-play', 'aria-label': 'Play' }, '▶');
  const range = h('input', { type: 'range', id: 'replay-time', min: '0', max: String(Math.max(1, end)), step: '1', value: '0', 'aria-label': 'Replay time' });
  const clock = h('span', { class: 'clock', id: 'replay-clock' }, '');
  const speed = h('select', { id: 'replay-speed', 'aria-label': 'Speed' }, SPEEDS.map((s) => h('option', { value: String(s), selected: s == 2 }, `${s}×`)));
  const skip = h('input', { type: 'checkbox', id: 'replay-skip', checked: true });
  const marks = h('div', { class: 'marks' });
  const idle = h('div', { class: 'idle-layer' });
  const timeline = h('div', { class: 'timeline' }, idle, marks, range);
  const controls = h('div', { class: 'replay-controls' }, playBtn, timeline, clock, h('label', {}, 'Speed ', speed), h('label', { class: 'check' }, skip, ' Skip inactivity'));

  const list = h('ol', { class: 'event-list', id: 'replay-events' });
  const summary = h('div', { class: 'replay-meta' },
    h('a', { href: '#/sessions', class: 'back' }, '← Sessions'),
    h('span', {}, `Session ${sid.slice(0, 8)}… · ${when(events[0].t)} · ${duration(end)} · ${events.length} events`),
    // Assets come only from the collector's copies; say what could not be captured.
    h('span', { id: 'replay-assets', class: 'muted', hidden: !missing }, ` · ${missing} page asset(s) not captured (outside the site's origins, behind a login, or not fetched yet): shown without them`));
  root.append(summary, h('div', { class: 'replay-layout' }, h('div', { class: 'card replay-main' }, stageBox, controls), h('div', { class: 'card replay-side' }, h('h2', {}, 'Events'), list)));

  // Timeline marks and inactive stretches.
  const pos = (t) => `${(100 * (t - t0)) / Math.max(1, end)}%`;
  for (const e of events) if (MARKS[e.k]) marks.append(h('i', { class: `mark mark-${e.k}`, style: `left:${pos(e.t)}`, title: `${MARKS[e.k]} at ${duration(e.t - t0)}` }));
  marks.append(...timelineMarks(events, signals, pos, t0));
  for (let i = 1; i < events.length; i++) {
    const gap = events[i].t - events[i - 1].t;
    if (gap > IDLE_MS) idle.append(h('i', { style: `left:${pos(events[i - 1].t)};width:${(100 * gap) / Math.max(1, end)}%`, title: `inactive for ${duration(gap)}` }));
  }
  const rows = [];
  for (const e of events) {
    if (e.k == 'move' || e.k == 'snap' || e.k == 'mut') continue;
    const li = h('li', { class: `ev ev-${e.k}`, dataset: { t: String(e.t - t0) } },
      h('button', { type: 'button', onclick: () => (pause(), seek(e.t - t0)) }, h('span', { class: 'ev-t' }, duration(e.t - t0)), h('span', { class: 'ev-k' }, NAMES[e.k] || e.k), h('span', { class: 'ev-d' }, describe(e))));
    rows.push([e.t - t0, li]);
  }
  for (const [t, label, d] of signalRows(signals))
    rows.push([t - t0, h('li', { class: 'ev ev-signal', dataset: { t: String(t - t0) } },
      h('button', { type: 'button', onclick: () => (pause(), seek(t - t0)) }, h('span', { class: 'ev-t' }, duration(t - t0)), h('span', { class: 'ev-k' }, label), h('span', { class: 'ev-d' }, d)))]);
  rows.sort((a, b) => a[0] - b[0]);
  list.append(...rows.map(([, li]) => li));

  // ----- the DOM in the frame -----
  const doc = await frameReady(frame);
  const b = builder(doc, assets);
  let applied = 0; // events[0..applied) are in the document

  function applyUntil(t) {
    const abs = t0 + t;
    let k = applied;
    while (k < events.length && events[k].t <= abs) k++;
    while (k > 0 && events[k - 1].t > abs) k--;
    if (k < applied) {
      // Backwards: rebuild from the last full snapshot before t.
      const j = lastFullSnap(events, k - 1);
      b.reset();
      applied = j < 0 ? k : j;
    }
    for (; applied < k; applied++) {
      const e = events[applied];
      if (e.k == 'snap' || e.k == 'mut') b.apply(e);
    }
  }

  // ----- drawing -----
  let cur = 0;
  let scale = 1;
  let lastVp = '';
  function fit(s) {
    const availW = viewport.clientWidth || 800;
    const availH = Math.max(320, innerHeight - 300);
    scale = Math.min(1, availW / s.vw, availH / s.vh);
    screen.style.width = s.vw + 'px';
    screen.style.height = s.vh + 'px';
    screen.style.transform = `scale(${scale})`;
    viewport.style.height = s.vh * scale + 'px';
    screen.dataset.scale = String(scale);
  }

  function draw() {
    applyUntil(cur);
    const s = frameState(events, t0 + cur);
    const vp = `${s.vw}x${s.vh}`;
    if (vp != lastVp) {
      lastVp = vp;
      frame.style.width = s.vw + 'px';
      frame.style.height = s.vh + 'px';
      svg.setAttribute('viewBox', `0 0 ${s.vw} ${s.vh}`);
      svg.setAttribute('width', s.vw);
      svg.setAttribute('height', s.vh);
      fit(s);
      document.getElementById('replay-vp').textContent = `${s.vw} × ${s.vh}`;
    }
    const win = frame.contentWindow;
    if (win && (win.scrollX != s.sx || win.scrollY != s.sy)) win.scrollTo(s.sx, s.sy);
    document.getElementById('replay-url').textContent = s.url || b.url || '';
    const vx = (x) => x - s.sx;
    const vy = (y) => y - s.sy;
    if (s.x == null) cursor.hidden = true;
    else {
      cursor.hidden = false;
      cursor.style.transform = `translate(${vx(s.x)}px, ${vy(s.y)}px)`;
      cursor.dataset.x = String(s.x);
      cursor.dataset.y = String(s.y);
    }
    trail.setAttribute('points', s.trail.map(([x, y]) => `${vx(x)},${vy(y)}`).join(' '));
    ripples.replaceChildren(
      ...s.ripples.map((r) => {
        const c = document.createElementNS('http://www.w3.org/2000/svg', 'circle');
        c.setAttribute('class', 'ripple');
        c.setAttribute('cx', vx(r.x));
        c.setAttribute('cy', vy(r.y));
        c.setAttribute('r', String(6 + 28 * r.age));
        c.setAttribute('opacity', String(1 - r.age));
        return c;
      })
    );
    hiddenNote.hidden = !s.hidden;
    orphanNote.hidden = !b.pending;
    orphanNote.textContent = b.pending ? `${b.pending} recorded page part(s) wait for a parent not in the recording yet` : '';
    range.value = String(Math.round(cur));
    range.style.setProperty('--p', `${(100 * cur) / Math.max(1, end)}%`);
    clock.textContent = `${duration(cur)} / ${duration(end)}`;
    for (const [t, li] of rows) li.classList.toggle('past', t <= cur);
    root.dataset.t = String(Math.round(cur));
  }

  function seek(t) {
    cur = Math.max(0, Math.min(end, t));
    draw();
  }

  // ----- playing -----
  let playing = false;
  let raf = 0;
  let last = 0;
  function setState(st) {
    root.dataset.state = st;
    playing = st == 'playing';
    playBtn.textContent = playing ? '❚❚' : st == 'ended' ? '↺' : '▶';
    playBtn.setAttribute('aria-label', playing ? 'Pause' : 'Play');
  }
  function tick(now) {
    if (!playing) return;
    const dt = Math.min(250, now - last) * Number(speed.value);
    last = now;
    let t = cur + dt;
    if (skip.checked) {
      const nextEv = events.find((e) => e.t - t0 > cur);
      if (nextEv && nextEv.t - t0 - cur > IDLE_MS) t = Math.max(t, nextEv.t - t0 - SKIP_TO_MS);
    }
    seek(t);
    if (cur >= end) return setState('ended');
    raf = requestAnimationFrame(tick);
  }
  function play() {
    if (cur >= end) seek(0);
    setState('playing');
    last = performance.now();
    raf = requestAnimationFrame(tick);
  }
  function pause() {
    cancelAnimationFrame(raf);
    if (playing) setState('paused');
  }
  playBtn.addEventListener('click', () => (playing ? pause() : play()));
  range.addEventListener('input', () => {
    pause();
    seek(Number(range.value));
  });
  const onKey = (e) => {
    if (e.target.closest && e.target.closest('input,select,textarea')) return;
    if (e.key == ' ') (e.preventDefault(), playing ? pause() : play());
    else if (e.key == 'ArrowRight') seek(cur + 5000);
    else if (e.key == 'ArrowLeft') seek(cur - 5000);
  };
  addEventListener('keydown', onKey);
  const ro = new ResizeObserver(() => lastVp && fit(frameState(events, t0 + cur)));
  ro.observe(viewport);

  setState('paused');
  seek(0);
  root.dataset.ready = '1';
  root.dataset.end = String(end);
  return () => {
    pause();
    ro.disconnect();
    removeEventListener('keydown', onKey);
  };
}
