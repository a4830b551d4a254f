/**
 * keepAlive with real WebSockets on 127.0.0.1: a peer that stops reading (its socket paused, as a host
 * that froze or a NAT that dropped the mapping looks from here: the connection stays, nothing answers) is
 * cut; a WebSocket this side paused for back-pressure is not cut for the pongs it could not read; a live
 * peer is kept. Intervals are short so the test is quick; the waits around them are generous.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';
import { keepAlive } from './ws-keepalive.js';

let wss: WebSocketServer;
let url = '';
const clients: WebSocket[] = [];

before(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
});

after(async () => {
  for (const c of clients) c.terminate();
  await new Promise<void>((resolve) => {
    wss.close(() => {
      resolve();
    });
  });
});

/** A client connected, and the server's side of it. */
async function pair(): Promise<{ client: WebSocket; server: WebSocket }> {
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(url);
  clients.push(client);
  await once(client, 'open');
  const [server] = await accepted;
  return { client, server };
}

/** Resolves with the close code when `ws` closes, or 'open' after `ms`. */
function closedWithin(ws: WebSocket, ms: number): Promise<number | 'open'> {
  return Promise.race([
    once(ws, 'close').then(([code]) => code as number),
    sleep(ms).then(() => 'open' as const),
  ]);
}

test('a peer that stops reading is cut within about two intervals (no closing handshake: 1006)', async () => {
  const { client, server } = await pair();
  keepAlive(server, 100);
  // The client's socket is no longer read: ws cannot see the pings, so no pong is sent.
  (client as unknown as { _socket: { pause(): void } })._socket.pause();
  assert.equal(await closedWithin(server, 30_000), 1006);
});

test('a WebSocket paused for back-pressure is not cut for the pongs it could not read', async () => {
  const { client, server } = await pair();
  keepAlive(server, 100);
  await sleep(150); // at least one ping out
  server.pause();
  // Many intervals with the socket unread: the pongs queue unseen, and that is not held against the peer.
  assert.equal(await closedWithin(server, 1_500), 'open');
  server.resume();
  client.send('still there');
  const [data] = (await once(server, 'message')) as [Buffer];
  assert.equal(data.toString(), 'still there');
  assert.equal(server.readyState, WebSocket.OPEN);
});

test('a live peer is kept: pings answered, nothing cut', async () => {
  const { client, server } = await pair();
  let pings = 0;
  client.on('ping', () => {
    pings += 1;
  });
  keepAlive(server, 1_000);
  assert.equal(await closedWithin(server, 5_500), 'open');
  assert.ok(pings >= 2, `the client saw ${String(pings)} pings`);
  assert.equal(client.readyState, WebSocket.OPEN);
});

test('closing the WebSocket stops its pings (the timer is cleared)', async () => {
  const { client, server } = await pair();
  let pings = 0;
  client.on('ping', () => {
    pings += 1;
  });
  keepAlive(server, 50);
  await sleep(200);
  server.close(1000);
  await once(client, 'close');
  const seen = pings;
  await sleep(300);
  assert.equal(pings, seen);
});
