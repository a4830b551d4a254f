/** Key pairs: names, generation, import, storage and the create/import/describe/delete use cases. */
export { GENERATED_KEY_TYPES, RSA_MODULUS_BITS, type GeneratedKeyType } from './generate-key-pair.js';
export {
  matchesKeyPairNamePattern,
  parseKeyPairName,
  parseKeyPairNamePattern,
  type KeyPairName,
  type KeyPairNamePattern,
} from './key-pair-name.js';
export { KeyPairRepository } from './key-pair-repository.js';
export type { KeyPairForBinding, KeyPairListing, KeyPairRecord } from './model.js';
export { keyTypeWarning } from './model.js';
export {
  KeyPairService,
  MAX_KEY_PAIRS_PER_REGION,
  parseResourceGroupId,
  type DescribeKeyPairsInput,
  type KeyPairPlacement,
} from './key-pair-service.js';
export { parsePublicKey, type SshPublicKey } from './public-key/index.js';
