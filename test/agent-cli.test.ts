/**
 * `keyward agent` as a child process: help, flag and environment validation (exit 2 naming the bad
 * setting), and a failure no restart cures (exit 3). Nothing here touches the host's sshd.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { keyward } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kw-agent-cli-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
const sshdConfig = join(dir, 'sshd_config');
writeFileSync(sshdConfig, 'Include /etc/ssh/sshd_config.d/*.conf\n');
// Stand-ins that pass the start-up checks (an executable, a readable file) without touching sshd.
const SSHD = [
  '--sshd-config',
  sshdConfig,
  '--sshd-binary',
  process.execPath,
  '--sshd-pid-file',
  join(dir, 'sshd.pid'),
];

test('keyward agent --help prints the usage and exits 0', async () => {
  const r = await keyward(['agent', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--server URL\[,URL\.\.\.\]/);
  assert.match(r.stdout, /--token-file FILE/);
});

test('keyward help lists the agent command', async () => {
  const r = await keyward(['--help']);
  assert.match(r.stdout, /^ {2}agent /m);
});

for (const [name, args, env, named] of [
  ['no server', [...SSHD], {}, 'KEYWARD_AGENT_SERVER'],
  ['a server URL that is not http(s)', ['--server', 'ftp://x', ...SSHD], {}, '--server'],
  ['a server URL with a query', ['--server', 'https://x/?a=1', ...SSHD], {}, '--server'],
  [
    'both token flags',
    ['--server', 'https://x', '--token', 'a', '--token-file', '/t', ...SSHD],
    {},
    '--token',
  ],
  ['a malformed token', ['--server', 'https://x', '--token', 'a b', ...SSHD], {}, '--token'],
  ['a bad login user', ['--server', 'https://x', '--login-user', 'Root!', ...SSHD], {}, '--login-user'],
  ['a bad ssh address', ['--server', 'https://x', '--ssh-address', 'host', ...SSHD], {}, '--ssh-address'],
  [
    'a port out of range',
    ['--server', 'https://x', '--ssh-address', 'h:70000', ...SSHD],
    {},
    '--ssh-address',
  ],
  [
    'a relative sshd config',
    ['--server', 'https://x', ...SSHD, '--sshd-config', 'sshd_config'],
    {},
    '--sshd-config',
  ],
  [
    'a missing sshd binary',
    ['--server', 'https://x', ...SSHD, '--sshd-binary', '/nonexistent/sshd'],
    {},
    '--sshd-binary',
  ],
  ['a CA bundle for an http server', ['--server', 'http://x', '--ca', sshdConfig, ...SSHD], {}, '--ca'],
  ['a server URL listed twice', ['--server', 'https://x,https://y,https://x/', ...SSHD], {}, '--server'],
  [
    'a CA bundle beside an http server URL',
    ['--server', 'https://x,http://y', '--ca', sshdConfig, ...SSHD],
    {},
    '--ca',
  ],
  ['a CA file without certificates', ['--server', 'https://x', '--ca', sshdConfig, ...SSHD], {}, '--ca'],
  [
    'a bad log level from the environment',
    ['--server', 'https://x', ...SSHD],
    { KEYWARD_AGENT_LOG_LEVEL: 'loud' },
    'KEYWARD_AGENT_LOG_LEVEL',
  ],
  ['a bad server from the environment', [...SSHD], { KEYWARD_AGENT_SERVER: 'nope' }, 'KEYWARD_AGENT_SERVER'],
] as const) {
  test(`keyward agent with ${name} exits 2 naming the setting`, async () => {
    const r = await keyward(['agent', ...args], { env });
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes(named), r.stderr);
  });
}

test('keyward agent with an unknown flag exits 2', async () => {
  const r = await keyward(['agent', '--server', 'https://x', '--frobnicate']);
  assert.equal(r.code, 2);
});

test('a state directory open to other users stops the agent with exit 3 and the code', async () => {
  const stateDir = join(dir, 'open-state');
  mkdirSync(stateDir, { mode: 0o755 });
  chmodSync(stateDir, 0o755);
  const r = await keyward([
    'agent',
    '--server',
    'http://127.0.0.1:9',
    '--insecure-http',
    '--token',
    'tok',
    '--state-dir',
    stateDir,
    ...SSHD,
  ]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /Agent\.StateDirUnsafe/);
  assert.ok(!r.stdout.includes('"tok"'), 'the token is not logged');
});
