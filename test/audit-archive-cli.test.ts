/**
 * `keyward audit archive` and `keyward audit verify --segment` as operators run them: child processes of
 * bin/keyward.cjs opening the storage of a server that keeps running (its SQLite file, or its PostgreSQL
 * database). The segment verifies offline, the server's own verify reports the anchor and an intact chain,
 * an edited segment line is named, a second archive chains onto the first, and the refusals exit with
 * their codes.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { makeTempDir, removeDir, startInProcessServer, type TestServer } from './helpers/server.js';
import { testRpcClient } from './helpers/timeouts.js';

let server: TestServer;
let dir: string;
let env: Record<string, string>;

before(async () => {
  server = await startInProcessServer();
  dir = await makeTempDir('keyward-audit-archive-cli-');
  env = credentialsEnv(server.credentials);
});
after(async () => {
  await server.close();
  await removeDir(dir);
});

/** Where the archive finds the server's storage: its data directory, or its PostgreSQL database. */
function storageArgs(): string[] {
  return server.databaseUrl !== undefined
    ? ['--database', server.databaseUrl]
    : ['--data-dir', server.dataDir];
}

async function signedReads(n: number): Promise<void> {
  const rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  try {
    for (let i = 0; i < n; i++) await rpc.call('DescribeKeyPairs', { RegionId: 'local' });
  } finally {
    rpc.close();
  }
}

const ARCHIVED = /^Archived events 1–(\d+) \((\d+) events, \d+ bytes\) from .+ to (.+); (\d+) removed now/;

test('archive beside a running server, verify the segment offline and the rest online, then catch an edit', async () => {
  await signedReads(5);
  await sleep(20); // the grouped appends commit within 10 ms
  const cut = new Date().toISOString();
  await sleep(5);
  await signedReads(3);

  const usage = await keyward(['audit', 'archive', '--to', 'x.jsonl', ...storageArgs()], { cwd: dir });
  assert.equal(usage.code, 2, usage.stderr);
  assert.match(usage.stderr, /--before DATE is required/);

  const archived = await keyward(
    ['audit', 'archive', '--before', cut, '--to', 'first.jsonl', ...storageArgs()],
    { cwd: dir },
  );
  assert.equal(archived.code, 0, archived.stderr);
  const m = ARCHIVED.exec(archived.stdout);
  assert.ok(m, archived.stdout);
  const lastSeq = Number(m[1]);
  assert.ok(lastSeq >= 5, archived.stdout);
  assert.equal(m[4], m[2]);
  assert.equal(m[3], join(dir, 'first.jsonl'));
  assert.match(archived.stdout, /^Database anchor: event \d+, [0-9a-f]{64}$/m);
  if (server.databaseUrl !== undefined) {
    assert.ok(!archived.stdout.includes(server.databaseUrl), 'the database URL is never printed');
  }

  const online = await keyward(['audit', 'verify'], { env, cwd: dir });
  assert.equal(online.code, 0, online.stderr);
  assert.match(online.stdout, /^OK: \d+ events, the chain is intact; head [0-9a-f]{64}\n/);
  assert.match(online.stdout, new RegExp(`^Anchor: event ${lastSeq}, [0-9a-f]{64}`, 'm'));

  const offline = await keyward(['audit', 'verify', '--segment', 'first.jsonl'], { cwd: dir });
  assert.equal(offline.code, 0, offline.stderr);
  assert.match(offline.stdout, new RegExp(`events 1–${lastSeq} \\(${lastSeq}\\)`));

  // A second archive, of everything up to now, chains onto the first.
  await signedReads(2);
  await sleep(20);
  const second = await keyward(
    ['audit', 'archive', '--before', new Date().toISOString(), '--to', 'second.jsonl', ...storageArgs()],
    { cwd: dir },
  );
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, new RegExp(`^Archived events ${lastSeq + 1}–`));
  const both = await keyward(['audit', 'verify', '--segment', 'first.jsonl', '--segment', 'second.jsonl'], {
    cwd: dir,
  });
  assert.equal(both.code, 0, both.stderr);
  assert.match(both.stdout, /in 2 segments, the chain is intact from event 0 /);
  const reversed = await keyward(
    ['audit', 'verify', '--segment', 'second.jsonl', '--segment', 'first.jsonl'],
    {
      cwd: dir,
    },
  );
  assert.equal(reversed.code, 1);
  assert.match(reversed.stderr, /^keyward: Segment\.NotContiguous: /);

  const again = await keyward(
    ['audit', 'archive', '--before', cut, '--to', 'first.jsonl', ...storageArgs()],
    { cwd: dir },
  );
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^keyward: Archive\.TargetExists: /);

  const file = join(dir, 'first.jsonl');
  const lines = (await readFile(file, 'utf8')).split('\n');
  lines[3] = (lines[3] ?? '').replace(/"actor":"[^"]*"/, '"actor":"user/someone-else"');
  await writeFile(file, lines.join('\n'));
  const broken = await keyward(['audit', 'verify', '--segment', 'first.jsonl'], { cwd: dir });
  assert.equal(broken.code, 1);
  assert.match(broken.stdout, /^BROKEN at event 3: /);
  assert.match(broken.stderr, /^keyward: Segment\.Broken: .*event 3: its content does not match its hash/);

  const still = await keyward(['audit', 'verify'], { env, cwd: dir });
  assert.equal(still.code, 0, still.stderr);
});

test('an archive with no storage to open says which code and where it looked', async () => {
  const missing = join(dir, 'no-data-dir');
  const r = await keyward(
    ['audit', 'archive', '--before', '2026-01-01', '--to', 'x.jsonl', '--data-dir', missing],
    {
      cwd: dir,
    },
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^keyward: Archive\.DataDirNotFound: no data directory at /);
  const bad = await keyward(['audit', 'archive', '--before', 'last tuesday', '--to', 'x.jsonl'], {
    cwd: dir,
  });
  assert.equal(bad.code, 2);
});
