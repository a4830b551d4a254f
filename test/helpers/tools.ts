/**
 * External tools the end-to-end tests compare Keyward against (OpenSSH's ssh-keygen, openssl), run as
 * child processes, and an independent encoder of OpenSSH public keys built on node:crypto only.
 *
 * A missing tool fails the test with the command that installs it: these tests never skip.
 */
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { execFile, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const INSTALL: Readonly<Record<string, string>> = {
  'ssh-keygen': 'apt-get install -y openssh-client',
  openssl: 'apt-get install -y openssl',
};

/** Throws, naming the install command, when `tool` is not on PATH. */
export function requireTool(tool: 'ssh-keygen' | 'openssl'): void {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  if (found.status !== 0 || found.stdout.trim() === '') {
    throw new Error(
      `${tool} is required by this test but is not installed; install it with: ${INSTALL[tool] ?? tool}`,
    );
  }
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion; never throws on a non-zero exit (look at `code`). */
export function run(
  file: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      { cwd: opts.cwd, env: opts.env, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined;
        if (code === undefined) {
          reject(new Error(`${file} ${args.join(' ')} failed to run: ${err?.message ?? ''}\n${stderr}`));
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs a program that must succeed; returns its stdout. */
export async function runOk(
  file: string,
  args: readonly string[],
  opts: { cwd?: string } = {},
): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export interface SshKeygenKey {
  /** Path of the private key; the public key is `${path}.pub`. */
  readonly path: string;
  /** The .pub file as written (with its comment). */
  readonly pubLine: string;
  /** `type base64`, without the comment. */
  readonly openssh: string;
  /** `ssh-keygen -E md5 -l` after `MD5:`. */
  readonly md5: string;
  /** `ssh-keygen -l` (SHA256:…). */
  readonly sha256: string;
}

/** Makes a key with `ssh-keygen -t type -N '' -f dir/name` and reads its fingerprints with ssh-keygen. */
export async function sshKeygen(
  dir: string,
  name: string,
  type: 'ed25519' | 'rsa' | 'ecdsa',
  bits?: number,
): Promise<SshKeygenKey> {
  requireTool('ssh-keygen');
  const path = join(dir, name);
  await runOk('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(bits === undefined ? [] : ['-b', String(bits)]),
    '-N',
    '',
    '-C',
    `${name}@keyward-test`,
    '-f',
    path,
  ]);
  const pubLine = (await readFile(`${path}.pub`, 'utf8')).trim();
  const [keyType, base64] = pubLine.split(' ');
  return {
    path,
    pubLine,
    openssh: `${keyType ?? ''} ${base64 ?? ''}`,
    md5: await sshKeygenMd5(`${path}.pub`),
    sha256: await sshKeygenSha256(`${path}.pub`),
  };
}

/** The MD5 fingerprint `ssh-keygen -E md5 -l -f file` prints, without its `MD5:` prefix. */
export async function sshKeygenMd5(file: string): Promise<string> {
  requireTool('ssh-keygen');
  const out = await runOk('ssh-keygen', ['-E', 'md5', '-l', '-f', file]);
  const m = /MD5:((?:[0-9a-f]{2}:){15}[0-9a-f]{2})/.exec(out);
  if (m?.[1] === undefined) throw new Error(`no MD5 fingerprint in ssh-keygen output: ${out}`);
  return m[1];
}

/** The SHA256 fingerprint `ssh-keygen -l -f file` prints (`SHA256:…`). */
export async function sshKeygenSha256(file: string): Promise<string> {
  requireTool('ssh-keygen');
  const out = await runOk('ssh-keygen', ['-E', 'sha256', '-l', '-f', file]);
  const m = /(SHA256:[A-Za-z0-9+/]{43})/.exec(out);
  if (m?.[1] === undefined) throw new Error(`no SHA256 fingerprint in ssh-keygen output: ${out}`);
  return m[1];
}

function sshString(data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

function sshMpint(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  const trimmed = unsigned.subarray(i);
  const first = trimmed[0] ?? 0;
  return sshString((first & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/**
 * The OpenSSH public key blob of an Ed25519 or RSA KeyObject, written from RFC 4253 / RFC 8709 here (not
 * with Keyward's code), so tests can check Keyward's output independently.
 */
export function sshBlob(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (key.asymmetricKeyType === 'ed25519' && jwk.x !== undefined) {
    return Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(Buffer.from(jwk.x, 'base64url'))]);
  }
  if (key.asymmetricKeyType === 'rsa' && jwk.e !== undefined && jwk.n !== undefined) {
    return Buffer.concat([
      sshString(Buffer.from('ssh-rsa')),
      sshMpint(Buffer.from(jwk.e, 'base64url')),
      sshMpint(Buffer.from(jwk.n, 'base64url')),
    ]);
  }
  throw new Error(`sshBlob: unsupported key type ${String(key.asymmetricKeyType)}`);
}

/** `type base64` of a KeyObject (public, or private: its public half). */
export function opensshLine(key: KeyObject): string {
  const blob = sshBlob(key);
  const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString();
  return `${type} ${blob.toString('base64')}`;
}

/** MD5 fingerprint of an OpenSSH `type base64` line: lowercase hex pairs joined by `:`. */
export function md5FingerprintOf(openssh: string): string {
  const base64 = openssh.split(' ')[1] ?? '';
  const hex = createHash('md5').update(Buffer.from(base64, 'base64')).digest('hex');
  return hex.match(/../g)?.join(':') ?? '';
}

/** A fresh Ed25519 public key in OpenSSH one-line form (fast: no ssh-keygen). */
export function newEd25519OpenSsh(): string {
  return opensshLine(generateKeyPairSync('ed25519').publicKey);
}

/** The MD5 fingerprint pattern of KeyPairFingerPrint. */
export const MD5_FINGERPRINT = /^(?:[0-9a-f]{2}:){15}[0-9a-f]{2}$/;

/** What an unencrypted OpenSSH Ed25519 private key file holds. */
export interface OpenSshEd25519Private {
  /** The 32-byte private seed. */
  readonly seed: Buffer;
  /** The 32-byte public key. */
  readonly publicKey: Buffer;
  readonly comment: string;
  /** The seed as a node:crypto private KeyObject. */
  readonly keyObject: KeyObject;
  /** The decoded openssh-key-v1 bytes (the PEM body). */
  readonly raw: Buffer;
}

/**
 * Reads an unencrypted `-----BEGIN OPENSSH PRIVATE KEY-----` Ed25519 key (OpenSSH PROTOCOL.key), written
 * here independently of Keyward's encoder, and checks its internal consistency.
 */
export function parseOpenSshEd25519Private(pem: string): OpenSshEd25519Private {
  const m =
    /^-----BEGIN OPENSSH PRIVATE KEY-----\n([A-Za-z0-9+/=\n]+)-----END OPENSSH PRIVATE KEY-----\n?$/.exec(
      pem,
    );
  if (m?.[1] === undefined) throw new Error('not an OpenSSH private key PEM');
  const raw = Buffer.from(m[1].replaceAll('\n', ''), 'base64');
  let at = 0;
  const take = (n: number): Buffer => {
    if (at + n > raw.length) throw new Error('truncated OpenSSH private key');
    const out = raw.subarray(at, at + n);
    at += n;
    return out;
  };
  const u32 = (): number => take(4).readUInt32BE(0);
  const str = (): Buffer => take(u32());
  if (!take(15).equals(Buffer.from('openssh-key-v1\0', 'latin1'))) throw new Error('bad magic');
  const cipher = str().toString();
  const kdf = str().toString();
  const kdfOptions = str();
  if (cipher !== 'none' || kdf !== 'none' || kdfOptions.length !== 0) throw new Error('encrypted key');
  if (u32() !== 1) throw new Error('expected exactly one key');
  const publicBlob = str();
  const section = str();
  if (at !== raw.length) throw new Error('trailing bytes after the private section');
  if (section.length % 8 !== 0) throw new Error('private section not padded to 8 bytes');
  // The private section: check integers, key type, public key, seed + public key, comment, padding.
  let p = 0;
  const sTake = (n: number): Buffer => {
    if (p + n > section.length) throw new Error('truncated private section');
    const out = section.subarray(p, p + n);
    p += n;
    return out;
  };
  const sU32 = (): number => sTake(4).readUInt32BE(0);
  const sStr = (): Buffer => sTake(sU32());
  const check1 = sU32();
  const check2 = sU32();
  if (check1 !== check2) throw new Error('check integers differ');
  if (sStr().toString() !== 'ssh-ed25519') throw new Error('not ssh-ed25519');
  const publicKey = Buffer.from(sStr());
  const both = sStr();
  const comment = sStr().toString('utf8');
  const padding = section.subarray(p);
  padding.forEach((b, i) => {
    if (b !== i + 1) throw new Error('bad padding');
  });
  if (publicKey.length !== 32 || both.length !== 64) throw new Error('bad Ed25519 key lengths');
  const seed = Buffer.from(both.subarray(0, 32));
  if (!both.subarray(32).equals(publicKey)) throw new Error('private part does not end with the public key');
  const expectedBlob = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(publicKey)]);
  if (!publicBlob.equals(expectedBlob)) throw new Error('public blob differs from the private section key');
  const keyObject = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const derived = Buffer.from(keyObject.export({ format: 'jwk' }).x ?? '', 'base64url');
  if (!derived.equals(publicKey)) throw new Error('the seed does not derive the public key');
  return { seed, publicKey, comment, keyObject, raw };
}

/** A self-signed P-256 certificate for IP 127.0.0.1 made by openssl in `dir`: its files and PEM text. */
export async function makeSelfSignedCert(
  dir: string,
): Promise<{ certFile: string; keyFile: string; pem: string }> {
  requireTool('openssl');
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  await runOk('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-days',
    '2',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return { certFile, keyFile, pem: await readFile(certFile, 'utf8') };
}
