// The send queue. Events are kept as JSON strings (serialised once, sizes known), cut into
// numbered batches every few seconds or when enough has piled up, gzipped with the browser's
// own CompressionStream and POSTed one at a time so `seq` order holds.
//
// When the page is hidden or unloading, what has not reached fetch yet must leave before the
// page does, and nothing may wait for an answer. Where CompressionStream runs in microtasks
// (Chromium: checked once at start), the batches are still gzipped and sent with fetch
// keepalive inside the pagehide event; elsewhere they go with sendBeacon, uncompressed, each
// under the browsers' 64 KB limit. A (sid, seq) that arrives twice is stored once.

const EVERY = 1e4; // ms between batches: fewer, better-compressed batches; pagehide sends the rest
const MAX = 3e5; // raw bytes per fetched batch (server: 1 MiB on the wire, 4 MiB inflated)
const LIMIT = 6e4; // bytes per keepalive request or beacon (browsers: 64 KB in flight)
const CAP = 3e3; // queued events kept at most while the collector can't be reached
const CS = window.CompressionStream;

// gzip through a bare writer and reader: no Blob, so no I/O task in between
async function gzip(s) {
  const cs = new CS('gzip');
  const w = cs.writable.getWriter();
  const r = cs.readable.getReader();
  const parts = [];
  w.write(new TextEncoder().encode(s));
  w.close();
  for (let c; !(c = await r.read()).done; ) parts.push(c.value);
  return new Blob(parts);
}

export function transport(cfg, id) {
  const url = cfg.base + '/collect';
  let q = []; // JSON strings of events not yet in a batch
  let out = []; // batches: {b: body, f: handed to fetch, n: failures}
  let bytes = 0; // roughly, queued since the last cut
  let timer, busy, open; // open: sending allowed (the collector's opt-out answer is in)
  let fast; // gzip completes within the current task
  let late;
  CS && gzip('').then(() => (fast = !late));
  setTimeout(() => (late = 1));

  // Cut the queue into batches of at most `max` raw bytes and 1000 events (server: 2000);
  // with `full`, a last batch that is not full yet stays queued.
  function cut(max, full) {
    while (q.length) {
      let n = 0;
      let size = 0;
      while (n < q.length && n < 1e3 && (size += q[n].length + 1) < max) n++;
      if (full && n == q.length) break;
      out.push({
        b: `{"v":1,"site":${JSON.stringify(cfg.site)},"vid":"${id.vid_(1)}","sid":"${id.s_.sid}","seq":${id.seq_()},"sent":${Date.now()},"events":[${q.splice(0, n || 1)}]}`,
        n: 0,
      });
    }
    bytes = q.join().length;
  }

  const drop = (b) => (out = out.filter((x) => x != b));

  // Nothing is cut (so no visitor id is created) before the collector's opt-out answer is in.
  function flush(full) {
    if (!full) clearTimeout(timer), (timer = 0);
    if (open) cut(MAX, full), pump();
  }

  // POST one batch, gzipped when the browser can (else as text/plain, like a beacon).
  async function send(batch, leaving) {
    const body = CS ? await gzip(batch.b) : batch.b;
    batch.f = 1;
    return fetch(url, {
      method: 'POST',
      body,
      headers: CS ? { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' } : {},
      credentials: 'include',
      // keepalive bodies share a 64 KB budget; a send that failed is retried without it
      keepalive: leaving || (!batch.n && (body.size || body.length) < LIMIT),
    });
  }

  async function pump() {
    if (busy || !open || !out.length) return;
    busy = 1;
    const batch = out[0];
    let wait = 0;
    try {
      const r = await send(batch);
      // 429/503 say when to come back; other 5xx are tried a few times; 2xx and 4xx are final
      if (r.status > 499 || r.status == 429) wait = +r.headers.get('Retry-After') || 2 ** ++batch.n;
    } catch (e) {
      batch.f = 0; // offline or blocked: back off
      wait = 2 ** ++batch.n;
    }
    if (!wait || batch.n > 5) drop(batch), (wait = 0);
    busy = 0;
    setTimeout(pump, wait * 1e3);
  }

  return {
    push_(ev) {
      q.push(JSON.stringify(ev));
      if (q.length > CAP) q.shift();
      if ((bytes += q.at(-1).length) > MAX) flush(1);
      timer = timer || setTimeout(flush, EVERY);
    },
    flush_: () => flush(),
    // Page hidden or unloading: send at once whatever has not reached fetch yet.
    beacon_() {
      if (!open) return;
      cut(LIMIT);
      const rest = out.filter((b) => !b.f);
      out = out.filter((b) => b.f);
      for (const b of rest)
        if (fast) send(b, 1).catch(() => {});
        else if (!navigator.sendBeacon(url, b.b)) out.push(b); // false: over the browser's limit
      flush();
    },
    open_() {
      open = 1;
      timer || flush();
    },
    stop_() {
      clearTimeout(timer);
      q = out = [];
      open = 0;
    },
  };
}
