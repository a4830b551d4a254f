/**
 * Host facts as Keyward stores them: the agent's report (already parsed strictly by the channel contract)
 * with its sshd host keys parsed and re-serialised (host-keys.ts). Pure.
 */
import type { HostFacts } from '../agent-channel/index.js';
import { normaliseHostKeys, type HostKey } from './host-keys.js';

/** Host facts as stored: the contract's facts, with host keys parsed (and the platform implied: Linux). */
export type StoredFacts = Omit<HostFacts, 'platform' | 'hostKeys'> & {
  readonly hostKeys: readonly HostKey[];
};

/** The stored form of reported facts, and why any reported host key was not kept. */
export function storedFactsOf(facts: HostFacts): { facts: StoredFacts; droppedHostKeys: string[] } {
  const { keys, dropped } = normaliseHostKeys(facts.hostKeys);
  const stored: StoredFacts = {
    hostname: facts.hostname,
    osName: facts.osName,
    osVersion: facts.osVersion,
    kernel: facts.kernel,
    addresses: [...facts.addresses],
    sshAddress: facts.sshAddress,
    hostKeys: keys,
    agentVersion: facts.agentVersion,
    loginUser: facts.loginUser,
    ...(facts.sshd !== undefined && { sshd: facts.sshd }),
  };
  return { facts: stored, droppedHostKeys: dropped };
}
