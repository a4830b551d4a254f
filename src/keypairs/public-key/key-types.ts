/**
 * The SSH public key type names Keyward accepts, how certificate types map to the plain key they certify,
 * and readable refusals for type names we know but do not accept (security keys, XMSS, signature names).
 * Names follow RFC 4253 §6.6, RFC 5656, RFC 8709 and OpenSSH PROTOCOL.certkeys.
 */
import { quoteUntrusted } from './public-key-error.js';

/** Every key type name `parsePublicKey` accepts, plain keys first, then certificates. */
export const SSH_KEY_TYPES = [
  'ssh-rsa',
  'ssh-dss',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-ed25519',
  'ssh-rsa-cert-v01@openssh.com',
  'ssh-dss-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'ssh-ed25519-cert-v01@openssh.com',
  'ssh-rsa-cert-v00@openssh.com',
  'ssh-dss-cert-v00@openssh.com',
] as const;

/** A key (or certificate) type name from `SSH_KEY_TYPES`. */
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

/** The plain (non-certificate) key types. */
export const PLAIN_KEY_TYPES = [
  'ssh-rsa',
  'ssh-dss',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-ed25519',
] as const;

/** A plain key type name. */
export type PlainKeyType = (typeof PLAIN_KEY_TYPES)[number];

/** A certificate type name. */
export type CertificateKeyType = Exclude<SshKeyType, PlainKeyType>;

/** The certificate format version: v01 (OpenSSH 5.6+) or the obsolete v00 (OpenSSH 5.4–5.5). */
export type CertificateVersion = 'v00' | 'v01';

/** What a certificate type certifies, and in which layout. */
export interface CertificateFormat {
  readonly version: CertificateVersion;
  readonly plainType: PlainKeyType;
}

/** Certificate type name → layout version and the plain type of the certified key. */
export const CERTIFICATE_FORMATS: Readonly<Record<CertificateKeyType, CertificateFormat>> = {
  'ssh-rsa-cert-v01@openssh.com': { version: 'v01', plainType: 'ssh-rsa' },
  'ssh-dss-cert-v01@openssh.com': { version: 'v01', plainType: 'ssh-dss' },
  'ecdsa-sha2-nistp256-cert-v01@openssh.com': { version: 'v01', plainType: 'ecdsa-sha2-nistp256' },
  'ecdsa-sha2-nistp384-cert-v01@openssh.com': { version: 'v01', plainType: 'ecdsa-sha2-nistp384' },
  'ecdsa-sha2-nistp521-cert-v01@openssh.com': { version: 'v01', plainType: 'ecdsa-sha2-nistp521' },
  'ssh-ed25519-cert-v01@openssh.com': { version: 'v01', plainType: 'ssh-ed25519' },
  'ssh-rsa-cert-v00@openssh.com': { version: 'v00', plainType: 'ssh-rsa' },
  'ssh-dss-cert-v00@openssh.com': { version: 'v00', plainType: 'ssh-dss' },
};

const SSH_KEY_TYPE_SET: ReadonlySet<string> = new Set(SSH_KEY_TYPES);
const PLAIN_KEY_TYPE_SET: ReadonlySet<string> = new Set(PLAIN_KEY_TYPES);

/** True when `name` is an accepted key or certificate type. */
export function isSshKeyType(name: string): name is SshKeyType {
  return SSH_KEY_TYPE_SET.has(name);
}

/** True when `name` is an accepted plain key type. */
export function isPlainKeyType(name: string): name is PlainKeyType {
  return PLAIN_KEY_TYPE_SET.has(name);
}

/** True when `name` is an accepted certificate type. */
export function isCertificateKeyType(name: string): name is CertificateKeyType {
  return isSshKeyType(name) && !isPlainKeyType(name);
}

/** Type names that exist in the SSH world but that Keyward refuses; messages may show these in full. */
const KNOWN_UNSUPPORTED_TYPES: ReadonlySet<string> = new Set([
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
  'sk-ssh-ed25519-cert-v01@openssh.com',
  'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ssh-xmss@openssh.com',
  'ssh-xmss-cert-v01@openssh.com',
  'ssh-ed448',
  'rsa-sha2-256',
  'rsa-sha2-512',
  'rsa-sha2-256-cert-v01@openssh.com',
  'rsa-sha2-512-cert-v01@openssh.com',
  'x509v3-ssh-rsa',
  'x509v3-ssh-dss',
  'x509v3-sign-rsa',
  'x509v3-sign-dss',
  'x509v3-rsa2048-sha256',
  'x509v3-ecdsa-sha2-nistp256',
  'x509v3-ecdsa-sha2-nistp384',
  'x509v3-ecdsa-sha2-nistp521',
]);

/** Families of refused type names, each with the reason a person is shown. */
const UNSUPPORTED_FAMILIES: readonly { readonly test: (name: string) => boolean; readonly reason: string }[] =
  [
    {
      test: (n) => n.startsWith('sk-'),
      reason: 'security-key (FIDO/U2F) keys are not supported; import an ssh-ed25519, ecdsa or ssh-rsa key',
    },
    {
      test: (n) => n.startsWith('ssh-xmss'),
      reason: 'XMSS keys are not supported; import an ssh-ed25519, ecdsa or ssh-rsa key',
    },
    {
      test: (n) => n.startsWith('ssh-ed448'),
      reason: 'Ed448 keys are not supported; import an ssh-ed25519 key',
    },
    {
      test: (n) => n.startsWith('x509v3-'),
      reason: 'X.509-based SSH keys are not supported; import a plain OpenSSH public key',
    },
    {
      test: (n) => /^rsa-sha2-(256|512)(-cert-v01@openssh\.com)?$/.test(n),
      reason:
        'that is a signature algorithm name, not a key type; an RSA public key line starts with ssh-rsa',
    },
    {
      test: (n) => n.startsWith('ecdsa-sha2-'),
      reason: 'only the NIST P-256, P-384 and P-521 curves are supported',
    },
  ];

/** True when `name` is a type name we recognise but refuse (so a line starting with it is not "options"). */
export function isKnownUnsupportedType(name: string): boolean {
  return KNOWN_UNSUPPORTED_TYPES.has(name) || UNSUPPORTED_FAMILIES.some((family) => family.test(name));
}

/** A type name for a message: in full when it is one we know by name, else quoted and cut short. */
export function displayTypeName(name: string): string {
  return isSshKeyType(name) || KNOWN_UNSUPPORTED_TYPES.has(name) ? name : quoteUntrusted(name);
}

/** The message for a type name that is not in `SSH_KEY_TYPES`. */
export function unsupportedTypeMessage(name: string): string {
  const family = UNSUPPORTED_FAMILIES.find((entry) => entry.test(name));
  if (family !== undefined) return `the key type ${displayTypeName(name)} is not supported: ${family.reason}`;
  return (
    `unknown key type ${displayTypeName(name)}; supported types are ssh-ed25519, ecdsa-sha2-nistp256/384/521, ` +
    `ssh-rsa, ssh-dss and their OpenSSH certificates`
  );
}
