#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's own test runner, on each storage engine:
// the files on the embedded SQLite, and every file that touches storage again on a real PostgreSQL
// cluster this script starts for the run (initdb + pg_ctl as the postgres OS user, 127.0.0.1 and a free
// port; test/helpers/postgres.ts) and removes afterwards. One suite, a dialect loop
// (test/helpers/database.ts).
//
// The two passes run at the same time, each `node --test` with two files at once: a test spends much of
// its time waiting (for sshd, an agent, a browser, a timer), and one pass of two files at a time used about
// 1.1 of a 2-core machine's cores. Three files at a time in each pass was slower still and timed a file out
// on such a machine. The SQLite pass prints as it goes; the PostgreSQL pass's output is kept
// until the SQLite pass ends, then printed, so each pass reads as one block. Each pass ends with its time.
// The files known to take longest start first (LONGEST below), so that no long file starts last and runs
// alone.
//
// The file list is built here so the command behaves the same on every Node version >= 20
// (directory and glob arguments to `node --test` changed meaning between versions).
// Extra arguments are passed through: `npm test -- --test-name-pattern=quota`. `--with-lint` (what `npm test`
// gives) runs `npm run lint` alongside the tests and fails the run if it fails: its CPU then overlaps the
// tests' waiting instead of coming before them.
// KEYWARD_TEST_ENGINES=sqlite (or postgres) runs one engine only; KEYWARD_TEST_CONCURRENCY=N runs N files
// at once in each pass (default 2).
import { spawn } from 'node:child_process';
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

/**
 * The files that take longest, longest first, as measured on a 2-core machine (each file alone, two at a
 * time). They start first, so that no long file starts last and runs alone at the end; a file missing from
 * the list only starts later.
 */
const LONGEST = [
  'logon-e2e',
  'cli',
  'console-browser',
  'openssh-matrix',
  'replicas',
  'tunnel-access',
  'tunnel-tools',
  'session-recording-replicas',
  'session-recording',
  'migrate-storage',
  'terminal-revocation',
  'agent-resilience',
  'host-addresses',
  'tunnel-netns',
  'ws-keepalive',
  'instances-cli',
  'agent-restart-revoke',
  'host-trust',
  'logon-used',
  'agent-e2e',
  'agent-install',
  'ssh-fdpass',
].map((name) => `/${name}.test.js`);

/** The longest files first, then end-to-end files (dist/test) before unit files, the largest first. */
function longestFirst(list) {
  const rank = (f) => {
    const i = LONGEST.findIndex((suffix) => f.endsWith(suffix));
    return i === -1 ? LONGEST.length : i;
  };
  const size = new Map(list.map((f) => [f, statSync(f).size]));
  const e2e = (f) => (f.startsWith('dist/test/') ? 0 : 1);
  return [...list].sort(
    (a, b) => rank(a) - rank(b) || e2e(a) - e2e(b) || size.get(b) - size.get(a) || a.localeCompare(b),
  );
}

const roots = ['dist/src', 'dist/test'];
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const withLint = process.argv.includes('--with-lint');
const flags = process.argv.slice(2).filter((a) => a.startsWith('--') && a !== '--with-lint');
const files = longestFirst(only.length > 0 ? only : roots.flatMap((r) => findTests(r)));
if (files.length === 0) {
  console.error('No compiled test files found: run `npm run build` first.');
  process.exit(1);
}
const engines = (process.env.KEYWARD_TEST_ENGINES ?? 'sqlite,postgres').split(',');
const concurrency = Number(process.env.KEYWARD_TEST_CONCURRENCY ?? '2');
if (!Number.isInteger(concurrency) || concurrency < 1) {
  console.error(
    `KEYWARD_TEST_CONCURRENCY must be a whole number ≥ 1 (got ${process.env.KEYWARD_TEST_CONCURRENCY}).`,
  );
  process.exit(1);
}

// Files that start PostgreSQL clusters of their own (several replicas, restarts) and files about the
// SQLite file itself (marked `keyward-test: sqlite only`) run in the SQLite pass only. Files about outside
// tools where storage only holds the fixture's account (OpenSSH releases and tools, network namespaces, the
// agent's installer: marked `keyward-test: one engine`; what they store is stored by other files on both
// engines) run once: in the PostgreSQL pass when both engines run, which evens the two passes out (the
// SQLite pass has every other file), else in the one that runs.
const bothEngines = engines.includes('sqlite') && engines.includes('postgres');
const text = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
const oneEngine = (f) => /keyward-test: one engine/.test(text.get(f));
const sqliteFiles = bothEngines ? files.filter((f) => !oneEngine(f)) : files;
const postgresFiles = files.filter(
  (f) =>
    (bothEngines && oneEngine(f)) ||
    (TOUCHES_STORAGE.test(text.get(f)) &&
      !/startReplicaSet|startPostgresCluster|keyward-test: (?:sqlite only|one engine)/.test(text.get(f))),
);

/**
 * Starts `command` as the job `title`. With `live`, its output goes straight to this process's; otherwise
 * it is kept until `release()` is called, then printed and followed live. Resolves with its exit status.
 */
function startJob(title, command, args, env, live) {
  const started = Date.now();
  const held = [];
  let holding = !live;
  const write = (stream, chunk) => {
    if (holding) held.push([stream, chunk]);
    else stream.write(chunk);
  };
  write(process.stdout, `== ${title}\n`);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  child.stdout.on('data', (chunk) => write(process.stdout, chunk));
  child.stderr.on('data', (chunk) => write(process.stderr, chunk));
  const done = new Promise((resolve) => {
    child.on('error', (err) => {
      write(process.stderr, `${command}: ${err.message}\n`);
    });
    child.on('close', (code, signal) => {
      const status = code ?? 1;
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      const outcome = status === 0 ? 'passed' : `FAILED (exit ${String(code ?? signal)})`;
      write(process.stdout, `== ${title}: ${outcome} in ${seconds} s\n`);
      resolve(status);
    });
  });
  const release = () => {
    holding = false;
    for (const [stream, chunk] of held.splice(0)) stream.write(chunk);
  };
  return { done, release };
}

/** One engine's pass: `node --test` over `list`. */
function startPass(name, list, env, live) {
  // --test-timeout bounds each file as well as each test: a file of several multi-replica tests takes well
  // over two minutes on a busy 2-core machine, so the bound is five minutes (a hung test still ends the run).
  return startJob(
    `tests on ${name} (${String(list.length)} files, ${String(concurrency)} at a time)`,
    process.execPath,
    ['--test', `--test-concurrency=${String(concurrency)}`, '--test-timeout=300000', ...flags, ...list],
    env,
    live,
  );
}

let cluster;
if (engines.includes('postgres') && postgresFiles.length > 0) {
  const { startPostgresCluster } = await import('../dist/test/helpers/postgres.js');
  try {
    cluster = await startPostgresCluster();
  } catch (err) {
    console.error(`Cannot start PostgreSQL for the tests: ${err.message}`);
    process.exit(1);
  }
}

let status = 0;
try {
  // `--with-lint` (npm test): eslint and prettier run alongside the tests, their output shown after them.
  const lint = withLint
    ? startJob('lint (alongside the tests)', 'npm', ['run', '--silent', 'lint'], {}, false)
    : undefined;
  const runSqlite = engines.includes('sqlite');
  // `node --test` with no file runs every test it finds: a pass with no file to run is not started.
  const sqlite =
    runSqlite && sqliteFiles.length > 0
      ? startPass('SQLite', sqliteFiles, { KEYWARD_TEST_ENGINE: 'sqlite' }, true)
      : undefined;
  const postgres =
    cluster === undefined
      ? undefined
      : startPass(
          'PostgreSQL (files that touch storage, and the one-engine files)',
          postgresFiles,
          { KEYWARD_TEST_ENGINE: 'postgres', KEYWARD_TEST_POSTGRES_URL: cluster.adminUrl },
          sqlite === undefined,
        );
  if (sqlite !== undefined) status = await sqlite.done;
  if (postgres !== undefined) {
    postgres.release();
    const pgStatus = await postgres.done;
    if (status === 0) status = pgStatus;
  }
  if (lint !== undefined) {
    lint.release();
    const lintStatus = await lint.done;
    if (status === 0) status = lintStatus;
  }
} finally {
  cluster?.destroy();
}
process.exit(status);
