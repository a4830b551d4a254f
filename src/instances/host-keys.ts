/**
 * sshd host keys as reported by an agent: parsed with Keyward's SSH public key parser and re-serialised,
 * so what is stored (and later pinned by the broker) is a validated plain key, never the agent's text.
 * Keys the parser refuses (types it does not know, RSA under 2048 bits, certificates) are dropped and
 * reported, not stored: pinning fewer keys only narrows what the broker will accept. Pure.
 */
import { parsePublicKey } from '../keypairs/index.js';
import { AppError } from '../platform/errors.js';

/** One pinned host key. */
export interface HostKey {
  /** The key type, e.g. `ssh-ed25519`. */
  readonly type: string;
  /** `type base64`, re-serialised. */
  readonly publicKey: string;
  /** `SHA256:` and unpadded base64, as `ssh-keygen -l` prints it. */
  readonly fingerprintSha256: string;
}

/** Parses reported host key lines; returns the usable ones and the reasons the others were dropped. */
export function normaliseHostKeys(lines: readonly string[]): { keys: HostKey[]; dropped: string[] } {
  const keys: HostKey[] = [];
  const dropped: string[] = [];
  const seen = new Set<string>();
  for (const line of lines) {
    try {
      const key = parsePublicKey(line);
      if (key.isCertificate) {
        dropped.push(`${key.type}: a certificate, not a host key`);
        continue;
      }
      if (seen.has(key.openssh)) continue;
      seen.add(key.openssh);
      keys.push({ type: key.type, publicKey: key.openssh, fingerprintSha256: key.fingerprintSha256 });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      dropped.push(`${line.split(' ')[0] ?? ''}: ${err.message}`);
    }
  }
  return { keys, dropped };
}

/** Reads the stored JSON form back; a malformed column is our bug (TypeError). */
export function parseStoredHostKeys(json: string): HostKey[] {
  const value: unknown = JSON.parse(json);
  if (!Array.isArray(value)) throw new TypeError('instances.host_keys is not a JSON array');
  return value.map((v: unknown) => {
    const o = v as Partial<HostKey> | null;
    if (
      typeof o?.type !== 'string' ||
      typeof o.publicKey !== 'string' ||
      typeof o.fingerprintSha256 !== 'string'
    ) {
      throw new TypeError('instances.host_keys holds an entry of the wrong shape');
    }
    return { type: o.type, publicKey: o.publicKey, fingerprintSha256: o.fingerprintSha256 };
  });
}
