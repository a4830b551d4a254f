/**
 * The broker's SSH client against a real OpenSSH sshd on 127.0.0.1: authentication with a one-time key
 * held only as an unexported KeyObject, host keys pinned (a different host key is refused), the key
 * forgotten once authentication ends, sshd's host key announcement answered without a request for proofs,
 * and readable errors for an unreachable sshd and a refused key.
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Client } from 'ssh2';
import { parsePublicKey } from '../src/keypairs/index.js';
import { ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { brokerConnect, makeOneTimeKey } from '../src/logon/index.js';
import { isAppError } from '../src/platform/errors.js';
import {
  createThrowawayUser,
  freePort,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
  sshRun,
} from './helpers/sshd.js';

let sshd: PrivateSshd;
let user: ThrowawayUser;

before(async () => {
  sshd = await startPrivateSshd();
  user = await createThrowawayUser();
});
after(async () => {
  await sshd.stop();
  await user.remove();
});

function pinned(line: string) {
  const k = parsePublicKey(line);
  return { type: k.type, publicKey: k.openssh, fingerprintSha256: k.fingerprintSha256 };
}

async function authorize(line: string): Promise<void> {
  const dir = join(user.home, '.ssh');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'authorized_keys'), `${line}\n`, { mode: 0o600 });
  await chmod(dir, 0o700);
  await chown(dir, user.uid, user.gid);
  await chown(join(dir, 'authorized_keys'), user.uid, user.gid);
}

function exec(client: Client, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err !== undefined && err !== null) {
        reject(err);
        return;
      }
      let out = '';
      stream.on('data', (d: Buffer) => (out += d.toString()));
      stream.on('close', () => {
        resolve(out);
      });
    });
  });
}

/** Logs on in its own frame, so the caller holds the client and a WeakRef to the key, nothing more. */
async function logOnOnce(): Promise<{ client: Client; key: WeakRef<object>; ended: boolean | undefined }> {
  let key: ReturnType<typeof makeOneTimeKey> | undefined = makeOneTimeKey();
  await authorize(key.publicKeyLine);
  const weak = new WeakRef(key.privateKey);
  let ended: boolean | undefined;
  const connecting = brokerConnect({
    instanceId: 'i-test',
    targetPolicy: { allowLoopback: true, allowlist: [] },
    sshAddress: `127.0.0.1:${sshd.port}`,
    hostKeys: [pinned(sshd.hostKeyPub)],
    username: user.name,
    privateKey: key.privateKey,
    publicKeyLine: key.publicKeyLine,
    onAuthenticationEnded: (ok) => {
      ended = ok;
    },
  });
  key = undefined;
  const client = await connecting;
  return { client, key: weak, ended };
}

test('logs on with a one-time key and the pinned host key; the key is unreachable once authenticated', async () => {
  const { client, key, ended } = await logOnOnce();
  try {
    assert.equal(ended, true);
    assert.equal((await exec(client, 'id -un')).trim(), user.name);
    // The session is still open: the broker must already have let go of the key.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // deref() keeps its target alive until the current job ends, so collect first, look once at the end.
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(key.deref(), undefined, 'the private key is still reachable during the session');
    assert.equal((await exec(client, 'echo still-open')).trim(), 'still-open');
  } finally {
    client.end();
  }
});

test('the broker signs with its first publickey request, so sshd checks the key once, where ssh asks first', async () => {
  // OpenSSH's own client asks first ("Postponed publickey" at LogLevel VERBOSE): the control.
  const control = makeOneTimeKey();
  await authorize(control.publicKeyLine);
  const keyFile = join(user.home, `control-${String(process.pid)}`);
  await writeFile(keyFile, ed25519ToOpenSshPrivateKey(control.privateKey, 'control'), { mode: 0o600 });
  const atControl = sshd.log().length;
  const res = await sshRun(sshd.port, user.name, keyFile, ['true']);
  assert.equal(res.code, 0, res.stderr);
  await waitForLog(atControl, /Accepted publickey/);
  assert.match(sshd.log().slice(atControl), /Postponed publickey/);

  const atBroker = sshd.log().length;
  const { client } = await logOnOnce();
  try {
    await waitForLog(atBroker, /Accepted publickey/);
    assert.doesNotMatch(sshd.log().slice(atBroker), /Postponed publickey/);
  } finally {
    client.end();
  }
});

/** Waits until `server`'s log after `from` matches (sshd writes it a moment after the client is told). */
async function waitForLog(from: number, pattern: RegExp, server: PrivateSshd = sshd): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pattern.test(server.log().slice(from))) {
    if (Date.now() > deadline)
      throw new Error(`sshd never logged ${String(pattern)}:\n${server.log().slice(from)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("sshd's announcement of its host keys is answered with SSH_MSG_IGNORE, not a request for proofs", async () => {
  // LogLevel DEBUG3 (the first value sshd reads wins): sshd logs the announcement it sends, each global
  // request it receives and each SSH_MSG_IGNORE.
  const verbose = await startPrivateSshd({ beforeInclude: ['LogLevel DEBUG3'] });
  try {
    const key = makeOneTimeKey();
    await authorize(key.publicKeyLine);
    const client = await brokerConnect({
      instanceId: 'i-test',
      targetPolicy: { allowLoopback: true, allowlist: [] },
      sshAddress: `127.0.0.1:${verbose.port}`,
      hostKeys: [pinned(verbose.hostKeyPub)],
      username: user.name,
      privateKey: key.privateKey,
      publicKeyLine: key.publicKeyLine,
    });
    try {
      // The session goes on as before: a shell with a pty, as the terminal opens it.
      const out = await new Promise<string>((resolve, reject) => {
        client.shell({ term: 'xterm-256color', cols: 80, rows: 24 }, (err, channel) => {
          if (err !== undefined && err !== null) {
            reject(err);
            return;
          }
          let text = '';
          channel.on('data', (d: Buffer) => {
            text += d.toString();
            if (text.includes('answer:42')) {
              channel.end('exit\n');
              resolve(text);
            }
          });
          channel.write('echo answer:$((6*7))\n');
        });
      });
      assert.match(out, /answer:42/);
      await waitForLog(0, /Received SSH2_MSG_IGNORE/, verbose);
      const log = verbose.log();
      assert.match(log, /sent \d+ hostkeys/, 'sshd announced its host keys');
      assert.doesNotMatch(log, /hostkeys-prove-00@openssh\.com/, 'the broker asked sshd to prove them');
    } finally {
      client.end();
    }
  } finally {
    await verbose.stop();
  }
});

test('refuses a host whose key is not the pinned one', async () => {
  const key = makeOneTimeKey();
  await authorize(key.publicKeyLine);
  const other = makeOneTimeKey();
  await assert.rejects(
    brokerConnect({
      instanceId: 'i-test',
      targetPolicy: { allowLoopback: true, allowlist: [] },
      sshAddress: `127.0.0.1:${sshd.port}`,
      hostKeys: [pinned(other.publicKeyLine)],
      username: user.name,
      privateKey: key.privateKey,
      publicKeyLine: key.publicKeyLine,
    }),
    (err: unknown) => isAppError(err, 'Logon.HostKeyMismatch'),
  );
});

test('a key sshd does not accept is Logon.AuthenticationFailed', async () => {
  const key = makeOneTimeKey();
  await authorize(makeOneTimeKey().publicKeyLine);
  let ended: boolean | undefined;
  await assert.rejects(
    brokerConnect({
      instanceId: 'i-test',
      targetPolicy: { allowLoopback: true, allowlist: [] },
      sshAddress: `127.0.0.1:${sshd.port}`,
      hostKeys: [pinned(sshd.hostKeyPub)],
      username: user.name,
      privateKey: key.privateKey,
      publicKeyLine: key.publicKeyLine,
      onAuthenticationEnded: (ok) => {
        ended = ok;
      },
    }),
    (err: unknown) => isAppError(err, 'Logon.AuthenticationFailed'),
  );
  assert.equal(ended, false);
});

test('an address where nothing listens is Logon.SshdUnreachable', async () => {
  const key = makeOneTimeKey();
  const port = await freePort();
  await assert.rejects(
    brokerConnect({
      instanceId: 'i-test',
      targetPolicy: { allowLoopback: true, allowlist: [] },
      sshAddress: `127.0.0.1:${port}`,
      hostKeys: [pinned(sshd.hostKeyPub)],
      username: user.name,
      privateKey: key.privateKey,
      publicKeyLine: key.publicKeyLine,
    }),
    (err: unknown) => isAppError(err, 'Logon.SshdUnreachable') && /ECONNREFUSED/.test((err as Error).message),
  );
});

/**
 * A listener on 127.0.0.1 standing in front of sshd that, like sshd over MaxStartups, accepts and at once
 * closes the first `drops` connections, and passes the rest through to sshd.
 */
async function sheddingFront(
  drops: number,
): Promise<{ port: number; seen: () => number; close: () => void }> {
  let seen = 0;
  const server = createServer((socket) => {
    seen++;
    if (seen <= drops) {
      socket.destroy();
      return;
    }
    const upstream = netConnect({ host: '127.0.0.1', port: sshd.port });
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { port, seen: () => seen, close: () => server.close() };
}

test('a connection sshd drops after accepting it, before the key exchange, is retried with the same key', async () => {
  const front = await sheddingFront(2);
  const key = makeOneTimeKey();
  await authorize(key.publicKeyLine);
  const endings: boolean[] = [];
  try {
    const client = await brokerConnect({
      instanceId: 'i-test',
      targetPolicy: { allowLoopback: true, allowlist: [] },
      sshAddress: `127.0.0.1:${front.port}`,
      hostKeys: [pinned(sshd.hostKeyPub)],
      username: user.name,
      privateKey: key.privateKey,
      publicKeyLine: key.publicKeyLine,
      onAuthenticationEnded: (ok) => endings.push(ok),
    });
    try {
      assert.equal((await exec(client, 'id -un')).trim(), user.name);
      assert.equal(front.seen(), 3, 'two dropped connections, then the one that logged on');
      assert.deepEqual(endings, [true], 'authentication ended once, successfully');
    } finally {
      client.end();
    }
  } finally {
    front.close();
  }
});

test('a host that keeps dropping connections is Logon.SshdUnreachable after a bounded number of tries', async () => {
  const front = await sheddingFront(1_000);
  const key = makeOneTimeKey();
  const endings: boolean[] = [];
  try {
    await assert.rejects(
      brokerConnect({
        instanceId: 'i-test',
        targetPolicy: { allowLoopback: true, allowlist: [] },
        sshAddress: `127.0.0.1:${front.port}`,
        hostKeys: [pinned(sshd.hostKeyPub)],
        username: user.name,
        privateKey: key.privateKey,
        publicKeyLine: key.publicKeyLine,
        onAuthenticationEnded: (ok) => endings.push(ok),
      }),
      (err: unknown) => isAppError(err, 'Logon.SshdUnreachable'),
    );
    assert.equal(front.seen(), 4, 'the first try and three more');
    assert.deepEqual(endings, [false], 'the key is forgotten once, when the broker gives up');
  } finally {
    front.close();
  }
});

test('no pinned host key is Logon.NoHostKeys, before any connection', async () => {
  const key = makeOneTimeKey();
  await assert.rejects(
    brokerConnect({
      instanceId: 'i-test',
      targetPolicy: { allowLoopback: true, allowlist: [] },
      sshAddress: `127.0.0.1:${sshd.port}`,
      hostKeys: [],
      username: user.name,
      privateKey: key.privateKey,
      publicKeyLine: key.publicKeyLine,
    }),
    (err: unknown) => isAppError(err, 'Logon.NoHostKeys'),
  );
});
