// The Node test helpers js-snippet/test and dashboard/test share: find and start the real
// hushtale binary on a free port and wait until it is healthy, and the headless Chromium
// options every browser test uses. Node built-ins only, so it needs neither package's
// node_modules (each package launches Chromium with its own playwright-core).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root folder. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** HUSHTALE_BIN, else target/release/hushtale, else target/debug/hushtale; `undefined` if none. */
export function findBinary() {
  const candidates = [process.env.HUSHTALE_BIN, join(root, 'target/release/hushtale'), join(root, 'target/debug/hushtale')];
  return candidates.find((p) => p && existsSync(p));
}

/** A TCP port free on 127.0.0.1 right now. */
export const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

/**
 * Starts `hushtale serve --listen 127.0.0.1:PORT ...args` with `env` added to the environment
 * (RUST_LOG defaults to warn) and waits until /healthz answers 200. Returns `{url, log(), stop()}`;
 * `log()` is the last `logLimit` characters of its stderr.
 */
export async function startHushtale({ args = [], env = {}, port, logLimit = 6000 } = {}) {
  const bin = findBinary();
  if (!bin) throw new Error('no hushtale binary: cargo build --release, or set HUSHTALE_BIN');
  port ??= await freePort();
  const url = 'http://127.0.0.1:' + port;
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:' + port, ...args], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => (log = (log + d).slice(-logLimit)));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(url + '/healthz')).status == 200) break;
    } catch (e) {}
    if (child.exitCode != null || i > 300) throw new Error('hushtale did not become healthy:\n' + log);
    await sleep(100);
  }
  return {
    url,
    log: () => log,
    async stop() {
      if (child.exitCode == null) {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode != null ? r() : child.once('exit', r)));
      }
    },
  };
}

/** Options for playwright-core's `chromium.launch`: Debian's Chromium, headless, quiet. */
export function chromiumOptions() {
  return {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  };
}
