// Builds the stand-alone agent: dist/agent-bin/keyward-agent-linux-ARCH (this machine's architecture) and
// its .sha256. Steps (Node.js 20 "single executable applications"):
//   1. esbuild bundles src/apps/agent/agent-bin.ts and everything it imports into one CommonJS file;
//      the import graph (esbuild's metafile) is checked: no native addon (.node), no better-sqlite3,
//      cpu-features or ssh2 may be reachable, and nothing may stay outside the bundle but Node's
//      built-in modules (ws's optional native accelerators are replaced by a module that throws, which
//      ws catches: it then uses its JavaScript code, as it does wherever they are not installed);
//   2. `node --experimental-sea-config` turns the bundle into a preparation blob (code cache on, the
//      experimental warning off);
//   3. a copy of this node binary, its symbol table stripped, gets the blob injected with postject
//      (sentinel fuse below);
//   4. the result is run once (`--version`) and its SHA-256 written beside it.
// Then scripts/build-agent-deb.sh packs it into a .deb when dpkg-deb is there (--no-deb skips it).
// Needs `npm run build`? No: esbuild reads the TypeScript sources itself.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const ARCHES = { x64: 'x64', arm64: 'arm64' };
/** Packages that must never be reachable from the agent: native addons (the server's, ssh2's). */
const FORBIDDEN_PACKAGES = ['better-sqlite3', 'cpu-features', 'ssh2', 'bindings', 'node-gyp-build'];
/** Optional native accelerators ws requires inside a try/catch: replaced by a module that throws. */
const OPTIONAL_NATIVE = ['bufferutil', 'utf-8-validate'];
const optionalNativeStub = {
  name: 'optional-native-stub',
  setup(b) {
    const filter = new RegExp(`^(${OPTIONAL_NATIVE.join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'optional-native-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'optional-native-stub' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not part of the keyward-agent executable`)});`,
      loader: 'js',
    }));
  },
};

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist', 'agent-bin');
const work = join(outDir, 'work');
const started = Date.now();

if (process.platform !== 'linux')
  fail(`the agent executable is built on Linux (this is ${process.platform})`);
const arch = ARCHES[process.arch];
if (arch === undefined) fail(`no agent executable for CPU architecture ${process.arch} (x64 and arm64 only)`);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = pkg.version;

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// 1. Bundle, and prove the bundle reaches no native module.
const bundle = join(work, 'keyward-agent.cjs');
const result = await build({
  entryPoints: [join(root, 'src', 'apps', 'agent', 'agent-bin.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  keepNames: true,
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
  plugins: [optionalNativeStub],
  // start-agent.ts finds package.json through import.meta.url only when no version is built in (below).
  logOverride: { 'empty-import-meta': 'silent' },
  define: { KEYWARD_AGENT_BUILD_VERSION: JSON.stringify(version) },
});
checkImportGraph(result.metafile);
writeFileSync(join(work, 'meta.json'), JSON.stringify(result.metafile));

// 2. The preparation blob.
const seaConfig = join(work, 'sea-config.json');
const blob = join(work, 'sea-prep.blob');
writeFileSync(
  seaConfig,
  JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }),
);
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });

// 3. Inject it into a copy of this node binary (written under a temporary name, renamed when whole).
const name = `keyward-agent-linux-${arch}`;
const target = join(outDir, name);
const partial = join(work, name);
copyFileSync(process.execPath, partial);
chmodSync(partial, 0o755);
// Debian's node keeps its symbol table (about 12 MiB); strip it from the copy before the blob goes in
// (stripping after injection would cut the blob out). JavaScript stack traces do not use it.
if (existsSync('/usr/bin/strip')) execFileSync('/usr/bin/strip', ['--strip-all', partial]);
// postject warns about ELF note sections it does not name ("Can't find string offset …"): harmless, so its
// output is shown only when it fails.
try {
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules', 'postject', 'dist', 'cli.js'),
      partial,
      'NODE_SEA_BLOB',
      blob,
      '--sentinel-fuse',
      SENTINEL_FUSE,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
} catch (err) {
  fail(`postject failed: ${String(err.stderr ?? err.message)}`);
}

// 4. It must run, with no Node.js options or modules from outside.
const printed = execFileSync(partial, ['--version'], {
  encoding: 'utf8',
  env: { PATH: '/usr/bin:/bin' },
}).trim();
if (printed !== version) fail(`the built executable printed "${printed}" for --version, not "${version}"`);
const digest = createHash('sha256').update(readFileSync(partial)).digest('hex');
renameSync(partial, target);
writeFileSync(`${target}.sha256`, `${digest}  ${name}\n`);
rmSync(work, { recursive: true, force: true });

const mib = (statSync(target).size / 1024 / 1024).toFixed(1);
console.log(`agent: ${relative(root, target)} ${mib} MiB, sha256 ${digest}, ${Date.now() - started} ms`);

// The .deb, where dpkg-deb exists (Debian and derivatives); --no-deb leaves it out.
if (!process.argv.includes('--no-deb')) {
  if (existsSync('/usr/bin/dpkg-deb')) {
    execFileSync('sh', [join(root, 'scripts', 'build-agent-deb.sh'), target, version, arch], {
      stdio: 'inherit',
    });
  } else {
    console.log('agent: no dpkg-deb on this machine, so no .deb (apt-get install dpkg-dev)');
  }
}

/** Fails the build if anything native, or anything not bundled, is reachable from the agent's entry. */
function checkImportGraph(metafile) {
  const problems = [];
  for (const input of Object.keys(metafile.inputs)) {
    if (input.endsWith('.node')) problems.push(`native addon ${input}`);
    for (const name of FORBIDDEN_PACKAGES) {
      if (input.includes(`node_modules/${name}/`)) problems.push(`${name} (${input})`);
    }
  }
  const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) {
      if (!imported.external) continue;
      if (builtins.has(imported.path)) continue;
      problems.push(`unbundled import ${imported.path}`);
    }
  }
  if (problems.length > 0) {
    fail(`the agent must not reach a native or unbundled module, but reaches:\n  ${problems.join('\n  ')}`);
  }
}

function fail(message) {
  console.error(`build-agent: ${message}`);
  process.exit(1);
}
