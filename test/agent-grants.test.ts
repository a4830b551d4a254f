/**
 * The agent's side of one-time logons, with real parts: the GrantKeeper over a real grant directory under
 * /run, the helper script run by the real /bin/sh, and the sshd drop-in installed against a private sshd
 * (`sshd -t`, `sshd -T`, SIGHUP). Grants are signed with a real Ed25519 key; forged, tampered, expired,
 * replayed, misdirected and hostile ones are refused before anything touches the disk.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import {
  AgentProtocolError,
  grantSigningInput,
  parseServerMessage,
  type LogonGrant,
} from '../src/agent-channel/index.js';
import {
  grantFileFingerprint,
  GrantKeeper,
  GrantStore,
  helperScript,
  LOGON_DROP_IN_NAME,
  prepareLogonHost,
  type GrantKeeperDeps,
  type GrantReportMessage,
} from '../src/agent/logon/index.js';
import { ed25519PublicKeyLine } from '../src/keypairs/openssh-private-key.js';
import { effectiveSetting, startPrivateSshd } from './helpers/sshd.js';

/** Debian 12's sshd (9.2): one-time key lines carry expiry-time in UTC. */
const READY = { ok: true, expiryTime: { form: 'utc' }, opensshVersion: '9.2' };
const INSTANCE = 'i-aaaaaaaaaaaaaaaaaaaa';
const signing = generateKeyPairSync('ed25519');
let root: string;

before(async () => {
  // Root-owned and not group/world-writable, as sshd demands of the helper's directories: not /tmp.
  root = join('/run', `kw-grants-test-${randomBytes(4).toString('hex')}`);
  await mkdir(root, { mode: 0o755 });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let seq = 0;
function grant(overrides: Partial<LogonGrant> = {}, nowS = Math.floor(Date.now() / 1000)): LogonGrant {
  seq++;
  return {
    grantId: `lg-${String(seq).padStart(20, '0')}`,
    instanceId: INSTANCE,
    osUser: 'root',
    publicKey: ed25519PublicKeyLine(generateKeyPairSync('ed25519').privateKey),
    issuedAt: nowS,
    expiresAt: nowS + 60,
    requestId: 'REQ-1',
    caller: 'user/alice',
    sourceAddresses: [],
    portForwarding: false,
    ...overrides,
  };
}

function signed(g: LogonGrant, key: KeyObject = signing.privateKey): string {
  return sign(null, grantSigningInput(g), key).toString('base64');
}

function keeper(dir: string, overrides: Partial<GrantKeeperDeps> = {}) {
  const sent: Array<GrantReportMessage & Record<string, unknown>> = [];
  const k = new GrantKeeper({
    store: new GrantStore(dir),
    instanceId: INSTANCE,
    signingKey: signing.publicKey,
    logger: pino({ level: 'silent' }),
    nowMs: () => Date.now(),
    userExists: (name) => Promise.resolve(name === 'root'),
    send: (m) => {
      sent.push({ ...m });
    },
    ...overrides,
  });
  return { k, sent };
}

function freshDir(): string {
  return join(root, `grants-${randomBytes(3).toString('hex')}`);
}

test('a signed grant is stored for the helper with restrict,pty and its expiry, and reported installed', async () => {
  const dir = freshDir();
  const { k, sent } = keeper(dir);
  await k.start({ ok: true });
  try {
    const g = grant({ sourceAddresses: ['10.0.0.5', '192.168.0.0/24'] });
    await k.handle(g, signed(g));
    assert.deepEqual(sent[0], {
      t: 'grant-result',
      grantId: g.grantId,
      ok: true,
      hostExpiresAt: g.expiresAt,
    });
    const files = await readdir(join(dir, 'root'));
    assert.equal(files.length, 1);
    assert.ok(
      (files[0] ?? '').startsWith(
        `${String(g.expiresAt)}-${g.grantId}-${grantFileFingerprint(g.publicKey)}~`,
      ),
      files[0],
    );
    // The expiry on this boot's uptime clock, rounded down, and the boot it counts in.
    const [, until, boot] = /~(\d+)~([0-9a-f-]{36})\.key$/.exec(files[0] ?? '') ?? [];
    const upNow = Number((await readFile('/proc/uptime', 'latin1')).split(' ')[0]);
    assert.ok(
      Number(until) <= upNow + (g.expiresAt - Date.now() / 1000) + 1,
      `${String(until)} vs ${String(upNow)}`,
    );
    assert.ok(Number(until) > upNow + 50, 'a minute ahead, less the test so far');
    assert.equal(boot, (await readFile('/proc/sys/kernel/random/boot_id', 'latin1')).trim());
    const line = await readFile(join(dir, 'root', files[0] ?? ''), 'utf8');
    const expiry = new Date(g.expiresAt * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
    assert.equal(
      line,
      `restrict,pty,expiry-time="${expiry}Z",from="10.0.0.5,192.168.0.0/24" ${g.publicKey} keyward-grant:${g.grantId}\n`,
    );
    // Readable by the helper's unprivileged user, writable by root only.
    const { mode } = await stat(join(dir, 'root', files[0] ?? ''));
    assert.equal(mode & 0o777, 0o644);
    await k.revoke(g.grantId);
    assert.deepEqual(sent[1], { t: 'grant-removed', grantId: g.grantId, reason: 'revoked' });
    // Port forwarding only when the signed grant says so.
    const tunnel = grant({ portForwarding: true });
    await k.handle(tunnel, signed(tunnel));
    const [tunnelFile] = await readdir(join(dir, 'root'));
    assert.match(
      await readFile(join(dir, 'root', tunnelFile ?? ''), 'utf8'),
      /^restrict,pty,port-forwarding,expiry-time="\d{14}Z" /,
    );
    await k.revoke(tunnel.grantId);
    assert.equal(existsSync(join(dir, 'root')), false, 'the empty user directory is removed');
  } finally {
    k.stop();
  }
});

test('forged, tampered, misdirected, expired, replayed and unknown-user grants are refused and never stored', async () => {
  const dir = freshDir();
  const { k, sent } = keeper(dir);
  await k.start({ ok: true });
  try {
    const cases: Array<[string, LogonGrant, string]> = [];
    const forged = grant();
    cases.push([
      'Host.GrantSignatureInvalid',
      forged,
      signed(forged, generateKeyPairSync('ed25519').privateKey),
    ]);
    const original = grant();
    cases.push(['Host.GrantSignatureInvalid', { ...original, osUser: 'admin' }, signed(original)]);
    cases.push([
      'Host.GrantSignatureInvalid',
      { ...original, expiresAt: original.expiresAt + 200 },
      signed(original),
    ]);
    cases.push(['Host.GrantSignatureInvalid', { ...original, portForwarding: true }, signed(original)]);
    const elsewhere = grant({ instanceId: 'i-bbbbbbbbbbbbbbbbbbbb' });
    cases.push(['Host.GrantWrongInstance', elsewhere, signed(elsewhere)]);
    const now = Math.floor(Date.now() / 1000);
    const expired = grant({ issuedAt: now - 120, expiresAt: now - 60 });
    cases.push(['Host.GrantExpired', expired, signed(expired)]);
    const nobody = grant({ osUser: 'nosuchuser' });
    cases.push(['Host.UserUnknown', nobody, signed(nobody)]);
    for (const [code, g, sig] of cases) {
      await k.handle(g, sig);
      const answer = sent.at(-1);
      assert.equal(answer?.['ok'], false, `${code}: ${JSON.stringify(answer)}`);
      assert.equal(answer?.['code'], code);
    }
    const once = grant();
    await k.handle(once, signed(once));
    assert.equal(sent.at(-1)?.['ok'], true);
    await k.handle(once, signed(once));
    assert.equal(sent.at(-1)?.['code'], 'Host.GrantReplayed');
    const left = await readdir(join(dir, 'root'));
    assert.equal(left.length, 1);
    assert.ok(
      left[0]?.startsWith(
        `${String(once.expiresAt)}-${once.grantId}-${grantFileFingerprint(once.publicKey)}~`,
      ),
    );
  } finally {
    k.stop();
  }
});

test("a host clock behind the server's cannot lengthen a key's life", async () => {
  const dir = freshDir();
  const behindMs = Date.now() - 3600_000;
  const { k, sent } = keeper(dir, { nowMs: () => behindMs });
  await k.start({ ok: true });
  try {
    const g = grant();
    await k.handle(g, signed(g));
    assert.equal(sent[0]?.['hostExpiresAt'], Math.floor(behindMs / 1000) + 60);
  } finally {
    k.stop();
  }
});

test('a host that cannot serve grants refuses them with its reason', async () => {
  const dir = freshDir();
  const { k, sent } = keeper(dir);
  await k.start({ ok: false, code: 'Host.AuthorizedKeysCommandInUse', message: 'sshd already runs "/x %u"' });
  try {
    const g = grant();
    await k.handle(g, signed(g));
    assert.equal(sent[0]?.['code'], 'Host.AuthorizedKeysCommandInUse');
    assert.equal(existsSync(join(dir, 'root')), false);
  } finally {
    k.stop();
  }
});

test('grants are deleted at their deadline, and leftovers of an earlier run are swept at start', async () => {
  const dir = freshDir();
  // A leftover from a crashed run: expired a minute ago.
  const old = Math.floor(Date.now() / 1000) - 60;
  await mkdir(join(dir, 'root'), { recursive: true, mode: 0o755 });
  await writeFile(join(dir, 'root', `${String(old)}-lg-zzzzzzzzzzzzzzzzzzzz.key`), 'x\n');
  const { k, sent } = keeper(dir);
  await k.start({ ok: true });
  try {
    assert.deepEqual(sent[0], { t: 'grant-removed', grantId: 'lg-zzzzzzzzzzzzzzzzzzzz', reason: 'swept' });
    const now = Math.floor(Date.now() / 1000);
    const g = grant({ issuedAt: now, expiresAt: now + 1 });
    await k.handle(g, signed(g));
    // The report follows the removal (file, then the emptied directory): wait for the report.
    const deadline = Date.now() + 5_000;
    while (sent.at(-1)?.t !== 'grant-removed' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(sent.at(-1), { t: 'grant-removed', grantId: g.grantId, reason: 'expired' });
    assert.equal(existsSync(join(dir, 'root')), false);
  } finally {
    k.stop();
  }
});

test('the channel contract refuses hostile grants before the keeper sees them', () => {
  const good = grant();
  const message = (g: Record<string, unknown>): string =>
    JSON.stringify({ t: 'grant', grant: g, signature: signed(good) });
  assert.equal(parseServerMessage(message({ ...good })).t, 'grant');
  const hostile: Array<Record<string, unknown>> = [
    { ...good, osUser: 'root,admin' },
    { ...good, osUser: 'root\nadmin' },
    { ...good, osUser: '..' },
    { ...good, osUser: '-oProxyCommand' },
    { ...good, publicKey: `ssh-ed25519 ${'A'.repeat(5000)}` },
    { ...good, publicKey: 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ' },
    { ...good, publicKey: `${good.publicKey}\nssh-ed25519 AAAA` },
    { ...good, sourceAddresses: ['10.0.0.1" command="sh'] },
    { ...good, caller: 'user/alice\nroot' },
    { ...good, expiresAt: good.issuedAt + 301 },
    { ...good, extra: true },
  ];
  for (const g of hostile) {
    assert.throws(() => parseServerMessage(message(g)), AgentProtocolError, JSON.stringify(g).slice(0, 80));
  }
});

function sh(script: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('/bin/sh', [script, ...args], (err, stdout) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout });
    });
  });
}

test('the helper prints only unexpired grant lines, and nothing at all for hostile user names', async () => {
  const dir = freshDir();
  const store = new GrantStore(dir);
  await store.ensureDir();
  const now = Math.floor(Date.now() / 1000);
  const live = grant({ osUser: 'alice' });
  const dead = grant({ osUser: 'alice', issuedAt: now - 100, expiresAt: now - 1 });
  await store.write(live, live.expiresAt);
  await store.write(dead, dead.expiresAt);
  await writeFile(join(dir, 'alice', 'notes.txt'), 'not a grant\n');
  const script = join(root, `helper-${randomBytes(3).toString('hex')}`);
  await writeFile(script, helperScript(dir, existsSync('/usr/bin/date') ? '/usr/bin/date' : '/bin/date'), {
    mode: 0o755,
  });
  const out = await sh(script, ['alice']);
  assert.equal(out.code, 0);
  assert.equal(
    out.stdout,
    `restrict,pty,expiry-time="${new Date(live.expiresAt * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z" ${live.publicKey} keyward-grant:${live.grantId}\n`,
  );
  for (const name of ['', '..', '../alice', 'alice/..', '-x', 'a b', 'ALICE', 'alice;id', 'bob']) {
    const r = await sh(script, [name]);
    assert.deepEqual(r, { code: 0, stdout: '' }, JSON.stringify(name));
  }
  // A line that is not Keyward's form is never printed, even from a grant file.
  await writeFile(
    join(dir, 'alice', `${String(now + 60)}-lg-yyyyyyyyyyyyyyyyyyyy.key`),
    'command="sh" ssh-ed25519 AAAA x\n',
  );
  assert.equal((await sh(script, ['alice'])).stdout.split('\n').filter((l) => l !== '').length, 1);
});

/** The fingerprint exactly as sshd hands it to the helper for `%f` (`ssh-keygen -l`: `SHA256:…`). */
function sshdFingerprint(publicKeyLine: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/ssh-keygen', ['-l', '-E', 'sha256', '-f', '-'], (err, stdout) => {
      if (err !== null) reject(new Error(`ssh-keygen -l failed: ${err.message}`));
      else resolve(stdout.split(' ')[1] ?? '');
    });
    child.stdin?.end(`${publicKeyLine}\n`);
  });
}

test("given sshd's %f, the helper opens only the offered key's grant, however many the user holds", async () => {
  const dir = freshDir();
  const store = new GrantStore(dir);
  await store.ensureDir();
  const held = Array.from({ length: 12 }, () => grant({ osUser: 'carol' }));
  for (const g of held) await store.write(g, g.expiresAt);
  const script = join(root, `helper-${randomBytes(3).toString('hex')}`);
  await writeFile(script, helperScript(dir, existsSync('/usr/bin/date') ? '/usr/bin/date' : '/bin/date'), {
    mode: 0o755,
  });
  // Every grant's file is found by the fingerprint sshd prints for it, '+' and '/' included.
  for (const g of held) {
    const fp = await sshdFingerprint(g.publicKey);
    assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
    const out = await sh(script, ['carol', fp]);
    assert.equal(out.code, 0);
    const lines = out.stdout.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, fp);
    assert.ok(lines[0]?.endsWith(`${g.publicKey} keyward-grant:${g.grantId}`), fp);
  }
  // A key with no grant: nothing. A fingerprint sshd would not print, or another hash: every grant, as
  // with no fingerprint at all (an older drop-in), so a logon never fails for want of the argument.
  const stranger = await sshdFingerprint(grant().publicKey);
  assert.deepEqual(await sh(script, ['carol', stranger]), { code: 0, stdout: '' });
  for (const extra of [[], ['MD5:aa:bb'], ['SHA256:*'], ['SHA256:../../x'], [`${stranger}x`]]) {
    const out = await sh(script, ['carol', ...extra]);
    assert.equal(out.stdout.split('\n').filter((l) => l !== '').length, held.length, JSON.stringify(extra));
  }
  // A grant file named before fingerprints were part of the name is still removed by its grant id.
  const now = Math.floor(Date.now() / 1000);
  await writeFile(join(dir, 'carol', `${String(now + 60)}-lg-zzzzzzzzzzzzzzzzzzzz.key`), 'x\n');
  assert.equal(
    await store.remove({ grantId: 'lg-zzzzzzzzzzzzzzzzzzzz', osUser: 'carol', hostExpiresAt: now + 60 }),
    true,
  );
  for (const g of held) {
    assert.equal(
      await store.remove({ grantId: g.grantId, osUser: g.osUser, hostExpiresAt: g.expiresAt }),
      true,
    );
  }
  assert.equal(existsSync(join(dir, 'carol')), false, 'the emptied directory is removed');
});

test("the helper checks the deadline on this boot's uptime clock, and on the wall clock for a file of another boot", async () => {
  const dir = freshDir();
  const store = new GrantStore(dir);
  await store.ensureDir();
  const script = join(root, `helper-${randomBytes(3).toString('hex')}`);
  await writeFile(script, helperScript(dir, existsSync('/usr/bin/date') ? '/usr/bin/date' : '/bin/date'), {
    mode: 0o755,
  });
  await mkdir(join(dir, 'dave'), { mode: 0o755 });
  const now = Math.floor(Date.now() / 1000);
  const up = Math.floor(Number((await readFile('/proc/uptime', 'latin1')).split(' ')[0]));
  const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'latin1')).trim();
  const otherBoot = '00000000-0000-4000-8000-000000000000';
  const cases: readonly {
    readonly label: string;
    readonly wall: number;
    readonly suffix: string;
    readonly served: boolean;
  }[] = [
    { label: 'this boot, uptime ahead', wall: now + 60, suffix: `~${String(up + 60)}~${boot}`, served: true },
    // The uptime clock decides within the boot: it never goes back, whatever is done to the wall clock.
    {
      label: 'this boot, uptime passed',
      wall: now + 60,
      suffix: `~${String(up - 1)}~${boot}`,
      served: false,
    },
    {
      label: 'this boot, wall clock moved past',
      wall: now - 5,
      suffix: `~${String(up + 60)}~${boot}`,
      served: true,
    },
    // A grants directory that outlived a reboot: the old uptime means nothing, the wall clock decides.
    {
      label: 'another boot, wall ahead',
      wall: now + 60,
      suffix: `~${String(up + 60)}~${otherBoot}`,
      served: true,
    },
    {
      label: 'another boot, wall passed',
      wall: now - 5,
      suffix: `~${String(up + 9_999_999)}~${otherBoot}`,
      served: false,
    },
    { label: 'no uptime in the name, wall passed', wall: now - 5, suffix: '', served: false },
    { label: 'no uptime in the name, wall ahead', wall: now + 60, suffix: '', served: true },
  ];
  for (const c of cases) {
    const g = grant({ osUser: 'dave' });
    const name = `${String(c.wall)}-${g.grantId}-${grantFileFingerprint(g.publicKey)}${c.suffix}.key`;
    await writeFile(
      join(dir, 'dave', name),
      `restrict,pty,no-touch-required ${g.publicKey} keyward-grant:${g.grantId}\n`,
      {
        mode: 0o644,
      },
    );
    const out = await sh(script, ['dave', await sshdFingerprint(g.publicKey)]);
    assert.equal(out.stdout !== '', c.served, c.label);
  }
  // A line with no option after pty (no expiry-time where sshd could not read one, no forwarding, no from=).
  const bare = grant({ osUser: 'dave' });
  const line = `restrict,pty ${bare.publicKey} keyward-grant:${bare.grantId}`;
  await writeFile(
    join(dir, 'dave', `${String(now + 60)}-${bare.grantId}-${grantFileFingerprint(bare.publicKey)}.key`),
    `${line}\n`,
    { mode: 0o644 },
  );
  assert.equal((await sh(script, ['dave', await sshdFingerprint(bare.publicKey)])).stdout, `${line}\n`);
});

test('prepareLogonHost installs the helper and drop-in, is idempotent, and leaves a foreign AuthorizedKeysCommand alone', async () => {
  const sshd = await startPrivateSshd();
  const foreign = await startPrivateSshd({
    beforeInclude: ['AuthorizedKeysCommand /usr/bin/true %u', 'AuthorizedKeysCommandUser nobody'],
  });
  const settings = {
    grantsDir: join(root, 'grants-p'),
    helperPath: join(root, 'libexec', 'authorized-keys-command'),
    helperUser: 'nobody',
  };
  try {
    assert.deepEqual(await prepareLogonHost(sshd.target, settings), READY);
    assert.equal(
      await effectiveSetting(sshd.configFile, 'authorizedkeyscommand'),
      `${settings.helperPath} %u %f`,
    );
    assert.equal(await effectiveSetting(sshd.configFile, 'authorizedkeyscommanduser'), 'nobody');
    // The user's own keys and a bound key pair stay where they were.
    assert.equal(await effectiveSetting(sshd.configFile, 'authorizedkeysfile'), '.ssh/authorized_keys');
    assert.deepEqual(await prepareLogonHost(sshd.target, settings), READY);

    const refused = await prepareLogonHost(foreign.target, settings);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.code, 'Host.AuthorizedKeysCommandInUse');
    assert.match(!refused.ok ? refused.message : '', /\/usr\/bin\/true %u/);
    assert.equal(existsSync(join(foreign.dropInDir, LOGON_DROP_IN_NAME)), false, 'nothing written');
    assert.equal(await effectiveSetting(foreign.configFile, 'authorizedkeyscommand'), '/usr/bin/true %u');

    const unsafe = await prepareLogonHost(sshd.target, { ...settings, helperPath: '/tmp/kw-helper-unsafe' });
    assert.equal(!unsafe.ok && unsafe.code, 'Host.LogonNotReady');
    assert.equal(
      await effectiveSetting(sshd.configFile, 'authorizedkeyscommand'),
      `${settings.helperPath} %u %f`,
    );
  } finally {
    await sshd.stop();
    await foreign.stop();
  }
});

test('grants written for a user while another grant of the same user is removed are never lost', async () => {
  const dir = freshDir();
  const store = new GrantStore(dir);
  await store.ensureDir();
  // Each round removes the user's only grant (emptying the directory, which is then removed) while the
  // next grant for the same user is written: the write must never find its directory gone.
  let previous = grant({ osUser: 'carol' });
  await store.write(previous, previous.expiresAt);
  for (let i = 0; i < 200; i++) {
    const next = grant({ osUser: 'carol' });
    const old = { grantId: previous.grantId, osUser: 'carol', hostExpiresAt: previous.expiresAt };
    await Promise.all([store.remove(old), store.write(next, next.expiresAt)]);
    previous = next;
  }
  const left = await store.list();
  assert.deepEqual(
    left.map((g) => g.grantId),
    [previous.grantId],
  );
});
