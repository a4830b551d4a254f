/**
 * `keyward ssh`'s first steps (src/apps/cli/ssh-launch.ts) as the entry point runs them: from the CommonJS
 * bundle the build makes (dist/cli-bundle/ssh-launch.cjs), a second copy of those modules beside the
 * compiled ones the rest of the command uses. What must hold across the two copies: the bundle is built
 * from the compiled modules as they are, and an error made by one copy is reported by the other as its
 * own kind (a usage error, a failure with its message), never as an unexpected error. And end to end: with
 * the instance cached, the early ssh (a stand-in program here) starts with the cached address before the
 * server answers, and is stopped, its directory removed, when the server refuses.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CliFailure, UsageError } from '../src/apps/cli/cli-io.js';
import type * as Launch from '../src/apps/cli/ssh-launch.js';
import { credentialsEnv, homeEnv, keyward } from './helpers/cli.js';
import { leftovers, processes } from './helpers/leftovers.js';
import { repoRoot } from './helpers/repo-root.js';
import { makeTempDir, removeDir, startChildServer, type ChildServer } from './helpers/server.js';

const CLI = join(repoRoot(), 'dist', 'src', 'apps', 'cli');
const BUNDLE = join(repoRoot(), 'dist', 'cli-bundle', 'ssh-launch.cjs');
const INSTANCE = 'i-0a1b2c3d4e5f6a7b8c9d';

const bundled = (): typeof Launch & { builtFrom: string[] } =>
  createRequire(import.meta.url)(BUNDLE) as typeof Launch & { builtFrom: string[] };

describe("keyward ssh's first steps, from the bundle", () => {
  test('the bundle lists the compiled modules it was built from, all of src/apps/cli, none newer than it', () => {
    const { builtFrom } = bundled();
    assert.ok(builtFrom.includes('ssh-launch.js'), builtFrom.join(', '));
    assert.ok(builtFrom.includes('ssh-agent-server.js'), builtFrom.join(', '));
    const built = statSync(BUNDLE).mtimeMs;
    for (const f of builtFrom) {
      assert.doesNotMatch(f, /^\.\.|^\//, `${f} is outside src/apps/cli`);
      assert.ok(statSync(join(CLI, f)).mtimeMs <= built, `${f} is newer than the bundle: run npm run build`);
    }
    // Nothing large: the API client, ws and the rest of the CLI load after ssh has started.
    assert.ok(statSync(BUNDLE).size < 64 * 1024, `the bundle is ${String(statSync(BUNDLE).size)} bytes`);
  });

  test("a usage error from the bundle's copy is a UsageError to the CLI's", () => {
    const { prepareSsh } = bundled();
    assert.throws(
      () => prepareSsh(['not-an-instance'], { HOME: '/nonexistent' }),
      (err: unknown) => err instanceof UsageError && /not an instance id/.test(err.message),
    );
    assert.throws(
      () => prepareSsh([INSTANCE, '--no-such-flag'], { HOME: '/nonexistent' }),
      (err: unknown) => err instanceof UsageError && !(err instanceof CliFailure),
    );
    // And the other way round: the CLI's own classes are not mistaken for each other.
    assert.equal(new CliFailure('x') instanceof UsageError, false);
    assert.equal(new UsageError('x') instanceof CliFailure, false);
    assert.equal(new Error('x') instanceof CliFailure, false);
  });

  test("an ssh that cannot be run, started by the bundle's copy, fails as a CliFailure the CLI reports", async () => {
    const { startSsh } = bundled();
    const ssh = startSsh('/nonexistent/ssh', { args: ['-V'], link: undefined }, true);
    await assert.rejects(
      ssh.exited,
      (err: unknown) =>
        err instanceof CliFailure &&
        /cannot run "\/nonexistent\/ssh": not found; install OpenSSH/.test(err.message),
    );
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
