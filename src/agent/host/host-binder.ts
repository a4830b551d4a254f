/**
 * HostBinder: makes the host match one desired binding (a key pair, or none) in two parts, each atomic on
 * its own (authorized-keys.ts, sshd-config.ts), composed here so the whole apply is all-or-nothing.
 *
 * Order (fail closed: never a moment where a bound key coexists with password logons Keyward said were
 * off, which is what a binding promises — DESIGN §3 "binding disables password logons"):
 * - bind: check authorized_keys can be written (no change) → password logons off (sshd part) → write the
 *   key line. If the key line then fails, the sshd part is rolled back, so a failed bind never leaves
 *   password logons off with no new key (a lockout) nor a key on with passwords on.
 * - unbind: remove the key line → password logons back (sshd part). If the sshd part fails, the key line
 *   is put back, so a failed unbind never leaves passwords off with no key.
 * A crash between the two parts leaves the fail-closed state (passwords off, old key or none) and the
 * agent's next apply of the desired state completes it. When a rollback itself fails the result says
 * exactly which state the host is left in.
 *
 * Applies are serialised per instance. Deciding the desired state, and reporting it, is the agent's job.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { authorizedKeysPath, probeAuthorizedKeys, setManagedLines } from './authorized-keys.js';
import { execBounded } from './exec.js';
import { buildManagedLine, publicKeyProblem, type BindingToApply } from './managed-line.js';
import { OS_USER_NAME, resolveOsAccount, type OsAccount } from './os-account.js';
import {
  fail,
  isFailure,
  withNote,
  type HostApplyResult,
  type HostFailure,
  type HostResultCode,
} from './result.js';
import { atLeast, detectOpenSshVersion, type OpenSshVersion } from './openssh.js';
import { SshdPasswordControl } from './sshd-config.js';
import { sshdDump, type SshdTarget } from './sshd-process.js';

/** Options of HostBinder; checked once in the constructor (TypeError on misuse). */
export interface HostBinderOptions {
  /** The OS user bound key pairs log on as (passwd(5) name). */
  readonly loginUser: string;
  readonly sshd: SshdTarget;
  /** Time limit of each child process (sshd -t/-T, getent) and of waiting for sshd's restart. */
  readonly timeoutMs?: number;
  /** Allowed to add the drop-in directory's Include line to sshd_config when it has none (--add-sshd-include). */
  readonly addSshdInclude?: boolean;
}

/**
 * Whether sshd's accepted public key algorithms (`sshd -T` pubkeyacceptedalgorithms, named
 * pubkeyacceptedkeytypes before 8.5) let a key of `keyType` log on. An RSA key signs with rsa-sha2-256/512
 * as well as the SHA-1 `ssh-rsa` that 8.8 turned off, so it counts as accepted when any of them is. Pure.
 */
export function keyTypeAccepted(keyType: string, accepted: readonly string[]): boolean {
  const rsa = ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512'];
  if (keyType === 'ssh-rsa') return rsa.some((a) => accepted.includes(a));
  const cert = /^(.+)-cert-v0[01]@openssh\.com$/.exec(keyType);
  if (cert?.[1] === 'ssh-rsa') return rsa.some((a) => accepted.includes(`${a}-cert-v01@openssh.com`));
  return accepted.includes(keyType);
}

/**
 * Host.KeyTypeRefused for a key of `keyType` that `setting` (as `sshd -T` printed it) does not list. DSA is
 * off by default from OpenSSH 7.0 (listing ssh-dss would turn it back on) and gone from 10.0, where no
 * setting brings it back, so the message does not suggest one there. Pure.
 */
export function keyTypeRefusal(
  keyType: string,
  setting: string,
  version: OpenSshVersion | null,
  keyPairName: string,
): HostFailure {
  const dsa = keyType === 'ssh-dss' || keyType.startsWith('ssh-dss-cert-');
  const why = !dsa
    ? ''
    : version !== null && atLeast(version, 10, 0)
      ? ' (OpenSSH 10.0 removed DSA altogether: no sshd setting brings it back)'
      : ' (DSA keys are off by default since OpenSSH 7.0 and gone from 10.0)';
  return fail(
    'Host.KeyTypeRefused',
    `sshd${version === null ? '' : ` (OpenSSH ${version.text})`} does not accept ${keyType} keys${why}: its ` +
      `${setting} (sshd -T) does not list ${keyType}, so key pair ${keyPairName} could never log on. ` +
      `Bind an Ed25519, ECDSA or RSA key pair instead. Nothing was changed.`,
  );
}

/** Thrown by `describeSshd` when sshd's configuration cannot be read. */
export class HostDescribeError extends Error {
  readonly code: HostResultCode;
  constructor(failure: HostFailure) {
    super(failure.message);
    this.name = 'HostDescribeError';
    this.code = failure.code;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_HOST_KEYS = 8;

function checkPath(value: unknown, name: string): void {
  if (typeof value !== 'string' || !isAbsolute(value) || /[\0\n]/.test(value)) {
    throw new TypeError(`HostBinder: sshd.${name} must be an absolute path`);
  }
}

/** Binds and unbinds key pairs on this host for one login user and one sshd. */
export class HostBinder {
  readonly #loginUser: string;
  readonly #target: SshdTarget;
  readonly #timeoutMs: number;
  readonly #sshd: SshdPasswordControl;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(opts: HostBinderOptions) {
    if (typeof opts.loginUser !== 'string' || !OS_USER_NAME.test(opts.loginUser)) {
      throw new TypeError(`HostBinder: loginUser must be a user name matching ${String(OS_USER_NAME)}`);
    }
    checkPath(opts.sshd.configFile, 'configFile');
    checkPath(opts.sshd.pidFile, 'pidFile');
    checkPath(opts.sshd.sshdBinary, 'sshdBinary');
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
      throw new TypeError('HostBinder: timeoutMs must be a positive integer');
    }
    this.#loginUser = opts.loginUser;
    this.#target = Object.freeze({ ...opts.sshd });
    this.#timeoutMs = timeoutMs;
    this.#sshd = new SshdPasswordControl(this.#target, timeoutMs, opts.addSshdInclude === true);
  }

  /** The OpenSSH release of the sshd binary, or null when `sshd -V` does not say (then the newest rules apply). */
  async #version(): Promise<OpenSshVersion | null> {
    const v = await detectOpenSshVersion(this.#target, this.#timeoutMs);
    return isFailure(v) ? null : v;
  }

  /**
   * Makes the host match `binding` (null = unbound): the managed authorized_keys line and password logons.
   * Never throws for host problems: returns a result with a code and a message that says exactly what is
   * wrong and what to change.
   */
  apply(binding: BindingToApply | null): Promise<HostApplyResult> {
    return this.#exclusive(() => this.#apply(binding));
  }

  /** Checks the sshd can be managed at all (login user, Include, sshd -t, running sshd); for start-up. */
  check(): Promise<HostApplyResult> {
    return this.#exclusive(async () => {
      const account = await resolveOsAccount(this.#loginUser, this.#timeoutMs);
      if (isFailure(account)) return account;
      const checked = await this.#sshd.check(await this.#version());
      if (isFailure(checked)) return checked;
      return {
        ok: true,
        message: `sshd (${this.#target.configFile}) can be managed: password drop-in ${checked.dropInPath}; key pairs bind in ${authorizedKeysPath(account)}.`,
      };
    });
  }

  /** sshd's listen port and host public keys (`type base64`, from `sshd -T` hostkey entries), for the agent's facts. */
  async describeSshd(): Promise<{ port: number; hostKeys: string[]; opensshVersion?: string }> {
    const dump = await sshdDump(this.#target, this.#timeoutMs);
    if (isFailure(dump)) throw new HostDescribeError(dump);
    const port = Number(dump.get('port')?.[0]);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new HostDescribeError(fail('Host.SshdConfigInvalid', 'sshd -T printed no valid port'));
    }
    const hostKeys: string[] = [];
    for (const path of dump.get('hostkey') ?? []) {
      const key = await this.#hostPublicKey(path);
      if (key !== null && !hostKeys.includes(key) && hostKeys.length < MAX_HOST_KEYS) hostKeys.push(key);
    }
    const version = await this.#version();
    return { port, hostKeys, ...(version !== null && { opensshVersion: version.text }) };
  }

  /** `type base64` of a host key: from `<path>.pub`, else derived with `ssh-keygen -y`. */
  async #hostPublicKey(path: string): Promise<string | null> {
    if (!isAbsolute(path)) return null;
    let text = await readFile(`${path}.pub`, 'latin1').catch(() => null);
    if (text === null) {
      const out = await execBounded('/usr/bin/ssh-keygen', ['-y', '-f', path], this.#timeoutMs);
      text = out.status === 0 ? out.stdout : null;
    }
    const [type, base64] = (text ?? '').trim().split(/[ \t]+/);
    const key = `${type ?? ''} ${base64 ?? ''}`;
    return publicKeyProblem(key) === null ? key : null;
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #apply(binding: BindingToApply | null): Promise<HostApplyResult> {
    let line: string | null = null;
    if (binding !== null) {
      const built = buildManagedLine(binding);
      if ('problem' in built) {
        return fail(
          'Host.BindingInvalid',
          `The binding is not valid: ${built.problem}. Nothing was changed.`,
        );
      }
      line = built.line;
    }
    const account = await resolveOsAccount(this.#loginUser, this.#timeoutMs);
    if (isFailure(account)) return account;
    return binding === null || line === null ? this.#unbind(account) : this.#bind(account, binding, line);
  }

  /** Host.KeyTypeRefused when sshd would not accept a key of the binding's type. */
  async #keyTypeRefused(
    binding: BindingToApply,
    version: OpenSshVersion | null,
  ): Promise<HostFailure | null> {
    const keyType = binding.publicKey.split(' ')[0] ?? '';
    const dump = await sshdDump(this.#target, this.#timeoutMs);
    if (isFailure(dump)) return dump;
    const setting = dump.has('pubkeyacceptedalgorithms')
      ? 'PubkeyAcceptedAlgorithms'
      : 'PubkeyAcceptedKeyTypes';
    const list = dump.get(setting.toLowerCase())?.[0];
    if (list === undefined) return null;
    if (keyTypeAccepted(keyType, list.split(','))) return null;
    return keyTypeRefusal(keyType, setting, version, binding.keyPairName);
  }

  async #bind(account: OsAccount, binding: BindingToApply, line: string): Promise<HostApplyResult> {
    const keyPairName = binding.keyPairName;
    const path = authorizedKeysPath(account);
    const version = await this.#version();
    const refused = await this.#keyTypeRefused(binding, version);
    if (refused !== null) return refused;
    const probe = await probeAuthorizedKeys(account);
    if (isFailure(probe)) return withNote(probe, 'Password logons were not changed.');
    const sshd = await this.#sshd.disablePasswords(version);
    if (isFailure(sshd)) return withNote(sshd, `The key pair was not written to ${path}.`);
    const keys = await setManagedLines(account, [line]);
    if (isFailure(keys)) {
      if (sshd.snapshot === null) {
        return withNote(keys, 'Password logons were already off before this apply and stay off.');
      }
      const rolledBack = await this.#sshd.rollback(sshd.snapshot);
      if (isFailure(rolledBack)) {
        return withNote(
          keys,
          `Turning password logons back on also failed (${rolledBack.code}: ${rolledBack.message}): password ` +
            `logons are OFF and the key pair is NOT bound; fix the above and apply again.`,
        );
      }
      return withNote(keys, 'Password logons were put back as they were.');
    }
    return {
      ok: true,
      message:
        `Key pair ${keyPairName} is bound in ${path}; password logons are off (${sshd.dropInPath ?? ''}).` +
        (keys.warning === undefined ? '' : ` Warning: ${keys.warning}`),
    };
  }

  async #unbind(account: OsAccount): Promise<HostApplyResult> {
    const path = authorizedKeysPath(account);
    const keys = await setManagedLines(account, []);
    if (isFailure(keys)) return withNote(keys, 'Password logons were not changed.');
    const sshd = await this.#sshd.restorePasswords();
    if (isFailure(sshd)) {
      if (!keys.changed) return sshd;
      const putBack = await setManagedLines(account, keys.previous);
      if (isFailure(putBack)) {
        return withNote(
          sshd,
          `Putting the key line back in ${path} also failed (${putBack.code}: ${putBack.message}): no key pair ` +
            `is bound and password logons stay off; fix the above and apply again.`,
        );
      }
      return withNote(sshd, `The key line was put back in ${path}, so the key pair stays bound.`);
    }
    return {
      ok: true,
      message:
        `No key pair is bound in ${path}; password logons are as sshd's own configuration sets them.` +
        (keys.warning === undefined ? '' : ` Warning: ${keys.warning}`),
    };
  }
}
