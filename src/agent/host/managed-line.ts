/**
 * The pure part of authorized_keys management: building Keyward's one managed line from a validated
 * `type base64` key, recognising managed lines by their marker, and rewriting file content so that only
 * managed lines change. The IO (atomic write, ownership, symlink refusal) is authorized-keys.ts's job.
 *
 * File format: sshd(8) "AUTHORIZED_KEYS FILE FORMAT": one key per line, `[options] keytype base64
 * [comment]`, `#` comments and blank lines ignored. Keyward's line is `keytype base64
 * keyward-managed:<keyPairName>`: no options, and nothing in it comes from input but the checked key
 * and the checked name.
 */

/** The comment prefix that marks the line Keyward manages. */
export const MANAGED_MARKER = 'keyward-managed:';

/** Key types sshd(8) accepts in authorized_keys, and their certificate forms. */
const KEY_TYPES: ReadonlySet<string> = new Set(
  [
    'ssh-ed25519',
    'ssh-rsa',
    'ssh-dss',
    'ecdsa-sha2-nistp256',
    'ecdsa-sha2-nistp384',
    'ecdsa-sha2-nistp521',
    'sk-ssh-ed25519@openssh.com',
    'sk-ecdsa-sha2-nistp256@openssh.com',
  ].flatMap((t) => [t, t.replace(/(@openssh\.com)?$/, '-cert-v01@openssh.com')]),
);

/** Key pair names as the server accepts them (DESIGN §3); they become the marker's suffix. */
const KEY_PAIR_NAME = /^[A-Za-z][A-Za-z0-9._:-]{1,127}$/;
const MAX_PUBLIC_KEY_CHARS = 16 * 1024;

/** A key line to bind; `publicKey` is `type base64`. */
export interface BindingToApply {
  readonly keyPairName: string;
  /** `type base64`: the key type, one space, the standard base64 of the key blob. */
  readonly publicKey: string;
}

/**
 * Checks an OpenSSH `type base64` public key: a known type, canonical standard base64, and a blob whose
 * first field (RFC 4253 §6.6 string) names the same type. Returns a reason when it is not valid.
 */
export function publicKeyProblem(publicKey: string): string | null {
  if (publicKey.length > MAX_PUBLIC_KEY_CHARS) return `is longer than ${MAX_PUBLIC_KEY_CHARS} characters`;
  const m = /^([a-z0-9@.-]{3,64}) ([A-Za-z0-9+/]+={0,2})$/.exec(publicKey);
  if (m === null) return 'is not of the form "type base64"';
  const [, type = '', base64 = ''] = m;
  if (!KEY_TYPES.has(type)) return `has an unsupported key type "${type}"`;
  const blob = Buffer.from(base64, 'base64');
  if (blob.toString('base64') !== base64) return 'has a base64 body that is not canonical';
  if (blob.length < 4) return 'has a truncated key blob';
  const nameLength = blob.readUInt32BE(0);
  if (4 + nameLength > blob.length || blob.subarray(4, 4 + nameLength).toString('latin1') !== type) {
    return `has a key blob that is not a ${type} key`;
  }
  return null;
}

/** Builds the managed line (without a line end), or returns why the binding is not valid. */
export function buildManagedLine(binding: BindingToApply): { line: string } | { problem: string } {
  if (!KEY_PAIR_NAME.test(binding.keyPairName)) {
    return { problem: `key pair name ${JSON.stringify(binding.keyPairName.slice(0, 140))} is not valid` };
  }
  const problem = publicKeyProblem(binding.publicKey);
  if (problem !== null) return { problem: `public key of ${binding.keyPairName} ${problem}` };
  return { line: `${binding.publicKey} ${MANAGED_MARKER}${binding.keyPairName}` };
}

/**
 * True for a line Keyward manages: not a `#` comment, and its last field starts with the marker. Any such
 * line is removed on apply (also one someone edited, e.g. by adding options): a key Keyward once bound
 * must not outlive its unbinding.
 */
export function isManagedLine(line: string): boolean {
  const text = line.replace(/[ \t\r]+$/, '');
  if (/^[ \t]*#/.test(text)) return false;
  return new RegExp(`(?:^|[ \\t])${MANAGED_MARKER}[^ \\t]*$`).test(text);
}

/** The result of `rewriteAuthorizedKeys`. */
export interface Rewritten {
  /** The new file content. */
  readonly content: Buffer;
  /** The managed lines found in the old content (without line ends), in file order. */
  readonly previous: readonly string[];
}

/**
 * Removes every managed line from `content` (with its own line end) and puts `managedLines` first, each
 * ending in `\n`. Every other byte is kept: the user's lines, comments, blank lines, CR LF line ends and
 * a missing final newline.
 *
 * The managed line goes first rather than last so that adding and removing it are exact inverses for every
 * file: appended after a last line without a newline it would need a separator that unbinding could not
 * tell from the user's own, and without a newline of its own a later `echo … >> authorized_keys` would be
 * glued to it.
 */
export function rewriteAuthorizedKeys(content: Buffer, managedLines: readonly string[]): Rewritten {
  // latin1 maps every byte to one code unit and back, so the user's bytes survive whatever their encoding.
  const text = content.toString('latin1');
  const kept: string[] = [];
  const previous: string[] = [];
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl + 1;
    const segment = text.slice(start, end);
    const line = segment.replace(/\r?\n$/, '');
    if (isManagedLine(line)) previous.push(line.replace(/\r$/, ''));
    else kept.push(segment);
    start = end;
  }
  const head = managedLines.map((l) => `${l}\n`).join('');
  return { content: Buffer.from(head + kept.join(''), 'latin1'), previous };
}
