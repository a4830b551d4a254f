/**
 * Audit events of one-time logons: a grant issued, installed on the host (or refused), used (by the broker,
 * or — as the agent read in sshd's log — with `keyward ssh` or a key sent with SendSSHPublicKey),
 * destroyed by the server, removed from the host's disk; terminal sessions opened and closed. Events carry
 * ids, names, fingerprints, codes and addresses only: never a private key, a ticket or a signature.
 */
import type { Logger } from 'pino';
import type { LogonKind } from './model.js';

interface GrantRef {
  readonly grantId: string;
  readonly accountId: string;
  readonly instanceId: string;
}

export type LogonAuditEvent =
  | (GrantRef & {
      readonly event: 'grant.issued';
      readonly kind: LogonKind;
      readonly osUser: string;
      readonly caller: string;
      readonly requestId: string;
      readonly sourceIp: string;
      readonly keyFingerprint: string;
      readonly portForwarding: boolean;
      readonly expiresAt: string;
    })
  | (GrantRef & { readonly event: 'grant.installed'; readonly hostExpiresAt: string })
  | (GrantRef & { readonly event: 'grant.failed'; readonly code: string })
  | (GrantRef & {
      /** The first logon with the key; `grant.reused` for each later one sshd logged. */
      readonly event: 'grant.used' | 'grant.reused';
      /** Whose key it is (who asked for the grant). */
      readonly caller: string;
      /** Who saw the logon: the broker itself, or the agent in sshd's log. */
      readonly reportedBy: 'broker' | 'agent';
      readonly osUser?: string;
      /** The SSH client's address and port, as sshd logged them (agent reports). */
      readonly sourceIp?: string;
      readonly sourcePort?: number;
      /** When sshd logged it, by the host's clock (agent reports). */
      readonly hostUsedAt?: string;
      readonly useCount?: number;
    })
  | (GrantRef & { readonly event: 'grant.destroyed'; readonly reason: string })
  | (GrantRef & { readonly event: 'grant.removed'; readonly reason: string })
  | (GrantRef & {
      readonly event: 'session.opened';
      readonly sessionId: string;
      readonly caller: string;
      readonly osUser: string;
      readonly sourceIp: string;
      /** The session is being recorded, and whether it may go on unrecorded. */
      readonly recorded?: boolean;
      readonly recordingRequired?: boolean;
    })
  | (GrantRef & {
      readonly event: 'session.closed';
      readonly sessionId: string;
      readonly reason: string;
      readonly seconds: number;
      /**
       * The recording as it was closed: state (complete, truncated, failed, interrupted, none), size and
       * SHA-256 of the exact bytes in the file, so an altered recording disagrees with the hash-chained
       * audit log. `interrupted`: closed by the replica upkeep after the replica bridging it died.
       */
      readonly recordingState?: string;
      readonly recordingBytes?: number | null;
      readonly recordingSha256?: string | null;
    })
  | TunnelAuditEvent;

/**
 * SSH tunnels through an instance's agent (src/tunnels): opened for a client (`keyward ssh` and
 * StartSshTunnel) or for the broker, closed with the bytes each way, or refused with the code.
 */
export type TunnelAuditEvent =
  | {
      readonly event: 'tunnel.opened';
      readonly accountId: string;
      readonly instanceId: string;
      readonly tunnelId: string;
      readonly via: 'client' | 'broker';
      readonly caller: string;
      readonly osUser: string;
      readonly requestId: string;
      readonly sourceIp: string;
    }
  | {
      readonly event: 'tunnel.closed';
      readonly accountId: string;
      readonly instanceId: string;
      readonly tunnelId: string;
      readonly via: 'client' | 'broker';
      readonly caller: string;
      /** Bytes from the client (or broker) to sshd, and from sshd back. */
      readonly bytesToHost: number;
      readonly bytesFromHost: number;
      readonly seconds: number;
      /** The WebSocket close code the tunnel ended with and who closed it. */
      readonly closeCode: number;
      readonly reason: string;
    }
  | {
      readonly event: 'tunnel.refused';
      readonly accountId: string;
      readonly instanceId: string;
      readonly via: 'client' | 'broker';
      readonly caller: string;
      readonly requestId: string;
      readonly sourceIp: string;
      readonly code: string;
    };

export interface LogonAuditSink {
  record(event: LogonAuditEvent): void;
}

/** Writes each event as one structured pino line (`audit: true`). */
export function pinoLogonAuditSink(logger: Logger): LogonAuditSink {
  return {
    record(event) {
      if (event.event === 'grant.failed' || event.event === 'tunnel.refused')
        logger.warn({ audit: true, ...event }, event.event);
      else logger.info({ audit: true, ...event }, event.event);
    },
  };
}
