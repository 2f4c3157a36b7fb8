// Starts the real hushtale binary for the browser tests (HUSHTALE_BIN, else
// ../target/release/hushtale, else ../target/debug/hushtale) on a free port with a temporary
// data folder, and Debian's Chromium through playwright-core. `at(daysAgo)` restarts the same
// server with its clock that many days back (libfaketime), so the tests can store data on
// several UTC days: the collector stamps events with its own clock.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TOKEN = 'dashboard-test-token';
export const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

export function findBinary() {
  const c = [process.env.HUSHTALE_BIN, join(root, 'target/release/hushtale'), join(root, 'target/debug/hushtale')];
  const bin = c.find((p) => p && existsSync(p));
  if (!bin) throw new Error('no hushtale binary: cargo build --release, or set HUSHTALE_BIN');
  return bin;
}

function fakeTimeLib() {
  for (const dir of ['/usr/lib/x86_64-linux-gnu/faketime', '/usr/lib/aarch64-linux-gnu/faketime', '/usr/lib/faketime', '/usr/local/lib/faketime']) {
    if (existsSync(join(dir, 'libfaketime.so.1'))) return join(dir, 'libfaketime.so.1');
  }
  throw new Error('libfaketime is needed to store data on past days: apt-get install faketime');
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

/** `extraConfig`: TOML appended to the test config (more sites, for instance). */
export async function startServer(extraConfig = '') {
  const bin = findBinary();
  const data = mkdtempSync(join(tmpdir(), 'hushtale-dashboard-test-'));
  const config = join(data, 'config.toml');
  writeFileSync(
    config,
    `[rate_limit]\ncollect_per_second = 0\nvisitor_per_minute = 0\n\n[[site]]\nid = "shop"\norigins = ["*"]\n\n[[site]]\nid = "blog"\norigins = ["*"]\n\n[[site]]\nid = "demo"\norigins = ["*"]\n` + extraConfig
  );
  const port = await freePort();
  const url = 'http://127.0.0.1:' + port;
  let child = null;
  let log = '';

  async function start(daysAgo) {
    const env = { ...process.env, HUSHTALE_ADMIN_TOKEN: TOKEN, RUST_LOG: process.env.RUST_LOG || 'warn' };
    if (daysAgo) Object.assign(env, { LD_PRELOAD: fakeTimeLib(), FAKETIME: `-${daysAgo}d`, FAKETIME_DONT_FAKE_MONOTONIC: '1' });
    child = spawn(bin, ['serve', '--listen', '127.0.0.1:' + port, '--data', join(data, 'store'), '--config', config], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.on('data', (d) => (log = (log + d).slice(-6000)));
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(url + '/healthz')).status == 200) return;
      } catch (e) {}
      if (child.exitCode != null || i > 300) throw new Error('hushtale did not become healthy:\n' + log);
      await sleep(100);
    }
  }
  async function stop() {
    if (!child) return;
    const c = child;
    child = null;
    if (c.exitCode == null) {
      c.kill('SIGTERM');
      await new Promise((r) => (c.exitCode != null ? r() : c.once('exit', r)));
    }
  }
  await start(0);
  return {
    url,
    /** Restart with the server's clock `daysAgo` days back (0: the real clock). */
    async at(daysAgo) {
      await stop();
      await start(daysAgo);
    },
    async close() {
      await stop();
      rmSync(data, { recursive: true, force: true });
    },
    log: () => log,
  };
}

export async function collect(url, batch) {
  const r = await fetch(url + '/collect', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': batch.ua || UA },
    body: JSON.stringify({ v: 1, seq: 0, sent: Date.now(), ...batch, ua: undefined }),
  });
  if (r.status != 204) throw new Error(`collect answered ${r.status}: ${await r.text()}`);
}

export async function api(url, path) {
  const r = await fetch(url + '/api/' + path, { headers: { Authorization: 'Bearer ' + TOKEN } });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}
