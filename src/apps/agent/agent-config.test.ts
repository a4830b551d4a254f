import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  AgentConfigError,
  envName,
  loadAgentConfig,
  parseServerUrls,
  type AgentConfigErrorCode,
  type SshdTargetConfig,
} from './agent-config.js';

const dir = mkdtempSync(join(tmpdir(), 'kw-agent-config-'));
const configFile = join(dir, 'sshd_config');
writeFileSync(configFile, '');
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
const SSHD: SshdTargetConfig = { configFile, pidFile: '/run/sshd.pid', sshdBinary: process.execPath };

test('defaults: state in /var/lib/keyward-agent, login user root, the default sshd, log level info', () => {
  const c = loadAgentConfig({ server: 'https://kw.example.com/' }, {}, 'linux', SSHD);
  assert.deepEqual(c.serverUrls, ['https://kw.example.com']);
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
  assert.deepEqual(c.serverUrls, ['https://a.example.com']);
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
  assert.deepEqual(c.serverUrls, ['https://kw.example.com/keyward']);
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

// ---- several server URLs ----------------------------------------------------------------------------

test('a comma-separated server setting is a list of URLs, each normalised, in the order given', () => {
  const c = loadAgentConfig(
    { server: 'https://kw-a:8080/, https://KW-B:8080 ,https://kw-c:443/keyward/' },
    {},
    'linux',
    SSHD,
  );
  assert.deepEqual(c.serverUrls, ['https://kw-a:8080', 'https://kw-b:8080', 'https://kw-c/keyward']);
  assert.ok(Object.isFrozen(c.serverUrls));
});

test('the list may come from KEYWARD_AGENT_SERVER', () => {
  const c = loadAgentConfig(
    {},
    { KEYWARD_AGENT_SERVER: 'http://10.0.0.1:8080,http://10.0.0.2:8080', KEYWARD_AGENT_INSECURE_HTTP: '1' },
    'linux',
    SSHD,
  );
  assert.deepEqual(c.serverUrls, ['http://10.0.0.1:8080', 'http://10.0.0.2:8080']);
  assert.equal(c.insecureHttp, true);
});

test('a plain http server URL is refused unless --insecure-http says so', () => {
  assert.throws(
    () => loadAgentConfig({ server: 'https://a,http://b' }, {}, 'linux', SSHD),
    (err: unknown) =>
      err instanceof AgentConfigError &&
      err.code === 'AgentConfig.InsecureHttp' &&
      err.setting === '--server' &&
      err.entry === 2,
  );
  const c = loadAgentConfig({ server: 'http://b', 'insecure-http': true }, {}, 'linux', SSHD);
  assert.deepEqual(c.serverUrls, ['http://b']);
  assert.equal(loadAgentConfig({ server: 'https://a' }, {}, 'linux', SSHD).insecureHttp, false);
});

test('16 server URLs are accepted', () => {
  const list = Array.from({ length: 16 }, (_, i) => `https://kw-${i}.example.com`);
  assert.deepEqual(parseServerUrls(list.join(','), '--server'), list);
});

test('a CA bundle applies to every server URL when all are https', () => {
  const c = loadAgentConfig({ server: 'https://kw-a,https://kw-b', ca: caFile }, {}, 'linux', SSHD);
  assert.deepEqual(c.serverUrls, ['https://kw-a', 'https://kw-b']);
  assert.match(c.ca?.toString() ?? '', /BEGIN CERTIFICATE/);
});

for (const [name, flags, env, code, setting, entry] of [
  ['no server at all', {}, {}, 'AgentConfig.ServerRequired', 'KEYWARD_AGENT_SERVER', undefined],
  ['an empty entry', { server: 'https://a,,https://b' }, {}, 'AgentConfig.ServerUrlInvalid', '--server', 2],
  ['a trailing comma', { server: 'https://a,' }, {}, 'AgentConfig.ServerUrlInvalid', '--server', 2],
  [
    'an entry that is not a URL',
    { server: 'https://a,kw-b' },
    {},
    'AgentConfig.ServerUrlInvalid',
    '--server',
    2,
  ],
  [
    'an ftp entry',
    { server: 'https://a,https://b,ftp://c' },
    {},
    'AgentConfig.ServerUrlInvalid',
    '--server',
    3,
  ],
  [
    'an entry with credentials',
    { server: 'https://a,https://u:p@b' },
    {},
    'AgentConfig.ServerUrlInvalid',
    '--server',
    2,
  ],
  [
    'an entry with a query',
    { server: 'https://a?x=1,https://b' },
    {},
    'AgentConfig.ServerUrlInvalid',
    '--server',
    1,
  ],
  [
    'an entry with a fragment',
    { server: 'https://a,https://b#f' },
    {},
    'AgentConfig.ServerUrlInvalid',
    '--server',
    2,
  ],
  [
    'an entry longer than the state file takes',
    { server: `https://a,https://b/${'p'.repeat(2000)}` },
    {},
    'AgentConfig.ServerUrlInvalid',
    '--server',
    2,
  ],
  [
    'a duplicate',
    { server: 'https://a:8080,https://b,https://a:8080' },
    {},
    'AgentConfig.ServerUrlDuplicate',
    '--server',
    3,
  ],
  [
    'a duplicate once normalised',
    { server: 'https://kw-a:443/,https://KW-A' },
    {},
    'AgentConfig.ServerUrlDuplicate',
    '--server',
    2,
  ],
  [
    '17 URLs',
    { server: Array.from({ length: 17 }, (_, i) => `https://kw-${i}`).join(',') },
    {},
    'AgentConfig.TooManyServerUrls',
    '--server',
    undefined,
  ],
  [
    'a bad entry from the environment',
    {},
    { KEYWARD_AGENT_SERVER: 'https://a,nope' },
    'AgentConfig.ServerUrlInvalid',
    'KEYWARD_AGENT_SERVER',
    2,
  ],
  [
    'a CA bundle beside an http entry',
    { server: 'https://a,http://b', ca: caFile },
    {},
    'AgentConfig.CaNeedsHttps',
    '--ca',
    2,
  ],
  [
    'a CA bundle for one http URL',
    { server: 'http://a', ca: caFile },
    {},
    'AgentConfig.CaNeedsHttps',
    '--ca',
    1,
  ],
] as const) {
  test(`a server list with ${name} is refused with ${code}, naming the setting and the entry`, () => {
    assert.throws(
      () => loadAgentConfig(flags, env, 'linux', SSHD),
      (e) => {
        assert.ok(e instanceof AgentConfigError);
        assert.equal(e.code, code satisfies AgentConfigErrorCode);
        assert.equal(e.setting, setting);
        assert.equal(e.entry, entry);
        return true;
      },
    );
  });
}

test('credentials in a refused server URL are never echoed in the error', () => {
  assert.throws(
    () => parseServerUrls('https://a,https://agent:hunter2@b?key=s3cret', '--server'),
    (e) => e instanceof AgentConfigError && !/hunter2|s3cret/.test(e.message),
  );
});

test('settings other than the server list have the generic code', () => {
  assert.throws(
    () => loadAgentConfig({ server: 'https://a', 'log-level': 'loud' }, {}, 'linux', SSHD),
    (e) => e instanceof AgentConfigError && e.code === 'AgentConfig.Invalid',
  );
});

test('--sshd-log: auto by default; journald, off or an absolute file; anything else refused', () => {
  const base = { server: 'https://kw.example.com' };
  assert.equal(loadAgentConfig(base, {}, 'linux', SSHD).logon.sshdLog, 'auto');
  for (const value of ['journald', 'off', '/var/log/auth.log', '/tmp/kw-sshd/sshd.log']) {
    assert.equal(loadAgentConfig({ ...base, 'sshd-log': value }, {}, 'linux', SSHD).logon.sshdLog, value);
  }
  assert.equal(loadAgentConfig(base, { [envName('sshd-log')]: 'off' }, 'linux', SSHD).logon.sshdLog, 'off');
  for (const value of ['syslog', 'var/log/auth.log', '/var/log/../etc/shadow', '/var/log/a b', '']) {
    assert.throws(
      () => loadAgentConfig({ ...base, 'sshd-log': value }, {}, 'linux', SSHD),
      (e) =>
        e instanceof AgentConfigError && e.code === 'AgentConfig.Invalid' && e.message.includes('--sshd-log'),
      value,
    );
  }
});
