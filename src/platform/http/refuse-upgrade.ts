/**
 * Answers a WebSocket upgrade request that will not be accepted with a plain HTTP response carrying the ECS
 * error body, then closes the socket. Used by every WebSocket endpoint before `ws` takes the socket.
 */
import type { Duplex } from 'node:stream';
import type { AppError } from '../errors.js';
import { newRequestId } from '../ids.js';
import { errorBody } from './error-response.js';

export function refuseUpgrade(socket: Duplex, err: AppError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(err, newRequestId(), ''));
  const headers = Object.entries(err.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${err.status} ${err.code}\r\nConnection: close\r\n${headers}` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
