/**
 * A tiny strict DER (X.690 §10) reader and writer, just enough for DSA SubjectPublicKeyInfo (RFC 3279
 * §2.3.2): SEQUENCE, INTEGER, OBJECT IDENTIFIER and BIT STRING. Node cannot export DSA keys as JWK, so
 * this is how p, q, g and y are taken out of (and put into) an SPKI. The reader refuses indefinite or
 * non-minimal lengths, non-minimal or negative integers, and trailing bytes.
 */
import { malformed } from './public-key-error.js';

const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OID = 0x06;
const TAG_SEQUENCE = 0x30;

/** Reads DER elements from one buffer, front to back. */
export class DerReader {
  readonly #buf: Buffer;
  readonly #what: string;
  #pos = 0;

  /** `what` names the data in messages ("the DSA public key"). */
  constructor(buf: Buffer, what: string) {
    this.#buf = buf;
    this.#what = what;
  }

  /** Reads a SEQUENCE and returns a reader over its contents. */
  readSequence(): DerReader {
    return new DerReader(this.#read(TAG_SEQUENCE, 'SEQUENCE'), this.#what);
  }

  /** Reads a non-negative INTEGER and returns its magnitude (big-endian, no sign byte). */
  readUnsignedInteger(): Buffer {
    const body = this.#read(TAG_INTEGER, 'INTEGER');
    const first = body[0];
    if (first === undefined) throw this.#error('an INTEGER is empty');
    if ((first & 0x80) !== 0) throw this.#error('an INTEGER is negative');
    if (first === 0 && body.length > 1) {
      if (((body[1] ?? 0) & 0x80) === 0) throw this.#error('an INTEGER is not minimally encoded');
      return body.subarray(1);
    }
    return body;
  }

  /** Reads an OBJECT IDENTIFIER in dotted form ("1.2.840.10040.4.1"). */
  readObjectIdentifier(): string {
    const body = this.#read(TAG_OID, 'OBJECT IDENTIFIER');
    if (body.length === 0) throw this.#error('an OBJECT IDENTIFIER is empty');
    const arcs: bigint[] = [];
    let value = 0n;
    let started = false;
    for (const byte of body) {
      if (!started && byte === 0x80) throw this.#error('an OBJECT IDENTIFIER is not minimally encoded');
      started = true;
      value = (value << 7n) | BigInt(byte & 0x7f);
      if ((byte & 0x80) === 0) {
        arcs.push(value);
        value = 0n;
        started = false;
      }
    }
    if (started) throw this.#error('an OBJECT IDENTIFIER is truncated');
    const [first = 0n, ...rest] = arcs;
    const top = first < 80n ? first / 40n : 2n;
    return [top, first - top * 40n, ...rest].join('.');
  }

  /** Reads a BIT STRING with no unused bits and returns its bytes. */
  readBitString(): Buffer {
    const body = this.#read(TAG_BIT_STRING, 'BIT STRING');
    if (body.length === 0 || body[0] !== 0) throw this.#error('a BIT STRING has unused bits');
    return body.subarray(1);
  }

  /** Refuses bytes left after the last element. */
  end(): void {
    if (this.#pos !== this.#buf.length)
      throw this.#error('there are unexpected bytes after the last element');
  }

  #read(tag: number, name: string): Buffer {
    const actual = this.#buf[this.#pos];
    if (actual === undefined) throw this.#error(`it ends where a ${name} was expected`);
    if (actual !== tag) throw this.#error(`a ${name} was expected`);
    let pos = this.#pos + 1;
    const lead = this.#buf[pos++];
    if (lead === undefined) throw this.#error(`the length of a ${name} is missing`);
    let length = lead;
    if (lead >= 0x80) {
      const count = lead & 0x7f;
      if (count === 0 || count > 4) throw this.#error(`a ${name} has an unsupported length form`);
      length = 0;
      for (let i = 0; i < count; i++) {
        const b = this.#buf[pos++];
        if (b === undefined) throw this.#error(`the length of a ${name} is truncated`);
        if (i === 0 && b === 0) throw this.#error(`the length of a ${name} is not minimally encoded`);
        length = length * 256 + b;
      }
      if (length < 0x80) throw this.#error(`the length of a ${name} is not minimally encoded`);
    }
    if (length > this.#buf.length - pos) throw this.#error(`a ${name} runs past the end of the data`);
    this.#pos = pos + length;
    return this.#buf.subarray(pos, pos + length);
  }

  #error(detail: string): Error {
    return malformed(`${this.#what} is not valid DER: ${detail}`);
  }
}

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function element(tag: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(tag), derLength(body.length), body]);
}

/** DER SEQUENCE of already encoded elements. */
export function derSequence(...elements: readonly Uint8Array[]): Buffer {
  return element(TAG_SEQUENCE, Buffer.concat(elements));
}

/** DER INTEGER of the non-negative number with big-endian magnitude `magnitude`. */
export function derUnsignedInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const trimmed = magnitude.length === 0 ? Buffer.of(0) : Buffer.from(magnitude.subarray(i));
  return element(
    TAG_INTEGER,
    ((trimmed[0] ?? 0) & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), trimmed]) : trimmed,
  );
}

/** DER OBJECT IDENTIFIER from dotted form. */
export function derObjectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [a = 0n, b = 0n, ...rest] = arcs;
  const out: number[] = [];
  for (const arc of [a * 40n + b, ...rest]) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(Number(v & 0x7fn) | (chunk.length === 0 ? 0 : 0x80));
      v >>= 7n;
    } while (v > 0n);
    out.push(...chunk);
  }
  return element(TAG_OID, Buffer.from(out));
}

/** DER BIT STRING with no unused bits. */
export function derBitString(bytes: Uint8Array): Buffer {
  return element(TAG_BIT_STRING, Buffer.concat([Buffer.of(0), bytes]));
}
