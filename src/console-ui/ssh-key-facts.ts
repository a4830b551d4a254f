/**
 * What the key pairs page shows of an OpenSSH public key line: its type (with the RSA modulus size) and
 * its SHA256 fingerprint as ssh-keygen prints it. SHA-256 is computed here (not with crypto.subtle, which
 * a browser offers only on https or localhost pages).
 */
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

export function sha256(data: Uint8Array): Uint8Array {
  const bitLength = data.length * 8;
  const padded = new Uint8Array(((data.length + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 2 ** 32));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  const hh = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i += 1) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i += 1) {
      const a = w[i - 15] ?? 0;
      const b = w[i - 2] ?? 0;
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = ((w[i - 16] ?? 0) + s0 + (w[i - 7] ?? 0) + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, x] = [
      hh[0] ?? 0,
      hh[1] ?? 0,
      hh[2] ?? 0,
      hh[3] ?? 0,
      hh[4] ?? 0,
      hh[5] ?? 0,
      hh[6] ?? 0,
      hh[7] ?? 0,
    ];
    for (let i = 0; i < 64; i += 1) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (x + s1 + ((e & f) ^ (~e & g)) + (K[i] ?? 0) + (w[i] ?? 0)) >>> 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      x = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    const add = [a, b, c, d, e, f, g, x];
    for (let i = 0; i < 8; i += 1) hh[i] = ((hh[i] ?? 0) + (add[i] ?? 0)) >>> 0;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i += 1) ov.setUint32(i * 4, hh[i] ?? 0);
  return out;
}

function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  'ssh-ed25519': 'Ed25519',
  'ecdsa-sha2-nistp256': 'ECDSA P-256',
  'ecdsa-sha2-nistp384': 'ECDSA P-384',
  'ecdsa-sha2-nistp521': 'ECDSA P-521',
  'sk-ssh-ed25519@openssh.com': 'Ed25519-SK',
  'sk-ecdsa-sha2-nistp256@openssh.com': 'ECDSA-SK',
  'ssh-dss': 'DSA',
};

/** RSA modulus size in bits from the key blob (string "ssh-rsa", mpint e, mpint n). */
function rsaBits(blob: Uint8Array): number | undefined {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  let off = 0;
  const skip = (): number => {
    const len = view.getUint32(off);
    off += 4 + len;
    return len;
  };
  try {
    skip();
    skip();
    let len = view.getUint32(off);
    off += 4;
    while (len > 0 && blob[off] === 0) {
      off += 1;
      len -= 1;
    }
    const top = blob[off] ?? 0;
    return len === 0 ? undefined : (len - 1) * 8 + (32 - Math.clz32(top));
  } catch {
    return undefined;
  }
}

export interface KeyFacts {
  readonly type: string;
  readonly sha256: string;
}

/** Type and SHA256 fingerprint of an OpenSSH public key line, or undefined when it does not parse. */
export function keyFacts(line: string): KeyFacts | undefined {
  const [algo, b64] = line.trim().split(/\s+/);
  if (algo === undefined || b64 === undefined) return undefined;
  let blob: Uint8Array;
  try {
    blob = base64ToBytes(b64);
  } catch {
    return undefined;
  }
  const fp = `SHA256:${bytesToBase64(sha256(blob)).replace(/=+$/, '')}`;
  if (algo === 'ssh-rsa') {
    const bits = rsaBits(blob);
    return { type: bits === undefined ? 'RSA' : `RSA-${String(bits)}`, sha256: fp };
  }
  return { type: TYPE_NAMES[algo] ?? algo, sha256: fp };
}
