/**
 * Passwords and MFA codes never travel in a URL. The shipped `keyward` command talks to a real server on
 * 127.0.0.1 through a recording proxy (what any HTTP proxy or load balancer in between would log): every
 * request line is `POST /` with no query string, the parameters ride in the signed form body, and the
 * server accepts them there.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { startRecordingProxy, type RecordingProxy } from './helpers/http.js';
import { makeTempDir, removeDir, startInProcessServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let proxy: RecordingProxy;
let dir: string;
let env: Record<string, string>;

before(async () => {
  server = await startInProcessServer();
  proxy = await startRecordingProxy(server.hostPort);
  dir = await makeTempDir('keyward-secrets-in-urls-');
  // The CLI reaches the server only through the proxy.
  env = credentialsEnv({ ...server.credentials, endpoint: `http://${proxy.hostPort}` });
});

after(async () => {
  await proxy.close();
  await server.close();
  await removeDir(dir);
});

async function ok(args: readonly string[], input?: string): Promise<string> {
  const r = await keyward(args, { env, cwd: dir, ...(input !== undefined && { input }) });
  assert.equal(r.code, 0, `keyward ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

test('the CLI sends passwords and MFA codes in the signed body, never in the request URL', async () => {
  const firstPassword = 'ivan-first-password-Q7';
  const secondPassword = 'ivan second password/+&=?';
  await ok(['user', 'create', 'ivan', '--password-stdin'], `${firstPassword}\n`);
  await ok(['user', 'password', 'ivan', '--password-stdin'], `${secondPassword}\n`);
  const out = await ok(['user', 'mfa', 'enable', 'ivan']);
  const serial = /^Serial\s+(\S+)$/m.exec(out)?.[1];
  const seed = /^Seed\s+([A-Z2-7]+)$/m.exec(out)?.[1];
  assert.ok(serial !== undefined && seed !== undefined, out);
  const key = base32Decode(seed);
  const step = totpStep(Date.now());
  const code1 = totpCode(key, step - 1);
  const code2 = totpCode(key, step);
  await ok(['user', 'mfa', 'enable', 'ivan', '--serial', serial, '--code1', code1, '--code2', code2]);
  // The server took every parameter from the body: the user exists with its password and bound device.
  const shown = JSON.parse(await ok(['user', 'show', 'ivan', '--json'])) as { UserName: string };
  assert.equal(shown.UserName, 'ivan');

  assert.ok(proxy.recorded.length >= 6, `requests seen by the proxy: ${proxy.recorded.length}`);
  for (const r of proxy.recorded) {
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/', `a request URL carries parameters: ${r.path}`);
    assert.equal(r.headers['content-type'], 'application/x-www-form-urlencoded');
  }
  const urls = proxy.recorded.map((r) => decodeURIComponent(r.path)).join('\n');
  for (const secret of [firstPassword, secondPassword, code1, code2, serial]) {
    assert.equal(urls.includes(secret), false, 'a secret is in a request URL');
  }
  // The capture sees the traffic: the secrets are in the (signed) bodies, where they belong.
  const bodies = proxy.recorded
    .map((r) => new URLSearchParams(r.body.toString('utf8')))
    .flatMap((form) => [...form.values()]);
  for (const secret of [firstPassword, secondPassword, code1, code2]) {
    assert.ok(bodies.includes(secret), 'each secret reached the server in a request body');
  }
  assert.equal(server.logs().includes(firstPassword), false);
  assert.equal(server.logs().includes(secondPassword), false);
});
