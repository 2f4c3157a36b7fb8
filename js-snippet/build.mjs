// Builds dist/ from src/: the core (hushtale.js), the replay recorder (hushtale-replay.js)
// and the replay player (hushtale-player.js). `node build.mjs OUTDIR` builds elsewhere (the
// test that checks the committed dist/ matches the sources uses that).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, 'dist'));

const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  legalComments: 'none',
  charset: 'utf8',
  // internal property names end in "_" and are shortened; public ones (the JS API, batch
  // and event fields) never do
  mangleProps: /_$/,
  logLevel: 'warning',
};

await build({ ...common, entryPoints: [join(here, 'src/index.js')], outfile: join(out, 'hushtale.js') });
await build({ ...common, entryPoints: [join(here, 'src/more/index.js')], outfile: join(out, 'hushtale-more.js') });
await build({ ...common, entryPoints: [join(here, 'src/replay/index.js')], outfile: join(out, 'hushtale-replay.js') });
await build({
  ...common,
  entryPoints: [join(here, 'src/player-global.js')],
  outfile: join(out, 'hushtale-player.js'),
});
