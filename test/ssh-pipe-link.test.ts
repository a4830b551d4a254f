// keyward-test: one engine (no storage: the ProxyCommand keyward ssh gives ssh, run by /bin/sh as ssh runs it)
/**
 * `keyward ssh`'s link to ssh for the tunnel and auto routes (src/apps/cli/ssh-pipe-link.ts): its
 * ProxyCommand run the way ssh runs one (`/bin/sh -c "exec COMMAND"`, standard input and output pipes of
 * "ssh"), a real TCP server on 127.0.0.1 standing for sshd. Bytes go both ways unchanged and in order, the
 * server's end reaches ssh as the end of its connection, and however ssh ends (exits, or is stopped before
 * the route was even opened), every process of the ProxyCommand exits and nothing holds the directory.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PipeLink } from '../src/apps/cli/ssh-pipe-link.js';
import { leftovers } from './helpers/leftovers.js';

let server: Server;
let port: number;

before(async () => {
  // Stands for sshd: a banner first, then an echo of each line; "big N" answers N random bytes then a
  // digest line; "bye" ends the connection after a last line.
  server = createServer((sock: Socket) => {
    sock.write('SSH-2.0-far\r\n');
    let text = '';
    sock.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        const big = /^big (\d+)$/.exec(line);
        if (big !== null) {
          const bytes = randomBytes(Number(big[1]));
          sock.write(bytes);
          sock.write(`\n${createHash('sha256').update(bytes).digest('hex')}\n`);
        } else if (line === 'bye') {
          sock.end('done\n');
        } else {
          sock.write(`${line}\n`);
        }
      }
    });
    sock.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.close();
});

interface Proxy {
  readonly dir: string;
  readonly link: PipeLink;
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<unknown>;
  /** Everything the ProxyCommand wrote to "ssh" so far. */
  output(): Buffer;
  readonly ended: Promise<unknown>;
}

/** Starts the link's ProxyCommand as ssh does, and the link's watch. */
function startProxy(): Proxy {
  const dir = mkdtempSync(join(tmpdir(), 'kw-link-'));
  const link = new PipeLink(dir, 1);
  const child = spawn('/bin/sh', ['-c', `exec ${link.proxyCommand}`], { stdio: 'pipe' });
  link.watch();
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => process.stderr.write(c));
  return {
    dir,
    link,
    child,
    exited: once(child, 'close'),
    output: () => Buffer.concat(chunks),
    ended: once(child.stdout, 'end'),
  };
}

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** ssh goes away: its end of the pipes closes, and it sends SIGHUP to its ProxyCommand (as it does). */
async function sshExits(p: Proxy, opts: { hup: boolean }): Promise<void> {
  p.child.stdin.end();
  if (opts.hup) p.child.kill('SIGHUP');
  p.link.close();
  await p.exited;
  rmSync(p.dir, { recursive: true, force: true });
  let left: string[] = [];
  await until('the ProxyCommand to leave nothing', () => (left = leftovers(p.dir)).length === 0).catch(
    (err: unknown) => {
      throw new Error(`${(err as Error).message}: ${left.join('; ')}`);
    },
  );
}

test('bytes go both ways in order; the server ending reaches ssh as the end of its connection', async () => {
  const p = startProxy();
  const stream = connect({ port, host: '127.0.0.1' });
  await once(stream, 'connect');
  await p.link.attach(stream);
  p.child.stdin.write('hello\nworld\n');
  await until('the echo', () => p.output().toString('latin1') === 'SSH-2.0-far\r\nhello\nworld\n');
  // 4 MiB from the server through the link, with its digest.
  p.child.stdin.write(`big ${String(4 * 1024 * 1024)}\n`);
  await until('4 MiB and a digest', () => p.output().length >= 4 * 1024 * 1024 + 13 + 12 + 66);
  const out = p.output().subarray(Buffer.byteLength('SSH-2.0-far\r\nhello\nworld\n'));
  const bytes = out.subarray(0, 4 * 1024 * 1024);
  const digest = out.subarray(4 * 1024 * 1024 + 1, 4 * 1024 * 1024 + 65).toString('latin1');
  assert.equal(digest, createHash('sha256').update(bytes).digest('hex'));
  // 4 MiB from "ssh" through the link, in lines the server echoes: all back, in order.
  const lines = Array.from({ length: 4096 }, (_, i) => `${String(i)} ${randomBytes(500).toString('hex')}`);
  const before = p.output().length;
  for (const line of lines) p.child.stdin.write(`${line}\n`);
  const sent = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  await until('the lines back', () => p.output().length >= before + sent.length);
  assert.ok(p.output().subarray(before).equals(sent));
  // The server ends the connection: ssh reads its last line, then the end.
  p.child.stdin.write('bye\n');
  await p.ended;
  assert.ok(p.output().toString('latin1').endsWith('\ndone\n'));
  await sshExits(p, { hup: true });
});

test('ssh exiting while the connection is open ends the relay and every process of the ProxyCommand', async () => {
  const p = startProxy();
  const stream = connect({ port, host: '127.0.0.1' });
  await once(stream, 'connect');
  await p.link.attach(stream);
  await until('the banner', () => p.output().length >= 13);
  const closed = once(stream, 'close');
  await sshExits(p, { hup: true });
  await closed;
});

test('ssh stopped before the route opened (its pipes made, or not yet): nothing is left', async () => {
  // Stopped once the ProxyCommand made its pipes, without the SIGHUP ssh sends when it exits normally.
  const made = startProxy();
  await until(
    'the pipes',
    () => existsSync(join(made.dir, 'to-ssh-1')) && existsSync(join(made.dir, 'from-ssh-1')),
  );
  await sshExits(made, { hup: false });
  // Stopped at once: the pipes are made after the link was closed, and nobody opens them here.
  const early = startProxy();
  early.link.close();
  await sshExits(early, { hup: false });
  // attach() after close() refuses.
  const late = startProxy();
  late.link.close();
  const stream = connect({ port, host: '127.0.0.1' });
  await assert.rejects(late.link.attach(stream), /closed/);
  stream.destroy();
  await sshExits(late, { hup: true });
});
