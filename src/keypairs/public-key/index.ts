/**
 * SSH public keys for ImportKeyPair and generated key pairs: parse and validate what a client sends
 * (OpenSSH line, RFC 4716, PEM; plain keys and OpenSSH certificates), or build the SSH form of a key
 * Keyward generates, and describe it the way `ssh-keygen -l` does.
 */
export { SSH_KEY_TYPES, type SshKeyType } from './key-types.js';
export type { SshPublicKey } from './ssh-public-key.js';
export { MAX_PUBLIC_KEY_BODY_BYTES, parsePublicKey } from './parse-public-key.js';
export { sshPublicKeyFromKeyObject } from './key-object.js';
