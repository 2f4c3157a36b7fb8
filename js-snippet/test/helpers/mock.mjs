// A small stand-in for the hushtale collector, for developing without the Rust server and
// for the benchmark (which measures bytes on the wire, not the server). Not shipped.
// It serves dist/ and the demo like the real server and keeps every batch it receives.
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function startMock({ files = {} } = {}) {
  const batches = []; // {wire: bytes on the wire, json: the parsed batch, type, encoding}
  const forgotten = new Set();
  const serve = {
    '/hushtale.js': () => readFileSync(join(root, 'dist/hushtale.js')),
    '/hushtale-more.js': () => readFileSync(join(root, 'dist/hushtale-more.js')),
    '/hushtale-replay.js': () => readFileSync(join(root, 'dist/hushtale-replay.js')),
    '/hushtale-player.js': () => readFileSync(join(root, 'dist/hushtale-player.js')),
    '/demo': () => readFileSync(join(root, 'demo/index.html')),
    ...files,
  };
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin;
    const cors = origin
      ? { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', 'Access-Control-Expose-Headers': 'Retry-After', Vary: 'Origin' }
      : {};
    const path = req.url.split('?')[0];
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const send = (code, data, type = 'application/json', extra = {}) => {
        res.writeHead(code, { ...cors, 'Content-Type': type, 'Cache-Control': 'no-store', ...extra });
        res.end(data);
      };
      if (req.method == 'OPTIONS')
        return send(204, '', 'text/plain', {
          'Access-Control-Allow-Methods': 'POST, GET',
          'Access-Control-Allow-Headers': 'Content-Type, Content-Encoding',
          'Access-Control-Max-Age': '86400',
        });
      const cookie = req.headers.cookie || '';
      if (path == '/healthz') return send(200, '{"ok":true}');
      if (path == '/optout') return send(200, JSON.stringify({ opted_out: /hushtale_optout=1/.test(cookie) }));
      if (path == '/disable') return send(200, '<p>opted out</p>', 'text/html', { 'Set-Cookie': 'hushtale_optout=1; Path=/; Max-Age=31536000' });
      if (path == '/collect' && req.method == 'POST') {
        let raw = body;
        try {
          if (req.headers['content-encoding'] == 'gzip') raw = gunzipSync(body);
          const json = JSON.parse(raw.toString('utf8'));
          if (!/hushtale_optout=1/.test(cookie))
            batches.push({ wire: body.length, json, type: req.headers['content-type'], encoding: req.headers['content-encoding'] || '' });
          return send(204, '');
        } catch (e) {
          return send(400, JSON.stringify({ error: String(e) }));
        }
      }
      const vidOf = () => JSON.parse(body.toString()).vid;
      if (path == '/me/forget' && req.method == 'POST') {
        forgotten.add(vidOf());
        return send(204, '');
      }
      if (path == '/me/export' && req.method == 'POST') {
        const vid = vidOf();
        return send(200, JSON.stringify({ sessions: sessions().filter((s) => s.vid == vid) }));
      }
      const m = path.match(/^\/api\/sites\/demo\/sessions(?:\/([0-9a-f]{32}))?$/);
      if (m) {
        const all = sessions();
        if (!m[1]) return send(200, JSON.stringify({ sessions: all.map(({ events, vid, ...s }) => s), next: null }));
        const s = all.find((s) => s.id == m[1]);
        return s ? send(200, JSON.stringify({ id: s.id, events: s.events })) : send(404, '{"error":"no such session"}');
      }
      const f = serve[path];
      if (f) return send(200, f(), path.endsWith('.js') ? 'text/javascript' : 'text/html');
      send(404, '{"error":"not found"}');
    });
  });

  function sessions() {
    const by = new Map();
    for (const { json } of batches) {
      if (forgotten.has(json.vid)) continue;
      const s = by.get(json.sid) || { id: json.sid, vid: json.vid, seqs: new Set(), events: [] };
      by.set(json.sid, s);
      if (s.seqs.has(json.seq)) continue;
      s.seqs.add(json.seq);
      s.events.push(...json.events);
    }
    return [...by.values()].map((s) => {
      s.events.sort((a, b) => a.t - b.t);
      return {
        id: s.id,
        vid: s.vid,
        start: s.events[0] && s.events[0].t,
        duration_ms: s.events.length ? s.events[s.events.length - 1].t - s.events[0].t : 0,
        pageviews: s.events.filter((e) => e.k == 'view').length,
        events: s.events,
        replay: s.events.some((e) => e.k == 'snap'),
      };
    });
  }

  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const url = 'http://127.0.0.1:' + server.address().port;
      resolve({ url, batches, close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) });
    })
  );
}
