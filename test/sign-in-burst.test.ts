/**
 * The console sign-in lockout against concurrent bursts, through the real server: guesses sent all at
 * once are limited exactly like guesses sent one by one (each attempt is reserved before its password is
 * hashed), per user name and per source address, and a success gives its address reservation back.
 * Source addresses are picked from 127.0.0.0/8 (the server listens on 127.0.0.1).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { RpcClient } from '../src/client/index.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
const PASSWORD = 'the right console password';
const MAX_PER_USER = 5;
const MAX_PER_ADDRESS = 20;

let server: TestServer;
let ram: RpcClient;

before(async () => {
  server = await startInProcessServer();
  ram = rpcClient(server, server.credentials, { noRegion: true });
});

after(async () => {
  ram.close();
  await server.close();
});

async function consoleUser(name: string): Promise<void> {
  await ram.call('CreateUser', { UserName: name }, { version: RAM });
  await ram.call('CreateLoginProfile', { UserName: name, Password: PASSWORD }, { version: RAM });
}

/** POST /console/api/sign-in from `sourceAddress`; `signed-in` or the error code. */
function signIn(userName: string, password: string, sourceAddress = '127.0.0.1'): Promise<string> {
  const url = new URL(server.endpoint);
  const body = JSON.stringify({ userName, password });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: '/console/api/sign-in',
        localAddress: sourceAddress,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode === 200) {
            resolve('signed-in');
            return;
          }
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Code?: string };
          resolve(String(parsed.Code));
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('60 guesses at once: at most 5 are evaluated, and the right password after them is refused while locked', async () => {
  await consoleUser('burst');
  const answered: string[] = [];
  const wrong = Array.from({ length: 59 }, (_, i) =>
    signIn('burst', `wrong-${String(i)}`).then((a) => {
      answered.push(a);
      return a;
    }),
  );
  // Once a few have answered, the right password joins the guesses still in flight.
  const deadline = Date.now() + 120_000;
  while (answered.length < MAX_PER_USER && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const right = signIn('burst', PASSWORD);
  const answers = await Promise.all(wrong);
  const evaluated = answers.filter((a) => a === 'Console.InvalidCredentials');
  assert.ok(evaluated.length <= MAX_PER_USER, answers.join(','));
  assert.ok(
    answers.every((a) => a === 'Console.InvalidCredentials' || a === 'Console.SignInLocked'),
    answers.join(','),
  );
  assert.equal(await right, 'Console.SignInLocked');
  assert.equal(await signIn('burst', PASSWORD), 'Console.SignInLocked');

  // Each evaluated guess left one audit event (appends are batched: poll until they are all in).
  const failedEvents = async (): Promise<number> => {
    const events = await ram.call<{
      Events: { Event: Array<{ EventType: string; Actor: string }> };
    }>('ListAuditEvents', { EventType: 'console', MaxResults: 100 }, { version: KEYWARD });
    return events.Events.Event.filter(
      (e) => e.EventType === 'console.signin.failed' && e.Actor === 'user/burst',
    ).length;
  };
  const auditDeadline = Date.now() + 30_000;
  while ((await failedEvents()) < evaluated.length && Date.now() < auditDeadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(await failedEvents(), evaluated.length);
});

test('an address is limited across user names, and successes from it give their reservation back', async () => {
  await consoleUser('office');
  // An office behind one address signing in all day is not locked out by its own successes.
  for (let i = 0; i < MAX_PER_ADDRESS + 5; i++) {
    assert.equal(await signIn('office', PASSWORD, '127.0.0.2'), 'signed-in', `sign-in ${String(i)}`);
  }
  // Guesses spread over user names from one address, all at once: the address's share, then locked.
  const answers = await Promise.all(
    Array.from({ length: MAX_PER_ADDRESS + 15 }, (_, i) =>
      signIn(`spray-${String(i)}`, 'guess', '127.0.0.3'),
    ),
  );
  assert.ok(
    answers.filter((a) => a === 'Console.InvalidCredentials').length <= MAX_PER_ADDRESS,
    answers.join(','),
  );
  assert.equal(await signIn('office', PASSWORD, '127.0.0.3'), 'Console.SignInLocked');
  // The user name itself is not locked: from another address the right password still signs in.
  assert.equal(await signIn('office', PASSWORD, '127.0.0.2'), 'signed-in');
});
