import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AgentError } from './agent-error.js';
import {
  IDENTITY_KEY_FILE,
  STATE_FILE,
  loadState,
  openStateDir,
  parseAgentState,
  saveState,
  serverUrlsOverlap,
  type AgentState,
} from './agent-state.js';

const UID = process.getuid?.() ?? 0;
const root = mkdtempSync(join(tmpdir(), 'kw-agent-state-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let n = 0;
const freshDir = (): string => join(root, `s${n++}`, 'state');

const STATE: AgentState = {
  serverUrls: ['https://keyward.example.com'],
  instanceId: 'i-0123456789abcdefghij',
  regionId: 'local',
  grantSigningPublicKey: Buffer.alloc(32, 7).toString('base64'),
  applied: {
    generation: 3,
    ok: true,
    binding: { keyPairName: 'ops-key', publicKey: `ssh-ed25519 ${Buffer.alloc(51, 1).toString('base64')}` },
  },
};

function code(err: unknown): string | undefined {
  return err instanceof AgentError ? err.code : undefined;
}

test('the first open creates the directory 0700 and an Ed25519 identity key 0600, and no state', () => {
  const dir = freshDir();
  const opened = openStateDir(dir, UID);
  assert.equal(opened.state, null);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const key = statSync(join(dir, IDENTITY_KEY_FILE));
  assert.equal(key.mode & 0o777, 0o600);
  assert.match(readFileSync(join(dir, IDENTITY_KEY_FILE), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(opened.identity.privateKey.asymmetricKeyType, 'ed25519');
  assert.equal(Buffer.from(opened.identity.publicKeyBase64, 'base64').length, 32);
});

test('a second open keeps the same identity', () => {
  const dir = freshDir();
  const first = openStateDir(dir, UID);
  const second = openStateDir(dir, UID);
  assert.equal(second.identity.publicKeyBase64, first.identity.publicKeyBase64);
});

test('a state directory open to the group or others is refused', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  chmodSync(dir, 0o750);
  assert.throws(
    () => openStateDir(dir, UID),
    (e) => code(e) === 'Agent.StateDirUnsafe',
  );
});

test('a state directory owned by another user is refused', () => {
  assert.throws(
    () => openStateDir(freshDir(), UID + 1),
    (e) => code(e) === 'Agent.StateDirUnsafe',
  );
});

test('an identity key readable by others is refused', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  chmodSync(join(dir, IDENTITY_KEY_FILE), 0o644);
  assert.throws(
    () => openStateDir(dir, UID),
    (e) => code(e) === 'Agent.StateDirUnsafe',
  );
});

test('an identity key that is not Ed25519 is refused', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  writeFileSync(join(dir, IDENTITY_KEY_FILE), rsa.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  assert.throws(
    () => openStateDir(dir, UID),
    (e) => code(e) === 'Agent.StateCorrupt',
  );
});

test('state round-trips through state.json with mode 0600 and no temporary file left behind', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  saveState(dir, STATE);
  assert.deepEqual(loadState(dir, UID), STATE);
  assert.equal(statSync(join(dir, STATE_FILE)).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir).sort(), [IDENTITY_KEY_FILE, STATE_FILE]);
  assert.deepEqual(openStateDir(dir, UID).state, STATE);
});

test('saving replaces the file by rename: a reader of the old file never sees a mix', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  saveState(dir, STATE);
  const before = readFileSync(join(dir, STATE_FILE));
  const fd = openSync(join(dir, STATE_FILE), 'r');
  try {
    saveState(dir, { ...STATE, applied: null });
    const old = Buffer.alloc(before.length);
    readSync(fd, old, 0, old.length, 0);
    assert.deepEqual(old, before);
  } finally {
    closeSync(fd);
  }
  assert.equal(loadState(dir, UID)?.applied, null);
});

test('an enrolled state without its identity key is refused instead of making a new key', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  saveState(dir, STATE);
  unlinkSync(join(dir, IDENTITY_KEY_FILE));
  assert.throws(
    () => openStateDir(dir, UID),
    (e) => code(e) === 'Agent.StateCorrupt',
  );
});

test('a corrupt state.json stops the agent with the file named', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  writeFileSync(join(dir, STATE_FILE), '{"version":1,', { mode: 0o600 });
  assert.throws(
    () => openStateDir(dir, UID),
    (e) => code(e) === 'Agent.StateCorrupt' && (e as Error).message.includes(join(dir, STATE_FILE)),
  );
});

const json = (value: unknown): string => JSON.stringify(value);
/** STATE as a version 1 file holds it, and with two URLs as version 2. */
const REST = {
  instanceId: STATE.instanceId,
  regionId: STATE.regionId,
  grantSigningPublicKey: STATE.grantSigningPublicKey,
  applied: STATE.applied,
};
const FILE_V1 = { version: 1, serverUrl: 'https://keyward.example.com', ...REST };
const FILE_V2 = { version: 2, serverUrls: ['https://kw-a.example.com', 'https://kw-b.example.com'], ...REST };
const withApplied = (applied: unknown): string => json({ ...FILE_V1, applied });
for (const [name, text] of [
  ['not JSON', 'nope'],
  ['an array', '[]'],
  ['an unknown field', json({ ...FILE_V1, extra: 1 })],
  ['a missing field', json({ ...FILE_V1, regionId: undefined })],
  ['another format version', json({ ...FILE_V1, version: 3 })],
  ['version 1 with a list of server URLs', json({ ...FILE_V2, version: 1 })],
  ['version 2 with a single serverUrl', json({ ...FILE_V1, version: 2 })],
  ['a server URL that is not http(s)', json({ ...FILE_V1, serverUrl: 'ftp://x' })],
  ['a list holding a URL that is not http(s)', json({ ...FILE_V2, serverUrls: ['https://a', 'ftp://x'] })],
  ['an empty list of server URLs', json({ ...FILE_V2, serverUrls: [] })],
  ['a list of server URLs that is not an array', json({ ...FILE_V2, serverUrls: 'https://a' })],
  ['a server URL listed twice', json({ ...FILE_V2, serverUrls: ['https://a', 'https://a'] })],
  [
    'more than 16 server URLs',
    json({ ...FILE_V2, serverUrls: Array.from({ length: 17 }, (_, i) => `https://kw-${i}`) }),
  ],
  ['a malformed instance id', json({ ...FILE_V1, instanceId: 'i-SHORT' })],
  ['a grant-signing key that is not 32 bytes', json({ ...FILE_V1, grantSigningPublicKey: 'AAAA' })],
  ['an applied record without binding', withApplied({ generation: 1, ok: true })],
  ['an applied record with a negative generation', withApplied({ generation: -1, ok: true, binding: null })],
  ['an applied record with an unknown field', withApplied({ generation: 1, ok: true, binding: null, x: 1 })],
  [
    'a binding with a bad public key',
    withApplied({ generation: 1, ok: true, binding: { keyPairName: 'ok-name', publicKey: 'x' } }),
  ],
] as const) {
  test(`state.json with ${name} is refused as corrupt`, () => {
    assert.throws(
      () => parseAgentState(text, '/s/state.json'),
      (e) => code(e) === 'Agent.StateCorrupt',
    );
  });
}

test('a failed apply and a null binding are valid applied records', () => {
  const s = parseAgentState(
    withApplied({
      generation: 4,
      ok: false,
      code: 'Host.SshdConfigInvalid',
      message: 'sshd -t failed',
      binding: null,
    }),
    '/s/state.json',
  );
  assert.deepEqual(s.applied, {
    generation: 4,
    ok: false,
    code: 'Host.SshdConfigInvalid',
    message: 'sshd -t failed',
    binding: null,
  });
});

test('temporary files a crash left in the state directory are removed when it is opened', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-state-tmp-'));
  const stateDir = join(dir, 'state');
  try {
    openStateDir(stateDir, process.getuid?.() ?? 0);
    const stale = join(stateDir, 'state.json.0123456789ab.tmp');
    const foreign = join(stateDir, 'notes.txt');
    writeFileSync(stale, '{', { mode: 0o600 });
    writeFileSync(foreign, 'mine', { mode: 0o600 });
    openStateDir(stateDir, process.getuid?.() ?? 0);
    assert.equal(existsSync(stale), false);
    assert.equal(existsSync(foreign), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('one server URL is written as format version 1, exactly as before lists, and read back', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  saveState(dir, STATE);
  assert.equal(readFileSync(join(dir, STATE_FILE), 'utf8'), `${JSON.stringify(FILE_V1, null, 2)}\n`);
  assert.deepEqual(parseAgentState(json(FILE_V1), '/s/state.json'), STATE);
});

test('several server URLs are written as format version 2 and read back in their order', () => {
  const dir = freshDir();
  openStateDir(dir, UID);
  const state: AgentState = { ...STATE, serverUrls: FILE_V2.serverUrls };
  saveState(dir, state);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')), FILE_V2);
  assert.deepEqual(loadState(dir, UID), state);
});

for (const [recorded, configured, overlap] of [
  [['https://a'], ['https://a'], true],
  [['https://a'], ['https://b'], false],
  [['https://a'], ['https://b', 'https://a'], true],
  [['https://a', 'https://b'], ['https://b', 'https://c'], true],
  [['https://a', 'https://b'], ['https://c', 'https://d'], false],
] as const) {
  test(`server URLs ${configured.join(',')} ${overlap ? 'may' : 'may not'} serve a host enrolled with ${recorded.join(',')}`, () => {
    assert.equal(serverUrlsOverlap(recorded, configured), overlap);
  });
}
