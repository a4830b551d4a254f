/**
 * Trust between the server and its hosts, every part real (test/helpers/host-trust.ts): host keys pinned at
 * enrollment stay pinned, and an agent reporting others leaves the instance in a visible Changed state where
 * logons are refused until someone accepts the keys (CLI, audited); desired binding states are signed, so
 * one forged on the agent's channel is refused and never reaches the host; and the agent refuses a plain
 * http:// server without --insecure-http.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { baseEnv } from './helpers/server.js';
import { after, before, test } from 'node:test';
import {
  agentLog,
  instance,
  instanceId,
  KEYWARD,
  newKeyLine,
  proxy,
  refused,
  restartAgent,
  rpc,
  sendKey,
  server,
  setTamper,
  sshdA,
  sshdB,
  user,
  waitFor,
  work,
  setUpHostTrust,
  tearDownHostTrust,
} from './helpers/host-trust.js';

before(setUpHostTrust);
after(tearDownHostTrust);

test('new host keys reported by the agent are pending, logons are refused until they are accepted (CLI, audited)', async () => {
  const pinned = await waitFor('pinned keys', (i) => i.KeywardAgent.HostKeyStatus === 'Pinned');
  const pinnedPrints = pinned.KeywardAgent.HostKeys.HostKey.map((k) => k.FingerprintSha256);
  assert.equal(pinnedPrints.length, 1);
  await sendKey(); // logons work with the enrolled keys

  // The same identity now reports another sshd's keys (a re-imaged host, or a cloned agent identity).
  await restartAgent(sshdB, `127.0.0.1:${String(sshdB.port)}`);
  const changed = await waitFor('the change', (i) => i.KeywardAgent.HostKeyStatus === 'Changed');
  assert.deepEqual(
    changed.KeywardAgent.HostKeys.HostKey.map((k) => k.FingerprintSha256),
    pinnedPrints,
    'the pinned keys stay pinned',
  );
  const pending = changed.KeywardAgent.PendingHostKeys.HostKey.map((k) => k.FingerprintSha256);
  assert.equal(pending.length, 1);
  assert.notDeepEqual(pending, pinnedPrints);

  const err = await refused(sendKey());
  assert.equal(err.code, 'Logon.HostKeysChanged');
  assert.equal(err.status, 409);

  const env = credentialsEnv(server.credentials);
  const shown = await keyward(['instance', 'show', instanceId], { env });
  assert.match(shown.stdout, /Pending host keys/);
  assert.ok(shown.stdout.includes(pending[0] ?? '?'), shown.stdout);
  // Fingerprints that are not the pending ones accept nothing.
  const wrong = await keyward(
    ['instance', 'accept-host-keys', instanceId, '--fingerprint', pinnedPrints[0] ?? ''],
    {
      env,
    },
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /HostKeys\.Mismatch/);
  const accepted = await keyward(
    ['instance', 'accept-host-keys', instanceId, '--fingerprint', pending[0] ?? ''],
    {
      env,
    },
  );
  assert.equal(accepted.code, 0, accepted.stderr);
  const after = await instance();
  assert.equal(after?.KeywardAgent.HostKeyStatus, 'Pinned');
  assert.deepEqual(
    after?.KeywardAgent.HostKeys.HostKey.map((k) => k.FingerprintSha256),
    pending,
  );
  await sendKey();
  const again = await keyward(['instance', 'accept-host-keys', instanceId], { env });
  assert.match(again.stderr, /HostKeys\.NoChange/);

  type AuditEvent = { EventType: string; Actor: string; Detail: Record<string, unknown> };
  let events: AuditEvent[] = [];
  const deadline = Date.now() + 20_000;
  while (!events.some((e) => e.EventType === 'instance.hostkeys.accepted') && Date.now() < deadline) {
    const audit = await rpc.call<{ Events: { Event: AuditEvent[] } }>(
      'ListAuditEvents',
      { InstanceId: instanceId, MaxResults: 100 },
      { version: KEYWARD },
    );
    events = audit.Events.Event;
    await sleep(100);
  }
  const types = events.map((e) => e.EventType);
  assert.ok(types.includes('agent.hostkeys.changed'), types.join(' '));
  const acceptedEvent = events.find((e) => e.EventType === 'instance.hostkeys.accepted');
  assert.match(acceptedEvent?.Actor ?? '', /^accesskey\//);
  assert.deepEqual(acceptedEvent?.Detail['fingerprints'], pending);
});

test('a desired state forged on the wire is refused by the agent and never reaches the host', async () => {
  const { KeyPairName } = { KeyPairName: `trust-${randomBytes(3).toString('hex')}` };
  const real = newKeyLine();
  const forged = newKeyLine();
  await rpc.call('ImportKeyPair', { RegionId: 'local', KeyPairName, PublicKeyBody: real });
  setTamper((msg) => {
    const binding = msg['binding'] as { keyPairName: string; publicKey: string } | null;
    return binding === null ? msg : { ...msg, binding: { ...binding, publicKey: forged } };
  });
  const authorizedKeys = join(user.home, '.ssh', 'authorized_keys');
  const read = async (): Promise<string> =>
    existsSync(authorizedKeys) ? readFile(authorizedKeys, 'utf8') : '';
  try {
    await rpc.call('AttachKeyPair', {
      RegionId: 'local',
      KeyPairName,
      InstanceIds: JSON.stringify([instanceId]),
    });
    // The agent drops the connection on the forged state; let it reconnect (and be forged again) a few times.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !agentLog.includes('not signed by the server key')) await sleep(100);
    assert.match(agentLog, /not signed by the server key/);
    const forgedBlob = forged.split(' ')[1] ?? '';
    assert.ok(!(await read()).includes(forgedBlob), 'the forged key is not on the host');
    assert.notEqual((await instance())?.KeywardAgent.Binding.State, 'Applied');
  } finally {
    setTamper(undefined);
  }
  // Untouched, the signed state applies: the real key, never the forged one.
  await waitFor('the signed binding', (i) => i.KeywardAgent.Binding.State === 'Applied');
  const file = await read();
  assert.ok(file.includes(real.split(' ')[1] ?? '?'));
  assert.ok(!file.includes(forged.split(' ')[1] ?? '?'));
  await rpc.call('DetachKeyPair', {
    RegionId: 'local',
    KeyPairName,
    InstanceIds: JSON.stringify([instanceId]),
  });
});

test('the agent refuses a plain http:// server unless started with --insecure-http', async () => {
  const r = await keyward(
    [
      'agent',
      '--server',
      proxy.url,
      '--state-dir',
      join(work, 'never'),
      '--sshd-config',
      sshdA.configFile,
      '--sshd-pid-file',
      sshdA.pidFile,
    ],
    { env: baseEnv() },
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--server: the server URL is plain http:\/\/.*--insecure-http/);
});
