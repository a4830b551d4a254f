/**
 * The web console's session API against a real server: sign-in with password (and TOTP when the user has
 * MFA), the cookie's attributes, CSRF and Origin checks on every state change, lockout after repeated
 * failures, sign-out, the terminal ticket behind the same policy check as the API, audit events, and no
 * session secret at rest.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type RpcClient } from '../src/client/index.js';
import { testRpcClient } from './helpers/timeouts.js';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { storedBytes } from './helpers/database.js';
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
  rpc = testRpcClient({
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
  const db = (await storedBytes(server)).toString('latin1');
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
  // Signed out is an answer, not an error: the page asks this first on every visit.
  const after = await call('GET', '/console/api/session', { cookie });
  assert.equal(after.status, 200);
  assert.deepEqual(after.body, { SignedIn: false });
  const stale = await call('POST', '/console/api/sign-out', { cookie, csrf, origin: server.endpoint });
  assert.equal(stale.status, 401);
  assert.equal(stale.body['Code'], 'Console.NotSignedIn');
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

test('the session answer gives a reloaded page its CSRF token back; a forged cookie gets none', async () => {
  await consoleUser('hana');
  const { cookie, csrf } = await signIn('hana');
  const me = await call('GET', '/console/api/session', { cookie });
  assert.equal(me.body['CsrfToken'], csrf);
  assert.equal(me.body['RegionId'], 'local');
  assert.equal(me.body['SignedIn'], true);
  const forged = await call('GET', '/console/api/session', { cookie: `kw_session=kws_${'A'.repeat(43)}` });
  assert.equal(forged.status, 200);
  assert.deepEqual(forged.body, { SignedIn: false });
  const none = await call('GET', '/console/api/session');
  assert.equal(none.status, 200);
  assert.deepEqual(none.body, { SignedIn: false });
  assert.equal(none.headers.get('cache-control'), 'no-store');
});

test('console calls run API actions as the signed-in user: same policies, strict parameters, audited', async () => {
  await consoleUser('ivan');
  await rpc.call(
    'AttachPolicyToUser',
    { PolicyType: 'System', PolicyName: 'ReadOnlyAccess', UserName: 'ivan' },
    { version: RAM },
  );
  const { cookie, csrf } = await signIn('ivan');
  const origin = server.endpoint;
  const listed = await call('POST', '/console/api/call/DescribeKeyPairs', {
    cookie,
    csrf,
    origin,
    body: { RegionId: 'local' },
  });
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  assert.equal(typeof listed.body['TotalCount'], 'number');
  const denied = await call('POST', '/console/api/call/CreateKeyPair', {
    cookie,
    csrf,
    origin,
    body: { RegionId: 'local', KeyPairName: 'from-console' },
  });
  assert.equal(denied.status, 403);
  assert.equal(denied.body['Code'], 'Forbidden.RAM');
  const unknown = await call('POST', '/console/api/call/DescribeKeyPairs', {
    cookie,
    csrf,
    body: { RegionId: 'local', Surprise: 'x' },
  });
  assert.equal(unknown.body['Code'], 'UnknownParameter');
  const notString = await call('POST', '/console/api/call/DescribeKeyPairs', {
    cookie,
    csrf,
    body: { RegionId: 'local', PageSize: 10 },
  });
  assert.equal(notString.body['Code'], 'InvalidParameter');
  const noAction = await call('POST', '/console/api/call/RunShell', { cookie, csrf, body: {} });
  assert.equal(noAction.body['Code'], 'InvalidAction.NotFound');
  const noCsrf = await call('POST', '/console/api/call/DescribeKeyPairs', {
    cookie,
    body: { RegionId: 'local' },
  });
  assert.equal(noCsrf.body['Code'], 'Console.CsrfRejected');
  const signedOut = await call('POST', '/console/api/call/DescribeKeyPairs', {
    csrf,
    body: { RegionId: 'local' },
  });
  assert.equal(signedOut.body['Code'], 'Console.NotSignedIn');
  const events = await rpc.call<{
    Events: { Event: Array<{ Actor: string; Detail: Record<string, unknown> }> };
  }>('ListAuditEvents', { EventType: 'authz.deny', Actor: 'user/ivan' }, { version: KEYWARD });
  assert.ok(events.Events.Event.some((e) => e.Detail['action'] === 'ecs:CreateKeyPair'));
});

test('the page and its bundles: compressed, cached by ETag, with the security headers; API errors carry them too', async () => {
  const page = await fetch(`${server.endpoint}/console/`, { headers: { 'accept-encoding': 'br' } });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-encoding'), 'br');
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  const html = await page.text();
  const script = /<script type="module" src="(\/console\/assets\/app\.js)"><\/script>/.exec(html);
  assert.ok(script !== null, html);
  const js = await fetch(`${server.endpoint}${script[1] ?? ''}`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(js.headers.get('content-encoding'), 'gzip');
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
  const etag = js.headers.get('etag') ?? '';
  assert.ok((await js.text()).length > 1000);
  const again = await fetch(`${server.endpoint}${script[1] ?? ''}`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  const missing = await fetch(`${server.endpoint}/console/assets/..%2fmaster.key`);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { Code: string }).Code, 'InvalidAction.NotFound');
  const apiError = await call('POST', '/console/api/sign-out', { csrf: 'none' });
  assert.equal(apiError.status, 401);
  assert.match(apiError.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  assert.equal(apiError.headers.get('x-content-type-options'), 'nosniff');
  const redirect = await fetch(`${server.endpoint}/console`, { redirect: 'manual' });
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get('location'), '/console/');
});
