/**
 * A pass-through stream that counts the bytes it carries and, when given a rate, holds each chunk back
 * until a token bucket (one second of burst) allows it. Holding the callback is the back-pressure: the
 * writer upstream waits, so a throttled tunnel buffers no more than the streams' high-water marks.
 */
import { Transform, type TransformCallback } from 'node:stream';

export class ByteMeter extends Transform {
  bytes = 0;
  readonly #rate: number;
  #tokens: number;
  #lastMs = Date.now();
  #timer: NodeJS.Timeout | undefined;

  /** `bytesPerSecond` 0: no limit, count only. */
  constructor(bytesPerSecond: number) {
    super({ highWaterMark: 64 * 1024 });
    this.#rate = bytesPerSecond;
    this.#tokens = bytesPerSecond;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.#rate <= 0) {
      callback(null, chunk);
      return;
    }
    const now = Date.now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#lastMs) * this.#rate) / 1000);
    this.#lastMs = now;
    this.#tokens -= chunk.length;
    if (this.#tokens >= 0) {
      callback(null, chunk);
      return;
    }
    const waitMs = Math.ceil((-this.#tokens * 1000) / this.#rate);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      callback(null, chunk);
    }, waitMs);
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    clearTimeout(this.#timer);
    callback(error);
  }
}
