// The vendored chart library is byte-identical to the pinned npm package (run `npm run vendor`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VENDORED } from '../scripts/vendor.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

test('src/vendor matches node_modules', () => {
  for (const [from, to] of VENDORED) assert.ok(readFileSync(join(root, from)).equals(readFileSync(join(root, to))), `${to} differs from ${from}: npm run vendor`);
});

test('every file the page loads is embedded by the server', () => {
  const rs = readFileSync(join(root, '../src/server/dashboard.rs'), 'utf8');
  const html = readFileSync(join(root, 'src/index.html'), 'utf8');
  const js = ['app.js', 'api.js', 'charts.js', 'dom.js', 'heatmap.js', 'replay.js', 'sessions.js', 'util.js'].map((f) => readFileSync(join(root, 'src', f), 'utf8')).join('\n');
  const wanted = new Set([...html.matchAll(/\/dashboard\/([\w./-]+)/g)].map((m) => m[1]));
  for (const m of js.matchAll(/from '\.\/([\w.-]+)'/g)) wanted.add(m[1]);
  for (const f of wanted) assert.ok(f == 'frame' || rs.includes(`("${f}",`), `${f} is not in src/server/dashboard.rs`);
});
