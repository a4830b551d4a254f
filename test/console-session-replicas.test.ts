/**
 * A console session revoked through one replica is refused by every other one right away: two real
 * `keyward server` replicas on one PostgreSQL (docs/high-availability.md), a user signed in on replica B,
 * the user's password changed (and then MFA bound) through replica A; B's very next check of the old
 * cookie is refused, with no wait and no message between the replicas.
 *
 * This file starts its own PostgreSQL cluster, so the test runner runs it once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RpcClient } from '../src/client/index.js';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { startReplicaSet, type ReplicaSet } from './helpers/replicas.js';

const RAM = '2015-05-01';
const PASSWORD = 'a long enough console password';
let set: ReplicaSet;
let rpcA: RpcClient;

function endpoint(i: number): string {
  const r = set.replicas[i];
  if (r === undefined) throw new Error(`no replica ${i}`);
  return r.endpoint;
}

before(async () => {
  set = await startReplicaSet(2);
  const a = set.replicas[0];
  if (a === undefined) throw new Error('no replica');
  rpcA = new RpcClient({
    endpoint: a.endpoint,
    accessKeyId: a.credentials.accessKeyId,
    accessKeySecret: a.credentials.accessKeySecret,
    timeoutMs: 60_000,
  });
});
after(async () => {
  rpcA.close();
  await set.close();
});

async function signIn(at: string, userName: string, password: string): Promise<string> {
  const res = await fetch(`${at}/console/api/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userName, password }),
  });
  assert.equal(res.status, 200, await res.text());
  return (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
}

async function check(at: string, cookie: string): Promise<{ status: number; signedIn: unknown }> {
  const res = await fetch(`${at}/console/api/session`, { headers: { cookie } });
  return { status: res.status, signedIn: ((await res.json()) as Record<string, unknown>)['SignedIn'] };
}

test('a password change or an MFA binding made through replica A ends the session on replica B at once', async () => {
  await rpcA.call('CreateUser', { UserName: 'ha-user' }, { version: RAM });
  await rpcA.call('CreateLoginProfile', { UserName: 'ha-user', Password: PASSWORD }, { version: RAM });
  const onB = await signIn(endpoint(1), 'ha-user', PASSWORD);
  assert.deepEqual(await check(endpoint(1), onB), { status: 200, signedIn: true });

  const changed = 'the password after the change';
  await rpcA.call('UpdateLoginProfile', { UserName: 'ha-user', Password: changed }, { version: RAM });
  assert.deepEqual(await check(endpoint(1), onB), { status: 200, signedIn: false });

  const again = await signIn(endpoint(1), 'ha-user', changed);
  assert.deepEqual(await check(endpoint(0), again), { status: 200, signedIn: true });
  const device = await rpcA.call<{ VirtualMFADevice: { SerialNumber: string; Base32StringSeed: string } }>(
    'CreateVirtualMFADevice',
    { VirtualMFADeviceName: 'ha-user-phone' },
    { version: RAM },
  );
  const seed = base32Decode(device.VirtualMFADevice.Base32StringSeed);
  const step = totpStep(Date.now());
  await rpcA.call(
    'BindMFADevice',
    {
      SerialNumber: device.VirtualMFADevice.SerialNumber,
      UserName: 'ha-user',
      AuthenticationCode1: totpCode(seed, step - 1),
      AuthenticationCode2: totpCode(seed, step),
    },
    { version: RAM },
  );
  assert.deepEqual(await check(endpoint(1), again), { status: 200, signedIn: false });
});
