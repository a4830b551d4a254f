// Bundles the compiled CLI (dist/src/apps/cli/main.js) with esbuild into dist/cli-bundle/: one ES module
// per dynamically imported command (splitting), ws included, the other runtime dependencies left to
// node_modules. bin/keyward.cjs runs `keyward proxy` from it: ssh starts that process for every connection,
// and some fifteen bundled chunks (ws among them, without Node's CommonJS-to-ESM parse) load sooner than
// some forty modules. Everything else runs from dist/src as compiled. Run by `npm run build`, after tsc;
// a `tsc` alone leaves the bundle as it was, so `keyward proxy` would run the previous build.
//
// Also dist/cli-bundle/ssh-launch.cjs: all of `keyward ssh` (src/apps/cli/ssh-launch.ts, its first steps,
// and, evaluated only when asked for, the rest: ssh-run.ts, the command and its API client) as one CommonJS
// file, which bin/keyward.cjs loads without Node's ES module loader. It lists the compiled modules it was
// built from (`builtFrom`), and the entry point uses it only when none of them is newer than it.
import { appendFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'cli-bundle');
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'dist', 'src', 'apps', 'cli', 'main.js')],
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // ws's optional native helpers are left to `require` at run time, as ws itself does.
  external: ['better-sqlite3', 'pg', 'pino', 'fastify', 'kysely', 'ssh2', 'bufferutil', 'utf-8-validate'],
  // ws is CommonJS and requires Node's built-ins: give the bundle a `require` of its own.
  banner: {
    js: "import { createRequire as __kwCreateRequire } from 'node:module'; const require = __kwCreateRequire(import.meta.url);",
  },
});

const src = join(root, 'dist', 'src');
const launchFile = join(out, 'ssh-launch.cjs');
const { metafile } = await build({
  entryPoints: [join(src, 'apps', 'cli', 'ssh-launch.js')],
  outfile: launchFile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  metafile: true,
  absWorkingDir: root,
  // The tunnel's WebSocket form (rare for keyward ssh, which uses the raw one) requires ws at run time.
  external: ['ws', 'bufferutil', 'utf-8-validate'],
  // The API client finds Node's https through createRequire(import.meta.url).
  define: { 'import.meta.url': '__kwImportMetaUrl' },
  banner: { js: "const __kwImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
});
const builtFrom = Object.keys(metafile.inputs).map((input) => relative(src, join(root, input)));
if (builtFrom.some((f) => f.startsWith('..'))) {
  throw new Error(`ssh-launch.cjs must bundle only Keyward's own modules, not: ${builtFrom.join(', ')}`);
}
appendFileSync(launchFile, `module.exports.builtFrom = ${JSON.stringify(builtFrom)};\n`);
