/**
 * Who is acting, and the facts about the request that policy conditions read. Shared by the RPC API, the
 * console and the terminal WebSocket: each establishes a principal its own way (access key, console
 * session) and hands both to the Authorizer.
 */

/** The account's root identity, or one of its RAM users. */
export type Principal =
  | { readonly kind: 'root'; readonly accountId: string }
  | {
      readonly kind: 'user';
      readonly accountId: string;
      readonly userId: string;
      readonly userName: string;
    };

/** What the `acs:` condition keys refer to, established by the transport, never by the client's word. */
export interface RequestFacts {
  /** `acs:SourceIp`: the TCP peer (no proxy headers trusted). */
  readonly sourceIp: string;
  /** `acs:SecureTransport`: the request came over TLS. */
  readonly secureTransport: boolean;
  /** `acs:MFAPresent`: the session signed in with a second factor (false for access-key requests). */
  readonly mfaPresent: boolean;
  /** `acs:CurrentTime`: from the server's clock. */
  readonly currentTime: Date;
  /**
   * The console session's credential epoch (not a condition key): a terminal opened from the console ends
   * when the user's password or MFA changes after it (src/logon/terminal-access.ts).
   */
  readonly consoleCredentialEpoch?: number;
}

/** `root`, or `user/<name>`: how logs and audit lines name a principal. */
export function principalName(p: Principal): string {
  return p.kind === 'root' ? 'root' : `user/${p.userName}`;
}
