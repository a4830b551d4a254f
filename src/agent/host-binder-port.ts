/**
 * What the agent needs from the host library (src/agent/host, `HostBinder`): apply a desired binding and
 * describe sshd. The agent depends on this narrow interface, not the class, so tests inject a fake and
 * the composition root (src/apps/agent) passes the real binder.
 */
import type { BindingSpec } from '../agent-channel/index.js';

/** The outcome of one apply, as the host library reports it (a `Host.*` code when !ok). */
export interface BinderApplyResult {
  readonly ok: boolean;
  readonly code?: string;
  readonly message?: string;
}

/** sshd as the host runs it: the port it listens on and its host public keys (`type base64` each). */
export interface SshdDescription {
  readonly port: number;
  readonly hostKeys: readonly string[];
  /** The OpenSSH release (`9.2p1`), when `sshd -V` says. */
  readonly opensshVersion?: string;
}

/** The host side of the agent. Implementations report host problems as results, not exceptions. */
export interface AgentHostBinder {
  /** Makes the host match `binding` (null: no bound key pair, password logons restored). */
  apply(binding: BindingSpec | null): Promise<BinderApplyResult> | BinderApplyResult;
  /** Reads sshd's port and host keys (for the facts the agent reports). */
  describeSshd(): Promise<SshdDescription> | SshdDescription;
  /** Optional start-up check that the host can be managed at all; a failure is logged, not fatal. */
  check?(): Promise<BinderApplyResult> | BinderApplyResult;
}
