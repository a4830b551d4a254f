import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { connectSshd } from './ssh-route.js';

/** A TCP server on 127.0.0.1 doing `onConnection` with each connection; resolves with it and its port. */
async function listen(onConnection: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port };
}

async function close(server: Server, open: Socket[]): Promise<void> {
  for (const s of open) s.destroy();
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
}

test('auto counts a direct route only once sshd spoke, and passes its version line on unchanged', async () => {
  const open: Socket[] = [];
  // sshd: its version line in two pieces, then an answer to what the client sends.
  const sshd = await listen((s) => {
    open.push(s);
    s.write('SS');
    setTimeout(() => s.write('H-2.0-OpenSSH_9.2\r\n'), 20);
    s.on('data', (d: Buffer) => s.write(`echo:${d.toString()}`));
  });
  const sock = await connectSshd('127.0.0.1', sshd.port, 5_000);
  sock.write('hello');
  let got = '';
  await new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('echo:hello')) resolve();
    });
  });
  assert.equal(got, 'SSH-2.0-OpenSSH_9.2\r\necho:hello');
  sock.destroy();
  await close(sshd.server, open);
});

test('auto refuses what accepts the connection without being sshd: dropped, silent, or not SSH', async () => {
  const open: Socket[] = [];
  const dropper = await listen((s) => s.destroy());
  const silent = await listen((s) => open.push(s));
  const http = await listen((s) => {
    open.push(s);
    s.write('HTTP/1.1 400 Bad Request\r\n\r\n');
  });
  await assert.rejects(connectSshd('127.0.0.1', dropper.port, 5_000), /closed before sshd spoke|ECONNRESET/);
  await assert.rejects(connectSshd('127.0.0.1', silent.port, 300), /did not answer within 300 ms/);
  await assert.rejects(connectSshd('127.0.0.1', http.port, 5_000), /not sshd/);
  await close(dropper.server, []);
  await close(silent.server, open);
  await close(http.server, []);
});
