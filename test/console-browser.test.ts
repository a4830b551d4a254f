/**
 * The web console end to end in real headless Chromium (Debian's chromium, driven by playwright-core),
 * against a `keyward server` child, a `keyward agent` child and a private sshd on 127.0.0.1 with a throwaway
 * OS user: sign in; create a key pair and check the downloaded NAME.pem is a valid PKCS#8 key; import one
 * with an error first; attach it; Connect, type a command and read its output from the page; watch the
 * one-time key's countdown end with the session still up; a user without permission sees the denial; the
 * console's CSRF, Origin and signed-out checks from a real browser. Every test fails on a page error or a
 * console error or warning from the console's own pages that it did not provoke on purpose, and a first
 * visit signed out loads without a single failed request. Screenshots of each page are saved in
 * test-artifacts/console/.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, test } from 'node:test';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { type RpcClient } from '../src/client/index.js';
import { testRpcClient } from './helpers/timeouts.js';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { ed25519PublicKeyLine } from '../src/keypairs/openssh-private-key.js';
import { launchChromium, PageWatch, screenshot } from './helpers/browser.js';
import { waitForRunningInstance } from './helpers/instances.js';
import {
  BIN,
  baseEnv,
  makeTempDir,
  removeDir,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import {
  agentArgs,
  createThrowawayUser,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';
import { runOk } from './helpers/tools.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
const LIFETIME_SECONDS = 4;
const ADMIN = 'console-admin';
const VIEWER = 'console-viewer';
const PASSWORD = 'a console password long enough';

let server: ChildServer;
let sshd: PrivateSshd;
let user: ThrowawayUser;
let rpc: RpcClient;
let work: string;
let hostDir: string;
let agent: ChildProcess | undefined;
let agentLog = '';
let instanceId = '';
let browser: Browser;
let admin: BrowserContext;
let page: Page;
let watch: PageWatch;

before(async () => {
  browser = await launchChromium();
  work = await makeTempDir('keyward-console-browser-');
  hostDir = join('/run', `kw-console-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  sshd = await startPrivateSshd();
  user = await createThrowawayUser();
  server = await startChildServer({ args: ['--logon-key-lifetime', String(LIFETIME_SECONDS)] });
  watch = new PageWatch(consoleUrl());
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = spawn(
    process.execPath,
    [
      BIN,
      ...agentArgs({
        server: server.endpoint,
        stateDir: join(work, 'agent-state'),
        loginUser: user.name,
        sshd,
        extra: [
          '--token',
          Token,
          '--grants-dir',
          join(hostDir, 'grants'),
          '--authorized-keys-command',
          join(hostDir, 'libexec', 'authorized-keys-command'),
        ],
      }),
    ],
    { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  agent.stdout?.on('data', (c: Buffer) => (agentLog += c.toString()));
  agent.stderr?.on('data', (c: Buffer) => (agentLog += c.toString()));
  instanceId = await waitForRunningInstance(rpc, { context: () => agentLog });
  for (const [name, policy] of [
    [ADMIN, 'AdministratorAccess'],
    [VIEWER, 'ReadOnlyAccess'],
  ] as const) {
    await rpc.call('CreateUser', { UserName: name }, { version: RAM });
    await rpc.call('CreateLoginProfile', { UserName: name, Password: PASSWORD }, { version: RAM });
    await rpc.call(
      'AttachPolicyToUser',
      { PolicyType: 'System', PolicyName: policy, UserName: name },
      { version: RAM },
    );
  }
  admin = watch.watch(
    await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true }),
  );
  page = await admin.newPage();
});

afterEach(() => {
  watch.assertClean();
});

after(async () => {
  await browser?.close();
  if (agent !== undefined && agent.exitCode === null) {
    const exited = new Promise((resolve) => agent?.once('exit', resolve));
    agent.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
  }
  rpc?.close();
  await server?.close();
  await sshd?.stop();
  await user?.remove();
  await rm(hostDir, { recursive: true, force: true });
  await removeDir(work);
});

const consoleUrl = (hash = ''): string => `${server.endpoint}/console/${hash}`;

async function signIn(p: Page, name: string, password = PASSWORD): Promise<void> {
  await p.goto(consoleUrl());
  await p.getByLabel('User name').fill(name);
  await p.getByLabel('Password').fill(password);
  await p.getByRole('button', { name: 'Sign in' }).click();
}

/** The text the terminal shows, read from xterm.js's rows in the page. */
async function terminalText(p: Page): Promise<string> {
  return p.locator('.xterm-rows').innerText();
}

/** `stty size` typed into the terminal: [rows, cols] as the shell sees them. */
async function shellSize(p: Page, tag: string): Promise<[number, number]> {
  await p.keyboard.type(`echo size-${tag}: $(stty size)\n`);
  const shown = await waitForTerminal(p, `size-${tag}: `);
  const m = new RegExp(`size-${tag}: (\\d+) (\\d+)`).exec(shown);
  if (m === null) {
    await sleep(100);
    return shellSize(p, `${tag}x`);
  }
  return [Number(m[1]), Number(m[2])];
}

/** The console error Chromium logs for an answer with HTTP `status` from /console/api/`path`. */
function refused(status: number, path: string): RegExp {
  const escaped = path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(
    `^console\\.error: Failed to load resource: the server responded with a status of ${String(status)} .*/console/api/${escaped}\\)$`,
  );
}

/** Whether the browser finds the field's value outside its `pattern` (false when the pattern is ignored). */
async function patternMismatch(field: Locator): Promise<boolean> {
  return field.evaluate(
    (el) => (el as unknown as { validity: { patternMismatch: boolean } }).validity.patternMismatch,
  );
}

/** Form controls on the page with no accessible name (no label, aria-label or aria-labelledby). */
async function unlabelled(p: Page): Promise<string[]> {
  return p.evaluate(() => {
    interface El {
      id: string;
      name?: string;
      tagName: string;
      type?: string;
      getAttribute(n: string): string | null;
      closest(s: string): El | null;
    }
    const doc = (
      globalThis as unknown as {
        document: { querySelectorAll(s: string): Iterable<El>; querySelector(s: string): El | null };
      }
    ).document;
    const out: string[] = [];
    for (const el of doc.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden' || el.closest('.xterm') !== null) continue;
      const named =
        el.getAttribute('aria-label') !== null ||
        el.getAttribute('aria-labelledby') !== null ||
        (el.id !== '' && doc.querySelector(`label[for="${el.id}"]`) !== null);
      if (!named) out.push(`${el.tagName} ${el.name ?? ''}`);
    }
    return out;
  });
}

async function waitForTerminal(p: Page, text: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shown = await terminalText(p);
    if (shown.includes(text)) return shown;
    if (Date.now() > deadline)
      throw new Error(`the terminal never showed ${JSON.stringify(text)}:\n${shown}`);
    await sleep(50);
  }
}

test('the page is served with a strict Content-Security-Policy and no inline script', async () => {
  const res = await fetch(consoleUrl(), { headers: { 'accept-encoding': 'br' } });
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const html = await res.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script is an external file');
  assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handler');
  assert.doesNotMatch(html, /https?:\/\//, 'nothing loaded from another host');
});

test('a first visit, signed out, shows the sign-in form without a failed request or a console error', async () => {
  const ctx = watch.watch(await browser.newContext());
  try {
    const p = await ctx.newPage();
    const failed: string[] = [];
    p.on('requestfailed', (r) => {
      failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText ?? 'failed'}`);
    });
    p.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.request().method()} ${r.url()}: HTTP ${String(r.status())}`);
    });
    await p.goto(consoleUrl());
    await p.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    await p.waitForLoadState('networkidle');
    assert.deepEqual(failed, []);
    assert.deepEqual(watch.problems(), []);
  } finally {
    await ctx.close();
  }
});

test('sign-in: a wrong password is refused with a readable error, the right one opens the console', async () => {
  // The page's CSP refuses inline script: a <script> injected into the page does not run.
  await page.goto(consoleUrl());
  const injected = await page.evaluate(
    () =>
      new Promise<string>((resolve) => {
        interface Doc {
          addEventListener(t: string, f: (e: { violatedDirective: string }) => void): void;
          createElement(t: string): { textContent: string };
          head: { append(n: unknown): void };
        }
        const g = globalThis as unknown as { document: Doc; injectedRan?: boolean };
        g.document.addEventListener('securitypolicyviolation', (e) => {
          resolve(`refused by ${e.violatedDirective}`);
        });
        const el = g.document.createElement('script');
        el.textContent = 'globalThis.injectedRan = true';
        g.document.head.append(el);
        setTimeout(() => {
          resolve(g.injectedRan === true ? 'ran' : 'did not run');
        }, 500);
      }),
  );
  assert.match(injected, /^refused by script-src/);
  // Provoked here: the refused script, and the 401 answer to the wrong password.
  watch.allow(
    /^console\.error: Executing inline script violates the following Content Security Policy directive 'script-src 'self''/,
    refused(401, 'sign-in'),
  );
  await signIn(page, ADMIN, 'not the password');
  await page.getByRole('alert').filter({ hasText: 'The user name or password is wrong' }).waitFor();
  await screenshot(page, '01-sign-in-error');
  assert.deepEqual(await unlabelled(page), []);
  await signIn(page, ADMIN);
  await page.getByRole('navigation', { name: 'Console' }).waitFor();
  const cookies = await admin.cookies(server.endpoint);
  const session = cookies.find((c) => c.name === 'kw_session');
  assert.ok(session !== undefined);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  // A reload keeps the session (the CSRF token is asked for again).
  await page.reload();
  await page.getByRole('navigation', { name: 'Console' }).waitFor();
});

test('key pairs: create one and download NAME.pem once, a valid PKCS#8 RSA-2048 key', async () => {
  await page.goto(consoleUrl('#/key-pairs'));
  await page.getByRole('button', { name: 'Create key pair' }).click();
  // The name field's pattern is in force: a name starting with a digit is refused by the browser.
  await page.getByLabel('Name', { exact: true }).fill('1-web-console');
  assert.equal(await patternMismatch(page.getByLabel('Name', { exact: true })), true);
  await page.getByLabel('Name', { exact: true }).fill('web-console');
  assert.equal(await patternMismatch(page.getByLabel('Name', { exact: true })), false);
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByText('This is the only time it is shown').waitFor();
  await screenshot(page, '03-key-pair-created');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download web-console.pem' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'web-console.pem');
  const file = join(work, 'web-console.pem');
  await download.saveAs(file);
  const pem = readFileSync(file, 'utf8');
  assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
  const key = createPrivateKey({ key: pem, format: 'pem', type: 'pkcs8' });
  assert.equal(key.asymmetricKeyType, 'rsa');
  assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
  // OpenSSH loads it, and it is the key Keyward registered: the same MD5 fingerprint.
  await chmod(file, 0o600);
  const printed = await runOk('/usr/bin/ssh-keygen', ['-l', '-E', 'md5', '-f', file]);
  const listed = await rpc.call<{ KeyPairs: { KeyPair: Array<{ KeyPairFingerPrint: string }> } }>(
    'DescribeKeyPairs',
    { RegionId: 'local', KeyPairName: 'web-console' },
  );
  const md5 = listed.KeyPairs.KeyPair[0]?.KeyPairFingerPrint ?? 'missing';
  assert.ok(printed.includes(`MD5:${md5}`), `${printed} has MD5:${md5}`);
  await page.getByRole('button', { name: 'Done' }).click();
  const row = page.locator('tr[data-key-pair="web-console"]');
  await row.waitFor();
  assert.match(await row.innerText(), /RSA-2048/);
  assert.match(await row.innerText(), /SHA256:[A-Za-z0-9+/]{43}/);
  // The private key is gone from the page once the dialog is closed.
  assert.equal(await page.getByText('BEGIN PRIVATE KEY').count(), 0);
});

test('key pairs: an import with a bad key shows the parser error at the field; a good one is listed', async () => {
  await page.goto(consoleUrl('#/key-pairs'));
  watch.allow(refused(400, 'call/ImportKeyPair'));
  await page.getByRole('button', { name: 'Import…' }).click();
  await page.getByLabel('Name', { exact: true }).fill('laptop');
  await page.getByLabel('Public key', { exact: true }).fill('ssh-ed25519 AAAAnot-a-key laptop');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  const keyField = page.getByLabel('Public key', { exact: true });
  await page.locator('textarea[aria-invalid="true"]').waitFor();
  const describedBy = (await keyField.getAttribute('aria-describedby')) ?? '';
  const errorId = describedBy.split(' ').find((id) => id.endsWith('-error')) ?? '';
  const error = await page.locator(`[id="${errorId}"]`).innerText();
  assert.match(error, /InvalidPublicKeyBody/);
  await screenshot(page, '04-import-error');
  const { privateKey } = generateKeyPairSync('ed25519');
  const line = `${ed25519PublicKeyLine(privateKey)} me@laptop`;
  await keyField.fill(line);
  await page.getByLabel('Tags (optional)').fill('owner=me, laptop');
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'Key pair laptop imported.' }).waitFor();
  const row = page.locator('tr[data-key-pair="laptop"]');
  await row.waitFor();
  const blob = Buffer.from(line.split(' ')[1] ?? '', 'base64');
  const sha = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  assert.ok((await row.innerText()).includes(sha), 'the SHA256 fingerprint ssh-keygen would print');
  assert.match(await row.innerText(), /Ed25519/);
  assert.match(await row.innerText(), /owner=me/);
  // The filter finds it by fingerprint.
  await page.getByLabel('Filter key pairs').fill(sha.slice(7, 20));
  assert.equal(await page.locator('tbody tr').count(), 1);
  await page.getByLabel('Filter key pairs').fill('');
});

test('key pairs: attach to the instance; delete is refused with the reason while bound', async () => {
  await page.goto(consoleUrl('#/key-pairs'));
  const row = page.locator('tr[data-key-pair="laptop"]');
  await row.getByRole('button', { name: 'Attach…' }).click();
  await page.getByLabel('Instance').selectOption(instanceId);
  await page.getByRole('button', { name: 'Attach', exact: true }).click();
  await page
    .getByRole('status')
    .filter({ hasText: `Key pair laptop attached to ${instanceId}.` })
    .waitFor();
  await row.locator(`a[href="#/instances/${instanceId}"]`).waitFor();
  const res = await rpc.call<{ Instances: { Instance: Array<{ KeyPairName: string }> } }>(
    'DescribeInstances',
    {
      RegionId: 'local',
      InstanceIds: JSON.stringify([instanceId]),
    },
  );
  assert.equal(res.Instances.Instance[0]?.KeyPairName, 'laptop');
  await screenshot(page, '02-key-pairs');
  assert.deepEqual(await unlabelled(page), []);
  watch.allow(refused(400, 'call/DeleteKeyPairs'));
  await row.getByRole('button', { name: 'Delete…' }).click();
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  const refusal = page.locator('dialog .alert.error');
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /bound to the instance .*detach it/);
  await page.keyboard.press('Escape');
  await page.locator('dialog').waitFor({ state: 'detached' });
});

test('instances: the list shows the live status; the detail shows the host key fingerprints', async () => {
  await page.goto(consoleUrl('#/instances'));
  const row = page.locator(`tr[data-instance="${instanceId}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /Running/);
  assert.match(await row.innerText(), /laptop/);
  await screenshot(page, '05-instances');
  assert.deepEqual(await unlabelled(page), []);
  await row.getByRole('link').first().click();
  await page.getByRole('heading', { name: 'Host keys' }).waitFor();
  const hostKey = sshd.hostKeyPub.trim().split(/\s+/)[1] ?? '';
  const fp = `SHA256:${createHash('sha256').update(Buffer.from(hostKey, 'base64')).digest('base64').replace(/=+$/, '')}`;
  assert.ok((await page.locator('main').innerText()).includes(fp), `host key ${fp} shown`);
  await screenshot(page, '06-instance-detail');
  assert.deepEqual(await unlabelled(page), []);
});

test('instances: an enrollment token with its command, rename, the SSH route, tags added and removed', async () => {
  await page.goto(consoleUrl('#/instances'));
  await page.getByRole('button', { name: 'Add instance…' }).click();
  await page.getByRole('button', { name: 'Create token' }).click();
  const shown = page.locator('dialog', { hasText: 'Enrollment token' });
  await shown.waitFor();
  assert.match(
    await shown.innerText(),
    /curl -fsSL http:\/\/127\.0\.0\.1:\d+\/agent\/v1\/install\.sh \| sudo sh -s -- --token \S{20,}/,
  );
  await shown.getByRole('button', { name: 'Done' }).click();
  await page.goto(consoleUrl(`#/instances/${instanceId}`));
  await page.getByRole('heading', { name: 'Host keys' }).waitFor();
  // The host's OpenSSH release and whether one-time logons are ready there, as its agent reported them.
  const facts = await page.locator('dl.facts').innerText();
  assert.match(facts, /OpenSSH\s+\d+\.\d+/);
  assert.match(facts, /One-time logon\s+ready \(expiry-time: utc\)/i);
  await page.getByRole('button', { name: 'Rename…' }).click();
  await page.getByLabel('Name', { exact: true }).fill('web-01');
  await page.getByRole('button', { name: 'Rename', exact: true }).click();
  await page.getByRole('heading', { name: 'web-01', level: 1 }).waitFor();
  // The SSH route: shown among the facts, changed in a dialog (and set back, for the logons below).
  assert.match(await page.locator('dl.facts').innerText(), /SSH route\s+direct: the server dials/);
  for (const route of ['auto', 'direct']) {
    await page.getByRole('button', { name: 'SSH route…' }).click();
    await page.getByLabel('Route', { exact: true }).selectOption(route);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('dl.facts dd', { hasText: new RegExp(`^${route}: `) }).waitFor();
    const described = await rpc.call<{
      Instances: { Instance: Array<{ KeywardAgent: { SshRoute: string } }> };
    }>('DescribeInstances', { RegionId: 'local', InstanceIds: JSON.stringify([instanceId]) });
    assert.equal(described.Instances.Instance[0]?.KeywardAgent.SshRoute, route);
  }
  await page.getByRole('button', { name: 'Add tags…' }).click();
  await page.getByLabel('Tags', { exact: true }).fill('env=prod, tier=web');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.getByRole('button', { name: 'Remove tag tier' }).waitFor();
  await page.getByRole('button', { name: 'Remove tag tier' }).click();
  await page.getByRole('button', { name: 'Remove tag tier' }).waitFor({ state: 'detached' });
  const res = await rpc.call<{
    Instances: {
      Instance: Array<{ InstanceName: string; Tags: { Tag: Array<{ TagKey: string; TagValue: string }> } }>;
    };
  }>('DescribeInstances', { RegionId: 'local', InstanceIds: JSON.stringify([instanceId]) });
  assert.equal(res.Instances.Instance[0]?.InstanceName, 'web-01');
  assert.deepEqual(res.Instances.Instance[0]?.Tags.Tag, [{ TagKey: 'env', TagValue: 'prod' }]);
});

test('Connect: a terminal in the page runs a command; the one-time key runs out and the session stays up', async () => {
  await page.goto(consoleUrl(`#/instances/${instanceId}`));
  // The field's pattern is in force (an invalid pattern is silently ignored by the browser).
  await page.getByLabel('Log on as (OS user)').fill('Not-A-User');
  assert.equal(await patternMismatch(page.getByLabel('Log on as (OS user)')), true);
  await page.getByLabel('Log on as (OS user)').fill(user.name);
  assert.equal(await patternMismatch(page.getByLabel('Log on as (OS user)')), false);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('.term-state', { hasText: 'Connected' }).waitFor({ timeout: 20_000 });
  const keyClock = page.locator('[data-countdown="key"]');
  assert.match(await keyClock.innerText(), /One-time key destroyed in 0:0\d/);
  assert.match(await page.locator('[data-countdown="session"]').innerText(), /Session ends in \d:\d\d:\d\d/);
  await page.locator('.xterm-helper-textarea').focus();
  await page.keyboard.type('echo console-$((6*7))\n');
  await waitForTerminal(page, 'console-42');
  await screenshot(page, '07-terminal');
  // The shell's terminal size follows the window.
  const sizeBefore = await shellSize(page, 'a');
  await page.setViewportSize({ width: 900, height: 600 });
  let sizeAfter = sizeBefore;
  for (let i = 0; i < 40 && sizeAfter.join() === sizeBefore.join(); i++) {
    await sleep(100);
    sizeAfter = await shellSize(page, `b${String(i)}`);
  }
  assert.ok(
    sizeAfter[0] < sizeBefore[0] && sizeAfter[1] < sizeBefore[1],
    `${sizeBefore.join()} → ${sizeAfter.join()}`,
  );
  await page.setViewportSize({ width: 1280, height: 800 });
  // Past the key's lifetime: the countdown says so, the key's grant is gone, the shell still answers.
  await page
    .locator('[data-countdown="key"][data-expired="true"]')
    .waitFor({ timeout: (LIFETIME_SECONDS + 5) * 1000 });
  assert.match(await keyClock.innerText(), /One-time key destroyed; the session stays open/);
  const grants = await rpc.call<{
    Grants: { Grant: Array<{ InstanceId: string; Caller: string; DestroyedAt: string | null }> };
  }>('DescribeLogonGrants', { RegionId: 'local' }, { version: KEYWARD });
  const mine = grants.Grants.Grant.filter((g) => g.InstanceId === instanceId);
  assert.equal(mine.length, 1);
  assert.equal(mine[0]?.Caller, `user/${ADMIN}`);
  assert.notEqual(mine[0]?.DestroyedAt, null, 'the one-time key is destroyed');
  const userGrants = join(hostDir, 'grants', user.name);
  assert.deepEqual(existsSync(userGrants) ? readdirSync(userGrants) : [], [], 'no key left on the host');
  await page.keyboard.type('echo still-$((2+3))\n');
  await waitForTerminal(page, 'still-5');
  await screenshot(page, '08-terminal-key-expired');
  await page.keyboard.type('exit 3\n');
  const ended = page.locator('.term-ended');
  await ended.waitFor();
  assert.match(await ended.innerText(), /The shell exited with status 3\./);
});

test('sessions: the console session is listed and plays back with play/pause, seek and speed', async () => {
  // The session just ended; its row is completed once the recording is closed.
  // Newest first: the session Connect just ended.
  const first = page.locator('tbody tr').first();
  const link = first.locator('a[href^="#/sessions/ts-"]');
  let row = '';
  for (let i = 0; i < 50 && !/complete/.test(row); i++) {
    await page.goto(consoleUrl('#/sessions'));
    if (i > 0) await page.reload();
    await link.waitFor();
    row = await first.innerText();
    if (!/complete/.test(row)) await sleep(200);
  }
  assert.match(row, new RegExp(`user/${ADMIN}`));
  assert.match(row, new RegExp(`${user.name}@${instanceId}`));
  assert.match(row, /complete/);
  await screenshot(page, '09-sessions');
  await link.click();
  await page.locator('.chain', { hasText: /events, \d+:\d\d long/ }).waitFor();
  await page.getByRole('combobox', { name: 'Speed' }).selectOption('4');
  await page.getByRole('button', { name: 'Play' }).click();
  await page.getByRole('button', { name: 'Pause' }).waitFor();
  await waitForTerminal(page, 'console-42');
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.getByRole('button', { name: 'Play' }).waitFor();
  // Seek to the end: everything the session showed, the last command included.
  await page.getByRole('slider', { name: 'Position' }).evaluate((el) => {
    const range = el as unknown as { value: string; max: string; dispatchEvent(e: Event): boolean };
    range.value = range.max;
    range.dispatchEvent(new Event('input'));
  });
  await waitForTerminal(page, 'still-5');
  // And back to the start: the screen is replayed from nothing.
  await page.getByRole('slider', { name: 'Position' }).evaluate((el) => {
    const range = el as unknown as { value: string; max: string; dispatchEvent(e: Event): boolean };
    range.value = '0';
    range.dispatchEvent(new Event('input'));
  });
  assert.ok(!(await terminalText(page)).includes('still-5'));
  await page.getByRole('button', { name: 'Verify against the audit log' }).click();
  await page.locator('.alert.ok', { hasText: /Verified: SHA-256/ }).waitFor();
  await screenshot(page, '10-session-player');
});

test('a user without permission sees the denial, in the lists and at Connect', async () => {
  const ctx = watch.watch(await browser.newContext({ viewport: { width: 1280, height: 800 } }));
  try {
    const p = await ctx.newPage();
    watch.allow(refused(403, 'call/CreateKeyPair'), refused(403, 'terminal'));
    await signIn(p, VIEWER);
    await p.getByRole('navigation', { name: 'Console' }).waitFor();
    await p.goto(consoleUrl('#/key-pairs'));
    await p.locator('tr[data-key-pair="laptop"]').waitFor();
    await p.getByRole('button', { name: 'Create key pair' }).click();
    await p.getByLabel('Name', { exact: true }).fill('not-allowed');
    await p.getByRole('button', { name: 'Create', exact: true }).click();
    const denied = p.locator('dialog .alert.denied');
    await denied.waitFor();
    assert.match(await denied.innerText(), /Not allowed\..*Forbidden\.RAM/s);
    await p.keyboard.press('Escape');
    await p.goto(consoleUrl(`#/terminal/${instanceId}/${user.name}`));
    const refusal = p.locator('.term-ended .alert.denied');
    await refusal.waitFor();
    assert.match(await refusal.innerText(), /ecs-workbench:LoginInstance/);
    await screenshot(p, '09-denied');
    const listed = await rpc.call<{ TotalCount: number }>('DescribeKeyPairs', {
      RegionId: 'local',
      KeyPairName: 'not-allowed',
    });
    assert.equal(listed.TotalCount, 0);
  } finally {
    await ctx.close();
  }
});

test('users, policies and the audit log: create a user, a policy with an inline JSON error, the chain verified', async () => {
  await page.goto(consoleUrl('#/users'));
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.getByLabel('User name').fill('operator');
  await page.getByLabel('Console password (optional)').fill('operator password 1');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'User operator created.' }).waitFor();
  const operatorRow = page.locator('tr[data-user="operator"]');
  await operatorRow.waitFor();
  await screenshot(page, '10-users');
  assert.deepEqual(await unlabelled(page), []);
  // An access key, its secret shown once.
  await operatorRow.getByRole('button', { name: 'Access keys…' }).click();
  await page.getByText('No access keys').waitFor();
  await page.getByRole('button', { name: 'Create access key' }).click();
  const secretDialog = page.locator('dialog', { hasText: 'New access key' });
  await secretDialog.waitFor();
  assert.match(await secretDialog.innerText(), /Secret\s+\S{20,}/);
  await secretDialog.getByRole('button', { name: 'Done' }).click();
  // MFA: the seed shown once, bound with two consecutive codes; the sign-in then asks for a code.
  await operatorRow.getByRole('button', { name: 'MFA…' }).click();
  await page.getByRole('button', { name: 'Set up an authenticator' }).click();
  const seedText = await page.locator('dialog code.secret').first().innerText();
  const seed = base32Decode(seedText.trim());
  const step = totpStep(Date.now());
  await page.getByLabel('First code').fill(totpCode(seed, step - 1));
  await page.getByLabel('Next code').fill(totpCode(seed, step));
  await page.getByRole('button', { name: 'Bind' }).click();
  await page.getByRole('status').filter({ hasText: 'MFA device bound to operator' }).waitFor();
  const mfaContext = watch.watch(await browser.newContext());
  try {
    const p = await mfaContext.newPage();
    // The first answer asks for the code; once in, the operator (no policy yet) may not list instances.
    watch.allow(refused(401, 'sign-in'), refused(403, 'call/DescribeInstances'));
    await signIn(p, 'operator', 'operator password 1');
    await p.getByLabel('Authenticator code').waitFor();
    // A code after the ones spent on binding: the next step's, which the server accepts (±1 step).
    await p.getByLabel('Authenticator code').fill(totpCode(seed, totpStep(Date.now()) + 1));
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('navigation', { name: 'Console' }).waitFor();
  } finally {
    await mfaContext.close();
  }
  await page.goto(consoleUrl('#/policies'));
  watch.allow(refused(400, 'call/CreatePolicy'));
  await page.getByRole('button', { name: 'Create policy' }).click();
  await page.getByLabel('Name', { exact: true }).fill('LogonOnly');
  const doc = page.getByLabel('Policy document (JSON)');
  await doc.fill(
    '{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "ecs-workbench:LoginInstance"}]}',
  );
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('textarea[aria-invalid="true"]').waitFor();
  const fieldError = page.locator('.field-error:not([hidden])');
  assert.match(await fieldError.innerText(), /Resource/);
  await screenshot(page, '11-policy-error');
  await doc.fill(
    '{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "ecs-workbench:LoginInstance", "Resource": "*"}]}',
  );
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('tr[data-policy="LogonOnly"]').waitFor();
  await page.goto(consoleUrl('#/users'));
  await page.locator('tr[data-user="operator"]').getByRole('button', { name: 'Attach policy…' }).click();
  await page.getByLabel('Policy', { exact: true }).selectOption('Custom:LogonOnly');
  await page.getByRole('button', { name: 'Attach', exact: true }).click();
  await page.locator('tr[data-user="operator"]', { hasText: 'LogonOnly' }).waitFor();
  await page.goto(consoleUrl('#/audit'));
  await page.locator('.chain.ok').waitFor();
  assert.match(await page.locator('.chain').innerText(), /Chain verified: \d+ events/);
  await page.getByLabel('Event type').fill('session');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('tbody tr', { hasText: 'session.closed' }).first().waitFor();
  await screenshot(page, '12-audit');
  assert.deepEqual(await unlabelled(page), []);
});

test('CSRF and Origin: a page on another origin cannot act with the session; a forged header is refused', async () => {
  // Another origin on the same host (another port: the same site, so the SameSite cookie IS sent and the
  // Origin check is what refuses): a classic cross-site form post and a no-cors fetch, both with the session.
  const target = `${server.endpoint}/console/api/call/CreateKeyPair`;
  watch.allow(refused(403, 'call/CreateKeyPair'));
  const evilSite = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><form method="POST" action="${target}" enctype="text/plain">
      <input name='{"RegionId":"local","KeyPairName":"csrf-form","x":"' value='"}'></form>
      <script>fetch(${JSON.stringify(target)}, {method: 'POST', mode: 'no-cors', credentials: 'include',
        body: JSON.stringify({RegionId: 'local', KeyPairName: 'csrf-fetch'})})
        .finally(() => document.forms[0].submit());</script>`);
  });
  await new Promise<void>((resolve) => evilSite.listen(0, '127.0.0.1', resolve));
  try {
    const evil = await admin.newPage();
    const address = evilSite.address() as { port: number };
    const answer = evil.waitForResponse(
      (r) =>
        r.url() === target && r.request().method() === 'POST' && r.request().resourceType() === 'document',
    );
    await evil.goto(`http://127.0.0.1:${String(address.port)}/`);
    const res = await answer;
    assert.equal(res.status(), 403);
    assert.match(await res.text(), /Console\.CsrfRejected/);
    await evil.close();
  } finally {
    evilSite.close();
  }
  // From the console's own page, with the session but a forged CSRF token.
  const forged = await page.evaluate(async () => {
    const res = await fetch('/console/api/call/CreateKeyPair', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-keyward-csrf': 'forged' },
      body: JSON.stringify({ RegionId: 'local', KeyPairName: 'csrf-forged' }),
    });
    return { status: res.status, body: (await res.json()) as { Code: string } };
  });
  assert.equal(forged.status, 403);
  assert.equal(forged.body.Code, 'Console.CsrfRejected');
  const listed = await rpc.call<{ KeyPairs: { KeyPair: Array<{ KeyPairName: string }> } }>(
    'DescribeKeyPairs',
    {
      RegionId: 'local',
      PageSize: 50,
    },
  );
  const names = listed.KeyPairs.KeyPair.map((k) => k.KeyPairName);
  assert.deepEqual(
    names.filter((n) => n.startsWith('csrf')),
    [],
    'no key pair was made',
  );
  assert.ok(names.includes('laptop'), 'the listing is real');
});

test('signed out: the console asks to sign in, and the browser cannot open the terminal socket', async () => {
  await page.goto(consoleUrl('#/instances'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  // Provoked below: the refused socket and ticket, and the page's first call once the cookie is gone.
  watch.allow(
    /^console\.error: WebSocket connection to 'ws:\/\/[^']+\/terminal\/v1\/connect' failed: /,
    refused(401, 'terminal'),
    refused(401, 'call/DescribeInstances'),
  );
  const socket = await page.evaluate(
    (host: string) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`ws://${host}/terminal/v1/connect`, ['keyward-terminal-v1']);
        ws.onopen = () => {
          resolve('opened');
        };
        ws.onerror = () => {
          resolve('refused');
        };
      }),
    server.hostPort,
  );
  assert.equal(socket, 'refused');
  const ticket = await page.evaluate(async (id: string) => {
    const res = await fetch('/console/api/terminal', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instanceId: id }),
    });
    return { status: res.status, code: ((await res.json()) as { Code: string }).Code };
  }, instanceId);
  assert.deepEqual(ticket, { status: 401, code: 'Console.NotSignedIn' });
  await page.goto(consoleUrl('#/key-pairs'));
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  // Signing in again with the keyboard alone: the form has focus, Tab moves on, Enter submits.
  await page.keyboard.type(ADMIN);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('tr[data-key-pair="laptop"]').waitFor();
  // The session ends under the page (here: its cookie is gone): the next action asks to sign in again.
  await admin.clearCookies();
  await page.getByRole('link', { name: 'Instances' }).click();
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  assert.match(await page.locator('main').innerText(), /session may have expired/);
  // The instance attach made in the console is audited under the console user.
  const events = await rpc.call<{
    Events: { Event: Array<{ Actor: string; Detail: Record<string, unknown> }> };
  }>('ListAuditEvents', { EventType: 'binding', InstanceId: instanceId }, { version: KEYWARD });
  assert.ok(
    events.Events.Event.some((e) => e.Actor === `user/${ADMIN}` && e.Detail['via'] === 'console'),
    JSON.stringify(events),
  );
});
