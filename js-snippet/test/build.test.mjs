// dist/ is committed (cargo embeds it, so a fresh checkout builds the server without Node);
// this proves it is exactly what the sources build to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

test('the committed dist/ files are byte-identical to a fresh build of src/', () => {
  const out = mkdtempSync(join(tmpdir(), 'hushtale-build-'));
  try {
    execFileSync(process.execPath, [join(root, 'build.mjs'), out], { stdio: 'inherit' });
    const built = readdirSync(out).sort();
    assert.deepEqual(built, ['hushtale-more.js', 'hushtale-player.js', 'hushtale-replay.js', 'hushtale.js']);
    for (const f of built)
      assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(root, 'dist', f))), `dist/${f} is stale: run \`npm run build\` and commit it`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
