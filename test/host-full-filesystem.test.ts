/**
 * HostBinder when the login user's ~/.ssh is on a full file system: a tiny tmpfs is mounted on ~/.ssh and
 * filled to ENOSPC, and every apply (bind, rebind, unbind) is reported as Host.AuthorizedKeysUnwritable
 * naming ENOSPC, with authorized_keys byte for byte as it was, sshd's password setting unchanged and no
 * temp file left behind. Needs root with CAP_SYS_ADMIN (mount); it never skips.
 */
import assert from 'node:assert/strict';
import { chown, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HostBinder, type HostApplyResult } from '../src/agent/host/index.js';
import {
  createThrowawayUser,
  effectiveSetting,
  requireHostTools,
  sshEcho,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';
import { newEd25519OpenSsh, run, sshKeygen, type SshKeygenKey } from './helpers/tools.js';

let sshd: PrivateSshd | undefined;
let user: ThrowawayUser | undefined;
let keysDir: string | undefined;
let mounted: string | undefined;
let keyA: SshKeygenKey;
let keyB: SshKeygenKey;
let binder: HostBinder;
let userContent: Buffer;

const sshDir = (): string => join(user?.home ?? '/nonexistent', '.ssh');
const akPath = (): string => join(sshDir(), 'authorized_keys');
const FILLER = 'filler';

/** Mounts a 16 KiB tmpfs on `dir` owned by the user, mode 0700 (as sshd's StrictModes wants ~/.ssh). */
async function mountTinyTmpfs(dir: string, owner: ThrowawayUser): Promise<void> {
  const r = await run('/usr/bin/mount', [
    '-t',
    'tmpfs',
    '-o',
    `size=16k,mode=0700,uid=${owner.uid},gid=${owner.gid}`,
    'tmpfs',
    dir,
  ]);
  if (r.code !== 0) {
    const denied = /permission denied|operation not permitted|must be superuser|EPERM/i.test(r.stderr);
    throw new Error(
      (denied
        ? 'this test needs root with CAP_SYS_ADMIN to mount a tmpfs (mount was refused: EPERM). '
        : `mount -t tmpfs on ${dir} failed (exit ${r.code}). `) + r.stderr.trim(),
    );
  }
  mounted = dir;
}

/** Unmounts, falling back to a lazy unmount so cleanup never leaves the tmpfs behind. */
async function unmount(): Promise<void> {
  const dir = mounted;
  if (dir === undefined) return;
  mounted = undefined;
  if ((await run('/usr/bin/umount', [dir])).code === 0) return;
  const lazy = await run('/usr/bin/umount', ['-l', dir]);
  if (lazy.code !== 0) throw new Error(`could not unmount ${dir}: ${lazy.stderr}`);
}

/** Appends to `FILLER` in ~/.ssh until the file system answers ENOSPC. */
async function fill(): Promise<void> {
  const fh = await open(join(sshDir(), FILLER), 'a');
  const chunk = Buffer.alloc(1024, 0x78);
  try {
    for (let i = 0; i < 1024; i++) {
      try {
        await fh.write(chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw err;
      }
    }
  } finally {
    await fh.close();
  }
  throw new Error('the 16 KiB tmpfs never filled up');
}

function assertUnwritable(r: HostApplyResult): void {
  assert.equal(r.ok, false, 'the apply must fail on a full file system');
  assert.equal(r.code, 'Host.AuthorizedKeysUnwritable', r.message);
  assert.match(r.message ?? '', /ENOSPC/);
  assert.ok((r.message ?? '').includes(akPath()), `the message names the file: ${r.message ?? ''}`);
}

/** Only the user's file and the filler: no temp file of Keyward's. */
async function assertNoTemps(): Promise<void> {
  assert.deepEqual((await readdir(sshDir())).sort(), ['authorized_keys', FILLER]);
}

before(async () => {
  requireHostTools();
  keysDir = await mkdtemp(join(tmpdir(), 'kw-enospc-keys-'));
  [keyA, keyB] = await Promise.all([sshKeygen(keysDir, 'a', 'ed25519'), sshKeygen(keysDir, 'b', 'ed25519')]);
  [sshd, user] = await Promise.all([startPrivateSshd(), createThrowawayUser()]);
  binder = new HostBinder({ loginUser: user.name, sshd: sshd.target });
  userContent = Buffer.from(
    `# keys of ${user.name}\r\nno-pty ${newEd25519OpenSsh()} laptop\r\n\n   # indented\n${newEd25519OpenSsh()} ci`,
  );
  await mkdir(sshDir(), { mode: 0o700 });
  await mountTinyTmpfs(sshDir(), user);
});

after(async () => {
  try {
    await unmount();
  } finally {
    await sshd?.stop();
    await user?.remove();
    if (keysDir !== undefined) await rm(keysDir, { recursive: true, force: true });
  }
});

async function resetUserFile(): Promise<void> {
  await rm(join(sshDir(), FILLER), { force: true });
  await writeFile(akPath(), userContent, { mode: 0o600 });
  assert.ok(user);
  await chown(akPath(), user.uid, user.gid);
}

test('binding on a full ~/.ssh fails with Host.AuthorizedKeysUnwritable (ENOSPC), changing nothing', async () => {
  assert.ok(sshd && user);
  await resetUserFile();
  await fill();
  const before = await stat(akPath());
  assertUnwritable(await binder.apply({ keyPairName: 'kp-a', publicKey: keyA.openssh }));
  assert.deepEqual(await readFile(akPath()), userContent);
  assert.equal((await stat(akPath())).ino, before.ino, 'the file was not replaced');
  // Password logons went off for a moment and were put back: sshd's setting is its own again.
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'yes');
  assert.deepEqual(await readdir(sshd.dropInDir), []);
  await assertNoTemps();
  const login = await sshEcho(sshd.port, user.name, keyA.path);
  assert.notEqual(login.code, 0, 'the key that could not be written must not log in');
});

test('with a key bound, rebinding and unbinding on a full ~/.ssh fail with ENOSPC and keep the bound state', async () => {
  assert.ok(sshd && user);
  await resetUserFile();
  const bound = await binder.apply({ keyPairName: 'kp-a', publicKey: keyA.openssh });
  assert.equal(bound.ok, true, bound.message);
  const boundBytes = await readFile(akPath());
  assert.ok(boundBytes.subarray(boundBytes.length - userContent.length).equals(userContent));
  await fill();

  assertUnwritable(await binder.apply({ keyPairName: 'kp-b', publicKey: keyB.openssh }));
  assert.deepEqual(await readFile(akPath()), boundBytes);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');

  assertUnwritable(await binder.apply(null));
  assert.deepEqual(await readFile(akPath()), boundBytes);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');
  await assertNoTemps();
  const login = await sshEcho(sshd.port, user.name, keyA.path);
  assert.equal(login.stdout, 'ok\n', `the bound key still logs in: ${login.stderr}`);

  // Once space is freed the same unbind succeeds and the user's bytes come back exactly.
  await rm(join(sshDir(), FILLER));
  const unbound = await binder.apply(null);
  assert.equal(unbound.ok, true, unbound.message);
  assert.deepEqual(await readFile(akPath()), userContent);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'yes');
});
