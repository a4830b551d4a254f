/**
 * A strict reader for the SSH binary encoding (RFC 4251 §5): uint32, uint64, string and mpint. Every read
 * checks the length against what is left, mpints must be minimal and of the expected sign, and `end()`
 * refuses trailing bytes. Failures are `InvalidPublicKeyBody.Malformed` errors naming the field.
 */
import { malformed } from './public-key-error.js';

/** Reads SSH wire-format fields from one buffer, front to back. */
export class SshWireReader {
  readonly #buf: Buffer;
  readonly #what: string;
  #pos = 0;

  /** `what` names the whole buffer in messages ("the key data", "the certificate", "the CA key"). */
  constructor(buf: Buffer, what: string) {
    this.#buf = buf;
    this.#what = what;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#pos;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  /** Reads a big-endian uint32. */
  readUint32(field: string): number {
    this.#need(4, field);
    const value = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  /** Reads a big-endian uint64. */
  readUint64(field: string): bigint {
    this.#need(8, field);
    const value = this.#buf.readBigUInt64BE(this.#pos);
    this.#pos += 8;
    return value;
  }

  /** Reads a string (uint32 length + bytes) and returns its bytes (a view into the buffer). */
  readString(field: string): Buffer {
    this.#need(4, `the length of ${field}`);
    const length = this.#buf.readUInt32BE(this.#pos);
    if (length > this.remaining - 4) {
      throw malformed(
        `${this.#what} is damaged: the length of ${field} (${length} bytes) points past its end ` +
          `(${this.remaining - 4} bytes left)`,
      );
    }
    const start = this.#pos + 4;
    this.#pos = start + length;
    return this.#buf.subarray(start, start + length);
  }

  /** Reads a string that must be ASCII text without NUL or control characters (a name). */
  readName(field: string): string {
    const bytes = this.readString(field);
    if (bytes.some((b) => b < 0x20 || b > 0x7e)) {
      throw malformed(`${this.#what} is damaged: ${field} holds non-printable or non-ASCII bytes`);
    }
    return bytes.toString('latin1');
  }

  /** Reads a string that must not contain a NUL byte (a C string in OpenSSH: key ids, principals). */
  readCString(field: string): Buffer {
    const bytes = this.readString(field);
    if (bytes.includes(0)) throw malformed(`${this.#what} is damaged: ${field} contains a NUL byte`);
    return bytes;
  }

  /**
   * Reads an mpint that must be positive (non-zero) and minimally encoded per RFC 4251 §5, and returns its
   * magnitude: the big-endian bytes without the 0x00 sign byte.
   */
  readPositiveMpint(field: string): Buffer {
    const bytes = this.readString(field);
    const first = bytes[0];
    if (first === undefined) throw malformed(`${this.#what} is damaged: ${field} is zero`);
    if ((first & 0x80) !== 0) throw malformed(`${this.#what} is damaged: ${field} is negative`);
    if (first === 0) {
      const second = bytes[1];
      if (second === undefined || (second & 0x80) === 0) {
        throw malformed(
          `${this.#what} is damaged: ${field} is not minimally encoded (it has an unnecessary leading zero byte)`,
        );
      }
      return bytes.subarray(1);
    }
    return bytes;
  }

  /** Refuses any bytes left after the last field. */
  end(): void {
    if (this.remaining !== 0) {
      throw malformed(`${this.#what} has ${this.remaining} unexpected bytes after its last field`);
    }
  }

  #need(count: number, field: string): void {
    if (this.remaining < count) {
      throw malformed(`${this.#what} is truncated: it ends before ${field}`);
    }
  }
}
