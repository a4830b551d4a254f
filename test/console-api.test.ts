/**
 * The web console's session API against a real server: sign-in with password (and TOTP when the user has
 * MFA), the cookie's attributes, CSRF and Origin checks on every state change, lockout after repeated
 * failures, sign-out, the terminal ticket behind the same policy check as the API, audit events, and no
 * session secret at rest.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RpcClient } from '../src/client/index.js';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { makeTempDir, removeDir, startInProcessServer, type TestServer } from './helpers/server.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
const PASSWORD = 'a long enough console password';
let server: TestServer;
let rpc: RpcClient;
let dir: string;

before(async () => {
  server = await startInProcessServer();
  dir = await makeTempDir('keyward-console-');
  rpc = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
});
after(async () => {
  rpc.close();
  await server.close();
  await removeDir(dir);
});

async function consoleUser(name: string, policy?: string): Promise<void> {
  await rpc.call('CreateUser', { UserName: name }, { version: RAM });
  await rpc.call('CreateLoginProfile', { UserName: name, Password: PASSWORD }, { version: RAM });
  if (policy !== undefined) {
    await rpc.call(
      'AttachPolicyToUser',
      { PolicyType: 'Custom', PolicyName: policy, UserName: name },
      { version: RAM },
    );
  }
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(
  method: 'GET' | 'POST',
  path: string,
  opts: { body?: unknown; cookie?: string; csrf?: string; origin?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.cookie !== undefined) headers['cookie'] = opts.cookie;
  if (opts.csrf !== undefined) headers['x-keyward-csrf'] = opts.csrf;
  if (opts.origin !== undefined) headers['origin'] = opts.origin;
  const res = await fetch(`${server.endpoint}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined && { body: JSON.stringify(opts.body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

async function signIn(
  userName: string,
  extra: Record<string, string> = {},
): Promise<{ cookie: string; csrf: string }> {
  const r = await call('POST', '/console/api/sign-in', { body: { userName, password: PASSWORD, ...extra } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const setCookie = r.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0] ?? '', csrf: String(r.body['CsrfToken']) };
}

test('sign-in sets an HttpOnly, SameSite=Strict session cookie; wrong passwords and unknown users get one answer', async () => {
  await consoleUser('carol');
  const wrong = await call('POST', '/console/api/sign-in', {
    body: { userName: 'carol', password: 'not it at all' },
  });
  const unknown = await call('POST', '/console/api/sign-in', {
    body: { userName: 'nobody-here', password: PASSWORD },
  });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body['Code'], 'Console.InvalidCredentials');
  assert.deepEqual(
    [unknown.status, unknown.body['Code'], unknown.body['Message']],
    [401, wrong.body['Code'], wrong.body['Message']],
  );
  const extraField = await call('POST', '/console/api/sign-in', {
    body: { userName: 'carol', password: PASSWORD, admin: 'yes' },
  });
  assert.equal(extraField.body['Code'], 'UnknownParameter');

  const r = await call('POST', '/console/api/sign-in', { body: { userName: 'carol', password: PASSWORD } });
  assert.equal(r.status, 200);
  const setCookie = r.headers.get('set-cookie') ?? '';
  assert.match(
    setCookie,
    /^kw_session=kws_[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/,
  );
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.body['UserName'], 'carol');
  assert.equal(r.body['MfaPresent'], false);
  const cookie = setCookie.split(';')[0] ?? '';
  const me = await call('GET', '/console/api/session', { cookie });
  assert.equal(me.body['UserName'], 'carol');
  // Only digests at rest: neither the session token nor the CSRF token is in the database file.
  const db =
    readFileSync(join(server.dataDir, 'keyward.sqlite')).toString('latin1') +
    readFileSync(join(server.dataDir, 'keyward.sqlite-wal')).toString('latin1');
  assert.ok(!db.includes(cookie.slice('kw_session='.length)));
  assert.ok(!db.includes(String(r.body['CsrfToken'])));
});

test('state changes need the CSRF token and this origin; sign-out ends the session', async () => {
  await consoleUser('dave');
  const { cookie, csrf } = await signIn('dave');
  assert.equal(
    (await call('POST', '/console/api/sign-out', { cookie })).body['Code'],
    'Console.CsrfRejected',
  );
  assert.equal(
    (await call('POST', '/console/api/sign-out', { cookie, csrf: 'forged' })).body['Code'],
    'Console.CsrfRejected',
  );
  const foreign = await call('POST', '/console/api/sign-out', {
    cookie,
    csrf,
    origin: 'https://evil.example',
  });
  assert.equal(foreign.status, 403);
  assert.equal(foreign.body['Code'], 'Console.CsrfRejected');
  const out = await call('POST', '/console/api/sign-out', { cookie, csrf, origin: server.endpoint });
  assert.equal(out.status, 200);
  assert.match(out.headers.get('set-cookie') ?? '', /^kw_session=; .*Max-Age=0$/);
  const after = await call('GET', '/console/api/session', { cookie });
  assert.equal(after.status, 401);
  assert.equal(after.body['Code'], 'Console.NotSignedIn');
});

test('five failures lock the user name for 15 minutes, even against the right password', async () => {
  await consoleUser('erin');
  for (let i = 0; i < 5; i++) {
    const r = await call('POST', '/console/api/sign-in', {
      body: { userName: 'erin', password: `wrong ${String(i)}` },
    });
    assert.equal(r.body['Code'], 'Console.InvalidCredentials');
  }
  const locked = await call('POST', '/console/api/sign-in', {
    body: { userName: 'erin', password: PASSWORD },
  });
  assert.equal(locked.status, 429);
  assert.equal(locked.body['Code'], 'Console.SignInLocked');
  assert.match(String(locked.body['Message']), /try again in 15 minute/);
  assert.equal(locked.headers.get('x-acs-retry-after'), '900');
});

test('a user with MFA needs the current TOTP code; the session then counts as MFA-present', async () => {
  await consoleUser('frank');
  const device = await rpc.call<{ VirtualMFADevice: { SerialNumber: string; Base32StringSeed: string } }>(
    'CreateVirtualMFADevice',
    { VirtualMFADeviceName: 'frank-phone' },
    { version: RAM },
  );
  const seed = base32Decode(device.VirtualMFADevice.Base32StringSeed);
  const step = totpStep(Date.now());
  await rpc.call(
    'BindMFADevice',
    {
      SerialNumber: device.VirtualMFADevice.SerialNumber,
      UserName: 'frank',
      AuthenticationCode1: totpCode(seed, step - 1),
      AuthenticationCode2: totpCode(seed, step),
    },
    { version: RAM },
  );
  const noCode = await call('POST', '/console/api/sign-in', {
    body: { userName: 'frank', password: PASSWORD },
  });
  assert.equal(noCode.body['Code'], 'Console.MfaRequired');
  const r = await call('POST', '/console/api/sign-in', {
    body: { userName: 'frank', password: PASSWORD, totpCode: totpCode(seed, step + 1) },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body['MfaPresent'], true);
});

test('a terminal ticket needs ecs-workbench:LoginInstance, checked like the API; sign-ins are audited', async () => {
  await consoleUser('gina');
  const { cookie, csrf } = await signIn('gina');
  const denied = await call('POST', '/console/api/terminal', {
    cookie,
    csrf,
    body: { instanceId: 'i-aaaaaaaaaaaaaaaaaaaa' },
  });
  assert.equal(denied.status, 403);
  assert.equal(denied.body['Code'], 'Forbidden.RAM');
  await rpc.call(
    'CreatePolicy',
    {
      PolicyName: 'console-login',
      PolicyDocument: JSON.stringify({
        Version: '1',
        Statement: [{ Effect: 'Allow', Action: 'ecs-workbench:LoginInstance', Resource: '*' }],
      }),
    },
    { version: RAM },
  );
  await rpc.call(
    'AttachPolicyToUser',
    { PolicyType: 'Custom', PolicyName: 'console-login', UserName: 'gina' },
    { version: RAM },
  );
  const unknown = await call('POST', '/console/api/terminal', {
    cookie,
    csrf,
    body: { instanceId: 'i-aaaaaaaaaaaaaaaaaaaa' },
  });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body['Code'], 'InvalidInstanceId.NotFound');
  const noCsrf = await call('POST', '/console/api/terminal', {
    cookie,
    body: { instanceId: 'i-aaaaaaaaaaaaaaaaaaaa' },
  });
  assert.equal(noCsrf.body['Code'], 'Console.CsrfRejected');

  const events = await rpc.call<{ Events: { Event: Array<{ EventType: string; Actor: string }> } }>(
    'ListAuditEvents',
    { EventType: 'console', MaxResults: 100 },
    { version: KEYWARD },
  );
  const seen = events.Events.Event.map((e) => `${e.EventType} ${e.Actor}`);
  assert.ok(seen.includes('console.signin.success user/gina'), seen.join('\n'));
  assert.ok(seen.includes('console.signin.failed user/carol'), seen.join('\n'));
  assert.ok(seen.includes('console.signin.locked user/erin'), seen.join('\n'));
  assert.ok(seen.includes('console.signout user/dave'), seen.join('\n'));
});
