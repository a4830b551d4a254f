/**
 * Builds the real host side of the agent: the host library's HostBinder for the configured login user
 * and sshd. Kept apart from start-agent.ts so tests of the composition can pass a fake instead.
 */
import type { AgentHostBinder } from '../../agent/index.js';
import { HostBinder } from '../../agent/host/index.js';
import type { AgentConfig } from './agent-config.js';

/** The HostBinder for `config` (checks its options; throws TypeError on misuse). */
export function createHostBinder(
  config: Pick<AgentConfig, 'loginUser' | 'sshd'> & Partial<Pick<AgentConfig, 'addSshdInclude'>>,
): AgentHostBinder {
  return new HostBinder({
    loginUser: config.loginUser,
    sshd: config.sshd,
    addSshdInclude: config.addSshdInclude === true,
  });
}
