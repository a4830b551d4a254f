/**
 * The decision on an agent's `hello`: does the signature over this connection's challenge verify with the
 * identity key stored for the instance it names, and may that instance connect? Pure apart from the
 * Ed25519 verification itself (node:crypto).
 *
 * The signature is checked before the instance's status, so a client that does not hold the identity key
 * learns nothing about the instance (not even that it is revoked): unknown id and wrong key look alike.
 */
import { verify } from 'node:crypto';
import { CLOSE_CODES, helloSigningInput } from '../../agent-channel/index.js';
import { ed25519PublicKeyFromRaw } from '../grant-signing-key.js';
import type { InstanceState } from '../model.js';

/** What the decision needs to know about the instance the agent names. */
export interface HelloIdentity {
  readonly status: InstanceState;
  /** Raw Ed25519 public key, base64. */
  readonly identityPublicKey: string;
}

export type HelloDecision =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly reason: 'unknown-instance' | 'bad-signature' | 'revoked';
      readonly closeCode: number;
    };

const ED25519_SIGNATURE_BYTES = 64;

/**
 * Decides a hello naming `instanceId` with `signatureBase64`, answering the challenge `nonce`.
 * `identity` is the stored instance of that id, or undefined when there is none.
 */
export function decideHello(
  identity: HelloIdentity | undefined,
  instanceId: string,
  signatureBase64: string,
  nonce: string,
): HelloDecision {
  if (identity === undefined) {
    return { ok: false, reason: 'unknown-instance', closeCode: CLOSE_CODES.authenticationFailed };
  }
  const signature = Buffer.from(signatureBase64, 'base64');
  let valid = false;
  if (signature.length === ED25519_SIGNATURE_BYTES) {
    try {
      valid = verify(
        null,
        helloSigningInput(instanceId, nonce),
        ed25519PublicKeyFromRaw(identity.identityPublicKey),
        signature,
      );
    } catch {
      valid = false;
    }
  }
  if (!valid) return { ok: false, reason: 'bad-signature', closeCode: CLOSE_CODES.authenticationFailed };
  if (identity.status === 'revoked') return { ok: false, reason: 'revoked', closeCode: CLOSE_CODES.revoked };
  return { ok: true };
}
