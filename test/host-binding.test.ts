/**
 * HostBinder against a real, private sshd and the real ssh client: binding lets the key log on and turns
 * password logons off, unbinding undoes both, and every failure is reported by code with the host left
 * as it was — above all the user's own authorized_keys bytes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chown,
  link,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
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

let sshd: PrivateSshd;
let user: ThrowawayUser;
let keysDir: string;
let keyA: SshKeygenKey;
let keyB: SshKeygenKey;
let own: SshKeygenKey;
let binder: HostBinder;
let userContent: Buffer;

const sshDir = (): string => join(user.home, '.ssh');
const akPath = (): string => join(sshDir(), 'authorized_keys');
const dropIn = (): string => join(sshd.dropInDir, '00-keyward.conf');
const managed = (key: SshKeygenKey, name: string): string => `${key.openssh} keyward-managed:${name}\n`;
const bindA = { keyPairName: 'kp-a', publicKey: '' };

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The user's own file: comments, an options line, CR LF and LF, a blank line, no final newline. */
async function resetUserFile(): Promise<void> {
  await rm(sshDir(), { recursive: true, force: true });
  await mkdir(sshDir(), { mode: 0o700 });
  await chown(sshDir(), user.uid, user.gid);
  await writeFile(akPath(), userContent, { mode: 0o600 });
  await chown(akPath(), user.uid, user.gid);
}

function assertOk(r: HostApplyResult): void {
  assert.equal(r.ok, true, `${r.code ?? ''}: ${r.message ?? ''}`);
}

function assertCode(r: HostApplyResult, code: string): void {
  assert.equal(r.ok, false);
  assert.equal(r.code, code, r.message);
}

async function assertLogsOn(key: SshKeygenKey): Promise<void> {
  const r = await sshEcho(sshd.port, user.name, key.path);
  assert.equal(r.stdout, 'ok\n', `ssh failed (${r.code}): ${r.stderr}\n${sshd.log().slice(-2000)}`);
}

async function assertRefused(key: SshKeygenKey): Promise<void> {
  const r = await sshEcho(sshd.port, user.name, key.path);
  assert.notEqual(r.code, 0);
  assert.notEqual(r.stdout, 'ok\n');
}

/** Nothing changed: the user's bytes, no drop-in, password logons at sshd's default. */
async function assertUntouched(): Promise<void> {
  assert.deepEqual(await readFile(akPath()), userContent);
  assert.equal(await exists(dropIn()), false);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'yes');
}

/** Bind-mounts `dir` read-only over itself; false when mounts are not permitted here. */
async function mountReadOnly(dir: string): Promise<boolean> {
  if ((await run('/usr/bin/mount', ['--bind', dir, dir])).code !== 0) return false;
  if ((await run('/usr/bin/mount', ['-o', 'remount,bind,ro', dir])).code === 0) return true;
  await run('/usr/bin/umount', [dir]);
  return false;
}

/**
 * Makes `file` impossible to replace while its directory stays writable (the temp file can be made but
 * rename over the file fails): chattr +i (EPERM), else a bind mount on it (EBUSY). Returns the undo.
 */
async function pinFile(file: string): Promise<() => Promise<unknown>> {
  if ((await run('/usr/bin/chattr', ['+i', file])).code === 0)
    return () => run('/usr/bin/chattr', ['-i', file]);
  if ((await run('/usr/bin/mount', ['--bind', file, file])).code === 0)
    return () => run('/usr/bin/umount', [file]);
  throw new Error('this test needs chattr on ext2/3/4, xfs or btrfs (e2fsprogs), or CAP_SYS_ADMIN for mount');
}

before(async () => {
  requireHostTools();
  keysDir = await mkdtemp(join(tmpdir(), 'kw-keys-'));
  [keyA, keyB, own] = await Promise.all([
    sshKeygen(keysDir, 'a', 'ed25519'),
    sshKeygen(keysDir, 'b', 'ed25519'),
    sshKeygen(keysDir, 'own', 'ed25519'),
  ]);
  bindA.publicKey = keyA.openssh;
  [sshd, user] = await Promise.all([startPrivateSshd(), createThrowawayUser()]);
  binder = new HostBinder({ loginUser: user.name, sshd: sshd.target });
  userContent = Buffer.from(
    `# keys of ${user.name}\r\n` +
      `no-pty,command="echo restricted" ${newEd25519OpenSsh()} laptop\r\n` +
      '\n' +
      '   # an indented comment\n' +
      `${own.openssh} own-key`,
  );
});

after(async () => {
  await sshd?.stop();
  await user?.remove();
  if (keysDir !== undefined) await rm(keysDir, { recursive: true, force: true });
});

test('binding a key pair lets its holder log on with ssh and turns password logons off', async () => {
  await resetUserFile();
  assertOk(await binder.apply(bindA));
  await assertLogsOn(keyA);
  await assertLogsOn(own);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');
  assert.equal(await effectiveSetting(sshd.configFile, 'kbdinteractiveauthentication'), 'no');
  assert.deepEqual(
    await readFile(akPath()),
    Buffer.concat([Buffer.from(managed(keyA, 'kp-a')), userContent]),
  );
  const st = await stat(akPath());
  assert.deepEqual([st.uid, st.mode & 0o777], [user.uid, 0o600]);
});

test('unbinding refuses the key again, restores password logons and keeps the user lines byte for byte', async () => {
  assertOk(await binder.apply(null));
  await assertRefused(keyA);
  await assertLogsOn(own);
  await assertUntouched();
});

test('a new binding replaces the old key: the old key is refused and the new one logs on', async () => {
  await resetUserFile();
  assertOk(await binder.apply(bindA));
  assertOk(await binder.apply({ keyPairName: 'kp-b', publicKey: keyB.openssh }));
  await assertRefused(keyA);
  await assertLogsOn(keyB);
  assert.deepEqual(
    await readFile(akPath()),
    Buffer.concat([Buffer.from(managed(keyB, 'kp-b')), userContent]),
  );
  assertOk(await binder.apply(null));
  await assertUntouched();
});

test('applying the same binding twice leaves the file as it is', async () => {
  await resetUserFile();
  assertOk(await binder.apply(bindA));
  const first = await stat(akPath());
  assertOk(await binder.apply(bindA));
  assert.equal((await stat(akPath())).ino, first.ino);
  assertOk(await binder.apply(null));
  assertOk(await binder.apply(null));
  await assertUntouched();
});

test('a missing ~/.ssh and authorized_keys are created for the user with the modes sshd requires', async () => {
  await rm(sshDir(), { recursive: true, force: true });
  assertOk(await binder.apply(bindA));
  const dir = await stat(sshDir());
  const file = await stat(akPath());
  assert.deepEqual([dir.uid, dir.gid, dir.mode & 0o777], [user.uid, user.gid, 0o700]);
  assert.deepEqual([file.uid, file.gid, file.mode & 0o777], [user.uid, user.gid, 0o600]);
  await assertLogsOn(keyA);
  assertOk(await binder.apply(null));
  assert.deepEqual(await readFile(akPath()), Buffer.alloc(0));
});

test('an sshd configuration that sshd -t rejects is reported as Host.SshdConfigInvalid and nothing changes', async () => {
  await resetUserFile();
  const broken = join(sshd.dropInDir, '50-broken.conf');
  await writeFile(broken, 'ThisIsNotAnSshdOption yes\n');
  try {
    assertCode(await binder.apply(bindA), 'Host.SshdConfigInvalid');
    assert.deepEqual(await readFile(akPath()), userContent);
    assert.equal(await exists(dropIn()), false);
  } finally {
    await unlink(broken);
  }
  await assertUntouched();
  await assertLogsOn(own);
});

test('an unbind that sshd -t rejects keeps the key bound and password logons off', async () => {
  await resetUserFile();
  assertOk(await binder.apply(bindA));
  const bound = await readFile(akPath());
  const broken = join(sshd.dropInDir, '50-broken.conf');
  await writeFile(broken, 'ThisIsNotAnSshdOption yes\n');
  try {
    assertCode(await binder.apply(null), 'Host.SshdConfigInvalid');
    assert.deepEqual(await readFile(akPath()), bound);
    assert.equal(await exists(dropIn()), true);
    await assertLogsOn(keyA);
  } finally {
    await unlink(broken);
  }
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');
  assertOk(await binder.apply(null));
  await assertUntouched();
});

test('a main configuration without a drop-in Include is reported as Host.SshdDropInNotIncluded', async () => {
  await resetUserFile();
  const text = await readFile(sshd.configFile, 'utf8');
  const noInclude = join(sshd.dir, 'sshd_config.no-include');
  await writeFile(noInclude, text.replace(/^Include .*\n/m, ''));
  const b = new HostBinder({ loginUser: user.name, sshd: { ...sshd.target, configFile: noInclude } });
  assertCode(await b.apply(bindA), 'Host.SshdDropInNotIncluded');
  assertCode(await b.check(), 'Host.SshdDropInNotIncluded');
  assertOk(await b.apply(null));
  await assertUntouched();
});

test('a PasswordAuthentication line above the Include is reported as Host.PasswordSettingOverridden', async () => {
  await resetUserFile();
  const other = await startPrivateSshd({ beforeInclude: ['PasswordAuthentication yes'] });
  try {
    const b = new HostBinder({ loginUser: user.name, sshd: other.target });
    assertCode(await b.apply(bindA), 'Host.PasswordSettingOverridden');
    assert.equal(await exists(join(other.dropInDir, '00-keyward.conf')), false);
    assert.equal(await effectiveSetting(other.configFile, 'passwordauthentication'), 'yes');
  } finally {
    await other.stop();
  }
  await assertUntouched();
});

test('a missing, malformed or stale pid file is reported as Host.SshdNotRunning and nothing changes', async () => {
  await resetUserFile();
  const dead = spawn('/bin/true');
  await new Promise((resolve) => dead.once('exit', resolve));
  const cases: Record<string, string | null> = {
    missing: null,
    malformed: 'sshd\n',
    dead: `${dead.pid ?? 0}\n`,
    // A live process that is not sshd (this test runner): SIGHUP would kill it.
    foreign: `${process.pid}\n`,
  };
  for (const [name, content] of Object.entries(cases)) {
    const pidFile = join(sshd.dir, `${name}.pid`);
    if (content !== null) await writeFile(pidFile, content);
    const b = new HostBinder({ loginUser: user.name, sshd: { ...sshd.target, pidFile } });
    assertCode(await b.apply(bindA), 'Host.SshdNotRunning');
    await assertUntouched();
  }
  // Unbinding cannot reload sshd either: the key line, already removed, is put back.
  assertOk(await binder.apply(bindA));
  const stale = new HostBinder({
    loginUser: user.name,
    sshd: { ...sshd.target, pidFile: join(sshd.dir, 'dead.pid') },
  });
  assertCode(await stale.apply(null), 'Host.SshdNotRunning');
  assert.deepEqual(
    await readFile(akPath()),
    Buffer.concat([Buffer.from(managed(keyA, 'kp-a')), userContent]),
  );
  await assertLogsOn(keyA);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');
  assertOk(await binder.apply(null));
  await assertUntouched();
});

test('a read-only ~/.ssh is reported as Host.AuthorizedKeysUnwritable and nothing is lost', async () => {
  await resetUserFile();
  assertOk(await binder.apply(bindA));
  const bound = await readFile(akPath());
  if (await mountReadOnly(sshDir())) {
    try {
      assertCode(await binder.apply(null), 'Host.AuthorizedKeysUnwritable');
      assertCode(
        await binder.apply({ keyPairName: 'kp-b', publicKey: keyB.openssh }),
        'Host.AuthorizedKeysUnwritable',
      );
      assert.deepEqual(await readFile(akPath()), bound);
      await assertLogsOn(keyA);
      assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');
    } finally {
      await run('/usr/bin/umount', [sshDir()]);
    }
    assertOk(await binder.apply(null));
  } else {
    // No CAP_SYS_ADMIN for a bind mount: a ~/.ssh that is a file cannot be written either.
    assertOk(await binder.apply(null));
    await rename(sshDir(), `${sshDir()}.moved`);
    await writeFile(sshDir(), 'not a directory\n');
    try {
      assertCode(await binder.apply(bindA), 'Host.AuthorizedKeysUnwritable');
      assert.equal(await readFile(sshDir(), 'utf8'), 'not a directory\n');
      assert.equal(await exists(dropIn()), false);
    } finally {
      await unlink(sshDir());
      await rename(`${sshDir()}.moved`, sshDir());
    }
  }
  await assertUntouched();
});

test('when the key line cannot be written after password logons went off, they are turned back on', async () => {
  await resetUserFile();
  const unpin = await pinFile(akPath());
  try {
    assertCode(await binder.apply(bindA), 'Host.AuthorizedKeysUnwritable');
  } finally {
    await unpin();
  }
  await assertUntouched();
  await assertRefused(keyA);
});

test('a symlinked ~/.ssh or authorized_keys is refused with Host.AuthorizedKeysUnsafe', async () => {
  await resetUserFile();
  const elsewhere = join(user.home, 'elsewhere');
  await rename(sshDir(), elsewhere);
  await symlink(elsewhere, sshDir());
  try {
    assertCode(await binder.apply(bindA), 'Host.AuthorizedKeysUnsafe');
    assert.deepEqual(await readFile(join(elsewhere, 'authorized_keys')), userContent);
  } finally {
    await unlink(sshDir());
    await rename(elsewhere, sshDir());
  }
  const target = join(keysDir, 'victim');
  await writeFile(target, 'victim\n');
  await rename(akPath(), `${akPath()}.real`);
  await symlink(target, akPath());
  try {
    assertCode(await binder.apply(bindA), 'Host.AuthorizedKeysUnsafe');
    assertCode(await binder.apply(null), 'Host.AuthorizedKeysUnsafe');
    assert.equal(await readFile(target, 'utf8'), 'victim\n');
  } finally {
    await unlink(akPath());
    await rename(`${akPath()}.real`, akPath());
  }
  await link(akPath(), join(sshDir(), 'hard-link'));
  try {
    assertCode(await binder.apply(bindA), 'Host.AuthorizedKeysUnsafe');
  } finally {
    await unlink(join(sshDir(), 'hard-link'));
  }
  await assertUntouched();
});

test('a drop-in file of the same name that Keyward did not write is never replaced or removed', async () => {
  await resetUserFile();
  await writeFile(dropIn(), '# someone else\nPermitRootLogin no\n');
  try {
    assertCode(await binder.apply(bindA), 'Host.SshdDropInConflict');
    assertOk(await binder.apply(null));
    assert.equal(await readFile(dropIn(), 'utf8'), '# someone else\nPermitRootLogin no\n');
    assert.deepEqual(await readFile(akPath()), userContent);
  } finally {
    await unlink(dropIn());
  }
});

test('a binding with options, extra lines, an unknown key type or a bad name is refused with Host.BindingInvalid', async () => {
  await resetUserFile();
  const bad = [
    { keyPairName: 'kp-a', publicKey: `command="sh" ${keyA.openssh}` },
    { keyPairName: 'kp-a', publicKey: `${keyA.openssh}\n${keyB.openssh}` },
    { keyPairName: 'kp-a', publicKey: `${keyA.openssh} comment` },
    { keyPairName: 'kp-a', publicKey: keyA.openssh.replace('ssh-ed25519', 'ssh-rsa') },
    { keyPairName: 'kp a', publicKey: keyA.openssh },
    { keyPairName: 'kp-a\nssh-ed25519', publicKey: keyA.openssh },
  ];
  for (const binding of bad) assertCode(await binder.apply(binding), 'Host.BindingInvalid');
  await assertUntouched();
});

test('an unknown login user is reported as Host.UserUnknown', async () => {
  const b = new HostBinder({ loginUser: 'kwtest-nobody-here', sshd: sshd.target });
  assertCode(await b.apply(bindA), 'Host.UserUnknown');
  assertCode(await b.check(), 'Host.UserUnknown');
});

test('check passes on a manageable sshd and describeSshd reports its port and host key', async () => {
  assertOk(await binder.check());
  assert.deepEqual(await binder.describeSshd(), {
    port: sshd.port,
    hostKeys: [sshd.hostKeyPub.split(' ').slice(0, 2).join(' ')],
    // Debian 12's `sshd -V` says OpenSSH_9.2.
    opensshVersion: '9.2',
  });
});
