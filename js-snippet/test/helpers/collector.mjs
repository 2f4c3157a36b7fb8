// Starts the collector the browser tests talk to: the real `hushtale` binary (found through
// HUSHTALE_BIN, else ../target/{release,debug}/hushtale; started by scripts/testkit.mjs, which
// dashboard/test shares), or, only when HUSHTALE_MOCK=1, the Node stand-in in mock.mjs. Also
// launches Chromium.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startMock } from './mock.mjs';
import { chromiumOptions, findBinary, startHushtale } from '../../../scripts/testkit.mjs';

export { findBinary };
export const TOKEN = 'test-operator-token';

export async function startCollector() {
  if (process.env.HUSHTALE_MOCK == '1') {
    const m = await startMock();
    const proxy = await recordingProxy(m.url);
    return { url: proxy.url, wire: proxy.wire, hook: proxy.hook, kind: 'mock', api: apiFor(m.url), stop: async () => (await proxy.close(), await m.close()) };
  }
  const bin = findBinary();
  if (!bin)
    throw new Error('no hushtale binary: build it (cargo build --release) or set HUSHTALE_BIN (HUSHTALE_MOCK=1 uses a stand-in)');
  const data = mkdtempSync(join(tmpdir(), 'hushtale-snippet-test-'));
  const server = await startHushtale({ args: ['--data', data], env: { HUSHTALE_ADMIN_TOKEN: TOKEN }, logLimit: 4000 });
  const proxy = await recordingProxy(server.url);
  return {
    url: proxy.url,
    data,
    kind: 'real',
    api: apiFor(server.url),
    wire: proxy.wire,
    hook: proxy.hook,
    async stop() {
      await proxy.close();
      await server.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

function apiFor(url) {
  return async (path) => {
    const r = await fetch(url + path, { headers: { Authorization: 'Bearer ' + TOKEN } });
    return { status: r.status, body: r.status == 200 ? await r.json() : await r.text() };
  };
}

export function launch() {
  return chromium.launch(chromiumOptions());
}

// The browser talks to the collector through this proxy, which keeps every /collect body as it
// was on the wire (decoded for the tests: {text, json, gzip, type, bytes}) and lets a test
// answer a batch itself: hook.fn(batchJson) returning {status, headers} or nothing.
async function recordingProxy(target) {
  const wire = [];
  const hook = { fn: null };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (req.method == 'POST' && req.url.split('?')[0] == '/collect') {
        const gzip = body[0] == 0x1f && body[1] == 0x8b;
        const text = (gzip ? gunzipSync(body) : body).toString('utf8');
        const entry = { text, json: JSON.parse(text), gzip, type: req.headers['content-type'], bytes: body.length };
        wire.push(entry);
        const answer = hook.fn && hook.fn(entry.json);
        if (answer) {
          res.writeHead(answer.status, { 'Content-Type': 'application/json', ...answer.headers });
          return res.end('{"error":"refused by the test"}');
        }
      }
      try {
        const headers = { ...req.headers };
        for (const h of ['content-length', 'host', 'connection', 'keep-alive', 'transfer-encoding']) delete headers[h];
        const r = await fetch(target + req.url, { method: req.method, headers, body: req.method == 'GET' || req.method == 'HEAD' ? undefined : body, redirect: 'manual' });
        const out = {};
        r.headers.forEach((v, k) => k != 'content-encoding' && k != 'content-length' && k != 'transfer-encoding' && k != 'set-cookie' && (out[k] = v));
        const cookies = r.headers.getSetCookie();
        if (cookies.length) out['set-cookie'] = cookies;
        res.writeHead(r.status, out);
        res.end(Buffer.from(await r.arrayBuffer()));
      } catch (e) {
        res.writeHead(502);
        res.end(String(e));
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: 'http://127.0.0.1:' + server.address().port,
    wire,
    hook,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
  };
}
