/**
 * Pings a WebSocket every `intervalMs` and cuts it (terminate: no closing handshake to wait for) when the
 * previous ping got no pong, so a peer that vanished without closing (a host powered off, a NAT that
 * dropped the mapping) is noticed within two intervals instead of holding its resources for ever. ws
 * answers pings by itself, so the peer needs nothing but a live connection. While the WebSocket is paused
 * (back-pressure: its socket is not read, so a pong could not be seen) a missing pong is not held against
 * the peer. The timer is unref'd and cleared when the WebSocket closes.
 */
import { WebSocket } from 'ws';

export function keepAlive(ws: WebSocket, intervalMs: number): void {
  let answered = true;
  ws.on('pong', () => {
    answered = true;
  });
  const timer = setInterval(() => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.isPaused) {
      answered = true;
      return;
    }
    if (!answered) {
      ws.terminate();
      return;
    }
    answered = false;
    ws.ping();
  }, intervalMs);
  timer.unref();
  ws.once('close', () => {
    clearInterval(timer);
  });
}
