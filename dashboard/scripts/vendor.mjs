// Copies the charting library from node_modules into src/vendor/, where the server embeds it
// (committed, so `cargo build` needs no npm). test/vendor.test.mjs fails if they drift.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const VENDORED = [
  ['node_modules/uplot/dist/uPlot.iife.min.js', 'src/vendor/uPlot.iife.min.js'],
  ['node_modules/uplot/dist/uPlot.min.css', 'src/vendor/uPlot.min.css'],
  ['node_modules/uplot/LICENSE', 'src/vendor/uPlot.LICENSE'],
];

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(join(root, 'src/vendor'), { recursive: true });
  for (const [from, to] of VENDORED) copyFileSync(join(root, from), join(root, to));
  console.log('vendored', VENDORED.map((v) => v[1]).join(', '));
}
