/**
 * Unit tests for the strict SSH wire reader and its writer (RFC 4251 §5), strict base64 and the DER
 * reader: truncation, lengths pointing past the end, trailing bytes and non-canonical encodings are all
 * `InvalidPublicKeyBody.Malformed`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAppError } from '../../platform/errors.js';
import { DerReader, derSequence, derUnsignedInteger } from './der.js';
import { SshWireReader } from './ssh-wire-reader.js';
import { SshWireWriter } from './ssh-wire-writer.js';
import { decodeStrictBase64 } from './strict-base64.js';

const refused = (err: unknown): boolean => isAppError(err, 'InvalidPublicKeyBody.Malformed');
const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const reader = (h: string): SshWireReader => new SshWireReader(hex(h), 'the test data');

test('the reader reads uint32, uint64, strings and names in order and ends cleanly', () => {
  const r = reader('00000007 0000000000000102 00000003 616263 00000002 6869');
  assert.equal(r.readUint32('a'), 7);
  assert.equal(r.readUint64('b'), 258n);
  assert.deepEqual(r.readString('c'), Buffer.from('abc'));
  assert.equal(r.readName('d'), 'hi');
  assert.equal(r.remaining, 0);
  r.end();
});

test('reading past the end of a truncated buffer is refused', () => {
  assert.throws(() => reader('000000').readUint32('x'), refused);
  assert.throws(() => reader('00000000 000000').readUint64('x'), refused);
  assert.throws(() => reader('0000').readString('x'), refused);
});

test('a string length pointing past the end is refused, also for lengths near 2^32', () => {
  assert.throws(() => reader('00000005 61626364').readString('x'), refused);
  assert.throws(() => reader('ffffffff 61626364').readString('x'), refused);
  assert.throws(() => reader('80000000').readString('x'), refused);
});

test('bytes left after the last field are refused by end()', () => {
  const r = reader('00000001 61 00');
  r.readString('x');
  assert.equal(r.remaining, 1);
  assert.throws(() => {
    r.end();
  }, refused);
});

test('positive mpints must be minimal, non-negative and non-zero', () => {
  assert.deepEqual(reader('00000001 7f').readPositiveMpint('m'), hex('7f'));
  assert.deepEqual(reader('00000002 0080').readPositiveMpint('m'), hex('80'));
  assert.throws(() => reader('00000000').readPositiveMpint('m'), refused); // zero
  assert.throws(() => reader('00000001 80').readPositiveMpint('m'), refused); // negative
  assert.throws(() => reader('00000002 007f').readPositiveMpint('m'), refused); // needless 0x00
  assert.throws(() => reader('00000001 00').readPositiveMpint('m'), refused); // zero written as 0x00
});

test('names must be printable ASCII and C strings must not contain NUL', () => {
  assert.throws(() => reader('00000003 61 0a 62').readName('n'), refused);
  assert.throws(() => reader('00000002 c3a9').readName('n'), refused);
  assert.throws(() => reader('00000003 61 00 62').readCString('c'), refused);
  assert.deepEqual(reader('00000002 c3a9').readCString('c'), hex('c3a9'));
});

test('the writer produces what the reader accepts, with a sign byte only when needed', () => {
  const buf = new SshWireWriter()
    .uint32(1)
    .uint64(2n ** 40n)
    .string('ssh-rsa')
    .mpint(hex('0080'))
    .mpint(hex('7f'))
    .raw(hex('ab'))
    .toBuffer();
  assert.deepEqual(
    buf,
    hex('00000001 0000010000000000 00000007 7373682d727361 00000002 0080 00000001 7f ab'),
  );
  const r = new SshWireReader(buf, 'x');
  r.readUint32('a');
  assert.equal(r.readUint64('b'), 2n ** 40n);
  assert.equal(r.readName('c'), 'ssh-rsa');
  assert.deepEqual(r.readPositiveMpint('d'), hex('80'));
  assert.deepEqual(r.readPositiveMpint('e'), hex('7f'));
});

test('strict base64 accepts only the canonical padded form', () => {
  assert.deepEqual(decodeStrictBase64('YWJj', 'x'), Buffer.from('abc'));
  assert.deepEqual(decodeStrictBase64('YWI=', 'x'), Buffer.from('ab'));
  assert.deepEqual(decodeStrictBase64('YQ==', 'x'), Buffer.from('a'));
  for (const bad of ['', 'YWI', 'YQ=', 'YQ===', 'Y=Q=', 'YW J', 'YWJ!', 'YR==', 'YWJ=', 'YW_j', 'YWJj\n']) {
    assert.throws(() => decodeStrictBase64(bad, 'x'), refused, JSON.stringify(bad));
  }
});

test('the DER reader takes minimal encodings and refuses long-form short lengths and padded integers', () => {
  const good = derSequence(derUnsignedInteger(hex('80')), derUnsignedInteger(hex('01')));
  assert.deepEqual(good, hex('3007 02020080 020101'));
  const seq = new DerReader(good, 'x').readSequence();
  assert.deepEqual(seq.readUnsignedInteger(), hex('80'));
  assert.deepEqual(seq.readUnsignedInteger(), hex('01'));
  seq.end();
  assert.throws(() => new DerReader(hex('3081 03 020101'), 'x').readSequence(), refused); // long form for 3
  assert.throws(() => new DerReader(hex('0202 0001'), 'x').readUnsignedInteger(), refused); // padded
  assert.throws(() => new DerReader(hex('0201 80'), 'x').readUnsignedInteger(), refused); // negative
  assert.throws(() => new DerReader(hex('3005 020101'), 'x').readSequence(), refused); // past the end
  assert.throws(() => new DerReader(hex('3080 020101 0000'), 'x').readSequence(), refused); // indefinite
});
