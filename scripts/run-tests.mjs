#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's own test runner, on each storage engine:
// first on the embedded SQLite, then every file that touches storage again on a real PostgreSQL cluster
// this script starts for the run (initdb + pg_ctl as the postgres OS user, 127.0.0.1 and a free port;
// test/helpers/postgres.ts) and removes afterwards. One suite, a dialect loop (test/helpers/database.ts).
// The file list is built here so the command behaves the same on every Node version >= 20
// (directory and glob arguments to `node --test` changed meaning between versions).
// Extra arguments are passed through: `npm test -- --test-name-pattern=quota`.
// KEYWARD_TEST_ENGINES=sqlite (or postgres) runs one engine only.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

/** Files whose tests reach storage: a server, a repository, or the test database helper. */
const TOUCHES_STORAGE =
  /startInProcessServer|startChildServer|openTestDatabase|startServer\(|helpers\/(server|database|logon-fixture|console-fixture|host-trust)\.js/;

const roots = ['dist/src', 'dist/test'];
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const files = (only.length > 0 ? only : roots.flatMap((r) => findTests(r))).sort();
if (files.length === 0) {
  console.error('No compiled test files found: run `npm run build` first.');
  process.exit(1);
}
const engines = (process.env.KEYWARD_TEST_ENGINES ?? 'sqlite,postgres').split(',');

// --test-timeout bounds each file as well as each test: a file of several multi-replica tests takes well
// over two minutes on a busy 2-core machine, so the bound is five minutes (a hung test still ends the run).
function run(list, env) {
  const result = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=2', '--test-timeout=300000', ...flags, ...list],
    { stdio: 'inherit', env: { ...process.env, ...env } },
  );
  return result.status ?? 1;
}

let status = 0;
if (engines.includes('sqlite')) {
  console.log(`== tests on SQLite (${files.length} files)`);
  status = run(files, { KEYWARD_TEST_ENGINE: 'sqlite' });
}
if (engines.includes('postgres')) {
  // Files that start PostgreSQL clusters of their own (several replicas, restarts), files about the
  // SQLite file itself (marked `keyward-test: sqlite only`), and files about outside tools where storage
  // only holds the fixture's account (OpenSSH releases and tools, network namespaces, the agent's
  // installer: marked `keyward-test: one engine`; what they store is stored by other files on both
  // engines), ran in the first pass.
  const storageFiles = files.filter((f) => {
    const text = readFileSync(f, 'utf8');
    return (
      TOUCHES_STORAGE.test(text) &&
      !/startReplicaSet|startPostgresCluster|keyward-test: (?:sqlite only|one engine)/.test(text)
    );
  });
  console.log(`== tests on PostgreSQL (${storageFiles.length} files that touch storage)`);
  // `node --test` with no file runs every test it finds: with none to run here, run none.
  if (storageFiles.length === 0) process.exit(status);
  const { startPostgresCluster } = await import('../dist/test/helpers/postgres.js');
  let cluster;
  try {
    cluster = await startPostgresCluster();
  } catch (err) {
    console.error(`Cannot start PostgreSQL for the tests: ${err.message}`);
    process.exit(1);
  }
  try {
    const pgStatus = run(storageFiles, {
      KEYWARD_TEST_ENGINE: 'postgres',
      KEYWARD_TEST_POSTGRES_URL: cluster.adminUrl,
    });
    if (status === 0) status = pgStatus;
  } finally {
    cluster.destroy();
  }
}
process.exit(status);
