import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { AGENT_TUNNEL_PATH, TUNNEL_CLOSE_CODES } from '../agent-channel/index.js';
import { TunnelRelay } from './tunnel-relay.js';

const INSTANCE = 'i-0123456789abcdefghij';
const message = {
  t: 'tunnel-open',
  tunnelId: 'tn-0123456789abcdefghij',
  token: 'A'.repeat(43),
} as const;

/** A server that accepts the agent's tunnel dial and hands the WebSocket over. */
async function dialTarget(): Promise<{ url: string; next: Promise<WebSocket>; http: Server }> {
  const http = createHttpServer();
  const wss = new WebSocketServer({
    server: http,
    path: AGENT_TUNNEL_PATH,
    handleProtocols: (p) => [...p][0] ?? false,
  });
  const next = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${String((http.address() as AddressInfo).port)}`, next, http };
}

test('sshd unreachable: the dial made meanwhile closes with 4502 and says why', async () => {
  const { url, next, http } = await dialTarget();
  // A port nothing listens on: bound, then closed.
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) =>
    probe.close(() => {
      resolve();
    }),
  );
  const relay = new TunnelRelay({
    instanceId: INSTANCE,
    serverUrls: [url],
    logger: pino({ level: 'silent' }),
    sshAddress: () => `127.0.0.1:${String(deadPort)}`,
  });
  try {
    relay.open(message, url);
    const ws = await next;
    const [code, reason] = await new Promise<[number, string]>((resolve) =>
      ws.once('close', (c: number, r: Buffer) => {
        resolve([c, r.toString()]);
      }),
    );
    assert.equal(code, TUNNEL_CLOSE_CODES.sshdUnreachable);
    assert.match(reason, /^sshd unreachable: .*ECONNREFUSED/);
    assert.equal(relay.size, 0);
  } finally {
    relay.stop();
    http.close();
  }
});

test('bytes both ways between the dial and sshd, which may answer before the dial is up', async () => {
  const { url, next, http } = await dialTarget();
  // A stand-in for sshd: speaks first (a banner), then echoes.
  const sshd = createTcpServer((s) => {
    s.write('SSH-2.0-test\r\n');
    s.pipe(s);
  });
  await new Promise<void>((resolve) => sshd.listen(0, '127.0.0.1', resolve));
  const relay = new TunnelRelay({
    instanceId: INSTANCE,
    serverUrls: [url],
    logger: pino({ level: 'silent' }),
    sshAddress: () => `127.0.0.1:${String((sshd.address() as AddressInfo).port)}`,
  });
  try {
    relay.open(message, url);
    const ws = await next;
    const payload = Buffer.alloc(3 * 1024 * 1024, 9);
    const expected = Buffer.concat([Buffer.from('SSH-2.0-test\r\n'), payload]);
    const got: Buffer[] = [];
    let size = 0;
    const all = new Promise<void>((resolve) => {
      ws.on('message', (d: Buffer) => {
        got.push(d);
        size += d.length;
        if (size >= expected.length) resolve();
      });
    });
    for (let i = 0; i < payload.length; i += 100_000) ws.send(payload.subarray(i, i + 100_000));
    await all;
    assert.ok(Buffer.concat(got).equals(expected), 'the banner, then every byte echoed in order');
    assert.equal(relay.size, 1);
    const closed = new Promise<number>((resolve) =>
      ws.once('close', (c: number) => {
        resolve(c);
      }),
    );
    relay.stop();
    assert.equal(await closed, TUNNEL_CLOSE_CODES.serverShutdown);
  } finally {
    relay.stop();
    sshd.close();
    http.close();
  }
});
