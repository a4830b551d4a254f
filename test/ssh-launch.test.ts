/**
 * `keyward ssh` as the entry point runs it: from the CommonJS bundle the build makes of
 * src/apps/cli/ssh-launch.ts and all it loads (dist/cli-bundle/ssh-launch.cjs), or from the compiled modules
 * when that bundle is older than any of them. The bundle is built from the modules as they are, used only
 * then, and reports errors as the CLI does. And end to end: with the instance cached, the early ssh (a
 * stand-in program here) starts with the cached address before the server answers, and is stopped, its
 * directory removed, when the server refuses.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { credentialsEnv, homeEnv, keyward } from './helpers/cli.js';
import { leftovers, processes } from './helpers/leftovers.js';
import { repoRoot } from './helpers/repo-root.js';
import { baseEnv, makeTempDir, removeDir, startChildServer, type ChildServer } from './helpers/server.js';
import { run } from './helpers/tools.js';

const SRC = join(repoRoot(), 'dist', 'src');
const BUNDLE = join(repoRoot(), 'dist', 'cli-bundle', 'ssh-launch.cjs');
const INSTANCE = 'i-0a1b2c3d4e5f6a7b8c9d';

describe("keyward ssh's bundle", () => {
  let dir = '';
  before(async () => {
    dir = await makeTempDir('keyward-ssh-bundle-');
  });
  after(async () => {
    if (dir !== '') await removeDir(dir);
  });

  test("lists the compiled modules it was built from, all Keyward's own, none newer than it", () => {
    const { builtFrom } = createRequire(import.meta.url)(BUNDLE) as { builtFrom: string[] };
    for (const m of ['apps/cli/ssh-launch.js', 'apps/cli/ssh-run.js', 'apps/cli/commands/ssh-command.js']) {
      assert.ok(builtFrom.includes(m), `${m} is not in ${builtFrom.join(', ')}`);
    }
    const built = statSync(BUNDLE).mtimeMs;
    for (const f of builtFrom) {
      assert.doesNotMatch(f, /^\.\.|^\//, `${f} is not under dist/src`);
      assert.ok(statSync(join(SRC, f)).mtimeMs <= built, `${f} is newer than the bundle: run npm run build`);
    }
  });

  test('loads nothing of the API client before ssh starts: the rest is evaluated only when asked for', async () => {
    // Node's own list of the built-in modules a process loaded: after the bundle is required (prepareSsh
    // ready), and after runSsh has loaded the rest.
    const script =
      `const launch = require(${JSON.stringify(BUNDLE)});` +
      'const http = () => process.moduleLoadList.filter((m) => /^NativeModule (http|_http_client)$/.test(m)).length;' +
      "const before = http(); launch.runSsh(['--help'], undefined).then((code) => " +
      'process.stderr.write(JSON.stringify({ before, after: http(), code })));';
    const res = await run(process.execPath, ['-e', script], { env: baseEnv({ HOME: dir }) });
    assert.deepEqual(JSON.parse(res.stderr), { before: 0, after: 2, code: 0 });
    assert.match(res.stdout, /^Usage: keyward ssh /);
  });

  test('is used when it is at least as new as the modules it lists, and not when older', async () => {
    // A checkout of its own: the entry point, the compiled modules (linked), and a marked copy of the bundle.
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist', 'cli-bundle'), { recursive: true });
    copyFileSync(join(repoRoot(), 'bin', 'keyward.cjs'), join(dir, 'bin', 'keyward.cjs'));
    symlinkSync(SRC, join(dir, 'dist', 'src'));
    const copy = join(dir, 'dist', 'cli-bundle', 'ssh-launch.cjs');
    copyFileSync(BUNDLE, copy);
    appendFileSync(
      copy,
      // (esbuild's exports are getters: the object is replaced, not assigned to.)
      'module.exports = { ...module.exports, runSsh: async () => { ' +
        "process.stderr.write('from the bundle\\n'); return 7; } };\n",
    );
    const help = () =>
      run(process.execPath, [join(dir, 'bin', 'keyward.cjs'), 'ssh', '--help'], {
        env: baseEnv({ HOME: dir }),
      });

    const fresh = await help();
    assert.equal(fresh.code, 7, fresh.stderr);
    assert.equal(fresh.stderr, 'from the bundle\n');

    const past = new Date(Date.now() - 86_400_000 * 365 * 20);
    utimesSync(copy, past, past);
    const stale = await help();
    assert.equal(stale.code, 0, stale.stderr);
    assert.match(stale.stdout, /^Usage: keyward ssh /);
  });

  test("bin/keyward.js, the entry point's former name, still runs the same command", async () => {
    const former = join(repoRoot(), 'bin', 'keyward.js');
    const version = await run(process.execPath, [former, '--version'], { env: baseEnv({ HOME: dir }) });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const usage = await run(process.execPath, [former, 'ssh', 'not-an-instance'], {
      env: baseEnv({ HOME: dir }),
    });
    assert.equal(usage.code, 2, usage.stderr);
    assert.match(usage.stderr, /^keyward: "not-an-instance" is not an instance id/);
  });

  test('reports a usage error as the CLI does', async () => {
    const res = await keyward(['ssh', 'not-an-instance']);
    assert.equal(res.code, 2, res.stderr);
    assert.equal(
      res.stderr,
      'keyward: "not-an-instance" is not an instance id (i- and 20 letters and digits)\n' +
        "Run 'keyward ssh --help' for usage.\n",
    );
    const help = await keyward(['ssh', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: keyward ssh /);
  });
});

describe('keyward ssh with the instance cached', () => {
  let server: ChildServer | undefined;
  let dir = '';

  before(async () => {
    dir = await makeTempDir('keyward-ssh-launch-');
    server = await startChildServer();
  });

  after(async () => {
    await server?.close();
    if (dir !== '') await removeDir(dir);
  });

  test('starts ssh with the cached address before the server answers, and stops it when the server refuses', async () => {
    assert.ok(server !== undefined);
    const home = await homeEnv(dir);
    const tmp = join(dir, 'tmp');
    mkdirSync(tmp, { mode: 0o700 });
    const cache = join(home['HOME'] ?? dir, '.cache', 'keyward');
    mkdirSync(cache, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(cache, 'ssh.json'),
      JSON.stringify({
        version: 1,
        addresses: { [INSTANCE]: '127.0.0.1:2222' },
        hostKeyTypes: { [INSTANCE]: 'ssh-ed25519' },
        hostKeys: {
          [INSTANCE]: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2x2GkAGo5nYd+rLQe5YtZ/2lqnG8YFvNqTjG1ZyHQf',
        },
        routes: {},
      }),
    );
    // The stand-in for ssh writes its arguments and waits, as ssh does for the agent's answer.
    const record = join(dir, 'ssh-args');
    const fakeSsh = join(dir, 'fake-ssh');
    const pidFile = join(dir, 'ssh-pid');
    writeFileSync(
      fakeSsh,
      `#!/bin/sh\necho $$ > '${pidFile}'\nprintf '%s\\n' "$@" > '${record}'\nexec sleep 60\n`,
      { mode: 0o755 },
    );

    const res = await keyward(['ssh', '--ssh', fakeSsh, `ops@${INSTANCE}`, '--', 'true'], {
      env: { ...credentialsEnv(server.credentials), ...home, TMPDIR: tmp },
    });
    // No such instance on this server: refused, with the API's code, before any of ssh's output.
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /^keyward: InvalidInstanceId\.NotFound: /m);
    assert.doesNotMatch(res.stderr, /unexpected error/);
    const args = readFileSync(record, 'utf8').split('\n');
    assert.deepEqual(args.slice(-6, -1), ['2222', '-l', 'ops', '127.0.0.1', 'true']);
    assert.ok(args.includes(`HostKeyAlias=${INSTANCE}`), args.join(' '));
    // The early ssh is stopped (keyward waits for it) and the key's directory removed.
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.deepEqual(
      processes((p) => p.pid === pid).map((p) => p.args.join(' ')),
      [],
    );
    assert.deepEqual(leftovers(join(tmp, 'keyward-ssh-')), []);
  });
});
