/**
 * Console sessions end the moment the credentials that made them change, against a real server (on
 * SQLite and on PostgreSQL): the user's password changed or removed, an MFA device bound or unbound, the
 * user deleted. The very next request with the old cookie is refused; another user's session is not
 * touched; signing in again with the new credentials works.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RpcClient } from '../src/client/index.js';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { startInProcessServer, type TestServer } from './helpers/server.js';

const RAM = '2015-05-01';
const PASSWORD = 'a long enough console password';
const NEW_PASSWORD = 'another long console password';
let server: TestServer;
let rpc: RpcClient;

before(async () => {
  server = await startInProcessServer();
  rpc = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
    timeoutMs: 60_000,
  });
});
after(async () => {
  rpc.close();
  await server.close();
});

async function consoleUser(name: string): Promise<void> {
  await rpc.call('CreateUser', { UserName: name }, { version: RAM });
  await rpc.call('CreateLoginProfile', { UserName: name, Password: PASSWORD }, { version: RAM });
}

interface Session {
  readonly cookie: string;
  readonly csrf: string;
}

async function signIn(userName: string, password = PASSWORD, code?: string): Promise<Session> {
  const res = await fetch(`${server.endpoint}/console/api/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userName, password, ...(code !== undefined && { totpCode: code }) }),
  });
  const body = (await res.json()) as Record<string, unknown>;
  assert.equal(res.status, 200, JSON.stringify(body));
  return {
    cookie: (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '',
    csrf: String(body['CsrfToken']),
  };
}

/** What the session check answers: the HTTP status and whether the cookie is signed in. */
async function check(s: Session): Promise<{ status: number; signedIn: unknown }> {
  const res = await fetch(`${server.endpoint}/console/api/session`, { headers: { cookie: s.cookie } });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, signedIn: body['SignedIn'] };
}

/** An API call through the console session (a state change: CSRF and all). */
async function consoleCall(s: Session, action: string): Promise<{ status: number; code: unknown }> {
  const res = await fetch(`${server.endpoint}/console/api/call/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: s.cookie, 'x-keyward-csrf': s.csrf },
    body: JSON.stringify({ RegionId: 'local' }),
  });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, code: body['Code'] };
}

const SIGNED_OUT = { status: 200, signedIn: false };
const SIGNED_IN = { status: 200, signedIn: true };
const NOT_SIGNED_IN = { status: 401, code: 'Console.NotSignedIn' };

async function bindMfa(userName: string): Promise<{ seed: Buffer; step: number }> {
  const device = await rpc.call<{ VirtualMFADevice: { SerialNumber: string; Base32StringSeed: string } }>(
    'CreateVirtualMFADevice',
    { VirtualMFADeviceName: `${userName}-phone` },
    { version: RAM },
  );
  const seed = base32Decode(device.VirtualMFADevice.Base32StringSeed);
  const step = totpStep(Date.now());
  await rpc.call(
    'BindMFADevice',
    {
      SerialNumber: device.VirtualMFADevice.SerialNumber,
      UserName: userName,
      AuthenticationCode1: totpCode(seed, step - 1),
      AuthenticationCode2: totpCode(seed, step),
    },
    { version: RAM },
  );
  return { seed, step };
}

test("changing a user's password ends its console sessions at once; other users' sessions stay", async () => {
  await consoleUser('rev-pass');
  await consoleUser('rev-bystander');
  const a = await signIn('rev-pass');
  const b = await signIn('rev-pass');
  const other = await signIn('rev-bystander');
  assert.deepEqual(await check(a), SIGNED_IN);
  await rpc.call('UpdateLoginProfile', { UserName: 'rev-pass', Password: NEW_PASSWORD }, { version: RAM });
  assert.deepEqual(await check(a), SIGNED_OUT);
  assert.deepEqual(await consoleCall(b, 'DescribeRegions'), NOT_SIGNED_IN);
  assert.deepEqual(await check(other), SIGNED_IN);
  const again = await signIn('rev-pass', NEW_PASSWORD);
  assert.deepEqual(await check(again), SIGNED_IN);
});

test('deleting the login profile ends the console sessions', async () => {
  await consoleUser('rev-profile');
  const s = await signIn('rev-profile');
  await rpc.call('DeleteLoginProfile', { UserName: 'rev-profile' }, { version: RAM });
  assert.deepEqual(await check(s), SIGNED_OUT);
  // A new profile does not bring the old session back.
  await rpc.call('CreateLoginProfile', { UserName: 'rev-profile', Password: PASSWORD }, { version: RAM });
  assert.deepEqual(await check(s), SIGNED_OUT);
});

test('binding an MFA device ends the sessions signed in without it; unbinding ends the MFA-present ones', async () => {
  await consoleUser('rev-mfa');
  const withoutMfa = await signIn('rev-mfa');
  const { seed, step } = await bindMfa('rev-mfa');
  assert.deepEqual(await check(withoutMfa), SIGNED_OUT);
  const withMfa = await signIn('rev-mfa', PASSWORD, totpCode(seed, step + 1));
  const me = await fetch(`${server.endpoint}/console/api/session`, { headers: { cookie: withMfa.cookie } });
  assert.equal(((await me.json()) as Record<string, unknown>)['MfaPresent'], true);
  await rpc.call('UnbindMFADevice', { UserName: 'rev-mfa' }, { version: RAM });
  assert.deepEqual(await check(withMfa), SIGNED_OUT);
  assert.deepEqual(await check(await signIn('rev-mfa')), SIGNED_IN);
});

test('deleting the user ends its console sessions', async () => {
  await consoleUser('rev-deleted');
  const s = await signIn('rev-deleted');
  await rpc.call('DeleteUser', { UserName: 'rev-deleted' }, { version: RAM });
  assert.deepEqual(await check(s), SIGNED_OUT);
  // A new user of the same name is someone else: the old cookie does not sign them in.
  await consoleUser('rev-deleted');
  assert.deepEqual(await check(s), SIGNED_OUT);
});
