// hushtale core: the analytics snippet every visitor's browser runs (unless opted out), and
// the loader of the replay recorder for sessions sampled by data-replay.
import { readConfig } from './config.js';
import { ids } from './ids.js';
import { optedOut, collectorOptedOut, setOptOut } from './privacy.js';
import { transport } from './transport.js';
import { listen, view, hook } from './events.js';
import { mask, maskAll } from './mask.js';

(() => {
  const cfg = readConfig();
  if (!cfg || window.hushtale) return;
  const id = ids(cfg.site);
  let tx; // the transport, once recording
  let replay; // the replay recorder's control: replay() stops it, replay(1) snapshots anew
  let listening;

  const post = (path) =>
    fetch(cfg.base + path, {
      method: 'POST',
      credentials: 'include',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ site: cfg.site, vid: id.vid_() }),
    });

  // the lazily loaded parts: hushtale-more.js always, hushtale-replay.js for sampled sessions
  function load(part) {
    const s = document.createElement('script');
    s.src = cfg.base + '/hushtale-' + part + '.js';
    return document.head.appendChild(s);
  }

  function stop() {
    if (tx) tx.stop_();
    tx = null;
    replay?.();
    replay = 0;
  }

  function emit(ev) {
    if (!tx) return;
    ev.t ||= Date.now();
    if (id.touch_(ev.t, cfg.replay)) {
      // 30 minutes idle: what is queued belongs to the old session, the rest starts anew
      tx.flush_();
      tx.push_(view(ev.t));
      replay?.(id.s_.rep);
    }
    tx.push_(ev);
  }

  function start() {
    if (tx || optedOut()) return;
    tx = transport(cfg, id);
    collectorOptedOut(cfg.base).then((out) => (out ? stop() : tx && tx.open_()));
    const first = (hook.u = view());
    id.touch_(first.t, cfg.replay);
    emit(first);
    if (!listening) {
      listening = listen(emit, () => tx && tx.beacon_()) || load('more');
    }
    if (id.s_.rep) load('replay');
  }

  window.hushtale = {
    optOut() {
      setOptOut(1);
      stop();
      id.forget_();
    },
    optIn() {
      setOptOut(0);
      start();
    },
    exportMyData: async () => (id.vid_() ? (await post('/me/export')).json() : {}),
    // Erases what the collector holds and the ids here; this page records nothing more.
    async forgetMe() {
      const done = id.vid_() && post('/me/forget');
      stop();
      id.forget_();
      await done;
    },
    // For hushtale-more.js only: it calls this with its start function once loaded.
    _m: (more) => more({ e: emit, v: view, k: hook }),
    // For the replay recorder only: it calls this with its start function once loaded.
    _r(rec) {
      if (tx && id.s_.rep) replay = rec({ e: emit, m: mask, a: maskAll });
    },
  };

  // Start after the load event, so the pageview carries load timing and the page is settled.
  if (document.readyState == 'complete') setTimeout(start);
  else addEventListener('load', () => setTimeout(start));
})();
