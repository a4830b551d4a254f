import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { grantSigningInput, type LogonGrant } from '../../agent-channel/index.js';
import { ed25519PublicKeyLine } from '../../keypairs/openssh-private-key.js';
import { GrantKeeper, type GrantReportMessage } from './grant-keeper.js';
import { GrantStore } from './grant-store.js';
import { sha256Fingerprint } from './sshd-log-line.js';

const root = mkdtempSync(join(tmpdir(), 'kw-keeper-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
const server = generateKeyPairSync('ed25519');
const INSTANCE = 'i-0123456789abcdefghij';

function keeper(dir: string, sent: GrantReportMessage[] = []): GrantKeeper {
  return new GrantKeeper({
    store: new GrantStore(dir),
    instanceId: INSTANCE,
    signingKey: server.publicKey,
    logger: pino({ level: 'silent' }),
    nowMs: () => Date.now(),
    userExists: () => Promise.resolve(true),
    send: (m) => sent.push(m),
  });
}

function grant(id: string, osUser: string): LogonGrant {
  const now = Math.floor(Date.now() / 1000);
  return {
    grantId: id,
    instanceId: INSTANCE,
    osUser,
    publicKey: ed25519PublicKeyLine(generateKeyPairSync('ed25519').privateKey),
    issuedAt: now,
    expiresAt: now + 120,
    requestId: 'req-1',
    caller: 'root',
    sourceAddresses: [],
    portForwarding: false,
  };
}

const signed = (g: LogonGrant): string =>
  sign(null, grantSigningInput(g), server.privateKey).toString('base64');

test('a live grant is found by its key fingerprint and user, also after the agent restarts; not after revoke', async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the grant store must be owned by root: run the tests as root');
  const dir = join(root, 'grants');
  const a = grant('lg-aaaaaaaaaaaaaaaaaaaa', 'alice');
  const b = grant('lg-bbbbbbbbbbbbbbbbbbbb', 'bob');
  const first = keeper(dir);
  await first.start({ ok: true });
  await first.handle(a, signed(a));
  await first.handle(b, signed(b));
  assert.equal(first.grantForKey(sha256Fingerprint(a.publicKey), 'alice'), a.grantId);
  assert.equal(first.grantForKey(sha256Fingerprint(a.publicKey), 'bob'), undefined, 'another user');
  assert.equal(first.grantForKey(sha256Fingerprint(b.publicKey), 'bob'), b.grantId);
  first.stop();

  // A new run takes the grants back from disk, their fingerprints with them.
  const second = keeper(dir);
  await second.start({ ok: true });
  assert.equal(second.grantForKey(sha256Fingerprint(a.publicKey), 'alice'), a.grantId);
  await second.revoke(a.grantId);
  assert.equal(second.grantForKey(sha256Fingerprint(a.publicKey), 'alice'), undefined);
  assert.equal(second.grantForKey(sha256Fingerprint(b.publicKey), 'bob'), b.grantId);
  second.stop();
});
