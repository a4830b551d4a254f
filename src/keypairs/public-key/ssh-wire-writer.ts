/**
 * A writer for the SSH binary encoding (RFC 4251 §5), the inverse of `SshWireReader`: uint32, uint64,
 * string and positive mpint (minimal, with a 0x00 sign byte only when the top bit is set).
 */

/** Builds one SSH wire-format buffer. */
export class SshWireWriter {
  readonly #parts: Buffer[] = [];

  /** Appends a big-endian uint32. */
  uint32(value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    this.#parts.push(b);
    return this;
  }

  /** Appends a big-endian uint64. */
  uint64(value: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(value);
    this.#parts.push(b);
    return this;
  }

  /** Appends a string: uint32 length, then the bytes (a JS string is written as UTF-8). */
  string(value: Uint8Array | string): this {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    this.uint32(bytes.length);
    this.#parts.push(bytes);
    return this;
  }

  /** Appends the positive mpint whose unsigned big-endian magnitude is `magnitude` (leading zeros dropped). */
  mpint(magnitude: Uint8Array): this {
    let i = 0;
    while (i < magnitude.length && magnitude[i] === 0) i++;
    const trimmed = Buffer.from(magnitude.subarray(i));
    const first = trimmed[0];
    return this.string(
      first !== undefined && (first & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), trimmed]) : trimmed,
    );
  }

  /** Appends raw bytes as they are (already encoded fields). */
  raw(bytes: Uint8Array): this {
    this.#parts.push(Buffer.from(bytes));
    return this;
  }

  /** The bytes written so far. */
  toBuffer(): Buffer {
    return Buffer.concat(this.#parts);
  }
}
