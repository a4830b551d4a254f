/**
 * Crash and concurrency safety of the authorized_keys writer, in real processes: a writer killed with
 * SIGKILL at random moments always leaves the old or the new file (never a partial one) and its temp
 * files are cleaned by the next apply; an edit another process makes while Keyward writes is never lost.
 * Runs on a temp "home" owned by root, so no OS user and no sshd are needed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { applyAuthorizedKeys } from '../src/agent/host/authorized-keys.js';
import type { OsAccount } from '../src/agent/host/os-account.js';
import { newEd25519OpenSsh, runOk } from './helpers/tools.js';
import { repoRoot } from './helpers/repo-root.js';

const KILLS = 50;
const TEMP_PATTERN = /^\.authorized_keys\.keyward-[0-9a-f]{16}\.tmp$/;
const moduleUrl = pathToFileURL(join(repoRoot(), 'dist/src/agent/host/authorized-keys.js')).href;

/** The writer: binds A, binds B, unbinds, forever; prints `ready` once it is loaded. */
const WRITER = `
const { applyAuthorizedKeys } = await import(process.argv[1]);
const account = JSON.parse(process.argv[2]);
const states = JSON.parse(process.argv[3]);
process.stdout.write('ready\\n');
for (let i = 0; ; i++) {
  const r = await applyAuthorizedKeys(account, states[i % states.length]);
  if (!r.ok) { process.stderr.write(JSON.stringify(r)); process.exit(3); }
}`;

let home: string;
let account: OsAccount;
const userContent = Buffer.from(
  `# my keys\r\nfrom="10.0.0.0/8" ${newEd25519OpenSsh()} work\r\n\n${newEd25519OpenSsh()} home`,
);
const keyA = { keyPairName: 'kp-a', publicKey: newEd25519OpenSsh() };
const keyB = { keyPairName: 'kp-b', publicKey: newEd25519OpenSsh() };
const managed = (b: typeof keyA): string => `${b.publicKey} keyward-managed:${b.keyPairName}\n`;

const sshDir = (): string => join(home, '.ssh');
const akPath = (): string => join(sshDir(), 'authorized_keys');
const temps = async (): Promise<string[]> => (await readdir(sshDir())).filter((n) => TEMP_PATTERN.test(n));

async function resetFile(content: Buffer): Promise<void> {
  await rm(sshDir(), { recursive: true, force: true });
  await mkdir(sshDir(), { mode: 0o700 });
  await writeFile(akPath(), content, { mode: 0o600 });
}

/** Appends `line` to `file` from a separate node process, as an editor or `echo >>` would. */
async function appendFromAnotherProcess(file: string, line: string): Promise<void> {
  await runOk(process.execPath, [
    '-e',
    'require("node:fs").appendFileSync(process.argv[1], process.argv[2])',
    file,
    line,
  ]);
}

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'kw-home-'));
  account = { name: 'root', uid: 0, gid: 0, home };
});

after(async () => {
  await rm(home, { recursive: true, force: true });
});

test('a writer killed at random moments leaves the old or the new file, and the next apply removes its temp files', async (t) => {
  await resetFile(userContent);
  const valid = [userContent, Buffer.from(managed(keyA) + userContent.toString('latin1'), 'latin1')];
  valid.push(Buffer.from(managed(keyB) + userContent.toString('latin1'), 'latin1'));
  let tempsLeft = 0;
  for (let i = 0; i < KILLS; i++) {
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        WRITER,
        moduleUrl,
        JSON.stringify(account),
        JSON.stringify([keyA, keyB, null]),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit');
    await once(child.stdout, 'data');
    await sleep(Math.random() * 20);
    child.kill('SIGKILL');
    const [code, signal] = (await exited) as [number | null, string | null];
    assert.equal(signal, 'SIGKILL', `writer exited on its own (${String(code)}): ${stderr}`);

    const bytes = await readFile(akPath());
    assert.ok(
      valid.some((v) => v.equals(bytes)),
      `kill ${i}: authorized_keys is neither old nor new:\n${bytes.toString('latin1')}`,
    );
    tempsLeft += (await temps()).length;
    // The next apply (whichever way) must succeed and leave no temp file.
    const r = await applyAuthorizedKeys(account, bytes.equals(userContent) ? keyA : null);
    assert.equal(r.ok, true);
    assert.deepEqual(await temps(), []);
  }
  t.diagnostic(`${KILLS} kills left ${tempsLeft} temp files behind, all removed by the next apply`);
  assert.equal((await applyAuthorizedKeys(account, null)).ok, true);
  assert.deepEqual(await readFile(akPath()), userContent);
});

test('lines another process appends while Keyward writes are kept: the write starts over', async () => {
  const base = Buffer.from(`${userContent.toString('latin1')}\n`, 'latin1');
  await resetFile(base);
  const appended: string[] = [];
  const r = await applyAuthorizedKeys(account, keyA, {
    beforeSwap: async (attempt) => {
      if (attempt > 2) return;
      const line = `${newEd25519OpenSsh()} appended-${attempt}\n`;
      appended.push(line);
      await appendFromAnotherProcess(akPath(), line);
    },
  });
  assert.equal(r.ok, true);
  assert.equal(
    (await readFile(akPath())).toString('latin1'),
    managed(keyA) + base.toString('latin1') + appended.join(''),
  );
  assert.deepEqual(await temps(), []);
});

test('an append whose write reaches the replaced file just after the swap is merged back, with later appends', async () => {
  const base = Buffer.from(`${userContent.toString('latin1')}\n`, 'latin1');
  await resetFile(base);
  const lateLine = `${newEd25519OpenSsh()} written-during-the-swap\n`;
  const laterLine = `${newEd25519OpenSsh()} appended-after-the-swap\n`;
  let fd: number | null = null;
  const r = await applyAuthorizedKeys(account, keyA, {
    // Like `echo … >> authorized_keys` from another process: open before the rename, write after it.
    beforeSwap: async (attempt) => {
      if (attempt === 1) fd = openSync(akPath(), 'a');
      // The merge round's swap finds the file Keyward wrote appended to as well.
      if (attempt === 2) await appendFromAnotherProcess(akPath(), laterLine);
    },
    afterSwap: (attempt) => {
      if (attempt !== 1 || fd === null) return;
      writeSync(fd, lateLine);
      closeSync(fd);
    },
  });
  assert.equal(r.ok, true);
  assert.equal(
    (await readFile(akPath())).toString('latin1'),
    managed(keyA) + base.toString('latin1') + lateLine + laterLine,
  );
  assert.deepEqual(await temps(), []);
});

test('an in-place rewrite caught half done during the swap is not merged: the user lines stay and a warning says so', async () => {
  const base = Buffer.from(`${userContent.toString('latin1')}\n`, 'latin1');
  await resetFile(base);
  let fd: number | null = null;
  const r = await applyAuthorizedKeys(account, keyA, {
    beforeSwap: async (attempt) => {
      if (attempt === 1) fd = openSync(akPath(), 'r+');
      await Promise.resolve();
    },
    // An editor that truncates and rewrites in place, caught half done.
    afterSwap: (attempt) => {
      if (attempt !== 1 || fd === null) return;
      ftruncateSync(fd, 0);
      writeSync(fd, '# half');
      closeSync(fd);
    },
  });
  assert.equal(r.ok && r.warning !== undefined, true);
  assert.equal((await readFile(akPath())).toString('latin1'), managed(keyA) + base.toString('latin1'));
  assert.deepEqual(await temps(), []);
});

test('a file that changes on every attempt is reported as Host.AuthorizedKeysBusy with every edit kept', async () => {
  const base = Buffer.from(`${userContent.toString('latin1')}\n`, 'latin1');
  await resetFile(base);
  const appended: string[] = [];
  const r = await applyAuthorizedKeys(account, keyA, {
    maxAttempts: 4,
    beforeSwap: async (attempt) => {
      const line = `${newEd25519OpenSsh()} appended-${attempt}\n`;
      appended.push(line);
      await appendFromAnotherProcess(akPath(), line);
    },
  });
  assert.equal(r.ok, false);
  assert.equal(r.ok ? '' : r.code, 'Host.AuthorizedKeysBusy');
  assert.equal((await readFile(akPath())).toString('latin1'), base.toString('latin1') + appended.join(''));
  assert.deepEqual(await temps(), []);
});
