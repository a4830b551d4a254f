/**
 * The logon domain's records: a one-time logon key pair's life as the domain sees it (camelCase, booleans
 * as booleans). The repository maps `logon_grants` rows to these; the RPC view maps these to the API.
 */

/** Who holds the one-time private key: the server's broker (terminal) or the user's `keyward ssh`. */
export type LogonKind = 'broker' | 'client';

/** What is written when a grant is issued (before it is sent, so a crash leaves a record). */
export interface NewLogonGrant {
  readonly id: string;
  readonly accountId: string;
  readonly regionId: string;
  readonly instanceId: string;
  readonly osUser: string;
  readonly kind: LogonKind;
  readonly caller: string;
  readonly requestId: string;
  readonly sourceIp: string;
  readonly keyFingerprint: string;
  readonly portForwarding: boolean;
  readonly issuedAt: string;
  readonly expiresAt: string;
}

/** One grant's life: what it was issued as, then the timestamps it gained. Times are ISO-8601 UTC. */
export interface LogonGrantRecord extends NewLogonGrant {
  readonly installedAt: string | null;
  /** The host's own deadline, by its clock. */
  readonly hostExpiresAt: string | null;
  /** The first logon with the key: when the broker authenticated, or when sshd logged the first one. */
  readonly usedAt: string | null;
  /** The SSH client's address and source port at that first logon (null for the broker's). */
  readonly usedFrom: string | null;
  readonly usedPort: number | null;
  /** Logons with the key so far (0: never used). */
  readonly useCount: number;
  /** A `Logon.*` or `Host.*` code when the logon failed. */
  readonly failureCode: string | null;
  /** When the server let go of the key. */
  readonly destroyedAt: string | null;
  readonly destroyReason: string | null;
  /** When the agent reported the key gone from the host's disk, and why. */
  readonly hostRemovedAt: string | null;
  readonly hostRemovedReason: string | null;
}

/** A grant past its deadline that no replica has destroyed yet. */
export type ExpiredLogonGrant = Pick<LogonGrantRecord, 'id' | 'accountId' | 'instanceId' | 'expiresAt'>;
