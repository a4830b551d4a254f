/**
 * Small helpers for unsigned big-endian integers as they appear in SSH mpints and DER INTEGERs: conversion
 * to and from `bigint`, bit length, and modular exponentiation (for the DSA subgroup checks).
 */

/** The value of unsigned big-endian `bytes` (empty → 0n). */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

/** The minimal unsigned big-endian encoding of `value` (0n → empty), left-padded with zeros to `length`. */
export function bigIntToBytes(value: bigint, length = 0): Buffer {
  if (value < 0n) throw new RangeError('negative value');
  let hex = value === 0n ? '' : value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length >= length) return bytes;
  return Buffer.concat([Buffer.alloc(length - bytes.length), bytes]);
}

/** Bits in the unsigned big-endian number `bytes`, ignoring leading zero bytes (0 for zero). */
export function bitLength(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  const first = bytes[i];
  if (first === undefined) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(first));
}

/** `base ** exponent mod modulus` for non-negative `exponent` and positive `modulus`. */
export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  if (modulus === 1n) return 0n;
  let result = 1n;
  let b = base % modulus;
  let e = exponent;
  while (e > 0n) {
    if ((e & 1n) === 1n) result = (result * b) % modulus;
    e >>= 1n;
    b = (b * b) % modulus;
  }
  return result;
}
