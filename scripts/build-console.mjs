// Builds the web console into dist/console-ui/: type-checks src/console-ui (its own tsconfig, DOM types),
// bundles and minifies main.ts (xterm.js included) into app.js and console.css into app.css with esbuild,
// copies index.html, writes each file's Brotli (.br) and gzip (.gz) form beside it (the server serves those
// as they are, so it compresses nothing at start), and prints the sizes. Run by `npm run build`.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'console-ui');
const out = join(root, 'dist', 'console-ui');

execFileSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(src, 'tsconfig.json')],
  {
    stdio: 'inherit',
  },
);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const common = {
  bundle: true,
  minify: true,
  legalComments: 'eof',
  logLevel: 'warning',
  target: ['chrome110', 'firefox115', 'safari16'],
};
await build({ ...common, entryPoints: [join(src, 'main.ts')], outfile: join(out, 'app.js'), format: 'esm' });
await build({ ...common, entryPoints: [join(src, 'console.css')], outfile: join(out, 'app.css') });
copyFileSync(join(src, 'index.html'), join(out, 'index.html'));
let total = 0;
for (const f of ['index.html', 'app.js', 'app.css']) {
  const raw = readFileSync(join(out, f));
  const gz = gzipSync(raw, { level: 9 });
  const br = brotliCompressSync(raw, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
  });
  writeFileSync(join(out, `${f}.gz`), gz);
  writeFileSync(join(out, `${f}.br`), br);
  total += br.length;
  console.log(
    `console-ui/${f}: ${(raw.length / 1024).toFixed(1)} KiB, ${(gz.length / 1024).toFixed(1)} KiB gzip, ` +
      `${(br.length / 1024).toFixed(1)} KiB brotli`,
  );
}
console.log(`console-ui total: ${(total / 1024).toFixed(1)} KiB brotli`);
