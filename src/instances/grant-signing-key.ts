/**
 * The server's grant-signing key: an Ed25519 key pair made on first start, with which the server signs the
 * one-time grants agents accept (DESIGN.md §4–5). Agents pin its public key at enrollment.
 *
 * Stored in the database (`server_keys`), the private key as PKCS#8 DER sealed with the master key
 * (SecretBox, bound to the row id), not as a file in the data directory: every replica sharing a
 * PostgreSQL database must sign with the same key, and backups of the database keep the key agents pinned.
 * Two replicas starting at once both try to insert; the loser's insert is ignored and it reads the winner's.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import type { SecretBox } from '../platform/crypto/secret-box.js';
import type { Db } from '../platform/db/database.js';

const KEY_ID = 'grant-signing';
const ALGORITHM = 'ed25519';

/** The server's grant-signing key, opened for use. */
export class GrantSigningKey {
  readonly #privateKey: KeyObject;
  /** Raw 32-byte Ed25519 public key, base64 (what enrollment hands to agents). */
  readonly publicKeyBase64: string;

  constructor(privateKey: KeyObject) {
    if (privateKey.asymmetricKeyType !== 'ed25519' || privateKey.type !== 'private') {
      throw new TypeError('the grant-signing key must be an Ed25519 private key');
    }
    this.#privateKey = privateKey;
    this.publicKeyBase64 = rawEd25519PublicKey(createPublicKey(privateKey)).toString('base64');
  }

  /** Ed25519 signature over `data` (64 bytes). */
  sign(data: Buffer): Buffer {
    return sign(null, data, this.#privateKey);
  }
}

/** The raw 32 bytes of an Ed25519 public key. */
export function rawEd25519PublicKey(key: KeyObject): Buffer {
  const x = key.export({ format: 'jwk' }).x;
  if (x === undefined) throw new TypeError('not an Ed25519 key');
  return Buffer.from(x, 'base64url');
}

/** An Ed25519 public KeyObject from its raw 32 bytes in base64. */
export function ed25519PublicKeyFromRaw(base64: string): KeyObject {
  const raw = Buffer.from(base64, 'base64');
  if (raw.length !== 32) throw new TypeError('an Ed25519 public key is 32 bytes');
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
}

/** True when the database holds no grant-signing key yet (a first start). */
export async function hasGrantSigningKey(db: Db): Promise<boolean> {
  const row = await db.selectFrom('server_keys').select('id').where('id', '=', KEY_ID).executeTakeFirst();
  return row !== undefined;
}

/** Loads the grant-signing key, creating and storing it on first start. */
export async function loadOrCreateGrantSigningKey(deps: {
  db: Db;
  secretBox: SecretBox;
  clock: Clock;
}): Promise<{ key: GrantSigningKey; created: boolean }> {
  const existing = await read(deps);
  if (existing !== undefined) return { key: existing, created: false };
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const result = await deps.db
    .insertInto('server_keys')
    .values({
      id: KEY_ID,
      algorithm: ALGORITHM,
      public_key: rawEd25519PublicKey(publicKey).toString('base64'),
      private_key_sealed: deps.secretBox.seal(der.toString('base64'), `server_keys:${KEY_ID}`),
      created_at: new Date(deps.clock.nowMs()).toISOString(),
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst();
  const stored = await read(deps);
  if (stored === undefined) throw new Error('the grant-signing key was not stored');
  return { key: stored, created: (result.numInsertedOrUpdatedRows ?? 0n) === 1n };
}

async function read(deps: { db: Db; secretBox: SecretBox }): Promise<GrantSigningKey | undefined> {
  const row = await deps.db
    .selectFrom('server_keys')
    .select(['algorithm', 'public_key', 'private_key_sealed'])
    .where('id', '=', KEY_ID)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  if (row.algorithm !== ALGORITHM) throw new Error(`server key ${KEY_ID} has algorithm ${row.algorithm}`);
  let der: Buffer;
  try {
    der = Buffer.from(deps.secretBox.open(row.private_key_sealed, `server_keys:${KEY_ID}`), 'base64');
  } catch (err) {
    throw new Error(
      'the master key does not open the grant-signing key in this database; start with the master key this ' +
        'database was created with (every replica on one database must use the same KEYWARD_MASTER_KEY or key file)',
      { cause: err },
    );
  }
  const key = new GrantSigningKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
  if (key.publicKeyBase64 !== row.public_key) {
    throw new Error('the stored grant-signing public key does not match its private key');
  }
  return key;
}
