import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AgentConfigError, envName, loadAgentConfig, type SshdTargetConfig } from './agent-config.js';

const dir = mkdtempSync(join(tmpdir(), 'kw-agent-config-'));
const configFile = join(dir, 'sshd_config');
writeFileSync(configFile, '');
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
const SSHD: SshdTargetConfig = { configFile, pidFile: '/run/sshd.pid', sshdBinary: process.execPath };

test('defaults: state in /var/lib/keyward-agent, login user root, the default sshd, log level info', () => {
  const c = loadAgentConfig({ server: 'https://kw.example.com/' }, {}, 'linux', SSHD);
  assert.equal(c.serverUrl, 'https://kw.example.com');
  assert.equal(c.stateDir, '/var/lib/keyward-agent');
  assert.equal(c.loginUser, 'root');
  assert.deepEqual(c.sshd, SSHD);
  assert.equal(c.logLevel, 'info');
  assert.equal(c.once, false);
  assert.equal(c.token, undefined);
  assert.ok(Object.isFrozen(c));
});

test('flags win over KEYWARD_AGENT_* variables', () => {
  const c = loadAgentConfig(
    { server: 'https://a.example.com', 'login-user': 'ubuntu' },
    {
      KEYWARD_AGENT_SERVER: 'https://b.example.com',
      KEYWARD_AGENT_LOGIN_USER: 'ec2-user',
      KEYWARD_AGENT_STATE_DIR: '/srv/agent',
      KEYWARD_AGENT_ONCE: 'true',
    },
    'linux',
    SSHD,
  );
  assert.equal(c.serverUrl, 'https://a.example.com');
  assert.equal(c.loginUser, 'ubuntu');
  assert.equal(c.stateDir, '/srv/agent');
  assert.equal(c.once, true);
});

test('a token flag beats a token file from the environment', () => {
  const c = loadAgentConfig(
    { server: 'https://a', token: 'tok_1' },
    { KEYWARD_AGENT_TOKEN_FILE: '/etc/keyward/agent-token' },
    'linux',
    SSHD,
  );
  assert.equal(c.token, 'tok_1');
  assert.equal(c.tokenFile, undefined);
});

test('a server path prefix is kept without its trailing slash', () => {
  const c = loadAgentConfig({ server: 'https://kw.example.com/keyward/' }, {}, 'linux', SSHD);
  assert.equal(c.serverUrl, 'https://kw.example.com/keyward');
});

test('the CA bundle is read at start for an https server', () => {
  const c = loadAgentConfig({ server: 'https://a', ca: caFile }, {}, 'linux', SSHD);
  assert.match(c.ca?.toString() ?? '', /BEGIN CERTIFICATE/);
});

test('the agent refuses to run on anything but Linux', () => {
  assert.throws(() => loadAgentConfig({ server: 'https://a' }, {}, 'darwin', SSHD), AgentConfigError);
});

test('environment variable names follow the flags', () => {
  assert.equal(envName('sshd-pid-file'), 'KEYWARD_AGENT_SSHD_PID_FILE');
});

for (const [flags, env, named] of [
  [{}, {}, 'KEYWARD_AGENT_SERVER'],
  [{ server: 'not a url' }, {}, '--server'],
  [{ server: 'https://u:p@a' }, {}, '--server'],
  [{ server: 'https://a', token: 't', 'token-file': '/t' }, {}, '--token-file'],
  [
    { server: 'https://a' },
    { KEYWARD_AGENT_TOKEN: 't', KEYWARD_AGENT_TOKEN_FILE: '/t' },
    'KEYWARD_AGENT_TOKEN',
  ],
  [{ server: 'https://a', token: 'has space' }, {}, '--token'],
  [{ server: 'https://a', 'login-user': '0day' }, {}, '--login-user'],
  [{ server: 'https://a', 'ssh-address': '[::1]' }, {}, '--ssh-address'],
  [{ server: 'https://a', 'ssh-address': 'h:0' }, {}, '--ssh-address'],
  [{ server: 'https://a', 'sshd-config': join(dir, 'missing') }, {}, '--sshd-config'],
  [{ server: 'https://a', 'sshd-pid-file': 'sshd.pid' }, {}, '--sshd-pid-file'],
  [{ server: 'https://a', 'sshd-binary': configFile }, {}, '--sshd-binary'],
  [{ server: 'http://a', ca: caFile }, {}, '--ca'],
  [{ server: 'https://a', ca: join(dir, 'missing.pem') }, {}, '--ca'],
  [{ server: 'https://a', 'log-level': 'loud' }, {}, '--log-level'],
  [{ server: 'https://a' }, { KEYWARD_AGENT_ONCE: 'maybe' }, 'KEYWARD_AGENT_ONCE'],
  [{ server: 'https://a', 'state-dir': '' }, {}, '--state-dir'],
] as const) {
  test(`a bad setting is refused naming its source (${named}: ${JSON.stringify({ ...flags, ...env }).slice(0, 60)})`, () => {
    assert.throws(
      () => loadAgentConfig(flags, env, 'linux', SSHD),
      (e) => e instanceof AgentConfigError && e.message.includes(named),
    );
  });
}

test('a refused token is never echoed in the error', () => {
  assert.throws(
    () => loadAgentConfig({ server: 'https://a', token: 'secret value' }, {}, 'linux', SSHD),
    (e) => e instanceof AgentConfigError && !e.message.includes('secret value'),
  );
});
