import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { ConfigError, describeDatabase, loadServerConfig, resolveDataDir } from './server-config.js';

test('defaults: ./data, 127.0.0.1:8080, region local, log level info, no TLS', () => {
  const c = loadServerConfig({}, {});
  assert.equal(c.dataDir, resolve('./data'));
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.regionId, 'local');
  assert.equal(c.logLevel, 'info');
  assert.equal(c.tls, undefined);
  assert.ok(Object.isFrozen(c));
});

test('flags win over environment, which wins over the config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-config-'));
  const file = join(dir, 'keyward.json');
  writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:1', regionId: 'file-region', logLevel: 'debug' }));
  const c = loadServerConfig(
    { config: file, listen: '127.0.0.1:3' },
    { KEYWARD_LISTEN: '127.0.0.1:2', KEYWARD_REGION: 'env-region' },
  );
  assert.equal(c.port, 3);
  assert.equal(c.regionId, 'env-region');
  assert.equal(c.logLevel, 'debug');
});

test('IPv6 listen addresses are written in brackets', () => {
  const c = loadServerConfig({ listen: '[::1]:9000' }, {});
  assert.equal(c.host, '::1');
  assert.equal(c.port, 9000);
});

for (const [flags, env, fragment] of [
  [{ listen: 'localhost' }, {}, '--listen'],
  [{ listen: '127.0.0.1:70000' }, {}, '--listen'],
  [{}, { KEYWARD_LISTEN: 'nope' }, 'KEYWARD_LISTEN'],
  [{ regionId: 'Bad Region' }, {}, '--region'],
  [{ logLevel: 'loud' }, {}, '--log-level'],
  [{ tlsCert: 'cert.pem' }, {}, '--tls-key'],
  [{}, { KEYWARD_MASTER_KEY: 'c2hvcnQ=' }, 'KEYWARD_MASTER_KEY'],
] as const) {
  test(`a bad setting is refused naming its source (${fragment})`, () => {
    assert.throws(
      () => loadServerConfig(flags, env),
      (e) => e instanceof ConfigError && e.message.includes(fragment),
    );
  });
}

test('a config file with an unknown field or bad JSON is refused with the file named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-config-'));
  const unknown = join(dir, 'a.json');
  writeFileSync(unknown, JSON.stringify({ lisen: '127.0.0.1:1' }));
  assert.throws(
    () => loadServerConfig({ config: unknown }, {}),
    (e) => e instanceof ConfigError && e.message.includes('lisen'),
  );
  const bad = join(dir, 'b.json');
  writeFileSync(bad, '{');
  assert.throws(
    () => loadServerConfig({ config: bad }, {}),
    (e) => e instanceof ConfigError && e.message.includes(bad),
  );
  assert.throws(() => loadServerConfig({ config: join(dir, 'missing.json') }, {}), ConfigError);
});

test('a master key from the environment must be 32 bytes of base64', () => {
  const key = Buffer.alloc(32, 7).toString('base64');
  assert.equal(loadServerConfig({}, { KEYWARD_MASTER_KEY: key }).masterKey?.length, 32);
});

test('resolveDataDir finds the data directory as the server does: flag, then KEYWARD_DATA_DIR, then the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-config-'));
  const file = join(dir, 'keyward.json');
  writeFileSync(file, JSON.stringify({ dataDir: '/srv/from-file', listen: 'not an address' }));
  const env = { KEYWARD_CONFIG: file, KEYWARD_LISTEN: 'nope either' };
  assert.equal(
    resolveDataDir({ dataDir: '/srv/flag' }, { ...env, KEYWARD_DATA_DIR: '/srv/env' }),
    '/srv/flag',
  );
  assert.equal(resolveDataDir({}, { ...env, KEYWARD_DATA_DIR: '/srv/env' }), '/srv/env');
  assert.equal(resolveDataDir({}, env), '/srv/from-file');
  assert.equal(resolveDataDir({}, {}), resolve('./data'));
  assert.equal(
    resolveDataDir({}, { KEYWARD_DATA_DIR: 'relative/dir' }),
    loadServerConfig({}, { KEYWARD_DATA_DIR: 'relative/dir' }).dataDir,
  );
  assert.throws(
    () => resolveDataDir({ dataDir: 'a\0b' }, {}),
    (e) => e instanceof ConfigError && e.message.includes('--data-dir'),
  );
});

test('--database takes a PostgreSQL URL; anything else is refused without echoing a password', () => {
  assert.equal(loadServerConfig({}, {}).database, undefined);
  const url = 'postgres://keyward:s3cret@db.example:5432/keyward';
  const c = loadServerConfig({ database: url }, {});
  assert.deepEqual(c.database, { url, maxConnections: 10, preparedStatements: true });
  assert.equal(
    loadServerConfig({}, { KEYWARD_DATABASE_URL: url, KEYWARD_DATABASE_MAX_CONNECTIONS: '25' }).database
      ?.maxConnections,
    25,
  );
  assert.equal(describeDatabase(c.database), 'postgres://db.example:5432/keyward');
  for (const bad of ['mysql://u:s3cret@h/db', 'postgres://u:s3cret@h', 'not a url s3cret']) {
    assert.throws(
      () => loadServerConfig({ database: bad }, {}),
      (err: unknown) =>
        err instanceof ConfigError && /--database/.test(err.message) && !err.message.includes('s3cret'),
      bad,
    );
  }
  assert.throws(() => loadServerConfig({ database: url, databaseMaxConnections: '1' }, {}), ConfigError);
  assert.throws(() => loadServerConfig({ databaseMaxConnections: '20' }, {}), ConfigError);
  // Prepared statements: on by default, off for a pooler that cannot keep them; nothing else accepted.
  assert.equal(
    loadServerConfig({}, { KEYWARD_DATABASE_URL: url, KEYWARD_DATABASE_PREPARED_STATEMENTS: 'off' }).database
      ?.preparedStatements,
    false,
  );
  assert.throws(
    () => loadServerConfig({ database: url, databasePreparedStatements: 'no' }, {}),
    (err: unknown) => err instanceof ConfigError && /on or off/.test(err.message),
  );
  assert.throws(() => loadServerConfig({ databasePreparedStatements: 'off' }, {}), ConfigError);
});

test('the agent downloads directory and the public URL come from a flag, KEYWARD_* or the config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-config-'));
  const file = join(dir, 'keyward.json');
  writeFileSync(
    file,
    JSON.stringify({ agentDownloadsDir: 'bin-from-file', publicUrl: 'https://file.example' }),
  );
  const fromFile = loadServerConfig({ config: file }, {});
  assert.equal(fromFile.agentDownloadsDir, resolve('bin-from-file'));
  assert.equal(fromFile.publicUrl, 'https://file.example');
  const fromEnv = loadServerConfig(
    { config: file },
    { KEYWARD_AGENT_DOWNLOADS_DIR: '/srv/agent', KEYWARD_PUBLIC_URL: 'https://kw.example:8443/keyward/' },
  );
  assert.equal(fromEnv.agentDownloadsDir, '/srv/agent');
  assert.equal(fromEnv.publicUrl, 'https://kw.example:8443/keyward');
  const defaults = loadServerConfig({}, {});
  assert.equal(defaults.agentDownloadsDir, undefined);
  assert.equal(defaults.publicUrl, undefined);
});

test('a public URL that is not a plain http(s) URL, or could break out of a shell quote, is refused', () => {
  for (const bad of [
    'ftp://kw.example',
    'https://user:pw@kw.example',
    'https://kw.example/?q=1',
    'https://kw.example/#x',
    "https://kw.example/'$(id)'",
    'https://kw.example/ a',
    'kw.example',
  ]) {
    assert.throws(() => loadServerConfig({ publicUrl: bad }, {}), ConfigError, bad);
  }
});

test('the internal URL (where other replicas forward tunnel dials) is a plain http(s) URL, from a flag or KEYWARD_*', () => {
  assert.equal(loadServerConfig({}, {}).internalUrl, undefined);
  assert.equal(
    loadServerConfig({ internalUrl: 'http://10.0.0.5:8080/' }, {}).internalUrl,
    'http://10.0.0.5:8080',
  );
  assert.equal(
    loadServerConfig({}, { KEYWARD_INTERNAL_URL: 'https://kw-a.internal:8443' }).internalUrl,
    'https://kw-a.internal:8443',
  );
  for (const bad of ['ftp://10.0.0.5', 'https://user:pw@kw-a', 'http://kw-a/?q=1', 'kw-a:8080']) {
    assert.throws(() => loadServerConfig({ internalUrl: bad }, {}), ConfigError, bad);
  }
});
