/**
 * A WebSocket as a byte stream: binary frames in, binary frames out, with back-pressure both ways and the
 * close code under the caller's control (ws's own `createWebSocketStream` always closes without a code).
 *
 * - Reading: each binary frame is pushed; when the stream's buffer is full (the consumer is slow) the
 *   WebSocket is paused, so its TCP socket stops being read and the peer's sender blocks; `_read` resumes it.
 * - Writing: each chunk is sent as one binary frame and the write completes when ws has handed it to the
 *   socket, so a slow peer fills the socket's buffer and the writer waits (never an unbounded queue). Chunks
 *   queued meanwhile go out together (`_writev`): one socket write and one callback for the batch.
 * - No copies: a frame received is pushed as the Buffer ws made of it, a chunk written is framed as it is.
 * - The end of the writable side closes the WebSocket with `endCode` (1000 unless changed); the peer's
 *   close ends the readable side, and its code and reason are kept in `peerClose`.
 * A text frame is a protocol error: the WebSocket closes with 4400.
 */
import { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';

export class WebSocketDuplex extends Duplex {
  /** The code and reason the peer (or ws, 1006 on a cut connection) closed with, once closed. */
  peerClose: { code: number; reason: string } | undefined;
  /** Close code used when the writable side ends. */
  endCode = 1000;
  endReason = '';
  readonly ws: WebSocket;

  constructor(ws: WebSocket, options: { readonly highWaterMark?: number } = {}) {
    super({ allowHalfOpen: false, highWaterMark: options.highWaterMark ?? 64 * 1024 });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        this.closeWith(4400, 'text frames are not allowed on a tunnel');
        return;
      }
      // binaryType 'nodebuffer': ws hands over a Buffer of its own (fragments already joined).
      const chunk = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      if (!this.push(chunk)) ws.pause();
    });
    ws.once('close', (code: number, reason: Buffer) => {
      this.peerClose = { code, reason: reason.toString('utf8') };
      this.push(null);
      // Nothing can be written any more: anything still queued is dropped.
      if (!this.writableFinished) this.destroy();
    });
    ws.on('error', (err) => {
      this.destroy(err);
    });
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback(new Error('the tunnel WebSocket is closed'));
      return;
    }
    this.ws.send(chunk, { binary: true }, (err) => {
      callback(err ?? null);
    });
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback(new Error('the tunnel WebSocket is closed'));
      return;
    }
    // The socket keeps the order: the last frame's callback means every frame before it was handed over.
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) this.ws.send(chunks[i]?.chunk ?? Buffer.alloc(0), { binary: true });
    this.ws.send(chunks[last]?.chunk ?? Buffer.alloc(0), { binary: true }, (err) => {
      callback(err ?? null);
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.closeWith(this.endCode, this.endReason);
    callback();
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(error === null ? this.endCode : 4500, '');
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    callback(error);
  }

  /** Closes the WebSocket with `code` (a 4xxx code or 1000), unless it is closing already. */
  closeWith(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason.slice(0, 120));
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}
