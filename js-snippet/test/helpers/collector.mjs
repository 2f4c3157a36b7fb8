// Starts the collector the browser tests talk to: the real `hushtale` binary (found through
// HUSHTALE_BIN, else ../target/{release,debug}/hushtale), or, only when HUSHTALE_MOCK=1, the
// Node stand-in in mock.mjs. Also launches Chromium.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { createServer } from 'node:net';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startMock } from './mock.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TOKEN = 'test-operator-token';

export function findBinary() {
  const candidates = [process.env.HUSHTALE_BIN, join(root, '../target/release/hushtale'), join(root, '../target/debug/hushtale')];
  return candidates.find((p) => p && existsSync(p));
}

const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
  const port = await freePort();
  const url = 'http://127.0.0.1:' + port;
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:' + port, '--data', data], {
    env: { ...process.env, HUSHTALE_ADMIN_TOKEN: TOKEN, RUST_LOG: process.env.RUST_LOG || 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => (log = (log + d).slice(-4000)));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(url + '/healthz')).status == 200) break;
    } catch (e) {}
    if (child.exitCode != null || i > 300) throw new Error('hushtale did not become healthy:\n' + log);
    await sleep(100);
  }
  const proxy = await recordingProxy(url);
  return {
    url: proxy.url,
    kind: 'real',
    api: apiFor(url),
    wire: proxy.wire,
    hook: proxy.hook,
    async stop() {
      await proxy.close();
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode != null ? r() : child.once('exit', r)));
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
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
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
