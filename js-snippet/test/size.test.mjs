// The download budgets, in gzip bytes (level 9, what a server or CDN would send).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const gz = (f) => gzipSync(readFileSync(join(dist, f)), { level: 9 }).length;

test('the analytics core is at most 3 KB gzipped', () => {
  const core = gz('hushtale.js');
  console.log(`# core: ${core} bytes gzip`);
  assert.ok(core <= 3 * 1024, `hushtale.js is ${core} bytes gzipped, over the 3072-byte budget`);
});

test('what every recorded visitor downloads (the core and its lazily loaded part) is at most 4.5 KB gzipped', () => {
  const total = gz('hushtale.js') + gz('hushtale-more.js');
  console.log(`# core + more: ${total} bytes gzip`);
  assert.ok(total <= 4.5 * 1024, `core + more are ${total} bytes gzipped, over the 4608-byte budget`);
});

test('everything a visitor sampled for replay downloads is at most 10 KB gzipped', () => {
  const total = gz('hushtale.js') + gz('hushtale-more.js') + gz('hushtale-replay.js');
  console.log(`# core + more + replay: ${total} bytes gzip`);
  assert.ok(total <= 10 * 1024, `core + more + replay are ${total} bytes gzipped, over the 10240-byte budget`);
});
