// Starts the real hushtale binary for the browser tests (HUSHTALE_BIN, else
// ../target/release/hushtale, else ../target/debug/hushtale) on a free port with a temporary
// data folder, and Debian's Chromium through playwright-core. `at(daysAgo)` restarts the same
// server with its clock that many days back (libfaketime), so the tests can store data on
// several UTC days: the collector stamps events with its own clock.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumOptions, findBinary as find, freePort, startHushtale } from '../../scripts/testkit.mjs';

export const TOKEN = 'dashboard-test-token';
export const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

export function findBinary() {
  const bin = find();
  if (!bin) throw new Error('no hushtale binary: cargo build --release, or set HUSHTALE_BIN');
  return bin;
}

function fakeTimeLib() {
  for (const dir of ['/usr/lib/x86_64-linux-gnu/faketime', '/usr/lib/aarch64-linux-gnu/faketime', '/usr/lib/faketime', '/usr/local/lib/faketime']) {
    if (existsSync(join(dir, 'libfaketime.so.1'))) return join(dir, 'libfaketime.so.1');
  }
  throw new Error('libfaketime is needed to store data on past days: apt-get install faketime');
}

/** `extraConfig`: TOML appended to the test config (more sites, for instance). */
export async function startServer(extraConfig = '') {
  findBinary();
  const data = mkdtempSync(join(tmpdir(), 'hushtale-dashboard-test-'));
  const config = join(data, 'config.toml');
  writeFileSync(
    config,
    `[rate_limit]\ncollect_per_second = 0\nvisitor_per_minute = 0\n\n[[site]]\nid = "shop"\norigins = ["*"]\n\n[[site]]\nid = "blog"\norigins = ["*"]\n\n[[site]]\nid = "demo"\norigins = ["*"]\n` + extraConfig
  );
  const port = await freePort();
  const url = 'http://127.0.0.1:' + port;
  let server = null;

  async function start(daysAgo) {
    const env = { HUSHTALE_ADMIN_TOKEN: TOKEN };
    if (daysAgo) Object.assign(env, { LD_PRELOAD: fakeTimeLib(), FAKETIME: `-${daysAgo}d`, FAKETIME_DONT_FAKE_MONOTONIC: '1' });
    server = await startHushtale({ port, env, args: ['--data', join(data, 'store'), '--config', config] });
  }
  async function stop() {
    const s = server;
    server = null;
    if (s) await s.stop();
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
    log: () => server?.log() ?? '',
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
  return chromium.launch(chromiumOptions());
}
