/**
 * Console sign-in for RAM users: user name, password, and a TOTP code when the user has an MFA device.
 * A refusal never says whether the user exists: an unknown user, a user without a login profile and a
 * wrong password all take one scrypt run and give the same answer. Only after the right password does
 * the answer say that a code is needed. Rate limiting is the console's (it sees the client).
 */
import type { MfaStore } from './mfa-store.js';
import { verifyAgainstDummy, verifyPassword } from './password-hash.js';
import type { Principal } from './principal.js';
import type { UserStore } from './user-store.js';

export type ConsoleSignInResult =
  | {
      readonly ok: true;
      readonly principal: Extract<Principal, { kind: 'user' }>;
      /** True when a TOTP code was checked: `acs:MFAPresent` for the session. */
      readonly mfaPresent: boolean;
      /** The user's credential epoch read with the password hash; the session keeps it. */
      readonly credentialEpoch: number;
    }
  | {
      readonly ok: false;
      /** `InvalidCredentials` for everything but a right password without the code it needs. */
      readonly reason: 'InvalidCredentials' | 'MfaCodeRequired';
    };

/** Longest password looked at: the policy's maximum, so an oversized input costs no more scrypt. */
const MAX_SIGN_IN_PASSWORD_CHARS = 128;

export class ConsoleSignIn {
  readonly #users: UserStore;
  readonly #mfa: MfaStore;
  readonly #accountId: () => Promise<string | undefined>;

  constructor(deps: { users: UserStore; mfa: MfaStore; accountId: () => Promise<string | undefined> }) {
    this.#users = deps.users;
    this.#mfa = deps.mfa;
    this.#accountId = deps.accountId;
  }

  async verifyConsoleSignIn(
    userName: string,
    password: string,
    totpCode?: string,
  ): Promise<ConsoleSignInResult> {
    const refused = { ok: false, reason: 'InvalidCredentials' } as const;
    const accountId = await this.#accountId();
    const candidate = password.slice(0, MAX_SIGN_IN_PASSWORD_CHARS * 2);
    const found =
      accountId === undefined || userName.length > 64
        ? undefined
        : await this.#users.findPasswordHash(accountId, userName);
    if (found === undefined || accountId === undefined) {
      await verifyAgainstDummy(candidate);
      return refused;
    }
    if (!(await verifyPassword(candidate, found.passwordHash))) return refused;
    const principal = {
      kind: 'user',
      accountId,
      userId: found.user.id,
      userName: found.user.name,
    } as const;
    const credentialEpoch = found.credentialEpoch;
    const device = await this.#mfa.boundDevice(found.user.id);
    if (device === undefined) return { ok: true, principal, mfaPresent: false, credentialEpoch };
    if (totpCode === undefined || totpCode === '') return { ok: false, reason: 'MfaCodeRequired' };
    if (!(await this.#mfa.useCode(found.user.id, totpCode))) return refused;
    return { ok: true, principal, mfaPresent: true, credentialEpoch };
  }
}
